//! Alert mail from the real daemon to an in-process SMTP server on
//! 127.0.0.1: what is sent, to whom, exactly once, and never lost.

use std::time::Duration;

use base64::Engine;

use crate::smtp_stub::{Mode, SmtpStub};
use crate::util::mail::{header, smtp_config_with};
use crate::util::{Daemon, Env};

/// Mail through the stub without TLS, local times in Berlin, and one
/// folder whose account has recipients of its own.
fn smtp_config(env: &Env, port: u16) -> std::path::PathBuf {
    smtp_config_with(
        env,
        "timezone = \"Europe/Berlin\"\n",
        port,
        "",
        "[[folder]]\npath = \"tokens\"\naccount = \"apps@acme.appleaccount.com\"\nrecipients = [\"acme-it@example.com\"]\n",
    )
}

/// Message text with quoted-printable soft line breaks undone, enough to
/// search ASCII facts in both parts.
fn unfolded(raw: &str) -> String {
    raw.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

fn wait_drained(d: &Daemon) {
    d.wait_for("outbox drained", 30, |s| {
        s["outbox"].as_array().is_some_and(Vec::is_empty)
    });
}

/// The Message-IDs the stub received, each once.
fn distinct_message_ids(stub: &SmtpStub) -> Vec<String> {
    let mut ids: Vec<String> = stub
        .messages()
        .iter()
        .map(|m| header(&m.text(), "Message-ID").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn outbox_len(env: &Env) -> usize {
    let run = env.run(&["-c", "tokenwatch.toml", "status", "--json"]);
    run.expect_code(0);
    run.json()["outbox"].as_array().map(Vec::len).unwrap_or(0)
}

#[test]
fn first_sight_at_20_days_sends_exactly_one_mail_and_a_restart_sends_none() {
    let stub = SmtpStub::start();
    let env = Env::new();
    let cfg = smtp_config(&env, stub.port);
    env.sample("tokens/sToken_for_Berlin.vpptoken", "Acme Corp", 20);
    let mut d = Daemon::start(&env, &cfg);
    let msgs = stub.wait_for(1, Duration::from_secs(30));
    let m = &msgs[0];
    let raw = m.text();
    let mut to = m.to.clone();
    to.sort();
    assert_eq!(to, ["acme-it@example.com", "ops@example.com"]);
    assert_eq!(m.from, "tw@example.com");
    let subject = header(&raw, "Subject").unwrap();
    assert!(
        subject.starts_with(
            "[tokenwatch] Content token for Acme Corp (sToken_for_Berlin.vpptoken) expires in 19 days ("
        ),
        "{subject}"
    );
    let message_id = header(&raw, "Message-ID").expect("Message-ID");
    assert!(message_id.ends_with("@tokenwatch>"), "{message_id}");
    assert!(header(&raw, "Date").is_some());
    assert_eq!(
        header(&raw, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    let body = unfolded(&raw);
    assert!(
        body.contains("text/plain") && body.contains("text/html"),
        "{body}"
    );
    for fact in [
        "Acme Corp",
        "sToken_for_Berlin.vpptoken",
        "apps@acme.appleaccount.com",
        "Days left",
        "derived",
        "Apps &",
        "Sent by",
    ] {
        assert!(
            body.matches(fact).count() >= 2 || body.contains(fact),
            "{fact:?} missing:\n{body}"
        );
    }
    d.stop();

    // A restart recomputes everything and finds the alert in the ledger.
    let mut d = Daemon::start(&env, &cfg);
    // The old snapshot is still in the state: wait for the new daemon's own
    // first pass, which it logs.
    d.wait_for("a scan after the restart", 20, |_| {
        d.log().contains("watching")
    });
    d.stop();
    assert_eq!(stub.messages().len(), 1, "a restart resent the alert");
    assert_eq!(outbox_len(&env), 0);
}

#[test]
fn mail_server_down_then_back_delivers_each_alert_exactly_once() {
    let mut stub = SmtpStub::start();
    stub.stop();
    let env = Env::new();
    let cfg = smtp_config(&env, stub.port);
    env.sample("tokens/a.vpptoken", "A Org", 20);
    env.sample("tokens/b.vpptoken", "B Org", 5);
    env.sample("tokens/c.vpptoken", "C Org", -2);
    let mut d = Daemon::start(&env, &cfg);
    let s = d.wait_for("three mails waiting after a failed try", 30, |s| {
        s["outbox"]
            .as_array()
            .is_some_and(|o| o.len() == 3 && o.iter().all(|m| m["attempts"].as_u64() >= Some(1)))
    });
    let err = s["outbox"][0]["last_error"].as_str().unwrap_or("");
    assert!(err.contains("refused"), "{err}");
    // A new alert arises while the server is down.
    env.sample("tokens/d.vpptoken", "D Org", 1);
    d.wait_for("four mails waiting", 20, |s| {
        s["outbox"].as_array().is_some_and(|o| o.len() == 4)
    });
    stub.restart();
    let msgs = stub.wait_for(4, Duration::from_secs(90));
    wait_drained(&d);
    d.stop();
    let ids = distinct_message_ids(&stub);
    assert_eq!(msgs.len(), 4);
    assert_eq!(ids.len(), 4, "each alert exactly once");
}

#[test]
fn kill_9_with_mail_pending_loses_nothing() {
    let stub = SmtpStub::start();
    stub.set_mode(Mode::Tempfail);
    let env = Env::new();
    let cfg = smtp_config(&env, stub.port);
    for i in 0..3 {
        env.sample(
            &format!("tokens/t{i}.vpptoken"),
            &format!("Org {i}"),
            10 + i,
        );
    }
    let d = Daemon::start(&env, &cfg);
    d.wait_for("three mails pending", 30, |s| {
        s["outbox"].as_array().is_some_and(|o| o.len() == 3)
    });
    drop(d); // SIGKILL
    stub.set_mode(Mode::Accept);
    let mut d = Daemon::start(&env, &cfg);
    stub.wait_for(3, Duration::from_secs(60));
    wait_drained(&d);
    d.stop();
    let ids = distinct_message_ids(&stub);
    assert_eq!(ids.len(), 3, "every pending alert delivered");
}

#[test]
fn permanent_failures_are_parked_and_can_be_retried() {
    let stub = SmtpStub::start();
    stub.set_mode(Mode::Reject);
    let env = Env::new();
    let cfg = smtp_config(&env, stub.port);
    env.sample("tokens/a.vpptoken", "Acme", 20);
    let d = Daemon::start(&env, &cfg);
    let s = d.wait_for("mail parked", 60, |s| {
        s["outbox"]
            .as_array()
            .is_some_and(|o| o.len() == 1 && o[0]["state"] == "parked")
    });
    let err = s["outbox"][0]["last_error"].as_str().unwrap_or("");
    assert!(err.contains("554"), "the server's answer is kept: {err}");
    assert_eq!(s["outbox"][0]["attempts"], 3);
    stub.set_mode(Mode::Accept);
    let id = s["outbox"][0]["id"].as_i64().unwrap().to_string();
    env.run(&["-c", "tokenwatch.toml", "outbox", "retry", &id])
        .expect_code(0);
    stub.wait_for(1, Duration::from_secs(60));
    wait_drained(&d);
}

#[test]
fn smtp_auth_over_starttls_with_a_password_file() {
    use std::os::unix::fs::PermissionsExt;
    let stub = SmtpStub::builder()
        .starttls()
        .auth("tokenwatch", "s3cret-canary-pw")
        .start();
    let env = Env::new();
    let ca = stub.write_ca(env.path());
    let pw = env.write("smtp-password", "s3cret-canary-pw\n");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).unwrap();
    let cfg = env.write(
        "tokenwatch.toml",
        format!(
            "state_dir = \"state\"\n[alerts]\nrecipients = [\"ops@example.com\"]\n[mail]\ntransport = \"smtp\"\nhost = \"localhost\"\nport = {}\ntls = \"starttls\"\nusername = \"tokenwatch\"\npassword_file = \"smtp-password\"\nca_file = \"{}\"\n[[folder]]\npath = \"tokens\"\n",
            stub.port,
            ca.display()
        ),
    );
    env.sample("tokens/a.vpptoken", "Acme", 20);
    let mut d = Daemon::start_with(&env, &cfg, &[("RUST_LOG", "trace")]);
    d.wait_for("the mail sent", 30, |_| !stub.messages().is_empty());
    let msgs = stub.messages();
    assert_eq!(msgs[0].auth_user.as_deref(), Some("tokenwatch"));
    assert!(msgs[0].tls);
    d.stop();
    let log = d.log();
    let b64 = base64::engine::general_purpose::STANDARD.encode("\0tokenwatch\0s3cret-canary-pw");
    assert!(
        !log.contains("s3cret-canary-pw") && !log.contains(&b64),
        "the SMTP password leaked into the log"
    );

    // A password file others can read is refused, naming the file.
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = env.run(&[
        "-c",
        "tokenwatch.toml",
        "test-mail",
        "--to",
        "x@example.com",
    ]);
    assert_ne!(run.code(), 0);
    assert!(run.stderr().contains("smtp-password"), "{}", run.describe());
    assert!(!run.stderr().contains("s3cret-canary-pw"));
}

#[test]
fn test_mail_reports_the_server_answer_and_failures() {
    let mut stub = SmtpStub::start();
    let env = Env::new();
    smtp_config(&env, stub.port);
    let run = env.run(&[
        "-c",
        "tokenwatch.toml",
        "test-mail",
        "--to",
        "me@example.com",
    ]);
    run.expect_code(0);
    assert!(run.stdout().contains("250"), "{}", run.describe());
    assert_eq!(stub.messages()[0].to, ["me@example.com"]);
    stub.stop();
    let run = env.run(&["-c", "tokenwatch.toml", "test-mail"]);
    run.expect_code(2);
    assert!(run.stderr().contains("refused"), "{}", run.describe());
}

#[test]
fn the_file_transport_writes_private_eml_files() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 20);
    let mut d = Daemon::start(&env, &cfg);
    d.wait_for("mail written", 30, |s| {
        s["outbox"].as_array().is_some_and(Vec::is_empty)
            && env
                .path()
                .join("state/mail")
                .read_dir()
                .is_ok_and(|mut r| r.next().is_some())
    });
    d.stop();
    let files: Vec<_> = std::fs::read_dir(env.path().join("state/mail"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(
        files[0].metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );
    let db = env.path().join("state/tokenwatch.db");
    assert_eq!(
        std::fs::metadata(db).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
