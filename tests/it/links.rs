//! Symlinks below a token folder: one leading out of every configured
//! folder is reported as unreadable (`link_outside_folder`) and never
//! followed, by the scan or the watcher, unless its folder sets
//! `follow_links = true`.

use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::util::mail::read_mails;
use crate::util::{Daemon, Env};

/// A config for the folders `tokens` and `more-link` (a link to `more`),
/// with `tokens` following links when `follow`.
fn config(env: &Env, follow: bool) -> PathBuf {
    // The key only when set: the default must be not to follow.
    let follow = if follow { "follow_links = true\n" } else { "" };
    env.write(
        "tokenwatch.toml",
        format!(
            "state_dir = \"state\"\n[alerts]\nrecipients = [\"ops@example.com\"]\n\
             [[folder]]\npath = \"tokens\"\n{follow}\
             [[folder]]\npath = \"more-link\"\n"
        ),
    )
}

/// `tokens/` with a token, `more/` (configured as `more-link`) with one,
/// and `elsewhere/`, which no folder covers, with two.
fn layout(env: &Env) {
    env.sample("tokens/good.vpptoken", "Good Org", 200);
    env.sample("more/m.vpptoken", "More Org", 150);
    env.sample("elsewhere/far.vpptoken", "Far Org", 100);
    env.sample("elsewhere/deeper/x.vpptoken", "Deeper Org", 90);
    symlink(env.path().join("more"), env.path().join("more-link")).unwrap();
}

fn link(env: &Env, target: &str, at: &str) {
    symlink(env.path().join(target), env.path().join(at)).unwrap();
}

fn tokens(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["tokens"].as_array().cloned().unwrap_or_default()
}

fn named<'a>(report: &'a serde_json::Value, suffix: &str) -> Option<&'a serde_json::Value> {
    report["tokens"]
        .as_array()?
        .iter()
        .find(|t| t["path"].as_str().is_some_and(|p| p.ends_with(suffix)))
}

fn orgs(report: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = tokens(report)
        .iter()
        .filter_map(|t| t["org_name"].as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

#[test]
fn check_reports_links_out_of_every_folder_as_unreadable_and_never_follows_them() {
    let env = Env::new();
    layout(&env);
    config(&env, false);
    link(&env, "elsewhere/far.vpptoken", "tokens/far.vpptoken");
    link(&env, "elsewhere", "tokens/away");
    // Walking this used to visit the whole host.
    symlink("/", env.path().join("tokens/slash")).unwrap();
    // Into the other configured folder: followed, and one token.
    link(&env, "more", "tokens/to-more");
    link(&env, "tokens/good.vpptoken", "tokens/again.vpptoken");

    let run = env.run(&["-c", "tokenwatch.toml", "check", "--json"]);
    run.expect_code(3);
    let report = run.json();
    assert_eq!(
        orgs(&report),
        ["Good Org", "More Org"],
        "{}",
        run.describe()
    );
    assert!(
        named(&report, "more-link/m.vpptoken").is_some(),
        "{}",
        run.describe()
    );
    for name in ["tokens/far.vpptoken", "tokens/away", "tokens/slash"] {
        let t = named(&report, name).unwrap_or_else(|| panic!("{name}\n{}", run.describe()));
        assert_eq!(t["status"], "unreadable", "{name}\n{}", run.describe());
        assert_eq!(
            t["detail"],
            "link_outside_folder",
            "{name}\n{}",
            run.describe()
        );
        assert!(t["fingerprint"].is_null(), "{name}\n{}", run.describe());
    }
    assert_eq!(tokens(&report).len(), 5, "{}", run.describe());
    assert!(!run.stdout().contains("elsewhere"), "{}", run.describe());

    let human = env.run(&["-c", "tokenwatch.toml", "check"]);
    human.expect_code(3);
    assert!(
        human
            .stdout()
            .contains("tokens/away: link_outside_folder: a symbolic link")
            && human.stdout().contains("follow_links = true"),
        "{}",
        human.describe()
    );

    // follow_links = true follows them again (not `/`: that would walk
    // the host, as asked).
    std::fs::remove_file(env.path().join("tokens/slash")).unwrap();
    config(&env, true);
    let run = env.run(&["-c", "tokenwatch.toml", "check", "--json"]);
    run.expect_code(0);
    let report = run.json();
    assert_eq!(
        orgs(&report),
        ["Deeper Org", "Far Org", "Good Org", "More Org"],
        "{}",
        run.describe()
    );
    assert!(
        !run.stdout().contains("link_outside_folder"),
        "{}",
        run.describe()
    );
}

/// Every place the daemon writes to or prints: the state folder's files,
/// the mails, `status --json` and its log.
fn everything_written(env: &Env, d: &Daemon) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![env.path().join("state")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.display().to_string(),
                    std::fs::read(&p).unwrap_or_default(),
                ));
            }
        }
    }
    for (name, _, text) in read_mails(&env.path().join("state/mail")) {
        out.push((format!("mail {name} (decoded)"), text.into_bytes()));
    }
    let status = d.status().map(|s| s.to_string()).unwrap_or_default();
    out.push(("status --json".into(), status.into_bytes()));
    out.push(("daemon log".into(), d.log().into_bytes()));
    out
}

fn mails_naming(env: &Env, name: &str) -> usize {
    read_mails(&env.path().join("state/mail"))
        .iter()
        .filter(|(_, _, text)| text.contains(name))
        .count()
}

fn outbox_empty(s: &serde_json::Value) -> bool {
    s["outbox"].as_array().is_some_and(Vec::is_empty)
}

#[test]
fn the_daemon_mails_a_link_to_a_secret_once_and_keeps_no_hash_of_it() {
    let env = Env::new();
    layout(&env);
    let cfg = config(&env, false);
    let password = "canary-smtp-password-7f3e91d2c4";
    let secret = env.write("elsewhere/smtp-password", password);
    link(&env, "elsewhere/smtp-password", "tokens/pw.vpptoken");
    link(&env, "elsewhere/far.vpptoken", "tokens/far.vpptoken");
    // What a fingerprint of the password would look like: the scanner's
    // (whitespace dropped) and a plain SHA-256, in full and as mailed.
    let fingerprint = tokenwatch::token::Fingerprint::of(password.as_bytes());
    let plain = hex::encode(Sha256::digest(std::fs::read(&secret).unwrap()));
    let hashes = [
        fingerprint.as_str().to_string(),
        fingerprint.short().to_string(),
        plain.clone(),
        plain[..12].to_string(),
    ];

    let d = Daemon::start(&env, &cfg);
    d.wait_for("the link listed", 30, |s| {
        named(s, "tokens/pw.vpptoken").is_some()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while mails_naming(&env, "pw.vpptoken") == 0 {
        assert!(
            Instant::now() < deadline,
            "no mail about the link\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let no_hash_anywhere = |d: &Daemon| {
        for (what, bytes) in everything_written(&env, d) {
            let text = String::from_utf8_lossy(&bytes).to_lowercase();
            for h in &hashes {
                assert!(
                    !text.contains(h.as_str()),
                    "{what} holds {h}, a hash of the linked secret"
                );
            }
            assert!(!text.contains(password), "{what} holds the secret");
        }
    };
    no_hash_anywhere(&d);
    let s = d.status().unwrap();
    for name in ["tokens/pw.vpptoken", "tokens/far.vpptoken"] {
        let t = named(&s, name).unwrap();
        assert_eq!(t["status"], "unreadable", "{name}");
        assert_eq!(t["detail"], "link_outside_folder", "{name}");
    }
    // More passes: a new token, then a reload. Still one mail.
    env.sample("tokens/new.vpptoken", "New Org", 200);
    d.wait_for("the new token, mail sent", 30, |s| {
        named(s, "tokens/new.vpptoken").is_some() && outbox_empty(s)
    });
    d.signal(libc::SIGHUP);
    d.wait_log("config reloaded", 30);
    // Passes run in order: once this one is seen, the reload's was done.
    env.sample("tokens/newer.vpptoken", "Newer Org", 200);
    d.wait_for("a pass after the reload, mail sent", 30, |s| {
        named(s, "tokens/newer.vpptoken").is_some() && outbox_empty(s)
    });
    assert_eq!(mails_naming(&env, "pw.vpptoken"), 1, "{}", d.log());
    assert!(mails_naming(&env, "link_outside_folder") >= 1);
    no_hash_anywhere(&d);

    // follow_links takes effect on reload.
    config(&env, true);
    d.wait_for("the linked token followed after the reload", 30, |s| {
        named(s, "tokens/far.vpptoken").is_some_and(|t| t["org_name"] == "Far Org")
    });
}

/// The inotify watches the process `pid` holds, over all its inotify
/// instances (`/proc/PID/fdinfo` lists one `inotify wd:` line per watch).
fn inotify_watches(pid: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:inotify")
        })
        .filter_map(|fd| {
            std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .ok()
        })
        .map(|info| {
            info.lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count()
        })
        .sum()
}

fn wait_for_watches(d: &Daemon, what: &str, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = inotify_watches(d.child.id());
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {n} inotify watches, expected {want}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_watcher_does_not_follow_links_out_of_the_folder_unless_told_to() {
    let env = Env::new();
    env.sample("tokens/good.vpptoken", "Good Org", 200);
    for i in 0..5 {
        std::fs::create_dir_all(env.path().join(format!("elsewhere/sub{i}"))).unwrap();
    }
    link(&env, "elsewhere", "tokens/away");
    let cfg = env.write(
        "tokenwatch.toml",
        "state_dir = \"state\"\n[alerts]\nrecipients = [\"ops@example.com\"]\n[[folder]]\npath = \"tokens\"\n",
    );
    let d = Daemon::start(&env, &cfg);
    d.wait_for("first scan", 30, |s| {
        named(s, "tokens/away").is_some_and(|t| t["detail"] == "link_outside_folder")
    });
    // The config folder and `tokens`; not `elsewhere` and its 5 subfolders.
    wait_for_watches(&d, "links not followed", 2);

    std::fs::write(
        &cfg,
        "state_dir = \"state\"\n[alerts]\nrecipients = [\"ops@example.com\"]\n[[folder]]\npath = \"tokens\"\nfollow_links = true\n",
    )
    .unwrap();
    // Now `tokens`, `elsewhere` and its subfolders too, in place of the
    // plain watch of `tokens`.
    wait_for_watches(&d, "links followed after the reload", 8);
    // A change below the link is an event now, not left to the hourly scan.
    env.sample("elsewhere/sub3/new.vpptoken", "New Org", 100);
    d.wait_for("the token written through the followed link", 10, |s| {
        named(s, "tokens/away/sub3/new.vpptoken").is_some_and(|t| t["status"] == "ok")
    });
}

#[test]
fn a_token_replaced_in_another_folder_is_seen_through_a_link_into_it() {
    let env = Env::new();
    env.sample("tokens/good.vpptoken", "Good Org", 200);
    env.sample("more/x/t.vpptoken", "Linked Org", 200);
    symlink(env.path().join("more"), env.path().join("more-link")).unwrap();
    link(&env, "more/x", "tokens/to-more");
    let cfg = config(&env, false);
    let d = Daemon::start(&env, &cfg);
    let days = |s: &serde_json::Value| -> Vec<i64> {
        tokens(s)
            .iter()
            .filter(|t| t["org_name"] == "Linked Org")
            .filter_map(|t| t["days_left"].as_i64())
            .collect()
    };
    d.wait_for("first scan", 30, |s| days(s) == [199]);
    // Once this is listed, `tokens` has been scanned after start-up and
    // nothing of its own is pending: only the change below can make it
    // look again.
    env.sample("tokens/marker.vpptoken", "Marker Org", 100);
    d.wait_for("the marker", 10, |s| {
        named(s, "tokens/marker.vpptoken").is_some()
    });
    // Replaced by rename (a new file): the link in `tokens` must not keep
    // showing the old one.
    let text = env.run(&["sample-token", "--org", "Linked Org", "--days", "50"]);
    text.expect_code(0);
    env.write("more/x/.t.vpptoken.swp", text.stdout());
    std::fs::rename(
        env.path().join("more/x/.t.vpptoken.swp"),
        env.path().join("more/x/t.vpptoken"),
    )
    .unwrap();
    d.wait_for("one token, the new one", 10, |s| days(s) == [49]);
}

/// A link from `tokens` into `more-link` while that folder is missing
/// leads out of every folder that exists; once the folder appears, the
/// link leads into it and must be followed, not left reported until the
/// hourly scan (nothing in `tokens` changed, so no event says so).
#[test]
fn a_link_into_a_folder_that_appears_later_is_followed_once_it_does() {
    let env = Env::new();
    env.sample("tokens/good.vpptoken", "Good Org", 200);
    env.sample("more/x/t.vpptoken", "Linked Org", 200);
    link(&env, "more/x", "tokens/to-more");
    let cfg = config(&env, false);
    let d = Daemon::start(&env, &cfg);
    d.wait_for("the link reported while the folder is missing", 30, |s| {
        named(s, "tokens/to-more").is_some_and(|t| t["detail"] == "link_outside_folder")
    });
    // Once this is listed, `tokens` has been scanned after start-up and
    // nothing of its own is pending: only the folder appearing can make
    // it look again.
    env.sample("tokens/marker.vpptoken", "Marker Org", 100);
    d.wait_for("the marker", 10, |s| {
        named(s, "tokens/marker.vpptoken").is_some()
    });

    symlink(env.path().join("more"), env.path().join("more-link")).unwrap();
    d.wait_for("the link followed once the folder is there", 20, |s| {
        named(s, "tokens/to-more").is_none()
            && tokens(s)
                .iter()
                .any(|t| t["org_name"] == "Linked Org" && t["status"] != "unreadable")
    });
}
