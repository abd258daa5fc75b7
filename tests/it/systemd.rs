//! The sd_notify protocol as systemd sees it, through a fake
//! `NOTIFY_SOCKET` (a datagram socket this test reads).

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::util::{Daemon, Env};

/// What systemd would have received: one string per datagram.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    sock: UnixDatagram,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        NotifySocket {
            _dir: dir,
            path,
            sock,
        }
    }

    /// Every datagram up to and including the first with `line` as one of
    /// its lines; panics with what arrived and the daemon's log after 60 s.
    fn until(&self, d: &Daemon, line: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(n) = self.sock.recv(&mut buf) else {
                continue;
            };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = has(&msg, line);
            got.push(msg);
            if done {
                return got;
            }
        }
        panic!(
            "no {line} within 60 s; received: {got:?}\n--- daemon log ---\n{}",
            d.log()
        );
    }
}

fn has(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

fn count(msgs: &[String], line: &str) -> usize {
    msgs.iter().filter(|m| has(m, line)).count()
}

/// Regression: the first scan and every pass ran on the loop with no
/// WATCHDOG=1 until they were done (2.3 s for 100,000 changed files, so a
/// few million files outlast `WatchdogSec=60s`), and nothing extended the
/// start timeout while the first scan ran.
#[test]
fn systemd_hears_ready_reload_stopping_and_watchdog_pings_during_the_first_scan() {
    let env = Env::new();
    let cfg = env.config("");
    // A watchdog interval of 2 µs (pings due every 1 µs): every progress
    // call the first scan makes pings, since sending one takes longer than
    // that, so the count below does not depend on how fast this machine
    // scans. The files give the scan many progress calls.
    let expires = chrono::Utc::now() + chrono::Duration::days(200);
    for i in 0..5000 {
        env.write(
            &format!("tokens/t{i:05}.vpptoken"),
            tokenwatch::token::sample_token(&format!("Org {i}"), expires),
        );
    }
    let notify = NotifySocket::new();
    let mut d = Daemon::start_with_watchdog_pid(
        &env,
        &cfg,
        &[
            ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "2"),
        ],
    );

    let start = notify.until(&d, "READY=1");
    let pings = count(&start, "WATCHDOG=1");
    // At least every other of its 5,000 entries.
    assert!(
        pings >= 2500,
        "{pings} WATCHDOG=1 before READY=1, while the first scan ran: {start:?}\n--- daemon log ---\n{}",
        d.log()
    );
    assert!(
        start[0].starts_with("EXTEND_TIMEOUT_USEC="),
        "the start timeout was not extended before the first scan: {start:?}"
    );

    d.signal(libc::SIGHUP);
    let reload = notify.until(&d, "READY=1");
    let reloading = reload
        .iter()
        .position(|m| has(m, "RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1 before READY=1: {reload:?}"));
    assert!(
        reload[reloading].lines().any(|l| l
            .strip_prefix("MONOTONIC_USEC=")
            .is_some_and(|v| v.parse::<u64>().is_ok())),
        "RELOADING=1 without MONOTONIC_USEC in the same message: {reload:?}"
    );

    d.signal(libc::SIGTERM);
    let stop = notify.until(&d, "STOPPING=1");
    assert_eq!(count(&stop, "READY=1"), 0, "{stop:?}");
    assert_eq!(d.wait_exit(20), Some(0), "{}", d.log());
}

/// `systemctl status` shows a STATUS= line the daemon keeps current: sent
/// with the first pass, again when a pass changes what it says.
#[test]
fn the_status_line_counts_credentials_folders_and_expiring_ones() {
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    env.sample("tokens/b.vpptoken", "Beta", 300);
    let notify = NotifySocket::new();
    let d = Daemon::start_with(
        &env,
        &cfg,
        &[("NOTIFY_SOCKET", notify.path.to_str().unwrap())],
    );
    let start = notify.until(&d, "READY=1");
    assert!(
        start
            .iter()
            .any(|m| has(m, "STATUS=watching 2 credentials in 1 folder; 0 expiring")),
        "{start:?}"
    );
    env.sample("tokens/c.vpptoken", "Soon", 10);
    notify.until(&d, "STATUS=watching 3 credentials in 1 folder; 1 expiring");
}

/// A service manager that stops reading its socket must not stall the
/// daemon: libsystemd sends without blocking, and so must the daemon. The
/// socket's queue holds about a dozen datagrams; each new due token changes
/// the STATUS= line, so twenty of them, one pass each, fill it.
#[test]
fn a_notify_socket_nobody_reads_does_not_stall_the_daemon() {
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/first.vpptoken", "First", 10);
    let notify = NotifySocket::new();
    let mut d = Daemon::start_with(
        &env,
        &cfg,
        &[("NOTIFY_SOCKET", notify.path.to_str().unwrap())],
    );
    notify.until(&d, "READY=1");
    // From here on nobody reads the socket.
    const TOKENS: usize = 20;
    for i in 0..TOKENS {
        env.sample(
            &format!("tokens/t{i:02}.vpptoken"),
            &format!("Org {i:02}"),
            10,
        );
        let want = i + 2;
        d.wait_for(&format!("{want} credentials in the state"), 30, |s| {
            s["tokens"].as_array().is_some_and(|t| t.len() == want)
        });
    }
    d.stop();
}
