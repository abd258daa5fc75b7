use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;

use super::server::{judge, Health, Server};
use super::*;

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

fn pass() -> PassFacts {
    PassFacts {
        credentials: vec![
            CredentialFacts {
                kind: "vpp",
                path: "/t/a.vpptoken".into(),
                org: "Acme \"Berlin\"".into(),
                account: "apps@acme.appleaccount.com".into(),
                fingerprint: "0123456789ab".into(),
                expires_at: Some(at(2027, 1, 15)),
                created_at: Some(at(2026, 1, 15)),
                status: "expiring",
                silenced: false,
            },
            CredentialFacts {
                kind: "vpp",
                path: "/t/closed.vpptoken".into(),
                org: String::new(),
                account: String::new(),
                fingerprint: "ba9876543210".into(),
                expires_at: Some(at(2027, 2, 1)),
                created_at: Some(at(2026, 2, 1)),
                status: "ok",
                silenced: true,
            },
        ],
        folders: vec![FolderFacts {
            path: "/t".into(),
            up: true,
            credentials: 2,
            unreadable_files: 1,
        }],
    }
}

#[test]
fn a_pass_becomes_one_series_per_credential_in_the_classic_text_format() {
    let m = Metrics::new();
    m.observe_pass(pass(), at(2026, 12, 1), Duration::from_millis(30));
    let text = m.encode();
    let series = format!(
        "tokenwatch_credential_expiry_timestamp_seconds{{account=\"apps@acme.appleaccount.com\",fingerprint=\"0123456789ab\",kind=\"vpp\",org=\"Acme \\\"Berlin\\\"\",path=\"/t/a.vpptoken\"}} {}",
        at(2027, 1, 15).timestamp()
    );
    assert!(text.contains(&series), "{series}\n{text}");
    assert!(text.contains("status=\"expiring\"} 1"), "{text}");
    assert_eq!(
        text.matches("tokenwatch_credential_status{").count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("tokenwatch_credential_silenced{account=\"\",fingerprint=\"ba9876543210\""),
        "{text}"
    );
    assert!(
        text.contains("tokenwatch_folder_up{path=\"/t\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("tokenwatch_unreadable_files{folder=\"/t\"} 1"),
        "{text}"
    );
    let last = format!(
        "tokenwatch_last_pass_timestamp_seconds {}",
        at(2026, 12, 1).timestamp()
    );
    assert!(text.contains(&last), "{text}");
    assert!(
        text.contains("tokenwatch_pass_duration_seconds_count 1"),
        "{text}"
    );
    assert!(text.contains("tokenwatch_build_info{version=\""), "{text}");
    assert!(
        text.contains("tokenwatch_config_reload_success 1"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "classic format, not OpenMetrics");

    // A credential gone leaves no stale series.
    let mut fewer = pass();
    fewer.credentials.truncate(1);
    m.observe_pass(fewer, at(2026, 12, 1), Duration::from_millis(30));
    assert!(!m.encode().contains("closed.vpptoken"));
}

#[test]
fn the_textfile_holds_only_the_credential_and_folder_families() {
    let text = textfile(pass());
    assert!(text.contains("tokenwatch_credential_status{"));
    assert!(text.contains("tokenwatch_folder_credentials{path=\"/t\"} 2"));
    assert!(!text.contains("tokenwatch_build_info"));
    assert!(!text.contains("tokenwatch_credential_silenced"));
}

#[test]
fn health_wants_a_recent_pass_and_a_writable_state() {
    let now = at(2026, 12, 1);
    let h = |last: Option<DateTime<Utc>>, problem: Option<&str>| Health {
        last_pass: last,
        max_age: Duration::from_secs(7200),
        state_problem: problem.map(str::to_owned),
    };
    assert_eq!(
        judge(&h(Some(now - chrono::Duration::minutes(90)), None), now).0,
        200
    );
    let (code, body) = judge(&h(Some(now - chrono::Duration::minutes(121)), None), now);
    assert_eq!(code, 503);
    assert!(body.contains("7260 s ago"), "{body}");
    assert_eq!(judge(&h(None, None), now).0, 503);
    let (code, body) = judge(&h(Some(now), Some("disk full")), now);
    assert_eq!(code, 503);
    assert!(body.contains("disk full"), "{body}");
}

#[tokio::test]
async fn the_endpoint_serves_metrics_and_health_over_http() {
    let m = Arc::new(Metrics::new());
    m.observe_pass(pass(), Utc::now(), Duration::from_millis(5));
    let server = Server::start(
        "127.0.0.1:0".parse().unwrap(),
        m,
        Arc::new(|| Health {
            last_pass: Some(Utc::now()),
            max_age: Duration::from_secs(7200),
            state_problem: None,
        }),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let r = client
        .get(format!("http://{}/metrics", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], CONTENT_TYPE);
    assert!(r.text().await.unwrap().contains("tokenwatch_folder_up"));
    let r = client
        .get(format!("http://{}/healthz", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop();
}
