//! The Apple probe against the local stand-in: each answer Apple gives
//! becomes the right outcome, only `GET /client/config` is ever sent, and
//! the bearer never leaks.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use tokenwatch::probe::{validate_base_url, AppleConfig, Probe, ProbeOutcome, ProbeSettings};
use tokenwatch::secret::Secret;

use crate::apple_stub::{AppleStub, Reply};

const REVOKED_MSG: &str = "The server has revoked the sToken.";

fn probe_for(stub: &AppleStub, timeout: Duration) -> Probe {
    let mut settings = ProbeSettings::new(validate_base_url(&stub.base_url).unwrap());
    settings.timeout = timeout;
    settings.max_requests_per_sec = 100;
    Probe::new(&settings).unwrap()
}

/// Scripts one reply for a fresh bearer, verifies once, checks the request.
async fn verify_once(reply: Reply) -> ProbeOutcome {
    let stub = AppleStub::start().await;
    let bearer = "eyJleHBEYXRlIjoiMjAzMC0xMS0wOFQyMjozMzoyMiswMDAwIn0=";
    stub.respond(bearer, reply);
    let outcome = probe_for(&stub, Duration::from_secs(10))
        .verify(&Secret::new(bearer))
        .await;
    assert_eq!(stub.requests_for(bearer), 1);
    stub.assert_only_get_config();
    outcome
}

#[tokio::test]
async fn success_with_all_fields() {
    let got = verify_once(Reply::valid(
        "Acme Berlin",
        "2049025000431439",
        "2030-11-08T15:33:22-0700",
    ))
    .await;
    assert_eq!(
        got,
        ProbeOutcome::Valid(AppleConfig {
            location_name: Some("Acme Berlin".into()),
            uid: Some("2049025000431439".into()),
            mdm_name: Some("Example MDM".into()),
            apple_expires_at: Some(Utc.with_ymd_and_hms(2030, 11, 8, 22, 33, 22).unwrap()),
            country: Some("DE".into()),
        })
    );
    assert_eq!(got.verdict(), "valid");
}

#[tokio::test]
async fn success_without_token_expiration_date() {
    let got = verify_once(Reply::config(serde_json::json!({
        "locationName": "Acme Hamburg",
        "uId": "42",
        "mdmInfo": { "id": "x", "name": "Fleet" },
    })))
    .await;
    let ProbeOutcome::Valid(config) = got else {
        panic!("expected a valid token, got {got:?}")
    };
    assert_eq!(config.apple_expires_at, None);
    assert_eq!(config.uid.as_deref(), Some("42"));
    assert_eq!(config.mdm_name.as_deref(), Some("Fleet"));
}

#[tokio::test]
async fn revoked_with_http_200() {
    let got = verify_once(Reply::error(200, 9625, REVOKED_MSG)).await;
    assert_eq!(got, ProbeOutcome::Revoked { error_number: 9625 });
    assert_eq!(got.verdict(), "revoked");
}

#[tokio::test]
async fn revoked_with_http_401() {
    let got = verify_once(Reply::error(401, 9625, REVOKED_MSG)).await;
    assert_eq!(got, ProbeOutcome::Revoked { error_number: 9625 });
}

#[tokio::test]
async fn expired_9621() {
    let got = verify_once(Reply::error(200, 9621, "The token has expired.")).await;
    assert_eq!(got, ProbeOutcome::Expired { error_number: 9621 });
    assert_eq!(got.verdict(), "expired");
}

#[tokio::test]
async fn invalid_9622() {
    let got = verify_once(Reply::error(401, 9622, "Invalid authentication token")).await;
    assert_eq!(got, ProbeOutcome::Invalid { error_number: 9622 });
    assert_eq!(got.verdict(), "invalid");
}

#[tokio::test]
async fn login_required_9601_is_invalid() {
    let got = verify_once(Reply::error(401, 9601, "Login required.")).await;
    assert_eq!(got, ProbeOutcome::Invalid { error_number: 9601 });
}

#[tokio::test]
async fn too_many_requests_9646_is_rate_limited() {
    let reply =
        Reply::error(200, 9646, "There are too many recent requests.").header("Retry-After", "30");
    let got = verify_once(reply).await;
    assert_eq!(
        got,
        ProbeOutcome::RateLimited {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    assert_eq!(got.verdict(), "error");
}

#[tokio::test]
async fn http_503_with_retry_after_seconds() {
    let got = verify_once(Reply::status(503).header("Retry-After", "120")).await;
    assert_eq!(
        got,
        ProbeOutcome::RateLimited {
            retry_after: Some(Duration::from_secs(120))
        }
    );
}

#[tokio::test]
async fn http_503_with_retry_after_http_date() {
    let at = Utc::now() + chrono::Duration::minutes(10);
    let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let got = verify_once(Reply::status(503).header("Retry-After", &date)).await;
    let wait = got
        .retry_after()
        .unwrap_or_else(|| panic!("expected a wait, got {got:?}"));
    // The date is 600 s ahead when made; a few seconds pass before the
    // probe reads it, and the date has whole seconds.
    assert!(wait <= Duration::from_secs(600), "{wait:?}");
    assert!(wait >= Duration::from_secs(500), "{wait:?}");
}

#[tokio::test]
async fn http_500_with_html_body_is_transient() {
    let html = "<!DOCTYPE html><html><head><title>500</title></head>\
                <body><h1>Internal Server Error</h1></body></html>";
    let got = verify_once(Reply::raw(500, "text/html", html)).await;
    assert!(
        matches!(&got, ProbeOutcome::Transient { reason } if reason.contains("500")),
        "{got:?}"
    );
    assert!(got.is_host_failure() && got.is_retryable());
}

#[tokio::test]
async fn malformed_header_9722_is_other() {
    let got = verify_once(Reply::error(401, 9722, "Invalid Authorization header")).await;
    assert_eq!(
        got,
        ProbeOutcome::Other {
            error_number: Some(9722),
            message: "Invalid Authorization header".into(),
            http_status: 401,
        }
    );
}

#[tokio::test]
async fn a_slow_answer_times_out_as_transient() {
    let stub = AppleStub::start().await;
    stub.respond(
        "slow-token-text",
        Reply::valid("L", "1", "2030-11-08T22:33:22+0000").delay(Duration::from_secs(30)),
    );
    let got = probe_for(&stub, Duration::from_millis(300))
        .verify(&Secret::new("slow-token-text"))
        .await;
    assert!(
        matches!(&got, ProbeOutcome::Transient { reason } if reason.contains("within")),
        "{got:?}"
    );
    assert!(got.is_host_failure());
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut settings =
        ProbeSettings::new(validate_base_url(&format!("http://{addr}/mdm/v2")).unwrap());
    settings.timeout = Duration::from_secs(5);
    let got = Probe::new(&settings)
        .unwrap()
        .verify(&Secret::new("token-text-1234"))
        .await;
    assert!(matches!(got, ProbeOutcome::Unreachable { .. }), "{got:?}");
    assert_eq!(got.verdict(), "error");
}

#[tokio::test]
async fn only_get_client_config_is_sent_with_the_bearer() {
    let stub = AppleStub::start().await;
    let probe = probe_for(&stub, Duration::from_secs(10));
    let clone = probe.clone();
    stub.respond("token-one-text", Reply::error(200, 9625, REVOKED_MSG));
    probe.verify(&Secret::new("token-one-text")).await;
    clone.verify(&Secret::new("token-two-text")).await;

    let requests = stub.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for (r, bearer) in requests.iter().zip(["token-one-text", "token-two-text"]) {
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/mdm/v2/client/config");
        assert_eq!(r.query, None);
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {bearer}").as_str())
        );
    }
    stub.assert_only_get_config();
}

#[tokio::test]
async fn the_stand_in_catches_any_other_request() {
    let stub = AppleStub::start().await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let config = format!("{}/client/config", stub.base_url);
    let post = client.post(&config).bearer_auth("t").send().await.unwrap();
    assert_eq!(post.status().as_u16(), 405);
    let legacy = format!("http://{}/VPPClientConfigSrv", stub.addr);
    client.get(&legacy).send().await.unwrap();

    let violations = stub.take_violations();
    assert_eq!(violations.len(), 2, "{violations:#?}");
    assert!(violations[0].starts_with("POST "), "{violations:#?}");
    assert!(
        violations[1].contains("VPPClientConfigSrv"),
        "{violations:#?}"
    );
}

#[test]
fn http_base_url_to_a_non_loopback_host_is_refused() {
    let err = validate_base_url("http://vpp.itunes.apple.com/mdm/v2").unwrap_err();
    assert!(err.contains("loopback"), "{err}");
    assert!(validate_base_url("http://192.168.1.10:8080/mdm/v2").is_err());
    assert!(validate_base_url("http://127.0.0.1:8080/mdm/v2").is_ok());
    assert!(validate_base_url("https://vpp.itunes.apple.com/mdm/v2").is_ok());
}

/// A `MakeWriter` collecting all log output of a test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn the_bearer_never_reaches_outcomes_debug_or_logs() {
    const CANARY: &str = "CANARY-vpp-bearer-9b1f27c4";
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Thread-local: the current-thread test runtime runs reqwest's tasks on
    // this thread too, so their events land here as well.
    let _guard = tracing::subscriber::set_default(subscriber);

    let stub = AppleStub::start().await;
    let probe = probe_for(&stub, Duration::from_millis(500));
    // Answers that echo the bearer, as a careless proxy or server might.
    let echo_html = format!("<html><body>token {CANARY} failed</body></html>");
    let replies = vec![
        Reply::raw(500, "text/html", echo_html.clone()),
        Reply::raw(400, "text/html", echo_html),
        Reply::error(401, 9722, &format!("bad header: Bearer {CANARY}")),
        Reply::error(200, 9603, &format!("Internal error for {CANARY}")),
        Reply::config(serde_json::json!({ "locationName": CANARY, "uId": CANARY })),
        Reply::error(401, 9625, REVOKED_MSG),
        Reply::status(503).delay(Duration::from_secs(30)),
    ];
    let n = replies.len();
    stub.respond_sequence(CANARY, replies);

    let bearer = Secret::new(CANARY);
    let mut seen = Vec::new();
    for _ in 0..n {
        let outcome = probe.verify(&bearer).await;
        seen.push(format!("{outcome}\n{outcome:?}"));
    }
    seen.push(format!("{probe:?}"));
    // And an unsendable bearer, refused locally.
    let local = probe.verify(&Secret::new(format!("{CANARY}\n"))).await;
    seen.push(format!("{local}\n{local:?}"));

    assert_eq!(stub.requests_for(CANARY), n, "every reply was asked for");
    for text in &seen {
        assert!(!text.contains(CANARY), "bearer leaked: {text}");
    }
    let log = logs.text();
    assert!(
        log.contains("Apple probe answered"),
        "nothing was logged: {log}"
    );
    assert!(!log.contains(CANARY), "bearer leaked into the log: {log}");
}

/// Certificate verification is always on: a server whose certificate no
/// trusted CA signed is refused during the handshake, before any request
/// (and so before the bearer) is sent.
#[tokio::test]
async fn a_bad_certificate_is_refused_and_the_bearer_never_sent() {
    let (acceptor, _ca_pem) = crate::smtp_stub::tls_acceptor();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes_done = Arc::new(Mutex::new(0usize));
    let done = handshakes_done.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if acceptor.accept(stream).await.is_ok() {
                *done.lock().unwrap() += 1;
            }
        }
    });
    let url = validate_base_url(&format!("https://127.0.0.1:{port}/mdm/v2")).unwrap();
    let mut settings = ProbeSettings::new(url);
    settings.timeout = Duration::from_secs(5);
    let probe = Probe::new(&settings).unwrap();
    let outcome = probe
        .verify(&Secret::new("CANARY-bad-cert-bearer-1234"))
        .await;
    match &outcome {
        ProbeOutcome::Unreachable { reason } => {
            assert!(reason.to_lowercase().contains("certificate"), "{reason}");
            assert!(!reason.contains("CANARY"));
        }
        other => panic!("a bad certificate must be refused, got {other:?}"),
    }
    assert_eq!(
        *handshakes_done.lock().unwrap(),
        0,
        "the TLS handshake must not complete"
    );
}
