//! `tokenwatch check`: JSON shape and every exit code, on real folders.

use crate::util::Env;

fn check_json(env: &Env) -> (i32, serde_json::Value, crate::util::Run) {
    let run = env.run(&["-c", "tokenwatch.toml", "check", "--json"]);
    let json = run.json();
    (run.code(), json, run)
}

#[test]
fn all_fine_exits_0_with_the_documented_json_keys() {
    let env = Env::new();
    env.config("");
    env.sample("tokens/sToken_for_Berlin.vpptoken", "Acme Corp", 200);
    let (code, json, run) = check_json(&env);
    assert_eq!(code, 0, "{}", run.describe());
    assert!(json["generated_at"].is_string());
    let folder = &json["folders"][0];
    assert_eq!(folder["state"], "ok");
    assert_eq!(folder["tokens"], 1);
    assert!(folder["path"].as_str().unwrap().ends_with("/tokens"));
    let t = &json["tokens"][0];
    for key in [
        "path",
        "org_name",
        "fingerprint",
        "created_at",
        "expires_at",
        "days_left",
        "account",
        "status",
        "detail",
    ] {
        assert!(t.get(key).is_some(), "missing key {key} in {t}");
    }
    assert_eq!(t["org_name"], "Acme Corp");
    assert_eq!(t["status"], "ok");
    assert_eq!(t["days_left"], 199);
    assert_eq!(t["account"], "apps@acme.appleaccount.com");
    assert_eq!(t["fingerprint"].as_str().unwrap().len(), 12);
    assert!(t["detail"].is_null());
    let path = t["path"].as_str().unwrap();
    assert!(
        path.starts_with('/') && path.ends_with("tokens/sToken_for_Berlin.vpptoken"),
        "{path}"
    );
}

#[test]
fn every_token_and_unreadable_file_has_kind_vpp() {
    let env = Env::new();
    env.config("");
    env.sample("tokens/a.vpptoken", "Acme Corp", 200);
    env.write("tokens/broken.vpptoken", "not a token");
    let (_, json, run) = check_json(&env);
    let tokens = json["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{}", run.describe());
    for t in tokens {
        assert_eq!(t["kind"], "vpp", "{t}");
    }
}

#[test]
fn within_warning_days_exits_1() {
    let env = Env::new();
    env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 20);
    let (code, json, run) = check_json(&env);
    assert_eq!(code, 1, "{}", run.describe());
    assert_eq!(json["tokens"][0]["status"], "expiring");
}

#[test]
fn within_critical_days_or_expired_exits_2() {
    let env = Env::new();
    env.config("");
    env.sample("tokens/soon.vpptoken", "Acme", 5);
    env.run(&["-c", "tokenwatch.toml", "check"]).expect_code(2);
    std::fs::remove_file(env.path().join("tokens/soon.vpptoken")).unwrap();
    env.sample("tokens/dead.vpptoken", "Acme", -3);
    let (code, json, run) = check_json(&env);
    assert_eq!(code, 2, "{}", run.describe());
    assert_eq!(json["tokens"][0]["status"], "expired");
    // Expired 3 days before `sample-token` ran, to the second; `check` runs
    // a moment later, and once a second boundary passes in between the
    // floor of the days left is -4 (a loaded machine made that happen).
    let days_left = json["tokens"][0]["days_left"].as_i64().unwrap();
    assert!((-4..=-3).contains(&days_left), "days_left {days_left}");
}

#[test]
fn a_recorded_password_change_invalidates_and_exits_2() {
    let env = Env::new();
    env.config("[[account]]\nid = \"apps@acme.appleaccount.com\"\npassword_changed = 2026-01-01T00:00:00Z\n");
    // Expires in ~200 days, so created ~165 days ago: long before "now"
    // but after 2026-01-01 only if now is late 2026; use an explicit date.
    env.run(&[
        "sample-token",
        "--org",
        "Acme",
        "--expires",
        "2026-12-01",
        "-o",
        "tokens/a.vpptoken",
    ])
    .expect_code(0);
    env.sample("tokens/b.vpptoken", "Acme", 300);
    let run = env.run(&["-c", "tokenwatch.toml", "check", "--json"]);
    let json = run.json();
    let a = json["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["path"].as_str().unwrap().ends_with("a.vpptoken"))
        .unwrap();
    // created 2025-12-01, password changed 2026-01-01: dead (unless the clock
    // says it already expired).
    assert!(
        a["status"] == "invalidated" || a["status"] == "expired",
        "{}",
        run.describe()
    );
    if a["status"] == "invalidated" {
        assert_eq!(a["detail"], "password_change");
    }
    run.expect_code(2);
}

#[test]
fn unreadable_files_exit_3_and_are_listed_with_null_dates() {
    let env = Env::new();
    env.config("");
    env.sample("tokens/good.vpptoken", "Acme", 200);
    env.write("tokens/empty.vpptoken", "");
    let (code, json, run) = check_json(&env);
    assert_eq!(code, 3, "{}", run.describe());
    let bad = json["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["status"] == "unreadable")
        .expect("unreadable row");
    assert!(bad["path"].as_str().unwrap().ends_with("empty.vpptoken"));
    assert!(
        bad["expires_at"].is_null() && bad["created_at"].is_null() && bad["days_left"].is_null()
    );
    assert!(bad["detail"].as_str().unwrap().contains("empty"), "{bad}");
}

#[test]
fn critical_wins_over_unreadable() {
    let env = Env::new();
    env.config("");
    env.sample("tokens/dead.vpptoken", "Acme", -1);
    env.write("tokens/junk.vpptoken", "not a token at all!");
    env.run(&["-c", "tokenwatch.toml", "check"]).expect_code(2);
}

#[test]
fn missing_and_empty_folders_exit_3_unless_allowed() {
    let env = Env::new();
    env.config("");
    let (code, json, run) = check_json(&env);
    assert_eq!(code, 3, "{}", run.describe());
    assert_eq!(json["folders"][0]["state"], "missing");
    std::fs::create_dir(env.path().join("tokens")).unwrap();
    let (code, json, _) = check_json(&env);
    assert_eq!(
        (code, json["folders"][0]["state"].as_str()),
        (3, Some("empty"))
    );
    env.write(
        "tokenwatch.toml",
        "[alerts]\nrecipients = [\"ops@example.com\"]\n[[folder]]\npath = \"tokens\"\nallow_empty = true\n",
    );
    env.run(&["-c", "tokenwatch.toml", "check"]).expect_code(0);
}

#[test]
fn human_output_lists_tokens_by_expiry_then_unreadable_files() {
    let env = Env::new();
    env.config("");
    env.sample("tokens/later.vpptoken", "Later Org", 300);
    env.sample("tokens/sooner.vpptoken", "Sooner Org", 100);
    env.write("tokens/broken.vpptoken", "@@@@");
    let run = env.run(&["-c", "tokenwatch.toml", "check"]);
    let out = run.stdout();
    let (s, l, b) = (
        out.find("Sooner Org"),
        out.find("Later Org"),
        out.find("broken.vpptoken"),
    );
    assert!(
        s.is_some() && l.is_some() && b.is_some(),
        "{}",
        run.describe()
    );
    assert!(s < l && l < b, "{}", run.describe());
    assert!(out.contains("unreadable files:"), "{}", run.describe());
}

#[test]
fn world_readable_tokens_warn_on_stderr_without_changing_the_exit_code() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.config("");
    let p = env.sample("tokens/a.vpptoken", "Acme", 200);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = env.run(&["-c", "tokenwatch.toml", "check"]);
    run.expect_code(0);
    assert!(
        run.stderr().contains("readable by every user"),
        "{}",
        run.describe()
    );
}

#[test]
fn check_needs_no_state_database() {
    let env = Env::new();
    env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    env.run(&["-c", "tokenwatch.toml", "check"]).expect_code(0);
    assert!(
        !env.path().join("state").exists(),
        "check must not create the state"
    );
}
