//! `tokenwatch inspect`: what is read from one file, never the secret.

use base64::Engine;

use crate::util::Env;

const CANARY: &str = "CANARY-inspect-5b1f9e";

fn canary_token(exp: &str) -> String {
    let inner = base64::engine::general_purpose::STANDARD.encode(CANARY);
    let json =
        format!("{{\"token\":\"{inner}\",\"expDate\":\"{exp}\",\"orgName\":\"Canary Org\"}}");
    base64::engine::general_purpose::STANDARD.encode(json)
}

fn assert_no_secret(text: &str, file_text: &str) {
    let inner = base64::engine::general_purpose::STANDARD.encode(CANARY);
    for needle in [CANARY, inner.as_str(), file_text.trim()] {
        assert!(!text.contains(needle), "secret {needle:?} leaked:\n{text}");
    }
    // Any long run of the file's Base64 would be a leak too.
    let b64 = file_text.trim();
    for chunk in b64
        .as_bytes()
        .chunks(16)
        .map(|c| std::str::from_utf8(c).unwrap())
        .filter(|c| c.len() == 16)
    {
        assert!(
            !text.contains(chunk),
            "part of the token {chunk:?} leaked:\n{text}"
        );
    }
}

#[test]
fn inspect_never_prints_the_secret() {
    let env = Env::new();
    let text = canary_token("2027-08-15T18:13:52-0700");
    env.write("c.vpptoken", &text);
    for args in [
        &["inspect", "c.vpptoken"][..],
        &["inspect", "c.vpptoken", "--json"][..],
    ] {
        let run = env.run(args);
        run.expect_code(0);
        assert_no_secret(&run.stdout(), &text);
        assert_no_secret(&run.stderr(), &text);
    }
    let run = env.run(&["inspect", "c.vpptoken", "--json"]);
    let j = run.json();
    assert_eq!(j["org_name"], "Canary Org");
    assert_eq!(j["expires_at"], "2027-08-16T01:13:52Z");
}

#[test]
fn inspect_of_a_broken_token_exits_3_without_leaking() {
    let env = Env::new();
    // Valid Base64 and JSON, impossible date.
    let text = canary_token("2026-02-30T00:00:00+0000");
    env.write("bad.vpptoken", &text);
    let run = env.run(&["inspect", "bad.vpptoken"]);
    run.expect_code(3);
    assert!(
        run.stdout().contains("2026-02-30T00:00:00+0000"),
        "{}",
        run.describe()
    );
    assert_no_secret(&run.stdout(), &text);
    assert_no_secret(&run.stderr(), &text);
}

#[test]
fn inspect_reports_variant_rules_and_raw_json() {
    let env = Env::new();
    let json = format!("{{\n  \"token\": \"{}\",\n  \"expDate\": \"2027-08-15T18:13:52+00:00\",\n  \"orgName\": \"Raw\"\n}}\n", base64::engine::general_purpose::STANDARD.encode(CANARY));
    env.write("raw.vpptoken", &json);
    let run = env.run(&["inspect", "raw.vpptoken", "--json"]);
    run.expect_code(0);
    let j = run.json();
    assert_eq!(j["verifiable_with_apple"], false);
    let rules: Vec<&str> = j["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"raw_json") && rules.contains(&"offset_with_colon"),
        "{rules:?}"
    );
    assert!(!run.stdout().contains(CANARY));
}

#[test]
fn inspect_of_a_missing_file_exits_3() {
    let env = Env::new();
    let run = env.run(&["inspect", "nope.vpptoken"]);
    run.expect_code(3);
}
