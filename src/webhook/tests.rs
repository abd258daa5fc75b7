use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use chrono::Utc;

use super::*;
use crate::channel::FailureClass;

/// A path secret as long as a real Slack or Teams one.
const PATH_CANARY: &str = "T0CANARY01/B0CANARY02/CanaryPathSecret4f9a1c7e2b6d8a0f3e5c7b9d";
const KEY_CANARY: &str = "canary-signing-key-7d1e3a9c5b2f8e4d6a0c1b3f5e7d9a2c";

#[derive(Clone, Default)]
struct Seen {
    posts: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

/// A receiver on 127.0.0.1 that answers every POST with `status` (and a
/// body that echoes the request path, as careless receivers do).
async fn receiver(status: u16, extra: &'static [(&'static str, &'static str)]) -> (String, Seen) {
    let seen = Seen::default();
    let kept = seen.clone();
    let app = Router::new().fallback(post(
        move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                kept.posts.lock().unwrap().push((headers, body));
                let mut response = (
                    AxumStatus::from_u16(status).unwrap(),
                    format!("no route for {}", uri.path()),
                )
                    .into_response();
                for (k, v) in extra {
                    response
                        .headers_mut()
                        .insert(*k, axum::http::HeaderValue::from_static(v));
                }
                response
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hooks/{PATH_CANARY}"), seen)
}

fn write_private(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    p
}

fn settings(url: &str, key: Option<&Path>) -> WebhookSettings {
    WebhookSettings {
        name: "ops-chat".into(),
        format: Format::Json,
        url: UrlSource::Inline(Secret::new(url)),
        secret_file: key.map(Path::to_path_buf),
        timeout: Duration::from_secs(5),
    }
}

fn delivery<'a>(recipients: &'a [String], payload: &'a str) -> Delivery<'a> {
    Delivery {
        id: 1,
        message_id: "<alert-1.abc@tokenwatch>",
        recipients,
        payload,
        date: Utc::now(),
    }
}

fn hook_name() -> Vec<String> {
    vec!["ops-chat".to_owned()]
}

#[tokio::test]
async fn a_post_carries_the_body_its_idempotency_key_and_a_signature_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_private(dir.path(), "key", &format!("{KEY_CANARY}\n"));
    let (url, seen) = receiver(200, &[]).await;
    let channel = WebhookChannel::from_settings(&[settings(&url, Some(&key))]).unwrap();
    let body = r#"{"version":1,"id":"alert-1.abc@tokenwatch"}"#;
    let answer = channel.deliver(delivery(&hook_name(), body)).await.unwrap();
    assert!(
        answer.starts_with("HTTP 200 from webhook \"ops-chat\" (http://127.0.0.1:"),
        "{answer}"
    );
    assert!(!answer.contains(PATH_CANARY));

    let posts = seen.posts.lock().unwrap();
    let (headers, got) = &posts[0];
    assert_eq!(got, body);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["idempotency-key"], "alert-1.abc@tokenwatch");
    let signature = headers["x-tokenwatch-signature"].to_str().unwrap();
    let expected = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, KEY_CANARY.as_bytes()),
        body.as_bytes(),
    );
    assert_eq!(
        signature,
        format!("sha256={}", hex::encode(expected.as_ref()))
    );
}

#[tokio::test]
async fn answers_are_classed_as_the_outbox_needs_them_and_never_show_the_secret_path() {
    for (status, extra, class) in [
        (500, &[][..], FailureClass::Transient),
        (503, &[][..], FailureClass::Transient),
        (408, &[][..], FailureClass::Transient),
        (429, &[("retry-after", "30")][..], FailureClass::Transient),
        (404, &[][..], FailureClass::Permanent),
        (400, &[][..], FailureClass::Permanent),
        (
            302,
            &[("location", "http://127.0.0.1:1/elsewhere")][..],
            FailureClass::Permanent,
        ),
    ] {
        let (url, seen) = receiver(status, extra).await;
        let channel = WebhookChannel::from_settings(&[settings(&url, None)]).unwrap();
        let err = channel
            .deliver(delivery(&hook_name(), "{}"))
            .await
            .unwrap_err();
        assert_eq!(err.class, class, "{status}: {err}");
        assert!(err.message.contains(&format!("HTTP {status}")), "{err}");
        assert!(!err.message.contains(PATH_CANARY), "{status}: {err}");
        assert!(!err.message.contains("CanaryPath"), "{status}: {err}");
        assert_eq!(
            seen.posts.lock().unwrap().len(),
            1,
            "{status}: one POST, no redirect followed"
        );
        if status == 429 {
            assert!(err.message.contains("asks to wait 30 s"), "{err}");
            assert_eq!(err.retry_after, Some(Duration::from_secs(30)));
        } else {
            assert_eq!(err.retry_after, None, "{status}");
        }
    }
}

#[tokio::test]
async fn a_refused_connection_is_transient_and_shows_scheme_and_host_only() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/hooks/{PATH_CANARY}?token={PATH_CANARY}");
    let channel = WebhookChannel::from_settings(&[settings(&url, None)]).unwrap();
    let err = channel
        .deliver(delivery(&hook_name(), "{}"))
        .await
        .unwrap_err();
    assert_eq!(err.class, FailureClass::Transient, "{err}");
    assert!(
        err.message.contains(&format!("http://127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.message.contains("CanaryPath"), "{err}");
    assert!(!format!("{channel:?}").contains("CanaryPath"));
}

#[tokio::test]
async fn a_row_for_a_removed_webhook_is_permanent() {
    let (url, seen) = receiver(200, &[]).await;
    let channel = WebhookChannel::from_settings(&[settings(&url, None)]).unwrap();
    let err = channel
        .deliver(delivery(&["gone".to_owned()], "{}"))
        .await
        .unwrap_err();
    assert_eq!(err.class, FailureClass::Permanent);
    assert!(err.message.contains("webhook removed"), "{err}");
    assert!(seen.posts.lock().unwrap().is_empty());
}

#[test]
fn only_https_or_loopback_http_urls_are_taken_and_errors_hide_the_path() {
    assert!(Endpoint::parse("https://hooks.slack.com/services/T0/B0/x").is_ok());
    assert!(Endpoint::parse("http://127.0.0.1:8080/x").is_ok());
    assert!(Endpoint::parse("http://[::1]/x").is_ok());
    assert!(Endpoint::parse("http://localhost/x").is_ok());
    let err = Endpoint::parse(&format!("http://hooks.example.com/{PATH_CANARY}")).unwrap_err();
    assert!(err.contains("http://hooks.example.com uses http"), "{err}");
    assert!(!err.contains("Canary"), "{err}");
    let err = Endpoint::parse(&format!("ftp://example.com/{PATH_CANARY}")).unwrap_err();
    assert!(!err.contains("Canary"), "{err}");
    let err = Endpoint::parse(&format!("https://user:{PATH_CANARY}@example.com/")).unwrap_err();
    assert!(!err.contains("Canary"), "{err}");
    let shown = Endpoint::parse(&format!("https://example.com:8443/{PATH_CANARY}?q=1")).unwrap();
    assert_eq!(shown.shown(), "https://example.com:8443");
    assert!(!format!("{shown:?}").contains("Canary"));
}

#[test]
fn url_and_key_files_readable_by_everyone_are_refused_naming_webhook_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("url");
    std::fs::write(&url_file, format!("https://example.com/{PATH_CANARY}\n")).unwrap();
    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut s = settings("", None);
    s.url = UrlSource::File(url_file.clone());
    let err = Hook::from_settings(&s).unwrap_err();
    assert!(err.contains("[[webhook]] \"ops-chat\""), "{err}");
    assert!(err.contains(&url_file.display().to_string()), "{err}");
    assert!(err.contains("0644"), "{err}");
    assert!(!err.contains("Canary"), "{err}");

    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let hook = Hook::from_settings(&s).unwrap();
    assert_eq!(hook.endpoint().shown(), "https://example.com");
    let key = dir.path().join("key");
    std::fs::write(&key, KEY_CANARY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o604)).unwrap();
    s.secret_file = Some(key);
    let err = Hook::from_settings(&s).unwrap_err();
    assert!(err.contains("secret_file"), "{err}");
    assert!(!err.contains("canary-signing"), "{err}");
}

#[test]
fn an_alert_is_drafted_once_per_webhook_with_its_own_id_and_the_json_body() {
    let channel = WebhookChannel::from_settings(&[]).unwrap();
    let token = crate::render::testing::subject();
    let alert = crate::render::testing::alert(crate::alerts::AlertKind::Expired { reminder: 0 });
    let input = crate::render::Input::Alert {
        alert: &alert,
        tokens: std::slice::from_ref(&token),
        folders: &[],
    };
    let member = |name: &str| Member {
        channel: CHANNEL,
        address: name.into(),
        key: name.into(),
    };
    let (ops, dev) = (member("ops"), member("dev"));
    let drafts = channel.render(&input, &[&ops, &dev], &crate::render::testing::ctx());
    assert_eq!(drafts.len(), 2);
    assert_eq!(drafts[0].recipients, ["ops"]);
    assert_eq!(drafts[1].recipients, ["dev"]);
    assert_ne!(drafts[0].message_id, drafts[1].message_id);
    let body: serde_json::Value = serde_json::from_str(&drafts[0].payload).unwrap();
    assert_eq!(body["event"], "expired");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["id"], message_key(&drafts[0].message_id));
    assert_eq!(body["token"]["path"], token.path.as_str());
    assert!(
        drafts[0].title.ends_with("has EXPIRED"),
        "{}",
        drafts[0].title
    );
    assert_eq!(
        body["summary"].as_str(),
        Some(drafts[0].title.as_str()),
        "the title is the summary: the subject without [tokenwatch]"
    );
    assert!(!drafts[0].title.starts_with("[tokenwatch]"));
}

#[test]
fn severity_is_critical_within_critical_days_and_info_for_a_recovery() {
    let token = crate::render::testing::subject(); // 14 days left
    let severity_of = |kind, critical_days| {
        let channel = WebhookChannel::from_settings(&[])
            .unwrap()
            .with_critical_days(critical_days);
        let alert = crate::render::testing::alert(kind);
        let input = crate::render::Input::Alert {
            alert: &alert,
            tokens: std::slice::from_ref(&token),
            folders: &[],
        };
        let m = Member {
            channel: CHANNEL,
            address: "ops".into(),
            key: "webhook:ops".into(),
        };
        let drafts = channel.render(&input, &[&m], &crate::render::testing::ctx());
        let body: serde_json::Value = serde_json::from_str(&drafts[0].payload).unwrap();
        body["severity"].as_str().unwrap().to_owned()
    };
    use crate::alerts::AlertKind;
    assert_eq!(
        severity_of(
            AlertKind::Expiring {
                days: 14,
                first: false
            },
            7
        ),
        "warning"
    );
    assert_eq!(
        severity_of(
            AlertKind::Expiring {
                days: 14,
                first: false
            },
            14
        ),
        "critical"
    );
    assert_eq!(severity_of(AlertKind::Superseded, 7), "warning");
    assert_eq!(severity_of(AlertKind::FolderRecovered, 7), "info");
    assert_eq!(
        severity_of(AlertKind::Unreadable { error: "x".into() }, 7),
        "critical"
    );
}
