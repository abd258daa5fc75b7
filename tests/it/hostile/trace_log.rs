//! A trace-level log written where the daemon watches must not feed the
//! watcher its own lines.

use crate::util::{Daemon, Env};

/// Regression: at `RUST_LOG=trace` with stderr going to a file in the
/// config's folder (which the daemon watches), notify logged each inotify
/// event, each log line was a new event, and start-up never finished (not
/// even SIGTERM got through).
#[test]
fn a_trace_log_written_into_the_watched_config_folder_does_not_feed_back_and_hang() {
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    // Daemon::start_with logs outside the watched tree, which would hide
    // the feedback: this log goes next to the config.
    let log = env.path().join("daemon.log");
    let mut cmd = Daemon::command(&env, &cfg, &log);
    cmd.env("RUST_LOG", "trace");
    let mut d = Daemon::spawn(&env, &cfg, &mut cmd, log);
    d.wait_for("first scan at trace level", 30, |s| {
        s["tokens"][0]["status"] == "ok"
    });
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(20), Some(0), "did not stop on SIGTERM");
    let log = d.log();
    assert!(log.contains("TRACE"), "not at trace level:\n{log}");
    assert!(
        log.lines().count() < 20_000,
        "{} log lines: the log feeds itself",
        log.lines().count()
    );
}
