//! Every alert kind the daemon sends, through the real binary to a json, a
//! Slack and a Teams webhook: each message delivered exactly once across a
//! receiver outage and a `kill -9`, signed, and saying in chat what its
//! json twin says (org, file and expiry, or the folder).
//!
//! The storm `summary` is in `webhook_daemon`; `test` is `test-webhook`'s.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::apple_stub::{AppleStub, Reply};
use crate::util::{Daemon, Env};
use crate::webhook::{hmac_hex, KEY};
use crate::webhook_daemon::{by_key, fast, hooks, FORMATS};
use crate::webhook_stub::{Post, WebhookStub};

/// `(event, what it is about, severity)`: the file name of its credential,
/// the last component of its folder, or "" for neither.
type Expected = (&'static str, &'static str, &'static str);

/// Waits until every format's webhook has received `n` distinct messages.
fn wait_for_keys(stub: &WebhookStub, n: usize, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let posts = stub.posts();
        if FORMATS.iter().all(|f| by_key(&posts, f).len() >= n) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {n} messages per webhook: {:#?}",
            FORMATS.map(|f| by_key(&posts, f).len())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn drained(s: &serde_json::Value) -> bool {
    s["outbox"].as_array().is_some_and(|o| o.is_empty())
}

fn last_component(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// What a chat message says as its headline: Slack's fallback text
/// without the prefix, or the Teams card's first block.
fn chat_summary(format: &str, body: &serde_json::Value) -> String {
    match format {
        "slack" => body["text"]
            .as_str()
            .and_then(|t| t.strip_prefix("[tokenwatch] "))
            .unwrap_or_else(|| panic!("slack text: {body}"))
            .to_owned(),
        _ => body["attachments"][0]["content"]["body"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("teams card: {body}"))
            .to_owned(),
    }
}

/// Each webhook got each message exactly once (one 2xx answer per
/// Idempotency-Key; a retry posts the same bytes), the json messages are
/// `expected`, signed, and every chat message says what its json twin does.
fn delivered_once(posts: &[Post], expected: &[Expected]) {
    for f in FORMATS {
        for (key, _) in by_key(posts, f) {
            let accepted = posts
                .iter()
                .filter(|p| p.header("idempotency-key") == Some(key.as_str()))
                .filter(|p| (200..300).contains(&p.status))
                .count();
            assert_eq!(accepted, 1, "{f}: {key} delivered {accepted} times");
        }
    }
    let json: Vec<serde_json::Value> = by_key(posts, "json")
        .values()
        .map(|p| {
            assert_eq!(
                p.header("x-tokenwatch-signature"),
                Some(hmac_hex(KEY, &p.body).as_str()),
                "signed"
            );
            let b = p.json();
            assert_eq!(p.header("idempotency-key"), b["id"].as_str());
            b
        })
        .collect();
    let mut got: Vec<(String, String, String)> = json
        .iter()
        .map(|b| {
            let summary = b["summary"].as_str().unwrap();
            assert!(!summary.is_empty() && !summary.starts_with("[tokenwatch]"));
            let about = match (&b["token"], &b["folder"]) {
                (serde_json::Value::Null, serde_json::Value::Null) => "",
                (t, serde_json::Value::Null) => last_component(t["path"].as_str().unwrap()),
                (serde_json::Value::Null, f) => last_component(f.as_str().unwrap()),
                _ => panic!("a token and a folder: {b}"),
            };
            (
                b["event"].as_str().unwrap().to_owned(),
                about.to_owned(),
                b["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    // A test running across midnight gets a digest for each day.
    got.dedup_by(|a, b| a.0 == "digest" && a == b);
    let mut want: Vec<(String, String, String)> = expected
        .iter()
        .map(|(e, a, s)| (e.to_string(), a.to_string(), s.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want);

    for p in by_key(posts, "slack").values() {
        for block in p.json()["blocks"].as_array().unwrap() {
            let fields = block["fields"].as_array().map_or(0, Vec::len);
            // Slack refuses the whole message (400, parked) otherwise.
            assert!(fields <= 10, "a section with {fields} fields: {}", p.body);
        }
    }
    let mut summaries: BTreeMap<String, usize> = BTreeMap::new();
    for b in &json {
        *summaries
            .entry(b["summary"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for f in ["slack", "teams"] {
        let chats: Vec<(String, String)> = by_key(posts, f)
            .values()
            .map(|p| (chat_summary(f, &p.json()), p.body.clone()))
            .collect();
        for b in &json {
            let summary = b["summary"].as_str().unwrap();
            let twins: Vec<&String> = chats
                .iter()
                .filter(|(s, _)| s == summary)
                .map(|(_, body)| body)
                .collect();
            assert_eq!(twins.len(), summaries[summary], "{f}: {summary}");
            let mut names: Vec<String> = Vec::new();
            if let Some(t) = b["token"].as_object() {
                let path = t["path"].as_str().unwrap();
                names.push(last_component(path).to_owned());
                if let Some(org) = t["org_name"].as_str() {
                    names.push(org.to_owned());
                }
                if let Some(e) = t["expires_at"].as_str() {
                    names.push(e[..10].to_owned());
                }
            }
            if let Some(folder) = b["folder"].as_str() {
                names.push(folder.to_owned());
            }
            for body in twins {
                for n in &names {
                    assert!(body.contains(n.as_str()), "{f}: no {n:?} in {body}");
                }
            }
        }
    }
}

/// A file unchanged for an hour: unreadable counts once a file settled.
fn settled(path: &std::path::Path) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
}

/// Credentials, folders and accounts: everything that needs no Apple.
#[test]
fn file_folder_and_account_alerts_reach_every_webhook_once_across_an_outage_and_a_kill() {
    let env = Env::new();
    let stub = WebhookStub::start();
    stub.set_default(503);
    let changed = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let cfg = env.write(
        "tokenwatch.toml",
        format!(
            "state_dir = \"state\"\n\
             [alerts]\nrecipients = [\"ops@example.com\"]\nrequire_account = true\n\
             max_mails_per_pass = 50\n\
             webhooks = [\"json-hook\", \"slack-hook\", \"teams-hook\"]\n\
             [schedule]\ndigest = \"* * * * * *\"\n{}\
             [[folder]]\npath = \"tokens\"\naccount = \"apps@acme.appleaccount.com\"\nkinds = [\"vpp\", \"apns\"]\n\
             [[folder]]\npath = \"moved\"\naccount = \"old@acme.appleaccount.com\"\n\
             [[folder]]\npath = \"noacct\"\n\
             [[folder]]\npath = \"empty\"\naccount = \"apps@acme.appleaccount.com\"\n\
             [[account]]\nid = \"old@acme.appleaccount.com\"\npassword_changed = {changed}\n",
            hooks(&env, &stub)
        ),
    );
    env.sample("tokens/soon.vpptoken", "Soon Org", 10);
    env.sample("tokens/gone.vpptoken", "Gone Org", -1);
    settled(&env.write("tokens/broken.vpptoken", "not a token"));
    let cert = |days| tokenwatch::token::apns::sample_apns(chrono::Utc::now(), days, "Push Org");
    env.write("tokens/old.pem", cert(-3).unwrap().pem);
    env.write("tokens/new.pem", cert(365).unwrap().pem);
    // Downloaded long before its account's password changed just now.
    env.sample("moved/moved.vpptoken", "Moved Org", 200);
    env.sample("noacct/stray.vpptoken", "Stray Org", 300);
    std::fs::create_dir_all(env.path().join("empty")).unwrap();

    let d = Daemon::start_with(&env, &cfg, &fast(false));
    // Every message of the first pass, and the digest, tried at least once.
    wait_for_keys(&stub, 9, 60);
    env.sample("empty/back.vpptoken", "Back Org", 300);
    wait_for_keys(&stub, 10, 60);
    d.signal(libc::SIGKILL);
    let mut d = d;
    d.wait_exit(20);

    stub.set_default(200);
    let d = Daemon::start_with(&env, &cfg, &fast(false));
    d.wait_for("every post delivered", 60, drained);
    drop(d);
    let posts = stub.posts();
    for f in FORMATS {
        for (key, _) in by_key(&posts, f) {
            assert!(
                posts
                    .iter()
                    .any(|p| p.status == 503 && p.header("idempotency-key") == Some(key.as_str())),
                "{f}: {key} was posted during the outage"
            );
        }
    }
    delivered_once(
        &posts,
        &[
            ("expiring", "soon.vpptoken", "warning"),
            ("expired", "gone.vpptoken", "critical"),
            ("unreadable", "broken.vpptoken", "critical"),
            ("expired", "old.pem", "critical"),
            ("topic_changed", "new.pem", "warning"),
            ("invalidated", "moved.vpptoken", "critical"),
            ("account_missing", "stray.vpptoken", "warning"),
            ("folder_problem", "empty", "warning"),
            ("folder_recovered", "empty", "info"),
            ("digest", "", "warning"),
        ],
    );
}

/// Apple's verdict for a token naming `mdm` and `uid`, with `expires`
/// (YYYY-MM-DD) as Apple's expiry.
fn verified(mdm: &str, uid: &str, expires: &str) -> Reply {
    Reply::config(serde_json::json!({
        "locationName": "Berlin",
        "uId": uid,
        "tokenExpirationDate": format!("{expires}T00:00:00+0000"),
        "mdmInfo": { "id": "mdm-1", "name": mdm, "metadata": "{}" },
    }))
}

/// YYYY-MM-DD, `days` from now.
fn day(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

/// The state database, while no daemon runs.
fn state_db(env: &Env) -> rusqlite::Connection {
    rusqlite::Connection::open(env.path().join("state/tokenwatch.db")).unwrap()
}

fn apple_config(env: &Env, stub: &WebhookStub, base_url: &str) -> std::path::PathBuf {
    env.write(
        "tokenwatch.toml",
        format!(
            "state_dir = \"state\"\n\
             [alerts]\nrecipients = [\"ops@example.com\"]\n\
             webhooks = [\"json-hook\", \"slack-hook\", \"teams-hook\"]\n{}\
             [apple]\nverify = true\nbase_url = \"{base_url}\"\ntimeout_secs = 5\n\
             [[folder]]\npath = \"tokens\"\naccount = \"apps@acme.appleaccount.com\"\nexpected_mdm = \"Jamf Pro\"\n",
            hooks(env, stub)
        ),
    )
}

/// What Apple says: verdicts through the Apple stand-in. A day of failing
/// checks, which no test can wait for, is written into the state while
/// the daemon is down, as a daemon that ran a day earlier would have left it.
#[test]
fn apple_alerts_reach_every_webhook_once_across_an_outage_and_a_kill() {
    let (rt, apple) = AppleStub::start_on_own_runtime();
    let env = Env::new();
    let stub = WebhookStub::start();
    stub.set_default(503);
    let cfg = apple_config(&env, &stub, &apple.base_url);
    let token = |name: &str, expires: &str| {
        let rel = format!("tokens/{name}");
        env.run(&[
            "sample-token",
            "--org",
            "Apple Org",
            "--expires",
            expires,
            "-o",
            &rel,
        ])
        .expect_code(0);
        crate::apple::bearer(&env, &rel)
    };
    let (soon, later) = (day(150), day(250));
    apple.respond(
        &token("dead.vpptoken", &later),
        Reply::error(200, 9625, "The server has revoked the sToken."),
    );
    apple.respond(
        &token("mdm.vpptoken", &later),
        verified("Example MDM", "uid-mdm", &later),
    );
    apple.respond(
        &token("mismatch.vpptoken", &later),
        verified("Jamf Pro", "uid-mm", &day(280)),
    );
    apple.respond(
        &token("old.vpptoken", &soon),
        verified("Jamf Pro", "uid-1", &soon),
    );
    apple.respond(
        &token("new.vpptoken", &later),
        verified("Jamf Pro", "uid-1", &later),
    );
    // Apple answers, but not in a way that says anything.
    apple.respond(
        &token("flaky.vpptoken", &later),
        Reply::error(200, 9999, "something new"),
    );

    let d = Daemon::start_with(&env, &cfg, &fast(false));
    wait_for_keys(&stub, 4, 60);
    let status = d.wait_for("the failing check recorded", 30, |s| {
        s["tokens"].as_array().is_some_and(|t| {
            t.iter().any(|t| {
                t["path"].as_str().unwrap().ends_with("flaky.vpptoken")
                    && t["apple"]["error"].is_string()
            })
        })
    });
    d.signal(libc::SIGKILL);
    let mut d = d;
    d.wait_exit(20);
    let flaky = status["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["path"].as_str().unwrap().ends_with("flaky.vpptoken"))
        .unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let two_days_ago = |c: &rusqlite::Connection, sql: &str, arg: &str| {
        let at = (chrono::Utc::now() - chrono::Duration::days(2))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        c.execute(sql, rusqlite::params![at, arg]).unwrap()
    };
    let changed = two_days_ago(
        &state_db(&env),
        "UPDATE verdicts SET first_failure_at = ?1 WHERE fingerprint LIKE ?2 || '%'",
        &flaky,
    );
    assert_eq!(changed, 1);

    stub.set_default(200);
    let mut d = Daemon::start_with(&env, &cfg, &fast(false));
    wait_for_keys(&stub, 5, 60);
    d.wait_for("every post delivered", 60, drained);
    d.stop();

    // Apple out of reach for two days: nothing listens on its port now.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let cfg = apple_config(&env, &stub, &format!("http://127.0.0.1:{port}/mdm/v2"));
    two_days_ago(
        &state_db(&env),
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?2, ?1)",
        "apple_unreachable_since",
    );
    stub.set_default(503);
    let d = Daemon::start_with(&env, &cfg, &fast(false));
    wait_for_keys(&stub, 6, 60);
    stub.set_default(200);
    d.wait_for("every post delivered", 60, drained);
    drop(d);
    let posts = stub.posts();
    assert!(posts.iter().any(|p| p.status == 503), "an outage");
    delivered_once(
        &posts,
        &[
            ("invalidated", "dead.vpptoken", "critical"),
            ("mdm_conflict", "mdm.vpptoken", "warning"),
            ("expiry_mismatch", "mismatch.vpptoken", "warning"),
            ("superseded", "old.vpptoken", "warning"),
            ("cannot_verify", "flaky.vpptoken", "warning"),
            ("apple_unreachable", "", "warning"),
        ],
    );
    drop(rt);
}
