//! The credential kinds in the views and alerts: per-kind JSON keys, the
//! KIND column, subjects that name the kind, and the rules only some kinds
//! have (a push certificate's topic change, a content token's MDM).

use std::time::Duration;

use crate::apple_stub::{AppleStub, Reply};
use crate::smtp_stub::SmtpStub;
use crate::util::mail::{decoded, header, smtp_config_with};
use crate::util::{Daemon, Env};
use tokenwatch::token::ade::sample_ade;
use tokenwatch::token::apns::sample_apns;

/// The keys only some kinds fill; every token has all of them.
const PER_KIND_KEYS: [&str; 6] = [
    "topic",
    "serial",
    "issued_at",
    "has_private_key",
    "expiry_estimated",
    "server",
];

#[test]
fn a_content_token_has_every_per_kind_key_as_null() {
    let env = Env::new();
    env.config("");
    env.sample("tokens/a.vpptoken", "Acme Corp", 200);
    env.write("tokens/broken.vpptoken", "not a token");
    let run = env.run(&["-c", "tokenwatch.toml", "check", "--json"]);
    let json = run.json();
    let tokens = json["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{}", run.describe());
    for t in tokens {
        for key in PER_KIND_KEYS {
            assert!(t.get(key).is_some_and(|v| v.is_null()), "{key} in {t}");
        }
        // Nothing that was there before went away.
        for key in [
            "path",
            "kind",
            "org_name",
            "fingerprint",
            "world_readable",
            "apple",
        ] {
            assert!(t.get(key).is_some(), "{key} in {t}");
        }
    }
}

#[test]
fn the_check_table_has_a_kind_column() {
    let env = Env::new();
    env.config("");
    env.sample("tokens/a.vpptoken", "Acme Corp", 200);
    let run = env.run(&["-c", "tokenwatch.toml", "check"]);
    let out = run.stdout();
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["STATUS", "DAYS", "EXPIRES", "KIND", "ORG", "ACCOUNT", "FILE"],
        "{}",
        run.describe()
    );
    let row = lines.next().unwrap();
    let kind_at = out.lines().next().unwrap().find("KIND").unwrap();
    assert_eq!(&row[kind_at..kind_at + 4], "vpp ", "{}", run.describe());
}

/// The decoded subjects of every mail the stub received, in order.
fn subjects(smtp: &SmtpStub) -> Vec<String> {
    smtp.messages()
        .iter()
        .map(|m| header(&decoded(&m.text()), "Subject").unwrap_or_default())
        .collect()
}

#[test]
fn apple_naming_another_mdm_than_expected_mdm_mails_once_naming_both() {
    let (rt, apple) = AppleStub::start_on_own_runtime();
    let smtp = SmtpStub::start();
    let env = Env::new();
    let expires = (chrono::Utc::now() + chrono::Duration::days(250))
        .format("%Y-%m-%d")
        .to_string();
    env.run(&[
        "sample-token",
        "--org",
        "Acme Corp",
        "--expires",
        &expires,
        "-o",
        "tokens/berlin.vpptoken",
    ])
    .expect_code(0);
    let bearer = crate::apple::bearer(&env, "tokens/berlin.vpptoken");
    // Apple's stand-in names "Example MDM" as the MDM using the token.
    apple.respond(
        &bearer,
        Reply::valid("Berlin", "uid-b", &format!("{expires}T00:00:00+0000")),
    );
    let cfg = smtp_config_with(
        &env,
        "",
        smtp.port,
        "",
        &format!(
            "[apple]\nverify = true\nbase_url = \"{}\"\ntimeout_secs = 5\n[[folder]]\npath = \"tokens\"\naccount = \"apps@acme.appleaccount.com\"\nexpected_mdm = \"Jamf Pro\"\n",
            apple.base_url
        ),
    );
    let d = Daemon::start(&env, &cfg);
    let msgs = smtp.wait_for(1, Duration::from_secs(30));
    let mail = decoded(&msgs[0].text());
    assert_eq!(
        header(&mail, "Subject").unwrap(),
        "[tokenwatch] Content token for Acme Corp (berlin.vpptoken) is used by MDM \"Example MDM\", expected \"Jamf Pro\""
    );
    assert!(mail.contains("must not share"), "{mail}");
    // Later passes (a rescan, Apple asked again) send nothing more.
    env.sample("tokens/other.vpptoken", "Acme Corp", 300);
    d.wait_for("second token seen", 30, |s| {
        s["tokens"].as_array().is_some_and(|t| t.len() == 2)
    });
    d.wait_for("outbox drained", 20, |s| {
        s["outbox"].as_array().is_some_and(Vec::is_empty)
    });
    drop(d);
    let sent = subjects(&smtp);
    assert_eq!(
        sent.iter().filter(|s| s.contains("is used by MDM")).count(),
        1,
        "{sent:?}"
    );
    drop(rt);
}

/// A config watching `tokens` for every kind, mailing through `port`.
fn all_kinds_config(env: &Env, port: u16) -> std::path::PathBuf {
    smtp_config_with(
        env,
        "",
        port,
        "",
        "[[folder]]\npath = \"tokens\"\naccount = \"apps@acme.appleaccount.com\"\nkinds = [\"vpp\", \"apns\", \"ade\"]\nallow_empty = true\n",
    )
}

/// A sample push certificate expiring in `days`, written to `tokens/NAME`
/// as PEM; returns its topic.
fn push_cert(env: &Env, name: &str, days: i64) -> String {
    let s = sample_apns(chrono::Utc::now(), days, "Acme Corp").unwrap();
    env.write(&format!("tokens/{name}"), &s.pem);
    s.topic
}

/// A sample enrollment token expiring in `days`, under Apple's file name
/// in `tokens`; returns that name.
fn server_token(env: &Env, days: i64) -> String {
    let s = sample_ade(chrono::Utc::now(), days).unwrap();
    env.write(&format!("tokens/{}", s.file_name), &s.p7m);
    s.file_name
}

/// `pem` followed by a private key block, as some exports save it.
fn with_private_key(pem: &str) -> String {
    let key = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apns/key_only.pem"),
    )
    .unwrap();
    format!("{pem}{key}")
}

fn by_name<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["path"].as_str().unwrap().ends_with(name))
        .unwrap_or_else(|| panic!("no {name} in {json}"))
}

#[test]
fn push_certificates_and_server_tokens_show_their_own_keys_and_null_for_the_others() {
    let env = Env::new();
    all_kinds_config(&env, 25);
    env.sample("tokens/a.vpptoken", "Acme Corp", 200);
    let topic = push_cert(&env, "push.pem", 200);
    let ade = server_token(&env, 200);
    let run = env.run(&["-c", "tokenwatch.toml", "check", "--json"]);
    let json = run.json();
    assert_eq!(
        json["tokens"].as_array().unwrap().len(),
        3,
        "{}",
        run.describe()
    );

    let p = by_name(&json, "push.pem");
    assert_eq!(p["kind"], "apns");
    assert_eq!(p["topic"], topic.as_str());
    assert!(p["serial"].as_str().is_some_and(|s| !s.is_empty()), "{p}");
    assert!(p["issued_at"].is_string(), "{p}");
    assert_eq!(p["issued_at"], p["created_at"]);
    assert_eq!(p["has_private_key"], false);
    assert!(
        p["expiry_estimated"].is_null() && p["server"].is_null(),
        "{p}"
    );

    let a = by_name(&json, &ade);
    assert_eq!(a["kind"], "ade");
    assert_eq!(a["server"], "SAMPLE-tokenwatch-MDM");
    // No key configured: the expiry comes from the file name.
    assert_eq!(a["expiry_estimated"], true);
    for key in ["topic", "serial", "issued_at", "has_private_key"] {
        assert!(a[key].is_null(), "{key} in {a}");
    }

    let v = by_name(&json, "a.vpptoken");
    assert_eq!(v["kind"], "vpp");
    for key in PER_KIND_KEYS {
        assert!(v[key].is_null(), "{key} in {v}");
    }

    // The table names each row's kind.
    let run = env.run(&["-c", "tokenwatch.toml", "check"]);
    let out = run.stdout();
    let kind_at = out.lines().next().unwrap().find("KIND").unwrap();
    let mut kinds: Vec<&str> = out
        .lines()
        .skip(1)
        .take(3)
        .map(|l| l[kind_at..].split_whitespace().next().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["ade", "apns", "vpp"], "{}", run.describe());
}

#[test]
fn a_push_certificate_with_its_private_key_is_a_warning_on_stderr_only() {
    let env = Env::new();
    all_kinds_config(&env, 25);
    let s = sample_apns(chrono::Utc::now(), 200, "Acme Corp").unwrap();
    env.write("tokens/push.pem", &s.pem);
    let without = env.run(&["-c", "tokenwatch.toml", "check"]);
    assert!(
        !without.stderr().contains("private key"),
        "{}",
        without.describe()
    );
    env.write("tokens/push.pem", with_private_key(&s.pem));
    let with = env.run(&["-c", "tokenwatch.toml", "check"]);
    assert_eq!(with.code(), without.code(), "{}", with.describe());
    let warning = with
        .stderr()
        .lines()
        .find(|l| l.contains("private key"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no warning\n{}", with.describe()));
    assert!(
        warning.starts_with("tokenwatch: warning: APNs push certificate ")
            && warning.contains("tokens/push.pem"),
        "{warning}"
    );
    let json = env
        .run(&["-c", "tokenwatch.toml", "check", "--json"])
        .json();
    assert_eq!(by_name(&json, "push.pem")["has_private_key"], true);
}

#[test]
fn the_daemon_mails_each_kind_under_its_own_subject() {
    let smtp = SmtpStub::start();
    let env = Env::new();
    let cfg = all_kinds_config(&env, smtp.port);
    env.sample("tokens/berlin.vpptoken", "Acme Corp", 20);
    let topic = push_cert(&env, "push.pem", 20);
    let ade = server_token(&env, 20);
    let d = Daemon::start(&env, &cfg);
    smtp.wait_for(3, Duration::from_secs(30));
    let status = d.wait_for("outbox drained", 30, |s| {
        s["outbox"].as_array().is_some_and(Vec::is_empty)
    });
    drop(d);
    // `status --json` has the per-kind keys as `check --json` does.
    assert_eq!(by_name(&status, "push.pem")["topic"], topic.as_str());
    assert_eq!(by_name(&status, "push.pem")["has_private_key"], false);
    assert_eq!(by_name(&status, &ade)["server"], "SAMPLE-tokenwatch-MDM");
    assert_eq!(by_name(&status, &ade)["expiry_estimated"], true);
    assert!(by_name(&status, "berlin.vpptoken")["topic"].is_null());
    let mut sent = subjects(&smtp);
    sent.sort();
    // The expiry's UTC date, as the subject gives it.
    let date = |name: &str| by_name(&status, name)["expires_at"].as_str().unwrap()[..10].to_owned();
    assert_eq!(
        sent,
        [
            format!(
                "[tokenwatch] ADE server token SAMPLE-tokenwatch-MDM ({ade}) expires in 19 days ({})",
                date(&ade)
            ),
            format!(
                "[tokenwatch] APNs push certificate {topic} (push.pem) expires in 19 days ({})",
                date("push.pem")
            ),
            format!(
                "[tokenwatch] Content token for Acme Corp (berlin.vpptoken) expires in 19 days ({})",
                date("berlin.vpptoken")
            ),
        ]
    );
    // Each mail ends with its own kind's renewal advice.
    for m in smtp.messages() {
        let text = decoded(&m.text());
        let subject = header(&text, "Subject").unwrap();
        let advice = if subject.contains("APNs") {
            "Apple Push Certificates Portal"
        } else if subject.contains("ADE") {
            "Download Token"
        } else {
            "Payments & Billing"
        };
        assert!(text.contains(advice), "{advice:?} missing in {text}");
    }
}

/// The subjects of topic-change mails, decoded.
fn topic_changes(smtp: &SmtpStub) -> Vec<String> {
    subjects(smtp)
        .into_iter()
        .filter(|s| s.contains("topic changed"))
        .collect()
}

#[test]
fn a_new_push_certificate_with_another_topic_than_the_expired_one_mails_at_once() {
    let smtp = SmtpStub::start();
    let env = Env::new();
    let cfg = all_kinds_config(&env, smtp.port);
    let old = push_cert(&env, "old.pem", -3);
    let new = push_cert(&env, "new.pem", 365);
    let d = Daemon::start(&env, &cfg);
    // The expired mail of the old one, and the topic change.
    smtp.wait_for(2, Duration::from_secs(30));
    let status = d.wait_for("outbox drained", 30, |s| {
        s["outbox"].as_array().is_some_and(Vec::is_empty)
    });
    drop(d);
    let folder = status["folders"][0]["path"].as_str().unwrap().to_owned();
    assert_eq!(
        topic_changes(&smtp),
        [format!(
            "[tokenwatch] APNs push certificate topic changed in {folder}: {old} → {new}"
        )],
        "{:?}",
        subjects(&smtp)
    );
    let mail = smtp
        .messages()
        .iter()
        .map(|m| decoded(&m.text()))
        .find(|t| t.contains("topic changed"))
        .unwrap();
    assert!(
        mail.contains("the new push certificate was made with another Apple Account: every device would have to enrol again; renew the old one instead"),
        "{mail}"
    );
    // Sent once: a restart plans it no more.
    let d = Daemon::start(&env, &cfg);
    d.wait_for("a pass after the restart", 30, |s| {
        s["tokens"].as_array().is_some_and(|t| t.len() == 2)
            && s["outbox"].as_array().is_some_and(Vec::is_empty)
    });
    drop(d);
    assert_eq!(topic_changes(&smtp).len(), 1, "{:?}", subjects(&smtp));
}

#[test]
fn a_push_certificate_replaced_by_one_with_another_topic_mails_once_the_old_file_is_gone() {
    let smtp = SmtpStub::start();
    let env = Env::new();
    let cfg = all_kinds_config(&env, smtp.port);
    // Issued ten days ago: the new one below is later by its notBefore.
    let s = sample_apns(
        chrono::Utc::now() - chrono::Duration::days(10),
        210,
        "Acme Corp",
    )
    .unwrap();
    env.write("tokens/push.pem", &s.pem);
    let old = s.topic;
    let d = Daemon::start(&env, &cfg);
    d.wait_for("the old certificate seen", 30, |s| {
        s["tokens"].as_array().is_some_and(|t| t.len() == 1)
    });
    // Replaced by a certificate made with another Apple Account.
    std::fs::remove_file(env.path().join("tokens/push.pem")).unwrap();
    d.wait_for("the old certificate gone", 30, |s| {
        s["tokens"].as_array().is_some_and(Vec::is_empty)
    });
    let new = push_cert(&env, "push-renewed.pem", 365);
    let msgs = smtp.wait_for(1, Duration::from_secs(30));
    let subject = header(&decoded(&msgs[0].text()), "Subject").unwrap();
    assert!(
        subject.starts_with("[tokenwatch] APNs push certificate topic changed in ")
            && subject.ends_with(&format!(": {old} → {new}")),
        "{subject}"
    );
    d.wait_for("outbox drained", 30, |s| {
        s["outbox"].as_array().is_some_and(Vec::is_empty)
    });
    drop(d);
    assert_eq!(subjects(&smtp).len(), 1, "{:?}", subjects(&smtp));
}

#[test]
fn the_daemon_logs_a_push_certificate_with_its_private_key_once_and_mails_nothing() {
    let smtp = SmtpStub::start();
    let env = Env::new();
    let cfg = all_kinds_config(&env, smtp.port);
    let s = sample_apns(chrono::Utc::now(), 200, "Acme Corp").unwrap();
    env.write("tokens/push.pem", with_private_key(&s.pem));
    let d = Daemon::start(&env, &cfg);
    d.wait_for("the certificate seen", 30, |s| {
        s["tokens"].as_array().is_some_and(|t| t.len() == 1)
    });
    // More passes: another file comes.
    env.sample("tokens/a.vpptoken", "Acme Corp", 200);
    d.wait_for("the content token seen", 30, |s| {
        s["tokens"].as_array().is_some_and(|t| t.len() == 2)
    });
    let log = d.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("private key")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("push.pem"),
        "{log}"
    );
    drop(d);
    assert!(smtp.messages().is_empty(), "{:?}", subjects(&smtp));
}

#[test]
fn a_server_token_the_folder_key_does_not_decrypt_is_a_warning_on_stderr_only() {
    let env = Env::new();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ade");
    let name = "Example MDM_Token_2026-03-14T09-26-53Z_smime.p7m";
    env.write(
        &format!("tokens/{name}"),
        std::fs::read(fixtures.join(name)).unwrap(),
    );
    let config = |key: &str| {
        let path = env.write("key.pem", std::fs::read(fixtures.join(key)).unwrap());
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        smtp_config_with(
            &env,
            "",
            25,
            "",
            "[[folder]]\npath = \"tokens\"\nkinds = [\"ade\"]\nade_key = \"key.pem\"\n",
        );
    };
    config("mdm-key.pem");
    let right = env.run(&["-c", "tokenwatch.toml", "check", "--json"]);
    assert!(!right.stderr().contains("decrypt"), "{}", right.describe());
    assert_eq!(right.json()["tokens"][0]["expiry_estimated"], false);

    config("other-key.pem");
    let wrong = env.run(&["-c", "tokenwatch.toml", "check", "--json"]);
    assert_eq!(wrong.code(), right.code(), "{}", wrong.describe());
    assert_eq!(wrong.json()["tokens"][0]["expiry_estimated"], true);
    let warning = wrong
        .stderr()
        .lines()
        .find(|l| l.contains("does not decrypt"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no warning\n{}", wrong.describe()));
    assert!(
        warning.starts_with("tokenwatch: warning: ADE server token ") && warning.contains(name),
        "{warning}"
    );
}
