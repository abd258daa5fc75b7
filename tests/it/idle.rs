//! What the daemon writes when nothing changes: nothing.

use std::path::Path;

use crate::util::{token_states, Daemon, Env};

/// Debug lines saying `folder` was scanned, so far.
fn scans_of(d: &Daemon, folder: &Path) -> usize {
    let folder = format!("folder={}", folder.display());
    d.log()
        .lines()
        .filter(|l| l.contains("folder scanned") && l.contains(&folder))
        .count()
}

/// Waits (by the daemon's log, never by the clock) until both folders
/// have been scanned `more` more times than `from`.
fn wait_for_scans(d: &Daemon, folders: &[(&Path, usize)], more: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while folders.iter().any(|(f, from)| scans_of(d, f) < from + more) {
        assert!(
            std::time::Instant::now() < deadline,
            "the folders were not polled {more} more times within 60 s\n--- daemon log ---\n{}",
            d.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn state_files(env: &Env) -> (Vec<u8>, Vec<u8>) {
    let read = |name: &str| {
        std::fs::read(env.path().join("state").join(name))
            .unwrap_or_else(|e| panic!("read state/{name}: {e}"))
    };
    (read("tokenwatch.db"), read("tokenwatch.db-wal"))
}

fn mails(env: &Env) -> usize {
    std::fs::read_dir(env.path().join("state/mail"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Regression: every poll of a `poll = true` folder (5 s) and every look
/// for a missing one (2 s) ran a pass that rewrote the status row, so the
/// WAL changed every few seconds with nothing new.
#[test]
fn polls_that_find_nothing_new_leave_the_state_files_byte_identical() {
    let env = Env::new();
    // The hourly scheduled scan runs a pass by design; keep it out of the way.
    let cfg = env.write(
        "tokenwatch.toml",
        "state_dir = \"state\"\n\
         [alerts]\nrecipients = [\"ops@example.com\"]\n\
         [schedule]\ncheck = \"0 0 0 1 1 *\"\n\
         [[folder]]\npath = \"tokens\"\npoll = true\n\
         [[folder]]\npath = \"absent\"\n",
    );
    for (i, org) in ["Acme", "Beta", "Gamma"].iter().enumerate() {
        env.sample(&format!("tokens/t{i}.vpptoken"), org, 200 + i as i64);
    }
    // Unreadable: its alert waits until the file has been left alone for
    // 10 s, a time no poll marks; it must still come.
    env.write("tokens/broken.vpptoken", "not a token");
    let polled = env.path().join("tokens");
    let absent = env.path().join("absent");
    let d = Daemon::start_with(
        &env,
        &cfg,
        &[(
            "RUST_LOG",
            "info,tokenwatch=debug,tokio_cron_scheduler=warn",
        )],
    );
    // Two alerts: the missing folder at once, the broken file once settled.
    // The mail files first, then a status read after them that shows the
    // outbox empty: a status read before the second file appeared would
    // not yet include the sender marking it sent, a write still to come.
    d.wait_for("both alerts written", 60, |_| mails(&env) == 2);
    d.wait_for("both alerts marked sent", 60, |s| {
        token_states(s).len() == 4
            && s["folders"][1]["state"] == "missing"
            && s["outbox"].as_array().is_some_and(Vec::is_empty)
    });

    let from = [
        (polled.as_path(), scans_of(&d, &polled)),
        (absent.as_path(), scans_of(&d, &absent)),
    ];
    let before = state_files(&env);
    wait_for_scans(&d, &from, 3);
    let after = state_files(&env);
    assert!(
        before.0 == after.0,
        "the database file changed while nothing did\n--- daemon log ---\n{}",
        d.log()
    );
    assert!(
        before.1 == after.1,
        "the WAL changed while nothing did ({} -> {} bytes)\n--- daemon log ---\n{}",
        before.1.len(),
        after.1.len(),
        d.log()
    );

    // A real change still lands, at the next poll.
    env.sample("tokens/new.vpptoken", "Delta", 100);
    d.wait_for("the new token", 20, |s| {
        token_states(s).contains(&("new.vpptoken".into(), "ok".into()))
    });
    assert!(state_files(&env).1 != after.1, "the WAL did not change");
}
