//! Webhooks through the real binary: `test-webhook`, `config check`, and
//! secrets that never show.

use std::os::unix::fs::PermissionsExt;

use crate::util::Env;
use crate::webhook_stub::WebhookStub;

/// A path secret as long as a Slack one, and a signing key.
pub(crate) const PATH_SECRET: &str =
    "T0CANARY01/B0CANARY02/CanaryPathSecret4f9a1c7e2b6d8a0f3e5c7b9d";
pub(crate) const KEY: &str = "canary-signing-key-7d1e3a9c5b2f8e4d6a0c1b3f5e7d9a2c";

pub(crate) fn private(env: &Env, rel: &str, text: &str) -> std::path::PathBuf {
    let p = env.write(rel, text);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    p
}

fn config(env: &Env, stub: &WebhookStub, format: &str) -> std::path::PathBuf {
    private(
        env,
        "hook.url",
        &format!("{}/hooks/{PATH_SECRET}\n", stub.base),
    );
    let key = if format == "json" {
        private(env, "hook.key", KEY);
        "secret_file = \"hook.key\"\n"
    } else {
        ""
    };
    env.config(&format!(
        "[[webhook]]\nname = \"ops-chat\"\nformat = \"{format}\"\nurl_file = \"hook.url\"\n{key}"
    ))
}

#[test]
fn test_webhook_posts_a_signed_test_message_and_says_what_answered() {
    let env = Env::new();
    let stub = WebhookStub::start();
    let cfg = config(&env, &stub, "json");
    let run = env.run(&["-c", cfg.to_str().unwrap(), "test-webhook", "ops-chat"]);
    run.expect_code(0);
    assert!(run.stdout().contains("HTTP 200"), "{}", run.describe());
    let posts = stub.wait_for_posts(1, 10);
    let post = &posts[0];
    assert_eq!(post.path, format!("/hooks/{PATH_SECRET}"));
    let body = post.json();
    assert_eq!(body["event"], "test");
    assert_eq!(body["severity"], "info");
    assert_eq!(body["version"], 1);
    assert_eq!(post.header("idempotency-key"), body["id"].as_str());
    let expected = hmac_hex(KEY, &post.body);
    assert_eq!(
        post.header("x-tokenwatch-signature"),
        Some(expected.as_str())
    );
    assert!(!run.stdout().contains("CanaryPath") && !run.stderr().contains("CanaryPath"));
}

pub(crate) fn hmac_hex(key: &str, body: &str) -> String {
    use sha2::Digest;
    // HMAC-SHA256 by its definition, independent of the code under test.
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key.as_bytes());
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = sha2::Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(body.as_bytes())
        .finalize();
    let outer = sha2::Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    format!("sha256={}", hex::encode(outer))
}

#[test]
fn test_webhook_exits_2_when_refused_and_3_when_not_configured_never_showing_the_path() {
    let env = Env::new();
    let stub = WebhookStub::start();
    stub.set_default(403);
    let cfg = config(&env, &stub, "slack");
    let cfg = cfg.to_str().unwrap();
    let run = env.run(&["-c", cfg, "test-webhook", "ops-chat"]);
    run.expect_code(2);
    assert!(run.stderr().contains("HTTP 403"), "{}", run.describe());
    assert!(run.stderr().contains(&stub.base), "{}", run.describe());
    assert!(!run.stderr().contains("CanaryPath"), "{}", run.describe());
    let body = stub.wait_for_posts(1, 10)[0].json();
    assert!(body["text"]
        .as_str()
        .unwrap()
        .starts_with("[tokenwatch] Test message"));
    assert!(body["blocks"].is_array());

    let run = env.run(&["-c", cfg, "test-webhook", "nope"]);
    run.expect_code(3);
    assert!(
        run.stderr().contains("no [[webhook]] named \"nope\""),
        "{}",
        run.describe()
    );
}

#[test]
fn config_check_refuses_a_url_file_everyone_can_read_and_a_plain_http_url_elsewhere() {
    let env = Env::new();
    let stub = WebhookStub::start();
    let cfg = config(&env, &stub, "teams");
    let cfg_s = cfg.to_str().unwrap();
    env.run(&["-c", cfg_s, "config", "check"]).expect_code(0);

    let url = env.path().join("hook.url");
    std::fs::set_permissions(&url, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = env.run(&["-c", cfg_s, "config", "check"]);
    run.expect_code(3);
    assert!(run.stderr().contains("0644"), "{}", run.describe());
    assert!(!run.stderr().contains("CanaryPath"), "{}", run.describe());

    let cfg = env.config(&format!(
        "[[webhook]]\nname = \"x\"\nurl = \"http://hooks.example.com/{PATH_SECRET}\"\n"
    ));
    let run = env.run(&["-c", cfg.to_str().unwrap(), "config", "check"]);
    run.expect_code(3);
    assert!(
        run.stderr().contains("http://hooks.example.com uses http"),
        "{}",
        run.describe()
    );
    assert!(!run.stderr().contains("CanaryPath"), "{}", run.describe());
}
