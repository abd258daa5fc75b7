//! The pure half of the probe: one HTTP answer from Apple into a
//! [`ProbeOutcome`]. Apple reports errors with `errorNumber` in the body,
//! sometimes with HTTP 200 and sometimes with 401, so the number is read
//! first and the HTTP status only decides when there is no number we know.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::evaluate::Verdict;
use crate::secret::Redactor;

/// Apple asks clients not to retry before `Retry-After`; a far-off date
/// (or a hostile header) must not park a token's checks for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Error text from a body is shown to people; a whole HTML page is not.
const MAX_MESSAGE_CHARS: usize = 200;

/// What Apple says about a valid token. Every field is optional: Apple
/// leaves out what it does not know (`tokenExpirationDate` appears only
/// close to expiry in its docs).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AppleConfig {
    pub location_name: Option<String>,
    /// Same for every token of one location: two files with one `uid` are
    /// old and new copies of the same token.
    pub uid: Option<String>,
    /// The MDM currently using the token (`mdmInfo.name`).
    pub mdm_name: Option<String>,
    /// `tokenExpirationDate`; None when absent or not a date.
    pub apple_expires_at: Option<DateTime<Utc>>,
    /// `countryISO2ACode`.
    pub country: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProbeOutcome {
    Valid(AppleConfig),
    /// 9625: the token was revoked (password change, or in the portal).
    Revoked {
        error_number: i64,
    },
    /// 9621.
    Expired {
        error_number: i64,
    },
    /// 9622 or 9601: Apple does not accept it as a token.
    Invalid {
        error_number: i64,
    },
    /// 9646, HTTP 429 or 503. `retry_after` is capped at one hour.
    RateLimited {
        retry_after: Option<Duration>,
    },
    /// Apple was reached but did not serve the request: 5xx (the body may
    /// be an HTML page), 9603, no answer within the timeout, an answer cut
    /// off. Retry with backoff.
    Transient {
        reason: String,
    },
    /// No HTTP exchange happened: DNS, refused or timed-out connection,
    /// TLS, proxy. Counts towards "Apple cannot be reached from this host".
    Unreachable {
        reason: String,
    },
    /// Anything else, logged with Apple's number and message. 9722 means
    /// tokenwatch sent a malformed header (a bug). `http_status` is 0 when
    /// the request was refused locally and never sent.
    Other {
        error_number: Option<i64>,
        message: String,
        http_status: u16,
    },
}

impl ProbeOutcome {
    /// The `verdict` stored and shown in `apple.verdict`.
    pub fn verdict(&self) -> Verdict {
        match self {
            ProbeOutcome::Valid(_) => Verdict::Valid,
            ProbeOutcome::Revoked { .. } => Verdict::Revoked,
            ProbeOutcome::Expired { .. } => Verdict::Expired,
            ProbeOutcome::Invalid { .. } => Verdict::Invalid,
            ProbeOutcome::RateLimited { .. }
            | ProbeOutcome::Transient { .. }
            | ProbeOutcome::Unreachable { .. }
            | ProbeOutcome::Other { .. } => Verdict::Error,
        }
    }

    /// Whether the same request may well succeed later: rate limits and
    /// transient or connection failures. Everything else is Apple's answer
    /// about this token.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProbeOutcome::RateLimited { .. }
                | ProbeOutcome::Transient { .. }
                | ProbeOutcome::Unreachable { .. }
        )
    }

    /// Whether this failure says something about Apple or the network
    /// rather than about the token: connection, TLS, timeouts, 5xx, 9603.
    /// When every request for a day is one of these, "cannot reach Apple"
    /// goes out once for the host.
    pub fn is_host_failure(&self) -> bool {
        matches!(
            self,
            ProbeOutcome::Transient { .. } | ProbeOutcome::Unreachable { .. }
        )
    }

    /// How long Apple asked us to wait, when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProbeOutcome::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Masks every part of the secrets in `redactor` that the texts of
    /// this outcome show. Apple has no reason to echo the bearer, but a
    /// proxy's error page or a future error message might; the outcome goes
    /// to logs, the state and mail, so it is scrubbed whatever the source.
    pub(crate) fn redact(self, redactor: &Redactor) -> ProbeOutcome {
        let scrub = |s: String| match redactor.redact(&s) {
            std::borrow::Cow::Borrowed(_) => s,
            std::borrow::Cow::Owned(clean) => clean,
        };
        let scrub_opt = |s: Option<String>| s.map(scrub);
        match self {
            ProbeOutcome::Valid(c) => ProbeOutcome::Valid(AppleConfig {
                location_name: scrub_opt(c.location_name),
                uid: scrub_opt(c.uid),
                mdm_name: scrub_opt(c.mdm_name),
                apple_expires_at: c.apple_expires_at,
                country: scrub_opt(c.country),
            }),
            ProbeOutcome::Transient { reason } => ProbeOutcome::Transient {
                reason: scrub(reason),
            },
            ProbeOutcome::Unreachable { reason } => ProbeOutcome::Unreachable {
                reason: scrub(reason),
            },
            ProbeOutcome::Other {
                error_number,
                message,
                http_status,
            } => ProbeOutcome::Other {
                error_number,
                message: scrub(message),
                http_status,
            },
            other => other,
        }
    }
}

impl fmt::Display for ProbeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeOutcome::Valid(c) => {
                f.write_str("valid")?;
                if let Some(l) = &c.location_name {
                    write!(f, ", location {l:?}")?;
                }
                if let Some(m) = &c.mdm_name {
                    write!(f, ", used by MDM {m:?}")?;
                }
                if let Some(e) = &c.apple_expires_at {
                    write!(f, ", Apple says it expires {}", e.to_rfc3339())?;
                }
                Ok(())
            }
            ProbeOutcome::Revoked { error_number } => {
                write!(f, "revoked by Apple (errorNumber {error_number})")
            }
            ProbeOutcome::Expired { error_number } => {
                write!(f, "expired according to Apple (errorNumber {error_number})")
            }
            ProbeOutcome::Invalid { error_number } => write!(
                f,
                "not accepted by Apple as a valid token (errorNumber {error_number})"
            ),
            ProbeOutcome::RateLimited { retry_after: None } => f.write_str("rate limited by Apple"),
            ProbeOutcome::RateLimited {
                retry_after: Some(d),
            } => write!(f, "rate limited by Apple, retry after {}s", d.as_secs()),
            ProbeOutcome::Transient { reason } => {
                write!(f, "temporary failure asking Apple: {reason}")
            }
            ProbeOutcome::Unreachable { reason } => write!(f, "cannot reach Apple: {reason}"),
            ProbeOutcome::Other {
                error_number,
                message,
                http_status,
            } => {
                if *http_status == 0 {
                    write!(f, "not sent to Apple: {message}")
                } else {
                    write!(f, "unexpected answer from Apple (HTTP {http_status}")?;
                    if let Some(n) = error_number {
                        write!(f, ", errorNumber {n}")?;
                    }
                    if *error_number == Some(9722) {
                        f.write_str(", tokenwatch sent a malformed Authorization header")?;
                    }
                    write!(f, "): {message}")
                }
            }
        }
    }
}

/// Classifies one answer from `GET /client/config`. Pure: `now` is only
/// used to turn a `Retry-After` HTTP date into a wait. Text taken from the
/// body is masked with `redactor` before it is shortened for display: the
/// secret is longer than the excerpt, so shortening first would leave most
/// of an echoed secret unrecognisable as a whole and in the message.
pub fn classify(
    http_status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
    redactor: &Redactor,
) -> ProbeOutcome {
    // Collapsing whitespace in the excerpt can join two harmless pieces
    // into a longer run of the secret: the result is masked once more.
    answer(http_status, retry_after, body, now, redactor).redact(redactor)
}

fn answer(
    http_status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
    redactor: &Redactor,
) -> ProbeOutcome {
    let shown = |s: &str| excerpt(&redactor.redact(s));
    let object = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    let error_number = object
        .as_ref()
        .and_then(|m| m.get("errorNumber"))
        .and_then(as_i64);
    let error_message = object
        .as_ref()
        .and_then(|m| m.get("errorMessage"))
        .and_then(Value::as_str);

    match error_number {
        Some(n @ 9625) => return ProbeOutcome::Revoked { error_number: n },
        Some(n @ 9621) => return ProbeOutcome::Expired { error_number: n },
        Some(n @ (9622 | 9601)) => return ProbeOutcome::Invalid { error_number: n },
        Some(9646) => {
            return ProbeOutcome::RateLimited {
                retry_after: retry_after.and_then(|h| parse_retry_after(h, now)),
            }
        }
        Some(n @ 9603) => {
            return ProbeOutcome::Transient {
                reason: format!(
                    "Apple internal error (errorNumber {n}): {}",
                    error_message.map_or_else(|| "no message".into(), shown)
                ),
            }
        }
        // An unknown number still lets a 503 or 5xx mean "later".
        _ => {}
    }

    match http_status {
        429 | 503 => ProbeOutcome::RateLimited {
            retry_after: retry_after.and_then(|h| parse_retry_after(h, now)),
        },
        500..=599 => ProbeOutcome::Transient {
            reason: format!("HTTP {}", status_text(http_status)),
        },
        200..=299 if error_number.is_none() && object.is_some() => {
            ProbeOutcome::Valid(apple_config(object.as_ref().unwrap_or(&Map::new())))
        }
        _ => ProbeOutcome::Other {
            error_number,
            message: match (error_message, object.is_some()) {
                (Some(m), _) => shown(m),
                (None, true) => "no errorMessage in the answer".into(),
                (None, false) if body.iter().all(u8::is_ascii_whitespace) => "empty body".into(),
                (None, false) => format!(
                    "body is not JSON: {}",
                    shown(&String::from_utf8_lossy(body))
                ),
            },
            http_status,
        },
    }
}

fn apple_config(m: &Map<String, Value>) -> AppleConfig {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let mdm = m.get("mdmInfo").and_then(Value::as_object);
    AppleConfig {
        location_name: text(m.get("locationName")),
        uid: text(m.get("uId")),
        mdm_name: text(mdm.and_then(|i| i.get("name"))),
        apple_expires_at: m
            .get("tokenExpirationDate")
            .and_then(Value::as_str)
            .and_then(parse_apple_date),
        country: text(m.get("countryISO2ACode")),
    }
}

/// Apple writes numbers; a string of digits is accepted too, so a quoted
/// number cannot turn a revocation into "other".
fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Apple's date format, as in `expDate`: `2030-11-08T22:33:22+0000`,
/// `-0700`, `Z`; leniently also `+00:00` and fractional seconds.
pub fn parse_apple_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// `Retry-After` is either delta-seconds or an HTTP date (RFC 9110: the
/// IMF-fixdate, and the obsolete RFC 850 and asctime forms). A date in the
/// past means "now"; anything unreadable means "no advice".
pub(crate) fn parse_retry_after(header: &str, now: DateTime<Utc>) -> Option<Duration> {
    let h = header.trim();
    let wait = if !h.is_empty() && h.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for u64 is still "a very long time".
        Duration::from_secs(h.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = DateTime::parse_from_rfc2822(h)
            .map(|d| d.with_timezone(&Utc))
            .or_else(|_| {
                NaiveDateTime::parse_from_str(h, "%A, %d-%b-%y %H:%M:%S GMT").map(|n| n.and_utc())
            })
            .or_else(|_| {
                NaiveDateTime::parse_from_str(h, "%a %b %e %H:%M:%S %Y").map(|n| n.and_utc())
            })
            .ok()?;
        (at - now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// One line of at most `MAX_MESSAGE_CHARS` printable characters.
fn excerpt(s: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    for word in s.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
            count += 1;
        }
        for c in word.chars() {
            if count >= MAX_MESSAGE_CHARS {
                out.push('…');
                return out;
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()
    }

    fn err_body(n: i64, msg: &str) -> Vec<u8> {
        serde_json::json!({ "errorNumber": n, "errorMessage": msg })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn success_with_all_fields() {
        let body = br#"{
            "countryISO2ACode": "DE",
            "defaultPlatform": "volumestore",
            "locationName": "Acme Berlin",
            "uId": "2049025000431439",
            "websiteURL": "https://business.apple.com",
            "tokenExpirationDate": "2030-11-08T22:33:22+0000",
            "mdmInfo": {"id": "mdm-1", "name": "Fleet", "metadata": "x"}
        }"#;
        let got = classify(200, None, body, now(), &Redactor::default());
        assert_eq!(
            got,
            ProbeOutcome::Valid(AppleConfig {
                location_name: Some("Acme Berlin".into()),
                uid: Some("2049025000431439".into()),
                mdm_name: Some("Fleet".into()),
                apple_expires_at: Some(Utc.with_ymd_and_hms(2030, 11, 8, 22, 33, 22).unwrap()),
                country: Some("DE".into()),
            })
        );
        assert_eq!(got.verdict(), "valid");
    }

    #[test]
    fn success_without_optional_fields() {
        let got = classify(
            200,
            None,
            br#"{"locationName":"X"}"#,
            now(),
            &Redactor::default(),
        );
        let ProbeOutcome::Valid(c) = got else {
            panic!("expected valid, got {got:?}")
        };
        assert_eq!(c.location_name.as_deref(), Some("X"));
        assert_eq!(c.apple_expires_at, None);
        assert_eq!(c.uid, None);
        assert_eq!(c.mdm_name, None);
    }

    #[test]
    fn apple_dates_in_every_known_shape() {
        let utc = Utc.with_ymd_and_hms(2030, 11, 8, 22, 33, 22).unwrap();
        for s in [
            "2030-11-08T22:33:22+0000",
            "2030-11-08T15:33:22-0700",
            "2030-11-08T22:33:22Z",
            "2030-11-08T22:33:22+00:00",
            "2030-11-09T04:03:22+0530",
            " 2030-11-08T22:33:22+0000\n",
        ] {
            assert_eq!(parse_apple_date(s), Some(utc), "{s}");
        }
        assert_eq!(
            parse_apple_date("2030-11-08T22:33:22.250+0000"),
            Some(utc + chrono::Duration::milliseconds(250))
        );
        for bad in ["", "2030-02-30T00:00:00+0000", "tomorrow", "2030-11-08"] {
            assert_eq!(parse_apple_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_unreadable_expiry_date_is_none_not_an_error() {
        let got = classify(
            200,
            None,
            br#"{"tokenExpirationDate":"soon","uId":"1"}"#,
            now(),
            &Redactor::default(),
        );
        let ProbeOutcome::Valid(c) = got else {
            panic!("expected valid, got {got:?}")
        };
        assert_eq!(c.apple_expires_at, None);
        assert_eq!(c.uid.as_deref(), Some("1"));
    }

    #[test]
    fn error_number_wins_over_http_status() {
        for status in [200, 401, 403, 500] {
            let body = err_body(9625, "The server has revoked the sToken.");
            assert_eq!(
                classify(status, None, &body, now(), &Redactor::default()),
                ProbeOutcome::Revoked { error_number: 9625 },
                "HTTP {status}"
            );
        }
    }

    #[test]
    fn each_known_error_number() {
        let cases = [
            (
                9621,
                ProbeOutcome::Expired { error_number: 9621 },
                "expired",
            ),
            (
                9622,
                ProbeOutcome::Invalid { error_number: 9622 },
                "invalid",
            ),
            (
                9601,
                ProbeOutcome::Invalid { error_number: 9601 },
                "invalid",
            ),
            (
                9646,
                ProbeOutcome::RateLimited { retry_after: None },
                "error",
            ),
        ];
        for (n, want, verdict) in cases {
            let got = classify(200, None, &err_body(n, "m"), now(), &Redactor::default());
            assert_eq!(got, want, "errorNumber {n}");
            assert_eq!(got.verdict(), verdict);
        }
        let got = classify(
            200,
            None,
            &err_body(9603, "Internal error."),
            now(),
            &Redactor::default(),
        );
        assert!(
            matches!(&got, ProbeOutcome::Transient { reason } if reason.contains("9603")),
            "{got:?}"
        );
        assert!(got.is_host_failure());
    }

    #[test]
    fn a_quoted_error_number_is_still_read() {
        let body = br#"{"errorNumber":"9625","errorMessage":"revoked"}"#;
        assert_eq!(
            classify(200, None, body, now(), &Redactor::default()),
            ProbeOutcome::Revoked { error_number: 9625 }
        );
    }

    #[test]
    fn malformed_header_error_is_other_and_says_it_is_our_bug() {
        let got = classify(
            401,
            None,
            &err_body(9722, "Invalid authorization"),
            now(),
            &Redactor::default(),
        );
        assert_eq!(
            got,
            ProbeOutcome::Other {
                error_number: Some(9722),
                message: "Invalid authorization".into(),
                http_status: 401
            }
        );
        assert!(got.to_string().contains("malformed Authorization header"));
        assert_eq!(got.verdict(), "error");
        assert!(!got.is_retryable());
    }

    #[test]
    fn rate_limits_read_retry_after_in_seconds_or_as_a_date() {
        let got = classify(503, Some("120"), b"", now(), &Redactor::default());
        assert_eq!(got.retry_after(), Some(Duration::from_secs(120)));

        let got = classify(
            503,
            Some("Fri, 01 May 2026 12:05:00 GMT"),
            b"",
            now(),
            &Redactor::default(),
        );
        assert_eq!(got.retry_after(), Some(Duration::from_secs(300)));
        let got = classify(
            429,
            Some("Friday, 01-May-26 12:01:00 GMT"),
            b"",
            now(),
            &Redactor::default(),
        );
        assert_eq!(got.retry_after(), Some(Duration::from_secs(60)));
        let got = classify(
            503,
            Some("Fri May  1 12:00:30 2026"),
            b"",
            now(),
            &Redactor::default(),
        );
        assert_eq!(got.retry_after(), Some(Duration::from_secs(30)));

        let got = classify(
            200,
            Some("7"),
            &err_body(9646, "Too many"),
            now(),
            &Redactor::default(),
        );
        assert_eq!(
            got,
            ProbeOutcome::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn retry_after_is_capped_and_never_negative() {
        let got = classify(
            503,
            Some("999999999999999999999999"),
            b"",
            now(),
            &Redactor::default(),
        );
        assert_eq!(got.retry_after(), Some(MAX_RETRY_AFTER));
        let got = classify(
            503,
            Some("Sat, 01 May 2027 12:00:00 GMT"),
            b"",
            now(),
            &Redactor::default(),
        );
        assert_eq!(got.retry_after(), Some(MAX_RETRY_AFTER));
        let got = classify(
            503,
            Some("Thu, 01 Jan 2026 00:00:00 GMT"),
            b"",
            now(),
            &Redactor::default(),
        );
        assert_eq!(got.retry_after(), Some(Duration::ZERO));
        let got = classify(503, Some("whenever"), b"", now(), &Redactor::default());
        assert_eq!(got, ProbeOutcome::RateLimited { retry_after: None });
    }

    #[test]
    fn server_errors_with_html_bodies_are_transient() {
        let html = b"<html><body><h1>500 Internal Server Error</h1></body></html>";
        for status in [500, 502, 504] {
            let got = classify(status, None, html, now(), &Redactor::default());
            assert!(
                matches!(&got, ProbeOutcome::Transient { reason } if reason.contains(&status.to_string())),
                "{got:?}"
            );
            assert!(got.is_retryable() && got.is_host_failure());
        }
    }

    #[test]
    fn anything_else_is_other_with_a_short_message() {
        let got = classify(
            404,
            None,
            b"<html>\n\n  Not   Found</html>",
            now(),
            &Redactor::default(),
        );
        assert_eq!(
            got,
            ProbeOutcome::Other {
                error_number: None,
                message: "body is not JSON: <html> Not Found</html>".into(),
                http_status: 404
            }
        );
        let got = classify(200, None, b"", now(), &Redactor::default());
        assert!(
            matches!(
                got,
                ProbeOutcome::Other {
                    http_status: 200,
                    ..
                }
            ),
            "{got:?}"
        );
        let got = classify(200, None, b"[1,2]", now(), &Redactor::default());
        assert!(matches!(got, ProbeOutcome::Other { .. }), "{got:?}");
        let got = classify(
            200,
            None,
            &err_body(9999, "new thing"),
            now(),
            &Redactor::default(),
        );
        assert_eq!(
            got,
            ProbeOutcome::Other {
                error_number: Some(9999),
                message: "new thing".into(),
                http_status: 200
            }
        );
        let long = "x".repeat(5000);
        let ProbeOutcome::Other { message, .. } =
            classify(400, None, long.as_bytes(), now(), &Redactor::default())
        else {
            panic!("expected other")
        };
        assert!(
            message.chars().count() <= MAX_MESSAGE_CHARS + 30,
            "{}",
            message.len()
        );
    }

    #[test]
    fn an_unknown_error_number_with_503_is_still_a_rate_limit() {
        let got = classify(
            503,
            Some("5"),
            &err_body(9999, "busy"),
            now(),
            &Redactor::default(),
        );
        assert_eq!(
            got,
            ProbeOutcome::RateLimited {
                retry_after: Some(Duration::from_secs(5))
            }
        );
    }

    #[test]
    fn redact_scrubs_the_secret_from_every_text() {
        let canary = "CANARY-bearer-5d1e";
        let outcomes = [
            ProbeOutcome::Transient {
                reason: format!("echo {canary}"),
            },
            ProbeOutcome::Unreachable {
                reason: format!("{canary}!"),
            },
            ProbeOutcome::Other {
                error_number: None,
                message: canary.into(),
                http_status: 400,
            },
            ProbeOutcome::Valid(AppleConfig {
                location_name: Some(canary.into()),
                uid: Some(canary.into()),
                mdm_name: Some(canary.into()),
                apple_expires_at: None,
                country: Some(canary.into()),
            }),
        ];
        let redactor = Redactor::new([canary]);
        for o in outcomes {
            let r = o.redact(&redactor);
            assert!(!format!("{r:?}").contains(canary), "{r:?}");
            assert!(!r.to_string().contains(canary), "{r}");
        }
    }

    /// A bearer of real length: Base64 of JSON whose inner token is 1,200
    /// characters of Base64 with `\/` escapes, as Apple writes them.
    fn real_length_bearer() -> (crate::secret::Secret, String, String) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let raw: Vec<u8> = (0..900u32).map(|i| (i * 7919 % 251) as u8).collect();
        let inner = b64.encode(raw);
        let json = format!(
            r#"{{"token":"{}","expDate":"2030-11-08T15:33:22-0700","orgName":"Acme Corporation Berlin"}}"#,
            inner.replace('/', "\\/")
        );
        (crate::secret::Secret::new(b64.encode(&json)), json, inner)
    }

    /// Any run of `LEAK_RUN` characters of one of `secrets` in `text`.
    fn leaked_run(text: &str, secrets: &[&str]) -> Option<String> {
        let n = crate::secret::LEAK_RUN;
        secrets.iter().find_map(|s| {
            s.as_bytes()
                .windows(n)
                .find(|w| text.as_bytes().windows(n).any(|t| t == *w))
                .map(|w| String::from_utf8_lossy(w).into_owned())
        })
    }

    #[test]
    fn an_echoed_real_length_bearer_is_masked_before_the_message_is_cut() {
        let (bearer, json, inner) = real_length_bearer();
        assert!(bearer.expose().len() > 1024);
        let forms = crate::token::secret_forms(&bearer);
        let redactor = Redactor::new(forms.iter().map(|f| f.expose()));
        // The JSON's expDate and orgName are shown on purpose, so the JSON
        // is secret only up to its expDate value.
        let json_secret = &json[..json.find("\"2030").unwrap_or(json.len())];
        let secrets = [bearer.expose(), json_secret, inner.as_str()];
        let echo = format!("Authorization: Bearer {}", bearer.expose());
        let bodies = [
            (400, format!("<html><pre>{echo}\r\nHost: x</pre></html>").into_bytes()),
            (401, err_body(9722, &echo)),
            (200, err_body(9603, &format!("failed for {inner}"))),
            (500, err_body(9603, &format!("failed for {json}"))),
            (400, serde_json::json!({ "errorMessage": json }).to_string().into_bytes()),
            (
                200,
                serde_json::json!({ "locationName": inner, "uId": json, "mdmInfo": { "name": echo } })
                    .to_string()
                    .into_bytes(),
            ),
            (400, format!("echo: {}", serde_json::to_string(&json).unwrap()).into_bytes()),
        ];
        for (status, body) in bodies {
            let got = classify(status, None, &body, now(), &redactor);
            let shown = format!("{got}\n{got:?}");
            assert_eq!(leaked_run(&shown, &secrets), None, "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
    }

    /// Apple's location is often the organisation's name, which is in the
    /// token's JSON but not secret: it must still be shown.
    #[test]
    fn a_location_named_like_the_organisation_is_not_masked() {
        let (bearer, _, _) = real_length_bearer();
        let forms = crate::token::secret_forms(&bearer);
        let redactor = Redactor::new(forms.iter().map(|f| f.expose()));
        let body = serde_json::json!({ "locationName": "Acme Corporation Berlin" }).to_string();
        let got = classify(200, None, body.as_bytes(), now(), &redactor);
        let ProbeOutcome::Valid(c) = got else {
            panic!("expected valid, got {got:?}")
        };
        assert_eq!(c.location_name.as_deref(), Some("Acme Corporation Berlin"));
    }
}
