//! Webhooks through the running daemon: every alert posted once per
//! webhook and format across a receiver outage and a `kill -9`, signed,
//! with the URL's secret path and the signing key shown nowhere.

use std::collections::BTreeMap;

use crate::util::{Daemon, Env};
use crate::webhook::{hmac_hex, private, KEY, PATH_SECRET};
use crate::webhook_stub::{Post, WebhookStub};

pub(crate) const FORMATS: [&str; 3] = ["json", "slack", "teams"];

/// Three webhooks on `stub`, one per format (`FORMAT-hook`, posting to
/// `/FORMAT/SECRET`; json signed with `KEY`), as config text.
pub(crate) fn hooks(env: &Env, stub: &WebhookStub) -> String {
    let mut hooks = String::new();
    for f in FORMATS {
        private(
            env,
            &format!("{f}.url"),
            &format!("{}/{f}/{PATH_SECRET}\n", stub.base),
        );
        hooks.push_str(&format!(
            "[[webhook]]\nname = \"{f}-hook\"\nformat = \"{f}\"\nurl_file = \"{f}.url\"\n"
        ));
        if f == "json" {
            private(env, "json.key", KEY);
            hooks.push_str("secret_file = \"json.key\"\n");
        }
    }
    hooks
}

fn config(env: &Env, stub: &WebhookStub, extra: &str) -> std::path::PathBuf {
    let hooks = hooks(env, stub);
    env.config(&format!(
        "{extra}webhooks = [\"json-hook\", \"slack-hook\", \"teams-hook\"]\n{hooks}"
    ))
}

/// The posts to one format's webhook, by idempotency key; every retry of
/// one key carries the same bytes.
pub(crate) fn by_key<'a>(posts: &'a [Post], format: &str) -> BTreeMap<String, &'a Post> {
    let mut out: BTreeMap<String, &Post> = BTreeMap::new();
    for p in posts
        .iter()
        .filter(|p| p.path.starts_with(&format!("/{format}/")))
    {
        let key = p
            .header("idempotency-key")
            .expect("an Idempotency-Key")
            .to_owned();
        if let Some(first) = out.get(&key) {
            assert_eq!(first.body, p.body, "a retry posts the same body");
        }
        out.insert(key, p);
    }
    out
}

pub(crate) fn fast(trace: bool) -> Vec<(&'static str, &'static str)> {
    let mut v = vec![("TOKENWATCH_RETRY_BASE_MS", "50")];
    if trace {
        v.push(("RUST_LOG", "trace"));
    }
    v
}

#[test]
fn every_alert_reaches_every_webhook_once_across_an_outage_and_a_kill() {
    let env = Env::new();
    let stub = WebhookStub::start();
    stub.set_default(503);
    let cfg = config(&env, &stub, "");
    env.sample("tokens/soon.vpptoken", "Soon Org", 10);
    env.sample("tokens/gone.vpptoken", "Gone Org", -1);
    let broken = env.write("tokens/broken.vpptoken", "not a token");
    // Unreadable counts once a file has settled.
    std::fs::File::options()
        .write(true)
        .open(&broken)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();

    let mut logs = Vec::new();
    let d = Daemon::start_with(&env, &cfg, &fast(true));
    // Every message tried at least once during the outage.
    stub.wait_for_posts(9, 30);
    d.signal(libc::SIGKILL);
    let mut d = d;
    d.wait_exit(20);
    logs.push(d.log());

    stub.set_default(200);
    let d = Daemon::start_with(&env, &cfg, &fast(true));
    let status = d.wait_for("every post delivered", 30, |s| {
        s["outbox"].as_array().is_some_and(|o| o.is_empty())
            && FORMATS.iter().all(|f| by_key(&stub.posts(), f).len() >= 3)
    });
    let status_text = env
        .run(&["-c", cfg.to_str().unwrap(), "status", "--json"])
        .stdout();
    logs.push(d.log());
    drop(d);

    let posts = stub.posts();
    for f in FORMATS {
        let keyed = by_key(&posts, f);
        assert_eq!(keyed.len(), 3, "{f}: one message per alert: {keyed:#?}");
        for p in keyed.values() {
            assert_eq!(p.header("content-type"), Some("application/json"));
        }
    }
    let json = by_key(&posts, "json");
    let mut events: Vec<(String, String)> = json
        .values()
        .map(|p| {
            let b = p.json();
            assert_eq!(p.header("idempotency-key"), b["id"].as_str());
            assert_eq!(
                p.header("x-tokenwatch-signature"),
                Some(hmac_hex(KEY, &p.body).as_str()),
                "signed"
            );
            assert!(!b["summary"].as_str().unwrap().starts_with("[tokenwatch]"));
            (
                b["event"].as_str().unwrap().to_owned(),
                b["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            ("expired".to_owned(), "critical".to_owned()),
            ("expiring".to_owned(), "warning".to_owned()),
            ("unreadable".to_owned(), "critical".to_owned()),
        ]
    );
    let soon = json
        .values()
        .map(|p| p.json())
        .find(|b| b["event"] == "expiring")
        .unwrap();
    assert_eq!(soon["token"]["org_name"], "Soon Org");
    assert!(soon["token"]["days_left"].is_i64(), "{soon}");
    assert!(soon["token"]["path"]
        .as_str()
        .unwrap()
        .ends_with("soon.vpptoken"));
    for f in ["slack", "teams"] {
        let chat = by_key(&posts, f)
            .values()
            .map(|p| p.body.clone())
            .find(|b| b.contains("Soon Org"))
            .unwrap_or_else(|| panic!("{f}: no message names the org"));
        assert!(chat.contains("soon.vpptoken"), "{chat}");
    }

    // Nothing shows the secret path or the key.
    let mut places: Vec<(String, Vec<u8>)> = logs
        .into_iter()
        .enumerate()
        .map(|(i, l)| (format!("daemon log {i}"), l.into_bytes()))
        .collect();
    places.push(("status".into(), status_text.into_bytes()));
    places.push(("status snapshot".into(), status.to_string().into_bytes()));
    for name in ["tokenwatch.db", "tokenwatch.db-wal"] {
        if let Ok(bytes) = std::fs::read(env.path().join("state").join(name)) {
            places.push((name.into(), bytes));
        }
    }
    for (name, raw, _) in crate::util::mail::read_mails(&env.path().join("state/mail")) {
        places.push((name, raw));
    }
    for p in &posts {
        places.push((
            format!("body to {}", &p.path[..5]),
            p.body.clone().into_bytes(),
        ));
    }
    let needles = [
        &PATH_SECRET[..20],
        &PATH_SECRET[PATH_SECRET.len() - 20..],
        KEY,
    ];
    for (name, bytes) in &places {
        let text = String::from_utf8_lossy(bytes);
        for n in needles {
            assert!(!text.contains(n), "{name} shows a secret");
        }
    }
}

#[test]
fn a_storm_becomes_one_summary_per_webhook() {
    let env = Env::new();
    let stub = WebhookStub::start();
    stub.set_default(200);
    let cfg = config(&env, &stub, "max_mails_per_pass = 2\n");
    for i in 0..4 {
        env.sample(&format!("tokens/t{i}.vpptoken"), &format!("Org {i}"), -1);
    }
    let d = Daemon::start_with(&env, &cfg, &fast(false));
    d.wait_for("the summaries delivered", 30, |s| {
        s["outbox"].as_array().is_some_and(|o| o.is_empty()) && stub.posts().len() >= 3
    });
    drop(d);
    let posts = stub.posts();
    for f in FORMATS {
        let keyed = by_key(&posts, f);
        assert_eq!(keyed.len(), 1, "{f}: {keyed:#?}");
    }
    let json = by_key(&posts, "json");
    let body = json.values().next().unwrap().json();
    assert_eq!(body["event"], "summary");
    assert_eq!(body["token"], serde_json::Value::Null);
}

#[test]
fn a_reload_that_removes_a_webhook_parks_its_posts_at_once() {
    let env = Env::new();
    let stub = WebhookStub::start();
    stub.set_default(503);
    let cfg = config(&env, &stub, "");
    env.sample("tokens/gone.vpptoken", "Gone Org", -1);
    let d = Daemon::start_with(&env, &cfg, &[]);
    stub.wait_for_posts(3, 30);
    env.config("");
    d.signal(libc::SIGHUP);
    let status = d.wait_for("the webhook rows parked", 30, |s| {
        s["outbox"].as_array().is_some_and(|o| {
            o.iter()
                .filter(|r| r["channel"] == "webhook")
                .all(|r| r["state"] == "parked")
        })
    });
    let rows: Vec<_> = status["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["channel"] == "webhook")
        .collect();
    assert_eq!(rows.len(), 3, "{status:#}");
    for r in rows {
        assert_eq!(r["last_error"], "webhook removed");
        assert!(r["subject"].as_str().unwrap().contains("Gone Org"), "{r}");
        assert!(r["to"][0].as_str().unwrap().ends_with("-hook"));
    }
}

#[test]
fn a_429_with_retry_after_is_tried_again_no_sooner_and_delivered_once() {
    let env = Env::new();
    let stub = WebhookStub::start();
    // Without Retry-After the retry base below would try again at once.
    stub.answer_next_retry_after(429, "2");
    private(
        &env,
        "json.url",
        &format!("{}/json/{PATH_SECRET}\n", stub.base),
    );
    let cfg = env.config(
        "webhooks = [\"json-hook\"]\n[[webhook]]\nname = \"json-hook\"\nurl_file = \"json.url\"\n",
    );
    env.sample("tokens/gone.vpptoken", "Gone Org", -1);
    let d = Daemon::start_with(&env, &cfg, &fast(false));
    let failed_row = |s: &serde_json::Value| {
        s["outbox"].as_array().and_then(|o| {
            o.iter()
                .find(|r| r["channel"] == "webhook" && r["last_error"].is_string())
                .cloned()
        })
    };
    let waiting = d.wait_for("the 429 recorded or the post delivered", 30, |s| {
        failed_row(s).is_some() || stub.posts().len() >= 2
    });
    d.wait_for("the post delivered", 30, |s| {
        s["outbox"].as_array().is_some_and(|o| o.is_empty())
    });
    drop(d);
    let posts = stub.posts();
    let [refused, accepted] = &posts[..] else {
        panic!("one refused post and one delivered: {posts:#?}")
    };
    assert_eq!(
        refused.header("idempotency-key"),
        accepted.header("idempotency-key")
    );
    assert_eq!(refused.body, accepted.body);
    assert!(
        accepted.at >= refused.at + std::time::Duration::from_secs(2),
        "tried again {:?} after the 429 that asked for 2 s",
        accepted.at - refused.at
    );
    let row = failed_row(&waiting).expect("status shows the wait");
    let error = row["last_error"].as_str().unwrap();
    assert!(
        error.contains("HTTP 429") && error.contains("asks to wait 2 s"),
        "{row}"
    );
}
