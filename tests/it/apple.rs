//! The daemon and CLI asking a local stand-in for Apple's API: verdicts in
//! `status`/`check`, the invalidated mail, superseded tokens, `probe`.

use std::time::Duration;

use crate::apple_stub::{AppleStub, Reply};
use crate::smtp_stub::SmtpStub;
use crate::util::{Daemon, Env};

struct Apple {
    rt: tokio::runtime::Runtime,
    stub: AppleStub,
}

fn apple() -> Apple {
    let (rt, stub) = AppleStub::start_on_own_runtime();
    Apple { rt, stub }
}

/// The bearer Apple sees for a token file: its text without whitespace.
pub(crate) fn bearer(env: &Env, rel: &str) -> String {
    std::fs::read_to_string(env.path().join(rel))
        .unwrap()
        .split_whitespace()
        .collect()
}

fn config(env: &Env, apple: &Apple, smtp_port: Option<u16>) -> std::path::PathBuf {
    let mail = match smtp_port {
        Some(p) => format!(
            "[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {p}\ntls = \"none\"\n"
        ),
        None => String::new(),
    };
    env.config(&format!(
        "[apple]\nverify = true\nbase_url = \"{}\"\ntimeout_secs = 5\n{mail}",
        apple.stub.base_url
    ))
}

fn token<'a>(s: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    s["tokens"]
        .as_array()?
        .iter()
        .find(|t| t["path"].as_str().unwrap_or("").ends_with(name))
}

#[test]
fn a_revoked_token_sends_exactly_one_invalidated_mail_soon_after_start() {
    let a = apple();
    let smtp = SmtpStub::start();
    let env = Env::new();
    env.sample("tokens/dead.vpptoken", "Acme Corp", 200);
    // Apple's expiry below matches the file's: no mismatch mail.
    let fine_expiry = (chrono::Utc::now() + chrono::Duration::days(250))
        .format("%Y-%m-%d")
        .to_string();
    env.run(&[
        "sample-token",
        "--org",
        "Acme Corp",
        "--expires",
        &fine_expiry,
        "-o",
        "tokens/fine.vpptoken",
    ])
    .expect_code(0);
    a.stub.respond(
        &bearer(&env, "tokens/dead.vpptoken"),
        Reply::error(200, 9625, "The server has revoked the sToken."),
    );
    a.stub.respond(
        &bearer(&env, "tokens/fine.vpptoken"),
        Reply::valid(
            "Berlin",
            "uid-fine",
            &format!("{fine_expiry}T00:00:00+0000"),
        ),
    );
    let cfg = config(&env, &a, Some(smtp.port));
    let d = Daemon::start(&env, &cfg);
    let s = d.wait_for("revoked token invalidated", 30, |s| {
        token(s, "dead.vpptoken").is_some_and(|t| t["status"] == "invalidated")
    });
    let dead = token(&s, "dead.vpptoken").unwrap();
    assert_eq!(dead["detail"], "apple_revoked");
    assert_eq!(dead["apple"]["verdict"], "revoked");
    let s = d.wait_for("fine token verified", 30, |s| {
        token(s, "fine.vpptoken").is_some_and(|t| t["apple"]["verdict"] == "valid")
    });
    let fine = &token(&s, "fine.vpptoken").unwrap()["apple"];
    assert_eq!(fine["location_name"], "Berlin");
    assert_eq!(fine["uid"], "uid-fine");
    assert!(
        fine["verified_at"].is_string()
            && fine["apple_expires_at"].is_string()
            && fine.get("mdm_name").is_some()
    );
    let msgs = smtp.wait_for(1, Duration::from_secs(30));
    let subject = msgs[0].text();
    assert!(
        subject.contains("is INVALID: revoked by Apple"),
        "{subject}"
    );
    d.wait_for("outbox drained", 20, |s| {
        s["outbox"].as_array().is_some_and(Vec::is_empty)
    });
    drop(d);
    let subjects: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| {
            m.text()
                .lines()
                .find(|l| l.starts_with("Subject"))
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(subjects.len(), 1, "exactly one mail: {subjects:?}");
    // Only GET /client/config was ever asked.
    a.stub.assert_only_get_config();
    assert!(a.stub.requests().iter().all(|r| r.method == "GET"));

    // `check` reads the stored verdicts: a revoked token must not look fine.
    let run = env.run(&["-c", "tokenwatch.toml", "check", "--json"]);
    run.expect_code(2);
    let j = run.json();
    assert_eq!(token(&j, "dead.vpptoken").unwrap()["status"], "invalidated");
    drop(a.rt);
}

#[test]
fn two_tokens_with_one_uid_the_older_is_superseded() {
    let a = apple();
    let env = Env::new();
    env.sample("tokens/old.vpptoken", "Acme", 30);
    env.sample("tokens/new.vpptoken", "Acme", 300);
    a.stub.respond(
        &bearer(&env, "tokens/old.vpptoken"),
        Reply::valid("Berlin", "uid-1", "2027-01-01T00:00:00+0000"),
    );
    a.stub.respond(
        &bearer(&env, "tokens/new.vpptoken"),
        Reply::valid("Berlin", "uid-1", "2027-09-01T00:00:00+0000"),
    );
    let cfg = config(&env, &a, None);
    let d = Daemon::start(&env, &cfg);
    let s = d.wait_for("old superseded", 30, |s| {
        token(s, "old.vpptoken").is_some_and(|t| t["status"] == "superseded")
    });
    assert!(token(&s, "old.vpptoken").unwrap()["superseded_by"]
        .as_str()
        .unwrap()
        .ends_with("new.vpptoken"));
    assert_eq!(token(&s, "new.vpptoken").unwrap()["status"], "ok");
    drop(d);
    // Superseded counts as a warning in check, at most.
    env.run(&["-c", "tokenwatch.toml", "check"]).expect_code(1);
    drop(a.rt);
}

#[test]
fn raw_json_tokens_are_not_probed_and_say_so() {
    let a = apple();
    let env = Env::new();
    env.write(
        "tokens/raw.vpptoken",
        "{\"token\":\"dGVzdA==\",\"expDate\":\"2031-01-01T00:00:00+0000\",\"orgName\":\"Raw\"}",
    );
    env.sample("tokens/b64.vpptoken", "B64", 300);
    a.stub.respond(
        &bearer(&env, "tokens/b64.vpptoken"),
        Reply::valid("X", "uid-x", "2027-09-01T00:00:00+0000"),
    );
    let cfg = config(&env, &a, None);
    let d = Daemon::start(&env, &cfg);
    let s = d.wait_for("b64 verified", 30, |s| {
        token(s, "b64.vpptoken").is_some_and(|t| t["apple"]["verdict"] == "valid")
    });
    assert_eq!(
        token(&s, "raw.vpptoken").unwrap()["apple"]["verdict"],
        "unverifiable"
    );
    assert_eq!(
        a.stub.requests().len(),
        1,
        "only the Base64 token is asked about"
    );
    drop(a.rt);
}

#[test]
fn probe_prints_apples_verdict_for_one_file() {
    let a = apple();
    let env = Env::new();
    let cfg = config(&env, &a, None);
    let _ = cfg;
    env.sample("tokens/a.vpptoken", "Acme", 100);
    a.stub.respond(
        &bearer(&env, "tokens/a.vpptoken"),
        Reply::valid("Berlin", "uid-9", "2027-03-01T00:00:00+0000"),
    );
    let run = env.run(&[
        "-c",
        "tokenwatch.toml",
        "probe",
        "tokens/a.vpptoken",
        "--json",
    ]);
    run.expect_code(0);
    let j = run.json();
    assert_eq!(j["verdict"], "valid");
    assert_eq!(j["location_name"], "Berlin");
    assert_eq!(j["uid"], "uid-9");
    let secret = bearer(&env, "tokens/a.vpptoken");
    assert!(!run.stdout().contains(&secret[..20]) && !run.stderr().contains(&secret[..20]));
    a.stub.respond(
        &bearer(&env, "tokens/a.vpptoken"),
        Reply::error(401, 9625, "The server has revoked the sToken."),
    );
    let run = env.run(&["-c", "tokenwatch.toml", "probe", "tokens/a.vpptoken"]);
    run.expect_code(2);
    assert!(run.stdout().contains("revoked"), "{}", run.describe());
    drop(a.rt);
}

#[test]
fn a_restart_does_not_ask_again_about_freshly_verified_tokens() {
    let a = apple();
    let env = Env::new();
    env.sample("tokens/a.vpptoken", "Acme", 200);
    a.stub.respond(
        &bearer(&env, "tokens/a.vpptoken"),
        Reply::error(200, 9625, "The server has revoked the sToken."),
    );
    let cfg = config(&env, &a, None);
    let mut d = Daemon::start(&env, &cfg);
    d.wait_for("verified", 30, |s| {
        s["tokens"][0]["apple"]["verdict"] == "revoked"
    });
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(20), Some(0));
    assert_eq!(a.stub.requests().len(), 1);
    // A new token appearing while running is asked about; the old one is not.
    let d = Daemon::start(&env, &cfg);
    d.wait_for("first scan after restart", 20, |s| {
        s["tokens"].as_array().is_some_and(|t| t.len() == 1)
    });
    // Scripted before it is in the folder: the daemon may ask about it as
    // soon as it lands, and an unscripted bearer is answered as invalid.
    env.sample("b.vpptoken", "Beta", 200);
    a.stub.respond(
        &bearer(&env, "b.vpptoken"),
        Reply::error(200, 9621, "The token has expired."),
    );
    std::fs::rename(
        env.path().join("b.vpptoken"),
        env.path().join("tokens/b.vpptoken"),
    )
    .unwrap();
    d.wait_for("new token verified", 30, |s| {
        token(s, "b.vpptoken").is_some_and(|t| t["apple"]["verdict"] == "expired")
    });
    let asked: Vec<String> = a
        .stub
        .requests()
        .iter()
        .map(|r| r.bearer.clone().unwrap_or_default())
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[1], bearer(&env, "tokens/b.vpptoken"));
    drop(a.rt);
}
