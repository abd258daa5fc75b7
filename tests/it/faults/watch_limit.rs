//! Watcher failure: the inotify watch limit reached (in a user namespace of
//! its own), and a watch that fails and is retried.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{alive, folder_watch, matches_model, token_text, Model};
use crate::util::{unavailable, Daemon, Env, BIN};

/// Starts the daemon in its own user namespace whose inotify watch limit
/// is `max_watches`: the same failure as a tiny `fs.inotify.max_user_watches`,
/// confined to this process, so the other tests keep their inotify.
fn start_with_watch_limit(
    env: &Env,
    config: &Path,
    max_watches: u32,
    vars: &[(&str, &str)],
) -> Result<Daemon, String> {
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "--", "sh", "-c"])
        .arg("echo 1 > /proc/sys/user/max_inotify_watches")
        .output()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    if !probe.status.success() {
        return Err(format!(
            "cannot set an inotify limit in a user namespace: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    let log = env.logs.path().join("daemon-watch-limit.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let child = Command::new("unshare")
        .args(["--user", "--map-root-user", "--", "sh", "-c"])
        .arg(format!(
            "echo {max_watches} > /proc/sys/user/max_inotify_watches && exec \"$0\" \"$@\""
        ))
        .arg(BIN)
        .args(["-c", config.to_str().unwrap(), "run"])
        .current_dir(env.path())
        .env_remove("TOKENWATCH_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env("RUST_LOG", "info,tokio_cron_scheduler=warn")
        .envs(vars.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot start the daemon under unshare: {e}"))?;
    Ok(Daemon {
        child,
        config: config.to_path_buf(),
        dir: env.path().to_path_buf(),
        log,
    })
}

#[test]
fn the_inotify_watch_limit_falls_back_to_polling_and_every_change_is_seen() {
    const TEST: &str = "watch limit";
    let env = Env::new();
    let cfg = {
        let text = "state_dir = \"state\"\n[alerts]\nrecipients = [\"ops@example.com\"]\n\
                    [[folder]]\npath = \"small\"\nallow_empty = true\n\
                    [[folder]]\npath = \"big\"\nallow_empty = true\n";
        env.write("tokenwatch.toml", text)
    };
    let mut model: Model = BTreeMap::new();
    let add = |model: &mut Model, rel: &str, days: i64| {
        let p = env.write(rel, token_text("Limit", days));
        model.insert(p, days);
    };
    add(&mut model, "small/a.vpptoken", 300);
    for i in 0..10 {
        add(&mut model, &format!("big/d{i}/t.vpptoken"), 200 + i);
    }
    // Watches: the config folder 1, `small` 1, then `big` needs 11 and
    // runs out after 4.
    let mut d = match start_with_watch_limit(&env, &cfg, 6, &[]) {
        Ok(d) => d,
        Err(e) => return unavailable(TEST, &e),
    };
    let s = d.wait_for("first scan", 20, |s| matches_model(s, &model));
    let at_start = folder_watch(&s);
    assert_eq!(at_start[0].1, "inotify", "{at_start:?}");
    assert_eq!(at_start[1].1, "poll (watcher failed)", "{at_start:?}");

    // Changes in the polled folder are still seen.
    let started = Instant::now();
    add(&mut model, "big/d3/t.vpptoken", 150);
    add(&mut model, "big/d9/new.vpptoken", 120);
    std::fs::remove_file(env.path().join("big/d0/t.vpptoken")).unwrap();
    model.remove(&env.path().join("big/d0/t.vpptoken"));
    d.wait_for("changes in the polled folder", 20, |s| {
        matches_model(s, &model)
    });
    let polled_latency = started.elapsed();

    // New subfolders in the inotify folder exceed the limit while running:
    // notify reports it, the daemon falls back, and still sees everything.
    let started = Instant::now();
    for i in 0..5 {
        add(&mut model, &format!("small/s{i}/t.vpptoken"), 100 + i);
    }
    let s = d.wait_for("tokens in new subfolders beyond the limit", 20, |s| {
        matches_model(s, &model)
    });
    let late_latency = started.elapsed();
    let after = folder_watch(&s);
    add(&mut model, "small/s4/later.vpptoken", 90);
    d.wait_for("a later change in the fallen-back folder", 20, |s| {
        matches_model(s, &model)
    });
    assert!(alive(&mut d));
    let log = d.log();
    assert!(log.contains("inotify watch limit"), "{log}");
    d.stop();
    println!(
        "watch limit: 6 inotify watches allowed for 13 folders, 5 more created later; at start {at_start:?}; changes in the polled folder seen after {:.1} s; \
         5 new subfolders beyond the limit seen after {:.1} s, then {after:?}",
        polled_latency.as_secs_f64(),
        late_latency.as_secs_f64()
    );
}

/// How many inotify watches the process holds (the kernel lists one
/// `inotify wd:` line per watch in the fdinfo of each inotify descriptor).
fn inotify_watches(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|info| {
            info.lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count()
        })
        .sum()
}

/// The watcher fails while running (new empty subfolders beyond the watch
/// limit): the folder is polled from then on. Its files are the same, so
/// only the watch mode changed, and that happened outside a rescan; the
/// next rescan must still run a pass so `status` says it is polled.
#[test]
fn a_watcher_failure_that_changes_no_file_still_shows_the_folder_polled() {
    const TEST: &str = "watcher failure without changes";
    let env = Env::new();
    let cfg = env.write(
        "tokenwatch.toml",
        "state_dir = \"state\"\n[alerts]\nrecipients = [\"ops@example.com\"]\n\
         [[folder]]\npath = \"small\"\n",
    );
    let mut model: Model = BTreeMap::new();
    let p = env.write("small/a.vpptoken", token_text("Quiet", 300));
    model.insert(p, 300);
    // Watches: the config folder 1, `small` 1; two more subfolders fit.
    let mut d = match start_with_watch_limit(&env, &cfg, 4, &[]) {
        Ok(d) => d,
        Err(e) => return unavailable(TEST, &e),
    };
    let s = d.wait_for("first scan", 20, |s| matches_model(s, &model));
    assert_eq!(folder_watch(&s)[0].1, "inotify", "{s}");

    for i in 0..5 {
        std::fs::create_dir(env.path().join(format!("small/s{i}"))).unwrap();
    }
    d.wait_for("the folder shown as polled", 20, |s| {
        matches_model(s, &model) && folder_watch(s)[0].1 == "poll (watcher failed)"
    });
    assert!(alive(&mut d));
    d.stop();
}

#[test]
fn a_failed_watch_is_retried_and_the_folder_goes_back_to_inotify() {
    const TEST: &str = "watch retry";
    let env = Env::new();
    let cfg = env.write(
        "tokenwatch.toml",
        "state_dir = \"state\"\n[alerts]\nrecipients = [\"ops@example.com\"]\n\
         [[folder]]\npath = \"small\"\n[[folder]]\npath = \"big\"\n",
    );
    let mut model: Model = BTreeMap::new();
    let add = |model: &mut Model, rel: &str, days: i64| {
        let p = env.write(rel, token_text("Retry", days));
        model.insert(p, days);
    };
    add(&mut model, "small/a.vpptoken", 300);
    for i in 0..10 {
        add(&mut model, &format!("big/d{i}/t.vpptoken"), 200 + i);
    }
    // Watches: the config folder 1, `small` 1; `big` needs 11 and fails.
    let vars = [(tokenwatch::daemon::REARM_ENV, "2")];
    let mut d = match start_with_watch_limit(&env, &cfg, 6, &vars) {
        Ok(d) => d,
        Err(e) => return unavailable(TEST, &e),
    };
    let s = d.wait_for("first scan", 20, |s| matches_model(s, &model));
    assert_eq!(folder_watch(&s)[1].1, "poll (watcher failed)", "{s}");
    // The failed attempt gave back the watches it had added before the
    // limit: they would use it up for nothing.
    // (The least of three looks: a retry every 2 s holds more for a moment.)
    let held = (0..3)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            inotify_watches(d.child.id())
        })
        .min();
    assert_eq!(held, Some(2), "{}", d.log());

    // Room for `big` once 8 of its subfolders are gone (3 watches).
    for i in 0..8 {
        std::fs::remove_dir_all(env.path().join(format!("big/d{i}"))).unwrap();
        model.remove(&env.path().join(format!("big/d{i}/t.vpptoken")));
    }
    let s = d.wait_for("big watched by inotify again", 30, |s| {
        matches_model(s, &model) && folder_watch(s)[1].1 == "inotify"
    });
    assert_eq!(folder_watch(&s)[0].1, "inotify", "{s}");
    add(&mut model, "big/d9/later.vpptoken", 90);
    d.wait_for("a change in the re-watched folder", 20, |s| {
        matches_model(s, &model)
    });
    let log = d.log();
    assert!(log.contains("watching with inotify again"), "{log}");
    d.stop();
}
