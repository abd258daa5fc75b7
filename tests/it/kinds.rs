//! The credential kinds in the views and alerts: per-kind JSON keys, the
//! KIND column, subjects that name the kind, and the rules only some kinds
//! have (a push certificate's topic change, a content token's MDM).

use crate::util::Env;

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
