//! Disk trouble under the state database: a full disk (a small tmpfs) and a
//! read-only database (`chattr +i`). Both need root.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{alive, deliveries, integrity, outbox, poll_until, token_rows, token_text};
use crate::smtp_stub::SmtpStub;
use crate::util::mail::smtp_config;
use crate::util::{unavailable, Daemon, Env};

/// A small tmpfs mounted on a path, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        if unsafe { libc::geteuid() } != 0 {
            return Err("mounting a tmpfs needs root".into());
        }
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    /// Fills the filesystem with `filler` until it is full; bytes written.
    fn fill(&self, filler: &Path) -> u64 {
        let mut f = std::fs::File::create(filler).expect("create filler");
        let chunk = [0xA5u8; 4096];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", filler.display()),
            }
        }
        // Byte by byte into the last partial page, so nothing is left.
        while let Ok(1) = f.write(&[0u8]) {
            written += 1;
        }
        written
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Makes the state database's files immutable (`chattr +i`): writes
/// through the daemon's open descriptors fail with EPERM, like a
/// filesystem gone read-only under it (a live `mount -o remount,ro` is
/// refused while files are open for writing). Undone when dropped.
struct Immutable {
    files: Vec<PathBuf>,
}

impl Immutable {
    fn set(files: Vec<PathBuf>) -> Result<Immutable, String> {
        let out = Command::new("chattr")
            .arg("+i")
            .args(&files)
            .output()
            .map_err(|e| format!("cannot run chattr: {e}"))?;
        let guard = Immutable { files };
        if !out.status.success() {
            return Err(format!(
                "chattr +i failed (needs root and a filesystem with the immutable flag): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(guard)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").args(&self.files).status();
    }
}

/// What goes wrong with the state directory while the daemon runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trouble {
    /// The filesystem is full (a 2 MiB tmpfs filled up).
    Full,
    /// The database files cannot be written (immutable).
    ReadOnly,
}

/// The daemon runs on, logs, retries, and once the trouble is over catches
/// up: the status shows what changed meanwhile, every alert is delivered
/// exactly once (a mail accepted while its delivery could not be recorded
/// is not sent again), and the database passes `PRAGMA integrity_check`.
fn survive_disk_trouble(test: &str, trouble: Trouble) {
    let mut stub = SmtpStub::start();
    let env = Env::new();
    let state = env.path().join("state");
    let disk = match trouble {
        Trouble::Full => match Tmpfs::mount(&state, "2m") {
            Ok(t) => Some(t),
            Err(e) => return unavailable(test, &e),
        },
        Trouble::ReadOnly => None,
    };
    let cfg = smtp_config(&env, stub.port, "max_mails_per_pass = 1000", &["tokens"]);
    for i in 0..5 {
        env.write(
            &format!("tokens/fine{i}.vpptoken"),
            token_text(&format!("Fine {i}"), 200),
        );
    }
    for i in 0..3 {
        env.write(
            &format!("tokens/due{i}.vpptoken"),
            token_text(&format!("Due {i}"), 10),
        );
    }
    stub.stop();
    let mut d = Daemon::start_with(&env, &cfg, &[("TOKENWATCH_RETRY_BASE_MS", "300")]);
    d.wait_for("three mails pending, the server down", 30, |s| {
        let o = outbox(s);
        o.len() == 3 && o.iter().all(|m| m["attempts"].as_u64() >= Some(1))
    });

    let filler = state.join("filler");
    let (what, guard) = match (&disk, trouble) {
        (Some(disk), _) => {
            let filled = disk.fill(&filler);
            (format!("{filled} bytes of filler on a 2 MiB tmpfs"), None)
        }
        (None, _) => {
            let files = ["tokenwatch.db", "tokenwatch.db-wal"]
                .iter()
                .map(|f| state.join(f))
                .collect();
            match Immutable::set(files) {
                Ok(g) => ("tokenwatch.db and its WAL immutable".to_string(), Some(g)),
                Err(e) => return unavailable(test, &e),
            }
        }
    };
    // The server comes back meanwhile: the pending mails go out, but their
    // delivery cannot be recorded.
    stub.restart();
    // New tokens arrive: their scan and their alerts cannot be written.
    let mut new_tokens = Vec::new();
    for i in 0..5 {
        new_tokens.push(env.write(
            &format!("tokens/new{i}.vpptoken"),
            token_text(&format!("New {i}"), 20),
        ));
    }
    let errors = |log: &str| log.lines().filter(|l| l.contains(" ERROR ")).count();
    poll_until(
        "the daemon to report the failed writes more than once (it retries)",
        40,
        || errors(&d.log()) >= 3 && !stub.messages().is_empty(),
        || d.log(),
    );
    assert!(alive(&mut d), "the daemon died:\n{}", d.log());
    let stale = d.status().expect("status readable during the trouble");
    let errors_logged = errors(&d.log());
    let sent_meanwhile = stub.messages().len();

    match trouble {
        Trouble::Full => std::fs::remove_file(&filler).expect("free the space"),
        Trouble::ReadOnly => drop(guard),
    }
    let s = d.wait_for("the new tokens in status once writes work again", 40, |s| {
        token_rows(s).len() == 13
    });
    for p in &new_tokens {
        assert!(
            token_rows(&s)
                .iter()
                .any(|(path, _, d)| Path::new(path) == p && *d == Some(20)),
            "{} missing: {s}",
            p.display()
        );
    }
    poll_until(
        "the 5 new alerts delivered",
        40,
        || deliveries(&stub).len() >= 8,
        || d.log(),
    );
    d.wait_for("outbox drained", 40, |s| outbox(s).is_empty());
    d.stop();
    let by_id = deliveries(&stub);
    let total: usize = by_id.values().map(|(_, n)| n).sum();
    let check = integrity(&state);
    println!(
        "{test}: {what}; {errors_logged} errors logged meanwhile, daemon alive, \
         {sent_meanwhile} mail accepted while its delivery could not be recorded; once writable again: \
         {} alerts delivered, 0 lost, {} duplicates; integrity_check: {check}",
        by_id.len(),
        total - by_id.len()
    );
    assert_eq!(
        token_rows(&stale).len(),
        8,
        "status kept the last good snapshot"
    );
    assert_eq!(by_id.len(), 8, "{by_id:?}");
    assert_eq!(
        total, 8,
        "a mail whose delivery could not be recorded was sent again while the daemon ran: {by_id:?}"
    );
    assert_eq!(check, "ok");
}

#[test]
fn a_full_disk_is_survived_and_nothing_is_lost_or_sent_twice() {
    survive_disk_trouble("full disk", Trouble::Full);
}

#[test]
fn a_read_only_state_database_is_survived_and_nothing_is_lost_or_sent_twice() {
    survive_disk_trouble("read-only state", Trouble::ReadOnly);
}
