//! The credential kinds in the views and alerts: per-kind JSON keys, the
//! KIND column, subjects that name the kind, and the rules only some kinds
//! have (a push certificate's topic change, a content token's MDM).

use std::time::Duration;

use crate::apple_stub::{AppleStub, Reply};
use crate::smtp_stub::SmtpStub;
use crate::util::mail::{decoded, header, smtp_config_with};
use crate::util::{Daemon, Env};

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
    let bearer: String = std::fs::read_to_string(env.path().join("tokens/berlin.vpptoken"))
        .unwrap()
        .split_whitespace()
        .collect();
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
