//! `tokenwatch run` as a real process on temp folders, observed only
//! through `tokenwatch status --json` (polling with a deadline).

use crate::util::{token_states, Daemon, Env};

fn names(s: &serde_json::Value) -> Vec<String> {
    token_states(s).into_iter().map(|(n, _)| n).collect()
}

fn days_of(s: &serde_json::Value, name: &str) -> Option<i64> {
    s["tokens"]
        .as_array()?
        .iter()
        .find(|t| t["path"].as_str().unwrap_or("").ends_with(name))?["days_left"]
        .as_i64()
}

fn sample_text(env: &Env, org: &str, days: i64) -> String {
    let run = env.run(&["sample-token", "--org", org, "--days", &days.to_string()]);
    run.expect_code(0);
    run.stdout()
}

#[test]
fn tokens_added_changed_renamed_and_removed_are_reflected() {
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    let d = Daemon::start(&env, &cfg);
    d.wait_for("first scan with a.vpptoken", 20, |s| {
        names(s) == ["a.vpptoken"]
    });

    env.sample("tokens/b.vpptoken", "Beta", 100);
    d.wait_for("b added", 10, |s| names(s) == ["a.vpptoken", "b.vpptoken"]);

    env.sample("tokens/b.vpptoken", "Beta", 50);
    d.wait_for("b changed", 10, |s| days_of(s, "b.vpptoken") == Some(49));

    std::fs::rename(
        env.path().join("tokens/b.vpptoken"),
        env.path().join("tokens/b.vpptoken.old"),
    )
    .unwrap();
    d.wait_for("b renamed away", 10, |s| names(s) == ["a.vpptoken"]);

    std::fs::remove_file(env.path().join("tokens/a.vpptoken")).unwrap();
    let s = d.wait_for("a removed", 10, |s| names(s).is_empty());
    assert_eq!(s["folders"][0]["state"], "empty");
}

#[test]
fn an_editors_atomic_save_is_picked_up() {
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    let d = Daemon::start(&env, &cfg);
    d.wait_for("first scan", 20, |s| days_of(s, "a.vpptoken") == Some(199));
    let text = sample_text(&env, "Acme", 90);
    env.write("tokens/.a.vpptoken.swp", &text);
    std::fs::rename(
        env.path().join("tokens/.a.vpptoken.swp"),
        env.path().join("tokens/a.vpptoken"),
    )
    .unwrap();
    d.wait_for("new content after rename over", 10, |s| {
        days_of(s, "a.vpptoken") == Some(89)
    });
}

#[test]
fn a_half_written_file_is_read_once_complete() {
    use std::io::Write;
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    let d = Daemon::start(&env, &cfg);
    d.wait_for("first scan", 20, |s| names(s) == ["a.vpptoken"]);
    let text = sample_text(&env, "Upload", 120);
    let (head, rest) = text.as_bytes().split_at(text.len() / 2);
    // The row must carry the half's fingerprint: `File::create` leaves an
    // empty file for a moment, which is unreadable too, and a report of that
    // would not show that the daemon saw the half-written content.
    let half = tokenwatch::token::Fingerprint::of(head).short().to_string();
    let upload = |s: &serde_json::Value| {
        s["tokens"]
            .as_array()
            .and_then(|a| {
                a.iter().find(|t| {
                    t["path"]
                        .as_str()
                        .unwrap_or("")
                        .ends_with("/upload.vpptoken")
                })
            })
            .cloned()
    };
    let path = env.path().join("tokens/upload.vpptoken");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(head).unwrap();
    f.flush().unwrap();
    // The file stays half-written until the daemon has reported it so.
    d.wait_for("the half-written upload reported unreadable", 10, |s| {
        upload(s).is_some_and(|t| t["status"] == "unreadable" && t["fingerprint"] == half)
    });
    f.write_all(rest).unwrap();
    drop(f);
    let whole = tokenwatch::token::Fingerprint::of(text.as_bytes())
        .short()
        .to_string();
    d.wait_for("the completed upload read as a token", 10, |s| {
        upload(s).is_some_and(|t| {
            t["status"] == "ok" && t["fingerprint"] == whole && t["days_left"] == 119
        })
    });
}

#[test]
fn a_folder_deleted_and_recreated_is_watched_again() {
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    let d = Daemon::start(&env, &cfg);
    d.wait_for("first scan", 20, |s| names(s) == ["a.vpptoken"]);
    std::fs::remove_dir_all(env.path().join("tokens")).unwrap();
    d.wait_for("folder missing", 10, |s| {
        s["folders"][0]["state"] == "missing"
    });
    env.sample("tokens/b.vpptoken", "Beta", 100);
    d.wait_for("folder back", 15, |s| {
        names(s) == ["b.vpptoken"] && s["folders"][0]["state"] == "ok"
    });
    // And it is watched (not just found once): a new file shows up.
    env.sample("tokens/c.vpptoken", "Gamma", 100);
    let s = d.wait_for("c added after re-creation", 10, |s| {
        names(s) == ["b.vpptoken", "c.vpptoken"]
    });
    assert_eq!(s["folders"][0]["watch"], "inotify");
}

#[test]
fn a_missing_folder_is_picked_up_when_it_appears() {
    let env = Env::new();
    let cfg = env.config("");
    let d = Daemon::start(&env, &cfg);
    d.wait_for("folder reported missing", 20, |s| {
        s["folders"][0]["state"] == "missing"
    });
    env.sample("tokens/a.vpptoken", "Acme", 200);
    d.wait_for("token found", 15, |s| names(s) == ["a.vpptoken"]);
}

#[test]
fn the_start_warns_once_per_folder_it_cannot_read_and_logs_no_change_for_the_others() {
    let env = Env::new();
    let cfg = env.config("[[folder]]\npath = \"later\"\n");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    let d = Daemon::start(&env, &cfg);
    d.wait_for("first scan of both folders", 20, |s| {
        names(s) == ["a.vpptoken"] && s["folders"].as_array().is_some_and(|f| f.len() == 2)
    });
    let lines = |needle: &str| -> Vec<String> {
        d.log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    };
    // Found as expected: counted by the start-up line, not "changed" from a
    // state it never had.
    assert_eq!(
        lines("folder state changed"),
        Vec::<String>::new(),
        "{}",
        d.log()
    );
    let warned = lines("folder cannot be read yet");
    assert_eq!(warned.len(), 1, "{}", d.log());
    assert!(
        warned[0].contains("WARN") && warned[0].contains("later") && warned[0].contains("Missing"),
        "{}",
        warned[0]
    );

    env.sample("later/b.vpptoken", "Beta", 100);
    d.wait_for("the late folder's token", 15, |s| {
        names(s) == ["a.vpptoken", "b.vpptoken"]
    });
    let changed = lines("folder state changed");
    assert_eq!(changed.len(), 1, "{}", d.log());
    assert!(
        changed[0].contains("INFO") && changed[0].contains("later") && changed[0].contains("to=Ok"),
        "{}",
        changed[0]
    );

    std::fs::remove_dir_all(env.path().join("later")).unwrap();
    d.wait_for("the late folder gone again", 15, |s| {
        names(s) == ["a.vpptoken"]
    });
    let changed = lines("folder state changed");
    assert_eq!(changed.len(), 2, "{}", d.log());
    assert!(
        changed[1].contains("WARN") && changed[1].contains("to=Missing"),
        "{}",
        changed[1]
    );
}

/// SIGTERM while the start-up scan is under way (stalled in the first
/// folder by the debug build's hook): the daemon scans no further folder,
/// runs no pass, and exits 0 without having written a status or queued the
/// due token's mail.
#[test]
fn sigterm_during_the_start_up_scan_stops_before_the_next_folder_without_a_pass() {
    let env = Env::new();
    let cfg = env.config("[[folder]]\npath = \"more\"\n");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    env.sample("more/b.vpptoken", "Beta", 5);
    let stall = env.write("stall", "");
    let mut d = Daemon::start_with(
        &env,
        &cfg,
        &[("TOKENWATCH_TEST_STALL_FILE", stall.to_str().unwrap())],
    );
    d.wait_log("stalling on purpose", 20);
    d.signal(libc::SIGTERM);
    d.wait_log("SIGTERM received", 20);
    std::fs::remove_file(&stall).unwrap();
    assert_eq!(d.wait_exit(20), Some(0), "{}", d.log());

    let log = d.log();
    assert!(
        log.contains("stopping before the full scan finished"),
        "{log}"
    );
    assert!(!log.contains(" watching "), "{log}");
    assert!(
        d.status()
            .is_none_or(|s| s["tokens"].as_array().is_none_or(|t| t.is_empty())),
        "{log}"
    );
    // The state was opened before the scan began; the pass would have
    // queued the mail for b (5 days left) and its ledger row.
    let store = tokenwatch::state::StateStore::open_read_only(&env.path().join("state")).unwrap();
    assert_eq!(store.outbox().unwrap().len(), 0, "{log}");
    assert_eq!(store.ledger().unwrap().len(), 0, "{log}");
}

#[test]
fn a_config_edit_adds_a_folder_and_a_bad_edit_is_rejected_while_running() {
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    env.sample("more/b.vpptoken", "Beta", 100);
    let d = Daemon::start(&env, &cfg);
    d.wait_for("first scan", 20, |s| names(s) == ["a.vpptoken"]);

    let good = std::fs::read_to_string(&cfg).unwrap() + "\n[[folder]]\npath = \"more\"\n";
    std::fs::write(&cfg, &good).unwrap();
    d.wait_for("second folder", 10, |s| {
        names(s) == ["a.vpptoken", "b.vpptoken"] && s["folders"].as_array().unwrap().len() == 2
    });

    std::fs::write(&cfg, good.clone() + "\nbogus_key = 1\n").unwrap();
    let s = d.wait_for("config error recorded", 10, |s| {
        s["config_error"].is_array()
    });
    let errors = s["config_error"].to_string();
    assert!(errors.contains("bogus_key: unknown key"), "{errors}");
    assert!(
        errors.contains(":7:1:") || errors.contains("tokenwatch.toml:"),
        "{errors}"
    );
    // Still working on the old config.
    env.sample("more/c.vpptoken", "Gamma", 100);
    d.wait_for("still watching", 10, |s| names(s).len() == 3);

    std::fs::write(&cfg, &good).unwrap();
    d.wait_for("config error cleared", 10, |s| s["config_error"].is_null());
}

#[test]
fn a_reload_to_a_bad_apple_ca_file_is_rejected_and_shown_in_status() {
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    let d = Daemon::start(&env, &cfg);
    d.wait_for("first scan", 20, |s| names(s) == ["a.vpptoken"]);

    let ca = env.write("apple-ca.pem", "not a certificate\n");
    env.config(&format!(
        "[apple]\nverify = true\nca_file = \"{}\"\n",
        ca.display()
    ));
    let s = d.wait_for("config error recorded", 10, |s| {
        s["config_error"].is_array()
    });
    let errors = s["config_error"].to_string();
    assert!(
        errors.contains("tokenwatch.toml: [apple]:")
            && errors.contains(&format!("CA file {}", ca.display())),
        "{errors}"
    );
    // Refused as a whole, like a bad [mail]: still on the previous config.
    let log = d.log();
    assert!(log.contains("new Apple settings rejected"), "{log}");
    assert!(!log.contains("config reloaded"), "{log}");

    env.config("");
    d.wait_for("config error cleared", 10, |s| s["config_error"].is_null());
}

#[test]
fn sighup_reloads_the_config() {
    let env = Env::new();
    let real = env.config("");
    // Run on a symlink to the config: edits to the real file raise no event
    // for the watched name, so only SIGHUP can trigger this reload.
    std::fs::create_dir(env.path().join("conf")).unwrap();
    let target = env.path().join("conf/real.toml");
    std::fs::rename(&real, &target).unwrap();
    std::os::unix::fs::symlink(&target, &real).unwrap();
    env.sample("tokens/a.vpptoken", "Acme", 200);
    let d = Daemon::start(&env, &real);
    d.wait_for("first scan", 20, |s| s["tokens"][0]["status"] == "ok");
    let text = std::fs::read_to_string(&target)
        .unwrap()
        .replace("[alerts]", "[alerts]\nlead_days = [365]");
    std::fs::write(&target, text).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for("new policy applied", 10, |s| {
        s["tokens"][0]["status"] == "expiring"
    });
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains("config reloaded") && l.contains("SIGHUP")),
        "{log}"
    );
}

#[test]
fn sigterm_exits_0_promptly() {
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    let mut d = Daemon::start(&env, &cfg);
    d.wait_for("first scan", 20, |s| names(s) == ["a.vpptoken"]);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(15), Some(0), "{}", d.log());
}

#[test]
fn an_invalid_config_at_start_exits_3_with_every_error() {
    let env = Env::new();
    let cfg = env.write("bad.toml", "nope = 1\n[[folder]]\npath = 5\n");
    let mut d = Daemon::start(&env, &cfg);
    assert_eq!(d.wait_exit(15), Some(3));
    let log = d.log();
    assert!(
        log.contains("bad.toml:1:1: nope: unknown key")
            && log.contains("bad.toml:3:8: folder[1].path: expected a string"),
        "{log}"
    );
}

#[test]
fn status_without_a_database_says_the_daemon_has_not_run() {
    let env = Env::new();
    env.config("");
    let run = env.run(&["-c", "tokenwatch.toml", "status"]);
    run.expect_code(3);
    assert!(
        run.stderr().contains("the daemon has not run yet"),
        "{}",
        run.describe()
    );
    assert!(!env.path().join("state/tokenwatch.db").exists());
}

/// Starts the daemon on `config`, expects it to exit 3 at once (systemd's
/// RestartPreventExitStatus=3: no restart loop) and returns its log.
fn exits_3_at_start(env: &Env, config: &std::path::Path) -> String {
    let mut d = Daemon::start(env, config);
    let code = d.wait_exit(30);
    let log = d.log();
    assert_eq!(code, Some(3), "{log}");
    log
}

#[test]
fn unusable_mail_settings_at_start_exit_3_naming_the_cause() {
    let env = Env::new();
    let cfg =
        env.config("[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nusername = \"mailer\"\n");
    let log = exits_3_at_start(&env, &cfg);
    assert!(
        log.contains("tokenwatch.toml: [mail]:")
            && log.contains("SMTP username mailer has no password"),
        "{log}"
    );
}

#[test]
fn an_unreadable_password_file_at_start_exits_3_naming_the_file() {
    let env = Env::new();
    let missing = env.path().join("no-such-password");
    let cfg = env.config(&format!(
        "[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nusername = \"mailer\"\npassword_file = \"{}\"\n",
        missing.display()
    ));
    let log = exits_3_at_start(&env, &cfg);
    assert!(
        log.contains(&format!("SMTP password file {}", missing.display()))
            && log.contains("No such file"),
        "{log}"
    );
}

#[test]
fn a_state_dir_that_cannot_be_created_at_start_exits_3_naming_it() {
    let env = Env::new();
    // A file where a folder must be: not even root can create it.
    env.write("blocker", "");
    let cfg = env.write(
        "tokenwatch.toml",
        "state_dir = \"blocker/state\"\n[alerts]\nrecipients = [\"ops@example.com\"]\n[[folder]]\npath = \"tokens\"\n",
    );
    let log = exits_3_at_start(&env, &cfg);
    assert!(
        log.contains("state_dir")
            && log.contains("blocker/state")
            && log.contains("Not a directory"),
        "{log}"
    );
}

#[test]
fn a_bad_ca_file_at_start_exits_3_naming_the_file() {
    let env = Env::new();
    let ca = env.write("ca.pem", "not a certificate\n");
    let cfg = env.config(&format!(
        "[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nca_file = \"{}\"\n",
        ca.display()
    ));
    let log = exits_3_at_start(&env, &cfg);
    assert!(
        log.contains(&format!("CA file {}", ca.display())) && log.contains("no PEM certificate"),
        "{log}"
    );

    let env = Env::new();
    let ca = env.write("apple-ca.pem", "not a certificate\n");
    let cfg = env.config(&format!(
        "[apple]\nverify = true\nca_file = \"{}\"\n",
        ca.display()
    ));
    let log = exits_3_at_start(&env, &cfg);
    assert!(
        log.contains("tokenwatch.toml: [apple]:")
            && log.contains(&format!("CA file {}", ca.display())),
        "{log}"
    );
}

#[test]
fn start_up_housekeeping_forgets_a_token_gone_longer_than_forget_after_days() {
    use chrono::{Duration, Utc};
    use tokenwatch::state::{NewLedgerRow, SeenToken, StateStore};

    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/here.vpptoken", "Here", 200);
    let (old, recent) = ("a".repeat(64), "b".repeat(64));
    {
        let mut store = StateStore::open(&env.path().join("state")).unwrap();
        let token = |fp: &str| SeenToken {
            fingerprint: fp.to_owned(),
            path: format!("/gone/{fp}.vpptoken"),
            org_name: "Gone".into(),
            created_at: Utc::now() - Duration::days(900),
            expires_at: Utc::now() - Duration::days(535),
            account: None,
            status: "expired".into(),
            detail: None,
            topic: None,
        };
        let now = Utc::now();
        let scan = |store: &mut StateStore, days: i64, seen: &[SeenToken]| {
            store
                .record_scan(now - Duration::days(days), seen, "{}")
                .unwrap();
        };
        scan(&mut store, 500, &[token(&old), token(&recent)]);
        scan(&mut store, 300, &[token(&recent)]);
        scan(&mut store, 10, &[]);
        let rows: Vec<_> = [&old, &recent]
            .iter()
            .map(|fp| NewLedgerRow {
                key: format!("expired:{fp}"),
                fingerprint: Some(fp.to_string()),
                mailed: true,
            })
            .collect();
        store
            .commit_alerts(now - Duration::days(500), &rows, &[])
            .unwrap();
    }
    let d = Daemon::start(&env, &cfg);
    d.wait_for("first scan", 30, |s| s["tokens"].as_array().is_some());
    d.wait_log("housekeeping done", 30);
    let store = StateStore::open_read_only(&env.path().join("state")).unwrap();
    let keys: Vec<String> = store.ledger().unwrap().into_iter().map(|r| r.key).collect();
    assert!(!keys.contains(&format!("expired:{old}")), "{keys:?}");
    assert!(keys.contains(&format!("expired:{recent}")), "{keys:?}");
    let known: Vec<String> = store
        .known_tokens()
        .unwrap()
        .into_iter()
        .map(|(t, ..)| t.org_name)
        .collect();
    assert_eq!(
        known.iter().filter(|o| *o == "Gone").count(),
        1,
        "{known:?}"
    );
    assert!(known.contains(&"Here".to_owned()), "{known:?}");
}
