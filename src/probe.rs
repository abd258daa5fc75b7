//! The read-only Apple check of one token: `GET {base_url}/client/config`
//! with the token as bearer, classified into a [`ProbeOutcome`].
//!
//! Read-only is the whole point: a POST to `/client/config` rewrites
//! `mdmInfo` and takes the token away from the organisation's real MDM, so
//! [`Probe`] has exactly one request it can make. The legacy
//! `VPPClientConfigSrv` endpoint is never used.
//!
//! [`classify`] is pure (status, `Retry-After`, body, now) and holds the
//! rules; [`Probe::verify`] is the thin HTTP edge around it.

mod classify;

pub(crate) use classify::parse_retry_after;
pub use classify::{classify, AppleConfig, ProbeOutcome};

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER};
use reqwest::{header, Url};
use tokio::time::Instant;

use crate::secret::{Redactor, Secret};

/// Apple's production endpoint for the Apps and Books API, version 2.
pub const DEFAULT_BASE_URL: &str = "https://vpp.itunes.apple.com/mdm/v2";
/// Default for `[apple] timeout_secs`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default for `[apple] max_requests_per_sec`. Apple allows 15 per second
/// per token; a monitor has no reason to come near that.
pub const DEFAULT_MAX_REQUESTS_PER_SEC: u32 = 5;

/// Apple's answers are a few hundred bytes; an error page from a proxy can
/// be bigger. Reading is capped so a misbehaving server cannot make the
/// daemon allocate without bound; a truncated body classifies by status.
const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Already checked by [`validate_base_url`].
    pub base_url: Url,
    /// For the whole exchange: connect, TLS, request and reading the answer.
    pub timeout: Duration,
    /// An extra trusted CA (PEM), for inspecting proxies. Added to the
    /// system trust store, never replacing it.
    pub ca_file: Option<PathBuf>,
    /// Limit over all requests of one [`Probe`] and its clones.
    pub max_requests_per_sec: u32,
}

impl ProbeSettings {
    /// Settings with the defaults of the `[apple]` section.
    pub fn new(base_url: Url) -> Self {
        ProbeSettings {
            base_url,
            timeout: DEFAULT_TIMEOUT,
            ca_file: None,
            max_requests_per_sec: DEFAULT_MAX_REQUESTS_PER_SEC,
        }
    }
}

/// Checks a configured `base_url`. Plain `http` would send the token in
/// clear text, so it is allowed only to a loopback address, where the test
/// stand-in for Apple runs.
pub fn validate_base_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("base_url {s:?} is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "base_url {url} must not contain a user name or password"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "base_url {url} must not have a query or fragment; {{base_url}}/client/config is requested"
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(format!(
                "base_url {url} uses http to a host that is not a loopback address; \
                 the token would travel unencrypted: use https \
                 (http is only allowed to 127.0.0.0/8, ::1 or localhost, for tests)"
            ))
        }
        other => return Err(format!("base_url {url} has scheme {other:?}; use https")),
    }
    if url.host().is_none() {
        return Err(format!("base_url {url} has no host"));
    }
    Ok(url)
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    // host_str keeps IPv6 brackets ("[::1]"); reqwest does not re-export
    // url::Host, so the address is parsed from the text.
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot read CA file {}: {source}", path.display())]
    CaFileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("CA file {} is not usable: {reason}", path.display())]
    CaFileInvalid { path: PathBuf, reason: String },
    #[error("max_requests_per_sec must be at least 1")]
    ZeroRate,
    #[error("cannot set up the HTTP client for Apple: {0}")]
    Client(String),
}

/// Asks Apple about tokens. Cheap to clone; clones share the HTTP
/// connection pool and the rate limit.
#[derive(Clone)]
pub struct Probe {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    config_url: Url,
    timeout: Duration,
    limiter: RateLimiter,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("config_url", &self.inner.config_url.as_str())
            .field("timeout", &self.inner.timeout)
            .field("min_interval", &self.inner.limiter.interval)
            .finish_non_exhaustive()
    }
}

impl Probe {
    pub fn new(settings: &ProbeSettings) -> Result<Probe, ProbeError> {
        let rate = NonZeroU32::new(settings.max_requests_per_sec).ok_or(ProbeError::ZeroRate)?;
        let config_url = config_url(&settings.base_url)?;

        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("tokenwatch/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect is not part of Apple's API; following one would
            // send the token somewhere unplanned. It classifies as "other".
            .redirect(reqwest::redirect::Policy::none());
        if is_loopback(&config_url) {
            // A proxy cannot reach our loopback; HTTPS_PROXY stays in force
            // for every real host.
            builder = builder.no_proxy();
        }
        // The roots are the system trust store (reqwest's
        // rustls-tls-native-roots: /etc/ssl/certs, or SSL_CERT_FILE and
        // SSL_CERT_DIR), so a distro CA update or a corporate CA applies
        // without a rebuild. Plain http (loopback only) needs none, and
        // then the store is not read at all.
        if config_url.scheme() == "http" {
            builder = builder.tls_built_in_root_certs(false);
        }
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path).map_err(|source| ProbeError::CaFileRead {
                path: path.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ProbeError::CaFileInvalid {
                    path: path.clone(),
                    reason: error_chain(&e),
                }
            })?;
            if certs.is_empty() {
                return Err(ProbeError::CaFileInvalid {
                    path: path.clone(),
                    reason: "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
                });
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| match &settings.ca_file {
            // The CA certificates are only parsed into the root store here.
            Some(path) => ProbeError::CaFileInvalid {
                path: path.clone(),
                reason: error_chain(&e),
            },
            None => ProbeError::Client(error_chain(&e)),
        })?;

        Ok(Probe {
            inner: Arc::new(Inner {
                client,
                config_url,
                timeout: settings.timeout,
                limiter: RateLimiter::new(rate),
            }),
        })
    }

    /// The one URL this probe ever requests.
    pub fn config_url(&self) -> &Url {
        &self.inner.config_url
    }

    /// One `GET {base_url}/client/config` with the token as bearer. Waits
    /// for its turn under the rate limit first. Never fails: every problem
    /// is an outcome, and no outcome or log line contains the bearer.
    pub async fn verify(&self, bearer: &Secret) -> ProbeOutcome {
        let forms = crate::token::secret_forms(bearer);
        let redactor = Redactor::new(forms.iter().map(Secret::expose));
        drop(forms);
        let outcome = self
            .verify_unredacted(bearer, &redactor)
            .await
            .redact(&redactor);
        tracing::debug!(
            url = %self.inner.config_url,
            verdict = outcome.verdict().as_str(),
            outcome = %outcome,
            "Apple probe answered"
        );
        outcome
    }

    async fn verify_unredacted(&self, bearer: &Secret, redactor: &Redactor) -> ProbeOutcome {
        let mut auth = match bearer_header(bearer) {
            Ok(v) => v,
            Err(message) => {
                return ProbeOutcome::Other {
                    error_number: None,
                    message,
                    http_status: 0,
                }
            }
        };
        auth.set_sensitive(true);

        self.inner.limiter.acquire().await;

        let sent = self
            .inner
            .client
            .get(self.inner.config_url.clone())
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json")
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return self.send_failure(&e),
        };

        let status = response.status().as_u16();
        let retry_after = header_str(response.headers(), RETRY_AFTER);
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_BODY_BYTES.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= MAX_BODY_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return ProbeOutcome::Transient {
                        reason: format!(
                            "HTTP {status} but the answer did not arrive within {}s",
                            self.inner.timeout.as_secs_f64()
                        ),
                    }
                }
                Err(e) => {
                    return ProbeOutcome::Transient {
                        reason: format!(
                            "HTTP {status} but reading the answer failed: {}",
                            error_chain(&e)
                        ),
                    }
                }
            }
        }
        classify(
            status,
            retry_after.as_deref(),
            &body,
            chrono::Utc::now(),
            redactor,
        )
    }

    fn send_failure(&self, e: &reqwest::Error) -> ProbeOutcome {
        let cause = error_chain(e);
        // is_connect covers DNS, refused or timed-out connections, TLS
        // handshakes and proxies: Apple was not reached at all.
        if e.is_connect() {
            ProbeOutcome::Unreachable {
                reason: format!(
                    "cannot connect to {}: {cause}",
                    host_of(&self.inner.config_url)
                ),
            }
        } else if e.is_timeout() {
            // Connected, but Apple did not answer in time: like a 5xx.
            ProbeOutcome::Transient {
                reason: format!(
                    "no answer from {} within {}s",
                    host_of(&self.inner.config_url),
                    self.inner.timeout.as_secs_f64()
                ),
            }
        } else {
            ProbeOutcome::Transient {
                reason: format!(
                    "request to {} failed: {cause}",
                    host_of(&self.inner.config_url)
                ),
            }
        }
    }
}

fn config_url(base: &Url) -> Result<Url, ProbeError> {
    // Url::join would drop the last path segment of a base without a
    // trailing slash (".../mdm/v2" + "client/config" -> ".../mdm/client/config").
    let joined = format!("{}/client/config", base.as_str().trim_end_matches('/'));
    Url::parse(&joined).map_err(|e| ProbeError::Client(format!("base_url {base}: {e}")))
}

fn bearer_header(bearer: &Secret) -> Result<HeaderValue, String> {
    let token = bearer.expose();
    if token.is_empty() {
        return Err("the token text is empty; nothing to send to Apple".into());
    }
    // Never echo the value: it is the secret.
    HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the token text is not printable ASCII and cannot be sent as a header".into())
}

fn header_str(headers: &header::HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

fn host_of(url: &Url) -> String {
    match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or("?")),
        None => url.host_str().unwrap_or("?").to_owned(),
    }
}

/// The error and its causes, "a: b: c", skipping causes the outer text
/// already repeats. reqwest's own text is generic ("error sending request");
/// the useful part (refused, unknown issuer) is deeper in the chain.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Spaces requests evenly: at most `rate` per second over all callers.
/// Each caller reserves the next free slot under a short lock and sleeps
/// until it, so there is no polling and the order is first come first
/// served.
#[derive(Debug)]
struct RateLimiter {
    interval: Duration,
    next_slot: Mutex<Instant>,
}

impl RateLimiter {
    fn new(rate: NonZeroU32) -> Self {
        RateLimiter {
            interval: Duration::from_secs(1) / rate.get(),
            next_slot: Mutex::new(Instant::now()),
        }
    }

    fn reserve(&self, now: Instant) -> Instant {
        // A poisoned lock only means another caller panicked between two
        // plain assignments; the instant inside is still valid.
        let mut next = self.next_slot.lock().unwrap_or_else(|p| p.into_inner());
        let slot = (*next).max(now);
        *next = slot + self.interval;
        slot
    }

    async fn acquire(&self) {
        let slot = self.reserve(Instant::now());
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_base_urls_are_accepted() {
        let url = validate_base_url(DEFAULT_BASE_URL).unwrap();
        assert_eq!(url.as_str(), DEFAULT_BASE_URL);
        assert!(validate_base_url("https://10.0.0.5:8443/mdm/v2").is_ok());
    }

    #[test]
    fn http_is_accepted_only_for_loopback_hosts() {
        for ok in [
            "http://127.0.0.1:8080/mdm/v2",
            "http://127.8.9.10/",
            "http://[::1]:9000",
            "http://localhost:1234/x",
            "http://LOCALHOST/",
        ] {
            assert!(validate_base_url(ok).is_ok(), "{ok} should be accepted");
        }
        for bad in [
            "http://vpp.itunes.apple.com/mdm/v2",
            "http://10.0.0.1/",
            "http://[::2]/",
            "http://localhost.example.com/",
            "http://128.0.0.1/",
        ] {
            let err = validate_base_url(bad).unwrap_err();
            assert!(err.contains("not a loopback"), "{bad}: {err}");
        }
    }

    #[test]
    fn other_schemes_and_garbage_are_refused_with_a_reason() {
        assert!(validate_base_url("ftp://127.0.0.1/")
            .unwrap_err()
            .contains("scheme"));
        assert!(validate_base_url("not a url")
            .unwrap_err()
            .contains("not a URL"));
        assert!(validate_base_url("https://u:p@example.com/")
            .unwrap_err()
            .contains("user name"));
        assert!(validate_base_url("https://example.com/?a=b")
            .unwrap_err()
            .contains("query"));
    }

    #[test]
    fn config_url_keeps_the_base_path() {
        for base in [
            "https://vpp.itunes.apple.com/mdm/v2",
            "https://vpp.itunes.apple.com/mdm/v2/",
        ] {
            let url = config_url(&Url::parse(base).unwrap()).unwrap();
            assert_eq!(
                url.as_str(),
                "https://vpp.itunes.apple.com/mdm/v2/client/config"
            );
        }
        let url = config_url(&Url::parse("http://127.0.0.1:5000").unwrap()).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:5000/client/config");
    }

    #[test]
    fn limiter_spaces_slots_by_the_interval() {
        let limiter = RateLimiter::new(NonZeroU32::new(4).unwrap());
        let t0 = Instant::now();
        let slots: Vec<Instant> = (0..5).map(|_| limiter.reserve(t0)).collect();
        for (i, slot) in slots.iter().enumerate() {
            assert_eq!(*slot, t0 + Duration::from_millis(250) * i as u32);
        }
        // After an idle period the next request goes at once, with no
        // burst credit saved up from the idle time.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(limiter.reserve(later), later);
        assert_eq!(limiter.reserve(later), later + Duration::from_millis(250));
    }

    #[test]
    fn zero_rate_is_refused() {
        let mut s = ProbeSettings::new(Url::parse(DEFAULT_BASE_URL).unwrap());
        s.max_requests_per_sec = 0;
        assert!(matches!(Probe::new(&s), Err(ProbeError::ZeroRate)));
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProbeSettings::new(Url::parse(DEFAULT_BASE_URL).unwrap());

        let missing = dir.path().join("missing-ca.pem");
        s.ca_file = Some(missing.clone());
        let err = Probe::new(&s).unwrap_err().to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");

        let junk = dir.path().join("junk-ca.pem");
        std::fs::write(&junk, "this is not a certificate\n").unwrap();
        s.ca_file = Some(junk.clone());
        let err = Probe::new(&s).unwrap_err().to_string();
        assert!(err.contains(&junk.display().to_string()), "{err}");
        assert!(err.contains("no PEM certificate"), "{err}");

        let bad_der = dir.path().join("bad-der-ca.pem");
        std::fs::write(
            &bad_der,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        s.ca_file = Some(bad_der.clone());
        let err = Probe::new(&s).unwrap_err().to_string();
        assert!(err.contains(&bad_der.display().to_string()), "{err}");
    }

    #[test]
    fn unsendable_bearers_are_refused_locally_without_echo() {
        assert!(bearer_header(&Secret::new("")).is_err());
        let err = bearer_header(&Secret::new("canary\nline")).unwrap_err();
        assert!(!err.contains("canary"));
        assert!(bearer_header(&Secret::new("eyJhYmMiOiIxIn0=")).is_ok());
    }
}
