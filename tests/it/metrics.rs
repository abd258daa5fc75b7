//! Prometheus: the daemon's `/metrics` and `/healthz` at `[metrics] listen`,
//! moved by a reload; `check --format prometheus -o FILE` for the textfile
//! collector; `promtool check metrics` on both when promtool is installed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::smtp_stub::{Mode, SmtpStub};
use crate::util::mail::smtp_config_with;
use crate::util::{Daemon, Env};

/// A port nothing listens on right now: bound on 127.0.0.1 port 0, then
/// released for the daemon to take.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over plain HTTP/1.0: (status code, body); None when nothing
/// listens.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// The value of the first sample of `name` whose labels include every one
/// of `labels` (`key="value"`).
fn value(scrape: &str, name: &str, labels: &[&str]) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let (series, v) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        (n == name && labels.iter().all(|x| rest.contains(x))).then(|| v.parse().ok())?
    })
}

/// Scrapes until `cond` holds; panics with the last scrape and the log.
fn scrape_until(d: &Daemon, port: u16, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some((200, body)) = get(port, "/metrics") {
            if cond(&body) {
                return body;
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out waiting for: {what}\n--- last scrape ---\n{last}\n--- daemon log ---\n{}",
        d.log()
    );
}

/// `promtool check metrics` on `text`, when promtool is installed (CI,
/// strict, requires it).
fn promtool_accepts(test: &str, text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        crate::util::unavailable(
            test,
            "promtool check metrics: promtool is not on PATH (Debian: apt-get install prometheus)",
        );
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused:\n{}{}\n--- text ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn metrics_config(env: &Env, smtp_port: u16, metrics_port: u16) -> std::path::PathBuf {
    smtp_config_with(
        env,
        "",
        smtp_port,
        "",
        &format!(
            "[[folder]]\npath = \"tokens\"\naccount = \"apps@acme.appleaccount.com\"\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
        ),
    )
}

#[test]
fn the_daemon_serves_its_latest_pass_deliveries_and_outbox_and_moves_on_reload() {
    let env = Env::new();
    let stub = SmtpStub::start();
    env.sample("tokens/berlin.vpptoken", "Acme Berlin", 10);
    let port = free_port();
    let cfg = metrics_config(&env, stub.port, port);
    let mut d = Daemon::start(&env, &cfg);
    let status = d.wait_for("the first pass", 30, |s| {
        s["tokens"].as_array().is_some_and(|t| t.len() == 1)
    });
    let token = &status["tokens"][0];
    let fingerprint = token["fingerprint"].as_str().unwrap().to_string();
    let expires = chrono::DateTime::parse_from_rfc3339(token["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp() as f64;

    let fp = format!("fingerprint=\"{fingerprint}\"");
    let delivered = ["channel=\"mail\"", "result=\"delivered\""];
    let scrape = scrape_until(&d, port, "the expiring token's alert delivered", |s| {
        value(s, "tokenwatch_deliveries_total", &delivered) == Some(1.0)
    });
    assert_eq!(
        value(
            &scrape,
            "tokenwatch_credential_expiry_timestamp_seconds",
            &[&fp, "org=\"Acme Berlin\"", "kind=\"vpp\""]
        ),
        Some(expires),
        "{scrape}"
    );
    assert_eq!(
        value(
            &scrape,
            "tokenwatch_credential_status",
            &[&fp, "status=\"expiring\""]
        ),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        value(&scrape, "tokenwatch_folder_up", &["/tokens\""]),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        value(&scrape, "tokenwatch_folder_credentials", &["/tokens\""]),
        Some(1.0),
        "{scrape}"
    );
    assert!(value(&scrape, "tokenwatch_last_pass_timestamp_seconds", &[]).unwrap() > 0.0);
    assert_eq!(
        value(&scrape, "tokenwatch_config_reload_success", &[]),
        Some(1.0)
    );
    let (code, body) = get(port, "/healthz").expect("healthz answers");
    assert_eq!(code, 200, "{body}");
    promtool_accepts(
        "the_daemon_serves_its_latest_pass_deliveries_and_outbox_and_moves_on_reload",
        &scrape,
    );

    assert_eq!(
        value(&scrape, "tokenwatch_credential_silenced", &[&fp]),
        None,
        "{scrape}"
    );
    // Silenced now; the next pass (the new file below) shows it.
    env.run(&[
        "-c",
        cfg.to_str().unwrap(),
        "silence",
        &fingerprint,
        "--until",
        "2099-01-01",
    ])
    .expect_code(0);

    // The server refuses the next alert for now: it waits in the outbox.
    stub.set_mode(Mode::Tempfail);
    env.sample("tokens/paris.vpptoken", "Acme Paris", 5);
    let scrape = scrape_until(&d, port, "a refused mail pending in the outbox", |s| {
        value(
            s,
            "tokenwatch_outbox_messages",
            &["state=\"pending\"", "channel=\"mail\""],
        ) == Some(1.0)
            && value(
                s,
                "tokenwatch_deliveries_total",
                &["channel=\"mail\"", "result=\"transient_failure\""],
            )
            .is_some_and(|n| n >= 1.0)
    });
    assert_eq!(
        value(&scrape, "tokenwatch_credential_silenced", &[&fp]),
        Some(1.0),
        "{scrape}"
    );
    assert!(
        value(
            &scrape,
            "tokenwatch_outbox_oldest_pending_timestamp_seconds",
            &[]
        )
        .unwrap()
            > 0.0,
        "{scrape}"
    );

    // A reload that changes the address moves the endpoint.
    let new_port = free_port();
    metrics_config(&env, stub.port, new_port);
    d.signal(libc::SIGHUP);
    scrape_until(&d, new_port, "the endpoint at the new port", |s| {
        s.contains("tokenwatch_build_info")
    });
    assert!(
        get(port, "/metrics").is_none(),
        "the old port still answers after the reload\n{}",
        d.log()
    );

    // An address another process holds: reported like a config problem,
    // and the daemon runs on.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let held = holder.local_addr().unwrap().port();
    metrics_config(&env, stub.port, held);
    d.signal(libc::SIGHUP);
    let s = d.wait_for("the bind failure in status", 30, |s| {
        s["config_error"]
            .to_string()
            .contains(&format!("127.0.0.1:{held}"))
    });
    assert!(
        s["config_error"].to_string().contains("[metrics] listen"),
        "{s}"
    );
    assert!(get(new_port, "/metrics").is_none(), "{}", d.log());
    drop(holder);
    metrics_config(&env, stub.port, new_port);
    d.signal(libc::SIGHUP);
    scrape_until(&d, new_port, "the endpoint back after a good reload", |s| {
        s.contains("tokenwatch_build_info")
    });

    // A rejected config is visible while the daemon runs on the old one.
    env.write(
        "tokenwatch.toml",
        std::fs::read_to_string(&cfg).unwrap() + "no_such_key = 1\n",
    );
    d.signal(libc::SIGHUP);
    scrape_until(&d, new_port, "config_reload_success 0", |s| {
        value(s, "tokenwatch_config_reload_success", &[]) == Some(0.0)
    });
    d.stop();
}

/// The daemon keeps the credential facts only while the endpoint is on;
/// a reload that turns it on must still serve them at once, not after the
/// next scheduled pass.
#[test]
fn a_reload_that_turns_the_endpoint_on_serves_the_credentials_at_once() {
    let env = Env::new();
    let stub = SmtpStub::start();
    env.sample("tokens/berlin.vpptoken", "Acme Berlin", 10);
    let port = free_port();
    let cfg = metrics_config(&env, stub.port, port);
    let with_metrics = std::fs::read_to_string(&cfg).unwrap();
    let (without, _) = with_metrics.split_once("[metrics]").unwrap();
    env.write("tokenwatch.toml", without);
    let mut d = Daemon::start(&env, &cfg);
    d.wait_for("the first pass", 30, |s| {
        s["tokens"].as_array().is_some_and(|t| t.len() == 1)
    });
    assert!(get(port, "/metrics").is_none(), "{}", d.log());

    env.write("tokenwatch.toml", &with_metrics);
    d.signal(libc::SIGHUP);
    let scrape = scrape_until(&d, port, "the endpoint after the reload", |s| {
        s.contains("tokenwatch_build_info")
    });
    assert_eq!(
        value(
            &scrape,
            "tokenwatch_credential_status",
            &["org=\"Acme Berlin\"", "status=\"expiring\""]
        ),
        Some(1.0),
        "{scrape}"
    );
    d.stop();
}

#[test]
fn check_writes_the_textfile_atomically_whatever_the_status_with_checks_exit_code() {
    let env = Env::new();
    env.config("");
    env.sample("tokens/berlin.vpptoken", "Acme Berlin", 3);
    let plain = env.run(&["-c", "tokenwatch.toml", "check"]);
    assert_ne!(plain.code(), 0, "{}", plain.describe());
    let out = env.write("textfile/tokenwatch.prom", "old\n");
    // A second name for the old file: a rename leaves it alone, a write in
    // place would change it.
    let old_link = env.path().join("textfile/old.link");
    std::fs::hard_link(&out, &old_link).unwrap();

    let run = env.run(&[
        "-c",
        "tokenwatch.toml",
        "check",
        "--format",
        "prometheus",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), plain.code(), "{}", run.describe());
    assert_eq!(run.stdout(), "", "{}", run.describe());
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(std::fs::read_to_string(&old_link).unwrap(), "old\n");
    let mut names: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["old.link", "tokenwatch.prom"],
        "a temp file was left"
    );
    assert!(
        value(
            &text,
            "tokenwatch_credential_status",
            &["org=\"Acme Berlin\"", "status=\"expiring\""]
        ) == Some(1.0),
        "{text}"
    );
    for family in [
        "tokenwatch_credential_expiry_timestamp_seconds",
        "tokenwatch_credential_created_timestamp_seconds",
        "tokenwatch_folder_up",
        "tokenwatch_folder_credentials",
        "tokenwatch_unreadable_files",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} gauge")),
            "{family}\n{text}"
        );
    }
    // The daemon's own families are not the textfile's.
    assert!(!text.contains("tokenwatch_deliveries_total"), "{text}");
    promtool_accepts(
        "check_writes_the_textfile_atomically_whatever_the_status_with_checks_exit_code",
        &text,
    );

    // Without -o it goes to stdout; --json is still --format json.
    let stdout = env.run(&["-c", "tokenwatch.toml", "check", "--format", "prometheus"]);
    assert_eq!(stdout.code(), plain.code());
    assert!(stdout.stdout().contains("tokenwatch_folder_up"));
    let json = env.run(&["-c", "tokenwatch.toml", "check", "--json"]);
    assert_eq!(json.json()["tokens"][0]["org_name"], "Acme Berlin");
}

#[test]
fn check_names_the_file_it_cannot_write() {
    let env = Env::new();
    env.config("");
    env.sample("tokens/berlin.vpptoken", "Acme Berlin", 200);
    let target = env.path().join("no/such/dir/tokenwatch.prom");
    let run = env.run(&[
        "-c",
        "tokenwatch.toml",
        "check",
        "--format",
        "prometheus",
        "-o",
        target.to_str().unwrap(),
    ]);
    assert_ne!(run.code(), 0, "{}", run.describe());
    assert!(
        run.stderr().contains(target.to_str().unwrap()),
        "{}",
        run.describe()
    );
}
