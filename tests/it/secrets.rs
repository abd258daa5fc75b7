//! Secrets: token content never leaves tokenwatch, and what it
//! writes is private.
//!
//! The canary test sends tokens whose inner token, Base64 file text and
//! bearer value are unique canaries through `check`, `inspect`, the daemon
//! (logs at trace level), `status`, the state database files and the mail
//! spool, and searches every byte of output for them. It asks a stand-in
//! for Apple that echoes the request, bearer included, in every answer.
//!
//! The echo test gives real-length tokens to a stand-in that echoes the
//! request header, the token text, its JSON and its inner token in its
//! error pages, Apple errors and success answers, and searches logs, state,
//! status, `check`, mail and `probe` for any 16 characters of them.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{Duration as Days, Utc};

use crate::apple_stub::{AppleStub, Reply, REQUEST};
use crate::util::mail::read_mails;
use crate::util::process::tokenwatch;
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
    /// The first secret found in `bytes`, if any. Every 16-byte window of
    /// `bytes` is looked up among the secrets' windows, so a long trace log
    /// is searched in one pass.
    fn find_in(&self, bytes: &[u8]) -> Option<String> {
        let hay = String::from_utf8_lossy(bytes);
        for s in &self.whole {
            if hay.contains(s.as_str()) {
                return Some(s.clone());
            }
        }
        let windows: HashSet<&[u8]> = self
            .stretched
            .iter()
            .flat_map(|s| s.as_bytes().windows(16))
            .collect();
        let hit = hay.as_bytes().windows(16).find(|w| windows.contains(w))?;
        let needle = String::from_utf8_lossy(hit).into_owned();
        let of = self
            .stretched
            .iter()
            .find(|s| s.contains(needle.as_str()))
            .cloned()
            .unwrap_or_default();
        Some(format!("{needle} (part of {of})"))
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
    let (rt, apple) = AppleStub::start_on_own_runtime();
    // Every answer echoes the request, bearer and all.
    apple.set_default(Reply::raw(400, "text/plain", format!("bad request:\n{REQUEST}")).echoing());
    let metrics_port = crate::metrics::free_port();
    let cfg = env.config(&format!(
        "{}\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
        apple_config(&apple)
    ));
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
    let textfile = tokenwatch(
        &env,
        &["-c", "tokenwatch.toml", "check", "--format", "prometheus"],
        &trace,
        60,
    );
    textfile.expect_code(2);
    assert!(textfile.stdout().contains("tokenwatch_credential_status"));
    expect_clean(&textfile);
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
    let calendar = tokenwatch(&env, &["-c", "tokenwatch.toml", "calendar"], &trace, 60);
    calendar.expect_code(0);
    assert!(
        calendar.stdout().contains("Canary Expiring"),
        "{}",
        calendar.describe()
    );
    expect_clean(&calendar);

    let mut d = Daemon::start_with(&env, &cfg, &trace);
    d.wait_for("every canary file seen", 30, |s| {
        s["tokens"].as_array().map(Vec::len) == Some(count)
    });
    // The two readable Base64 tokens are asked about; the raw JSON one
    // cannot be, and unreadable files are not.
    let s = d.wait_for("Apple's answers recorded", 30, |s| {
        ["expiring", "expired"]
            .iter()
            .all(|name| token(s, name).is_some_and(|t| t["apple"]["error"].as_str().is_some()))
    });
    secrets.assert_absent(s.to_string().as_bytes(), "status --json");
    for name in ["expiring", "expired"] {
        let error = token(&s, name).unwrap()["apple"]["error"].to_string();
        assert!(error.contains("[redacted]"), "{name}: {error}");
    }
    assert_eq!(rt.block_on(async { apple.requests().len() }), 2);
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
    // The expiring token's first mail carries its calendar invite, which
    // the mail check below reads too.
    assert!(
        read_mails(&mail_dir)
            .iter()
            .any(|(_, _, text)| text.contains("BEGIN:VCALENDAR")),
        "no invite among the mails"
    );
    let (code, scrape) = crate::metrics::get(metrics_port, "/metrics").expect("a scrape");
    assert_eq!(code, 200);
    assert!(
        scrape.contains("tokenwatch_apple_requests_total"),
        "{scrape}"
    );
    secrets.assert_absent(scrape.as_bytes(), "the /metrics scrape");
    let state = env.path().join("state");
    assert_state_clean(&secrets, &state, "daemon running");

    d.stop();
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
    drop(apple);
    drop(rt);
}

fn apple_config(apple: &AppleStub) -> String {
    format!(
        "[apple]\nverify = true\nbase_url = \"{}\"\ntimeout_secs = 5\n",
        apple.base_url
    )
}

/// The token in a status or `check --json` whose file name starts with
/// `name`.
fn token<'a>(s: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    s["tokens"].as_array()?.iter().find(|t| {
        t["path"]
            .as_str()
            .and_then(|p| p.rsplit('/').next())
            .is_some_and(|f| f.starts_with(name))
    })
}

/// A token of real length: its inner token is Base64 of 900 bytes (1,200
/// characters, with `/` written `\/` as Apple's JSON does), its file text
/// about 1,800.
struct RealToken {
    file_text: String,
    bearer: String,
    /// The decoded JSON, echoed whole by the stand-in.
    json: String,
    /// The secret part of the JSON: all of it up to the `expDate` value.
    /// Its `expDate` and `orgName` values are shown on purpose (in
    /// `check`, status and mail), so they are not secret.
    json_secret: String,
    inner: String,
}

fn real_token(seed: u64, org: &str, days: i64) -> RealToken {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let raw: Vec<u8> = (0..900)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let inner = B64.encode(raw);
    let offset = chrono::FixedOffset::west_opt(7 * 3600).unwrap();
    let exp = (Utc::now() + Days::days(days))
        .with_timezone(&offset)
        .format("%Y-%m-%dT%H:%M:%S%z");
    let json_secret = format!(r#"{{"token":"{}","expDate":"#, inner.replace('/', "\\/"));
    let json = format!(r#"{json_secret}"{exp}","orgName":"{org}"}}"#);
    let file_text = apple_file(&json);
    let bearer = file_text.split_whitespace().collect();
    RealToken {
        file_text,
        bearer,
        json,
        json_secret,
        inner,
    }
}

/// Regression: an Apple or proxy error body was cut to 200 characters
/// before the bearer was redacted, and only the whole bearer was removed,
/// so an echoed `Bearer <token text>` left most of the token text in the
/// logs, `verdicts.error`, status, mail and `probe` output.
#[test]
fn an_apple_server_echoing_the_bearer_leaks_no_16_characters_anywhere() {
    let env = Env::new();
    let (rt, apple) = AppleStub::start_on_own_runtime();
    let tokens: Vec<(&str, RealToken)> = ["html", "header", "valid", "internal"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let org = format!("Echo Corporation {i} Berlin");
            (*name, real_token(i as u64 + 1, &org, 200))
        })
        .collect();
    let mut stretched = Vec::new();
    for (name, t) in &tokens {
        let path = env.write(&format!("tokens/{name}.vpptoken"), &t.file_text);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(t.bearer.len() > 1024 && t.inner.len() > 1024);
        stretched.extend([t.bearer.clone(), t.json_secret.clone(), t.inner.clone()]);
    }
    let secrets = Secrets {
        whole: Vec::new(),
        stretched,
    };
    let [html, header, valid, internal] = [0, 1, 2, 3].map(|i| &tokens[i].1);
    // A proxy's error page echoing the request and everything secret.
    apple.respond(
        &html.bearer,
        Reply::raw(
            400,
            "text/html",
            format!(
                "<html><body><h1>400 Bad Request</h1><pre>{REQUEST}</pre>\n<p>token: {}</p><p>{}</p><p>{}</p></body></html>",
                html.bearer, html.json, html.inner
            ),
        )
        .echoing(),
    );
    // Apple's error shape, the request echoed in errorMessage.
    apple.respond(
        &header.bearer,
        Reply::error(401, 9722, &format!("Invalid header in {REQUEST}")).echoing(),
    );
    // A success answer whose texts are the secrets; its expiry differs
    // from the file's, so a mail shows the location.
    let far = (Utc::now() + Days::days(260)).format("%Y-%m-%dT%H:%M:%S+0000");
    apple.respond(
        &valid.bearer,
        Reply::config(serde_json::json!({
            "locationName": valid.inner,
            "uId": valid.json,
            "mdmInfo": { "name": format!("Bearer {}", valid.bearer) },
            "tokenExpirationDate": far.to_string(),
        })),
    );
    // A transient Apple error quoting the JSON and the request.
    apple.respond(
        &internal.bearer,
        Reply::error(
            200,
            9603,
            &format!("Internal error. {} {REQUEST}", internal.json),
        )
        .echoing(),
    );

    let cfg = env.config(&apple_config(&apple));
    let trace = [("RUST_LOG", "trace")];
    let mut d = Daemon::start_with(&env, &cfg, &trace);
    let s = d.wait_for("Apple's answers recorded", 30, |s| {
        ["html", "header", "internal"]
            .iter()
            .all(|n| token(s, n).is_some_and(|t| t["apple"]["error"].is_string()))
            && token(s, "valid").is_some_and(|t| t["apple"]["verdict"] == "valid")
    });
    secrets.assert_absent(s.to_string().as_bytes(), "status --json");
    for name in ["html", "header", "internal"] {
        let error = token(&s, name).unwrap()["apple"]["error"].to_string();
        assert!(error.contains("[redacted]"), "{name}: {error}");
    }
    let shown = token(&s, "valid").unwrap()["apple"].to_string();
    assert!(shown.contains("[redacted]"), "{shown}");

    // A password change invalidates every token: one mail each, showing
    // Apple's last error or location.
    tokenwatch(
        &env,
        &[
            "-c",
            "tokenwatch.toml",
            "account",
            "password-changed",
            "apps@acme.appleaccount.com",
        ],
        &[],
        60,
    )
    .expect_code(0);
    d.wait_for("every token invalidated", 30, |s| {
        s["tokens"]
            .as_array()
            .is_some_and(|t| t.len() == 4 && t.iter().all(|t| t["status"] == "invalidated"))
    });
    let mail_dir = env.path().join("state/mail");
    let invalid_mails = || {
        read_mails(&mail_dir)
            .into_iter()
            .filter(|(_, _, text)| text.contains("is INVALID"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while invalid_mails() < 4
        || d.status()
            .is_none_or(|s| s["outbox"].as_array().is_none_or(|o| !o.is_empty()))
    {
        assert!(
            Instant::now() < deadline,
            "expected 4 invalidated mails, found {}\n{}",
            invalid_mails(),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mails: Vec<String> = read_mails(&mail_dir).into_iter().map(|m| m.2).collect();
    for row in ["Last Apple check failed", "Apple location", "MDM using it"] {
        assert!(
            mails
                .iter()
                .any(|m| m.contains(row) && m.contains("[redacted]")),
            "no mail shows {row:?}:\n{}",
            mails.join("\n----\n")
        );
    }

    let mut runs = Vec::new();
    for args in [
        &["-c", "tokenwatch.toml", "status"][..],
        &["-c", "tokenwatch.toml", "status", "--json"][..],
        &["-c", "tokenwatch.toml", "check"][..],
        &["-c", "tokenwatch.toml", "check", "--json"][..],
    ] {
        runs.push(tokenwatch(&env, args, &trace, 60));
    }
    for (name, _) in &tokens {
        let file = format!("tokens/{name}.vpptoken");
        for json in [false, true] {
            let mut args = vec!["-c", "tokenwatch.toml", "probe", file.as_str()];
            if json {
                args.push("--json");
            }
            let run = tokenwatch(&env, &args, &trace, 60);
            assert!(run.stdout().contains("[redacted]"), "{}", run.describe());
            runs.push(run);
        }
    }
    for run in &runs {
        secrets.assert_absent(&run.output.stdout, &format!("stdout of {}", run.cmd));
        secrets.assert_absent(&run.output.stderr, &format!("stderr of {}", run.cmd));
    }
    let state = env.path().join("state");
    assert_state_clean(&secrets, &state, "daemon running");

    d.stop();
    let log = d.log();
    assert!(
        log.contains("TRACE"),
        "the daemon did not log at trace level"
    );
    secrets.assert_absent(log.as_bytes(), "the daemon's trace log");
    assert_state_clean(&secrets, &state, "daemon stopped");
    println!(
        "echo: {} requests answered with echoes, {} command outputs, {} log lines, {} mails: no 16 characters of a secret",
        apple.requests().len(),
        runs.len(),
        log.lines().count(),
        mails.len()
    );
    drop(apple);
    drop(rt);
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
    let mut cmd = Daemon::command(&env, &cfg, &log);
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let d = Daemon::spawn(&env, &cfg, &mut cmd, log);
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
    let mut cmd = Daemon::command(&env, &cfg, &log);
    if as_root {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    let d = Daemon::spawn(&env, &cfg, &mut cmd, log);
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
