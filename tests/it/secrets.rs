//! Secrets (issue 7): token content never leaves tokenwatch, and what it
//! writes is private.
//!
//! The canary test sends tokens whose inner token, Base64 file text and
//! bearer value are unique canaries through `check`, `inspect`, the daemon
//! (logs at trace level), `status`, the state database files and the mail
//! spool, and searches every byte of output for them.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{Duration as Days, Utc};

use crate::hostile::{read_mails, tokenwatch};
use crate::util::{Daemon, Env, BIN};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The decoded inner token: what Apple's servers hold.
const CANARY: &str = "CANARY-secrets-9d41c7e2-inner-token-do-not-leak";

/// Texts that must never appear anywhere, and the Base64 texts of which no
/// 16-character stretch may appear (a partial leak is a leak).
struct Secrets {
    whole: Vec<String>,
    stretched: Vec<String>,
}

impl Secrets {
    /// The first secret found in `bytes`, if any.
    fn find_in(&self, bytes: &[u8]) -> Option<String> {
        let hay = String::from_utf8_lossy(bytes);
        for s in &self.whole {
            if hay.contains(s.as_str()) {
                return Some(s.clone());
            }
        }
        for s in &self.stretched {
            for window in s.as_bytes().windows(16) {
                let needle = std::str::from_utf8(window).unwrap_or("");
                if hay.contains(needle) {
                    return Some(format!("{needle} (part of {s})"));
                }
            }
        }
        None
    }

    fn assert_absent(&self, bytes: &[u8], place: &str) {
        if let Some(found) = self.find_in(bytes) {
            panic!(
                "secret {found:?} leaked into {place}:\n{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

/// Base64 of `json`, wrapped at 76 columns like Apple's files.
fn apple_file(json: &str) -> String {
    let text = B64.encode(json);
    text.as_bytes()
        .chunks(76)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect()
}

fn apple_date(days: i64) -> String {
    (Utc::now() + Days::days(days))
        .format("%Y-%m-%dT%H:%M:%S+0000")
        .to_string()
}

/// Writes the canary files into `tokens/` and returns what must not leak.
fn write_canaries(env: &Env) -> (Secrets, usize) {
    let inner = B64.encode(CANARY);
    let token_json = |exp: &str, org: &str| {
        format!(r#"{{"token":"{inner}","expDate":"{exp}","orgName":"{org}"}}"#)
    };
    let files: Vec<(&str, String)> = vec![
        // Readable: expiring (mailed at once) and expired (mailed at once).
        (
            "expiring.vpptoken",
            apple_file(&token_json(&apple_date(5), "Canary Expiring")),
        ),
        (
            "expired.vpptoken",
            apple_file(&token_json(&apple_date(-3), "Canary Expired")),
        ),
        // Saved as decoded JSON: readable, no bearer.
        (
            "raw.vpptoken",
            token_json(&apple_date(2), "Canary Raw") + "\n",
        ),
        // Unreadable, each carrying the canary (mailed once settled).
        (
            "impossible.vpptoken",
            apple_file(&token_json("2026-02-30T00:00:00+0000", "Canary Impossible")),
        ),
        (
            "no-date.vpptoken",
            format!(r#"{{"token":"{inner}","expDate":7}}"#),
        ),
        (
            "secret-as-date.vpptoken",
            apple_file(&format!(r#"{{"token":"x","expDate":"{inner}"}}"#)),
        ),
        ("truncated.vpptoken", {
            let whole = apple_file(&token_json(&apple_date(90), "Canary Truncated"));
            whole[..whole.len() / 2].to_string()
        }),
    ];
    let mut stretched = vec![inner.clone()];
    for (name, text) in &files {
        let path = env.write(&format!("tokens/{name}"), text);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // The Base64 files' text is the bearer value; in a raw JSON file
        // only the inner token is secret (its dates are shown on purpose).
        if !text.starts_with('{') {
            let bearer: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            stretched.push(bearer);
        }
    }
    let secrets = Secrets {
        whole: vec![CANARY.to_string(), inner],
        stretched,
    };
    (secrets, files.len())
}

/// Every regular file below `dir`, recursively.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn assert_state_clean(secrets: &Secrets, state: &Path, when: &str) {
    let files = files_below(state);
    assert!(
        files.iter().any(|f| f.ends_with("tokenwatch.db")),
        "no database in {}",
        state.display()
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_default();
        secrets.assert_absent(&bytes, &format!("{} ({when})", f.display()));
    }
    for (name, raw, decoded) in read_mails(&state.join("mail")) {
        secrets.assert_absent(&raw, &format!("mail {name} ({when})"));
        secrets.assert_absent(decoded.as_bytes(), &format!("decoded mail {name} ({when})"));
    }
}

#[test]
fn canary_tokens_leak_nowhere_check_inspect_status_trace_logs_state_or_mail() {
    let env = Env::new();
    let cfg = env.config("");
    let (secrets, count) = write_canaries(&env);
    let trace = [("RUST_LOG", "trace")];
    let mut checked = 0;
    let mut expect_clean = |run: &crate::util::Run| {
        secrets.assert_absent(&run.output.stdout, &format!("stdout of {}", run.cmd));
        secrets.assert_absent(&run.output.stderr, &format!("stderr of {}", run.cmd));
        checked += 1;
    };

    let check = tokenwatch(&env, &["-c", "tokenwatch.toml", "check"], &trace, 60);
    check.expect_code(2);
    expect_clean(&check);
    let check = tokenwatch(
        &env,
        &["-c", "tokenwatch.toml", "check", "--json"],
        &trace,
        60,
    );
    check.expect_code(2);
    assert_eq!(check.json()["tokens"].as_array().map(Vec::len), Some(count));
    expect_clean(&check);
    for e in std::fs::read_dir(env.path().join("tokens"))
        .unwrap()
        .flatten()
    {
        let file = e.path();
        let file = file.to_str().unwrap();
        for args in [&["inspect", file][..], &["inspect", file, "--json"][..]] {
            expect_clean(&tokenwatch(&env, args, &trace, 60));
        }
    }

    let mut d = Daemon::start_with(&env, &cfg, &trace);
    d.wait_for("every canary file seen", 30, |s| {
        s["tokens"].as_array().map(Vec::len) == Some(count)
    });
    // Mail: expiring, expired and raw at once; the four unreadable files
    // once they have been unchanged for 10 s.
    let mail_dir = env.path().join("state/mail");
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_mails(&mail_dir).len() < count
        || d.status()
            .is_none_or(|s| s["outbox"].as_array().is_none_or(|o| !o.is_empty()))
    {
        assert!(
            Instant::now() < deadline,
            "expected {count} mails, found {}\n{}",
            read_mails(&mail_dir).len(),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for args in [
        &["-c", "tokenwatch.toml", "status"][..],
        &["-c", "tokenwatch.toml", "status", "--json"][..],
    ] {
        let run = tokenwatch(&env, args, &trace, 60);
        run.expect_code(0);
        expect_clean(&run);
    }
    let state = env.path().join("state");
    assert_state_clean(&secrets, &state, "daemon running");

    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(20), Some(0), "{}", d.log());
    let log = d.log();
    assert!(
        log.contains("TRACE") || log.contains("trace"),
        "the daemon did not log at trace level:\n{log}"
    );
    secrets.assert_absent(log.as_bytes(), "the daemon's trace log");
    assert_state_clean(&secrets, &state, "daemon stopped");
    println!(
        "canary: {checked} command outputs, {} log lines, {} state files, {} mails: no leak",
        log.lines().count(),
        files_below(&state).len(),
        read_mails(&mail_dir).len()
    );
}

/// The mode bits of a file.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn state_database_and_mail_spool_are_private_even_with_umask_0() {
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/soon.vpptoken", "Private Org", 5);
    // umask 0 in the daemon only: private modes must be set explicitly,
    // not inherited from a careful umask.
    let log = env.path().join("daemon.log");
    let mut cmd = Command::new(BIN);
    cmd.args(["-c", cfg.to_str().unwrap(), "run"])
        .current_dir(env.path())
        .env_remove("TOKENWATCH_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env("RUST_LOG", "info,tokio_cron_scheduler=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let d = Daemon {
        child: cmd.spawn().expect("start daemon"),
        config: cfg.clone(),
        dir: env.path().to_path_buf(),
        log,
    };
    d.wait_for("the expiring token", 30, |s| {
        s["tokens"][0]["status"] == "expiring"
    });
    let state = env.path().join("state");
    let mail_dir = state.join("mail");
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_mails(&mail_dir).is_empty() {
        assert!(Instant::now() < deadline, "no mail\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    assert_eq!(mode(&state), 0o700, "state dir");
    let mut db_files = 0;
    for name in ["tokenwatch.db", "tokenwatch.db-wal", "tokenwatch.db-shm"] {
        let p = state.join(name);
        if name == "tokenwatch.db" || p.exists() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
            db_files += 1;
        }
    }
    assert!(
        db_files >= 2,
        "WAL mode: the -wal file exists while running"
    );
    assert_eq!(mode(&mail_dir), 0o700, "mail dir");
    for (name, _, _) in read_mails(&mail_dir) {
        assert_eq!(mode(&mail_dir.join(&name)), 0o600, "{name}");
    }
    // `status` opens the database read-only: it must not create anything
    // readable by others either.
    tokenwatch(&env, &["-c", "tokenwatch.toml", "status"], &[], 60).expect_code(0);
    for f in files_below(&state) {
        assert_eq!(mode(&f) & 0o077, 0, "{} is readable by others", f.display());
    }
}

/// Whether every folder above `path` lets other users through.
fn reachable_by_others(path: &Path) -> bool {
    path.ancestors()
        .skip(1)
        .all(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

fn chown_tree(path: &Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id)).expect("chown");
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        for e in std::fs::read_dir(path).expect("read_dir").flatten() {
            chown_tree(&e.path(), id);
        }
    }
}

#[test]
fn the_daemon_is_not_dumpable_so_no_core_or_ptrace_exposes_its_secrets() {
    use std::os::unix::fs::MetadataExt;
    const NOBODY: u32 = 65534;
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    // The kernel hands the /proc/PID files of a non-dumpable process to
    // root; a dumpable one's belong to its own user. So the daemon must not run
    // as root: root drops to nobody for it.
    let as_root = unsafe { libc::geteuid() } == 0;
    if as_root {
        if !(reachable_by_others(env.path()) && reachable_by_others(Path::new(BIN))) {
            if std::env::var("TOKENWATCH_FAULTS_STRICT").is_ok_and(|v| v == "1") {
                panic!("uid {NOBODY} cannot reach the test folder or the binary");
            }
            println!("NOT RUN: uid {NOBODY} cannot reach the test folder or the binary");
            return;
        }
        chown_tree(env.path(), NOBODY);
    }
    let log = env.logs.path().join("daemon.log");
    let mut cmd = Command::new(BIN);
    cmd.args(["-c", cfg.to_str().unwrap(), "run"])
        .current_dir(env.path())
        .env_remove("TOKENWATCH_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env("RUST_LOG", "info,tokio_cron_scheduler=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    if as_root {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    let d = Daemon {
        child: cmd.spawn().expect("start daemon"),
        config: cfg.clone(),
        dir: env.path().to_path_buf(),
        log,
    };
    d.wait_for("the first scan", 30, |s| s["tokens"][0]["status"] == "ok");
    let proc_dir = PathBuf::from(format!("/proc/{}", d.child.id()));
    let status = std::fs::read_to_string(proc_dir.join("status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let daemon_uid: u32 = uid_line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_ne!(daemon_uid, 0, "the daemon must run unprivileged here");
    let environ = proc_dir.join("environ");
    let owner = std::fs::metadata(&environ).unwrap().uid();
    assert_eq!(
        owner,
        0,
        "{} belongs to uid {owner}: the daemon (uid {daemon_uid}) is dumpable, so a core dump \
         or ptrace by its own user would expose its memory\n{}",
        environ.display(),
        d.log()
    );
}
