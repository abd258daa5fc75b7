//! Webhooks: outbox rows of channel `"webhook"` posted to an HTTPS
//! endpoint, one POST per message, with the same retries, parking and
//! exactly-once bookkeeping as mail.
//!
//! A webhook's URL often carries its credential in the path (Slack, Teams,
//! Mattermost) and its signing key is one: both live in [`Secret`]s, are
//! read from their files when the channel is built, and only the scheme and
//! host ([`Endpoint::shown`]) ever reach a log line, an error, the state or
//! a mail. Requests never follow redirects: a redirect would carry the
//! secret path to another host.

pub mod body;
pub mod settings;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use crate::alerts::Member;
use crate::channel::{Channel, Delivery, DeliveryError, Draft};
use crate::probe::{error_chain, is_loopback};
use crate::render;
use crate::secret::{read_secret_file, Redactor, Secret};
pub use settings::{Format, UrlSource, WebhookSettings};

/// The name stored in an outbox row's `channel` column; the row's one
/// recipient is the webhook's configured name.
pub const CHANNEL: &str = "webhook";

/// Header carrying the HMAC-SHA256 of the body, as GitHub's webhooks do.
pub const SIGNATURE_HEADER: &str = "X-Tokenwatch-Signature";

/// Largest part of a receiver's answer kept with the row.
const MAX_ANSWER_CHARS: usize = 200;

/// Where a webhook posts. The URL is a secret; [`Endpoint::shown`] is all
/// anything else sees of it.
#[derive(Clone)]
pub struct Endpoint {
    url: Url,
    shown: String,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Endpoint").field(&self.shown).finish()
    }
}

impl Endpoint {
    /// Parses a webhook URL: `https://`, or `http://` to a loopback address
    /// (for tests and local relays). Errors show the scheme and host at
    /// most, never the path or query.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let url = Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
        let shown = shown(&url);
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{shown}: a user name or password in the URL is not supported"
            ));
        }
        if url.host().is_none() {
            return Err("the URL has no host".to_owned());
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(format!(
                    "{shown} uses http to a host that is not a loopback address; \
                     the URL and every alert would travel unencrypted: use https"
                ))
            }
            other => return Err(format!("scheme {other:?} is not supported; use https")),
        }
        Ok(Endpoint { url, shown })
    }

    /// Scheme, host and port: what logs, errors and `status` show.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

fn shown(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}", url.scheme()),
        (Some(h), None) => format!("{}://{h}", url.scheme()),
        _ => format!("{}://", url.scheme()),
    }
}

/// One configured webhook, ready to post.
pub struct Hook {
    pub name: String,
    pub format: Format,
    endpoint: Endpoint,
    key: Option<(ring::hmac::Key, Secret)>,
    timeout: Duration,
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hook")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("endpoint", &self.endpoint)
            .field("signed", &self.key.is_some())
            .finish()
    }
}

impl Hook {
    /// Reads the URL and key files the settings name.
    pub fn from_settings(s: &WebhookSettings) -> Result<Hook, String> {
        let named = |e: String| format!("[[webhook]] {:?}: {e}", s.name);
        let url = s.url.read().map_err(named)?;
        let endpoint = Endpoint::parse(url.expose()).map_err(named)?;
        let key = match &s.secret_file {
            Some(path) => {
                let secret = read_secret_file(path, "key")
                    .map_err(|e| named(format!("secret_file {}: {e}", path.display())))?;
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
                Some((key, secret))
            }
            None => None,
        };
        Ok(Hook {
            name: s.name.clone(),
            format: s.format,
            endpoint,
            key,
            timeout: s.timeout,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `sha256=<hex>` of the body, with a signing key.
    pub fn signature(&self, body: &[u8]) -> Option<String> {
        let (key, _) = self.key.as_ref()?;
        let tag = ring::hmac::sign(key, body);
        Some(format!("sha256={}", hex::encode(tag.as_ref())))
    }

    /// Everything of this hook that must never be shown.
    fn redactor(&self) -> Redactor {
        let mut secrets: Vec<String> = Vec::new();
        let path = self.endpoint.url.path().to_owned();
        let query = self.endpoint.url.query().unwrap_or_default().to_owned();
        for s in [path, query] {
            if s.len() > 1 {
                secrets.push(s);
            }
        }
        if let Some((_, secret)) = &self.key {
            secrets.push(secret.expose().to_owned());
        }
        Redactor::new(secrets.iter().map(String::as_str))
    }

    /// One POST of `body` with `id` as its idempotency key. `Ok` is a
    /// line for the sent row: the status and the host.
    pub async fn post(
        &self,
        client: &reqwest::Client,
        id: &str,
        body: &str,
    ) -> Result<String, DeliveryError> {
        let mut request = client
            .post(self.endpoint.url.clone())
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", id)
            .body(body.to_owned());
        if let Some(sig) = self.signature(body.as_bytes()) {
            let mut value = HeaderValue::from_str(&sig)
                .map_err(|_| DeliveryError::permanent("cannot build the signature header"))?;
            value.set_sensitive(true);
            request = request.header(SIGNATURE_HEADER, value);
        }
        let who = format!("webhook {:?} ({})", self.name, self.endpoint.shown());
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Err(self.request_error(&who, e)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        let answer = self.answer(&text);
        classify(&who, status, retry_after.as_deref(), &answer)
    }

    /// The first words of an answer, with anything secret masked.
    fn answer(&self, text: &str) -> String {
        let one_line = crate::secret::collapse_whitespace(text);
        let short: String = one_line.chars().take(MAX_ANSWER_CHARS).collect();
        self.redactor().redact(&short).into_owned()
    }

    fn request_error(&self, who: &str, e: reqwest::Error) -> DeliveryError {
        let timed_out = e.is_timeout();
        // reqwest puts the URL in its errors: drop it, and mask whatever
        // of it a lower layer may still quote.
        let cause = error_chain(&e.without_url());
        let cause = self.redactor().redact(&cause).into_owned();
        if timed_out {
            DeliveryError::transient(format!(
                "{who}: no answer within {} s",
                self.timeout.as_secs()
            ))
        } else {
            DeliveryError::transient(format!("{who}: {cause}"))
        }
    }
}

/// 2xx is delivered; 408, 429 and 5xx may pass; every other answer,
/// redirects included (never followed), will not.
fn classify(
    who: &str,
    status: StatusCode,
    retry_after: Option<&str>,
    answer: &str,
) -> Result<String, DeliveryError> {
    let code = status.as_u16();
    let said = if answer.is_empty() {
        String::new()
    } else {
        format!(": {answer}")
    };
    if status.is_success() {
        return Ok(format!("HTTP {code} from {who}"));
    }
    let asked = retry_after.and_then(|h| crate::probe::parse_retry_after(h, chrono::Utc::now()));
    let wait = asked
        .map(|d| format!(" (asks to wait {} s)", d.as_secs()))
        .unwrap_or_default();
    let message = format!("{who} answered HTTP {code}{wait}{said}");
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        Err(DeliveryError::transient(message).wait_at_least(asked))
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Err(DeliveryError::transient(message))
    } else if status.is_redirection() {
        Err(DeliveryError::permanent(format!(
            "{message}; redirects are not followed (they would carry the URL elsewhere): configure the final URL"
        )))
    } else {
        Err(DeliveryError::permanent(message))
    }
}

/// The webhook channel: every configured webhook, by name.
pub struct WebhookChannel {
    hooks: BTreeMap<String, Hook>,
    /// None without webhooks: building it loads the system's trust store
    /// and the TLS stack's code, 1-2 MiB the daemon would otherwise keep.
    client: Option<reqwest::Client>,
    /// `[check] critical_days`: an expiry this close is critical.
    critical_days: i64,
}

impl fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("hooks", &self.hooks.values().collect::<Vec<_>>())
            .finish()
    }
}

impl WebhookChannel {
    /// Reads every webhook's files and builds one HTTP client for all.
    pub fn from_settings(all: &[WebhookSettings]) -> Result<WebhookChannel, String> {
        let hooks = all
            .iter()
            .map(|s| Hook::from_settings(s).map(|h| (h.name.clone(), h)))
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let client = if hooks.is_empty() {
            None
        } else {
            Some(client()?)
        };
        Ok(WebhookChannel {
            hooks,
            client,
            // Only expired, invalidated and unreadable credentials are
            // critical until the daemon says how close is too close.
            critical_days: 0,
        })
    }

    /// Marks expiries within `days` as critical.
    pub fn with_critical_days(mut self, days: i64) -> WebhookChannel {
        self.critical_days = days;
        self
    }

    pub fn hook(&self, name: &str) -> Option<&Hook> {
        self.hooks.get(name)
    }
}

/// One client for every webhook: no redirects, the system trust store.
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("tokenwatch/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| {
            format!(
                "cannot set up the HTTP client for webhooks: {}",
                error_chain(&e)
            )
        })
}

/// How urgent a message is for a receiver that colours it: critical for a
/// credential that no longer works or cannot be read and for one within
/// `critical_days` of its expiry, info for a recovery, warning otherwise.
fn severity(input: &render::Input<'_>, critical_days: i64) -> body::Severity {
    use crate::alerts::{Alert, AlertKind};
    let of = |alert: &Alert, tokens: &[crate::assess::Assessment]| match alert.kind {
        AlertKind::Expired { .. }
        | AlertKind::Invalidated { .. }
        | AlertKind::Unreadable { .. } => body::Severity::Critical,
        AlertKind::FolderRecovered => body::Severity::Info,
        _ => {
            let days = alert
                .subject
                .and_then(|i| tokens.get(i))
                .and_then(|t| t.days_left);
            match days {
                Some(d) if d <= critical_days => body::Severity::Critical,
                _ => body::Severity::Warning,
            }
        }
    };
    match *input {
        render::Input::Alert { alert, tokens, .. } => of(alert, tokens),
        // A summary is as urgent as the most urgent alert it stands for.
        render::Input::Summary { alerts, tokens, .. } => alerts
            .iter()
            .map(|a| of(a, tokens))
            .max()
            .unwrap_or(body::Severity::Warning),
        render::Input::Digest { .. } => body::Severity::Warning,
    }
}

/// The idempotency key of a message: its Message-ID without brackets,
/// the same on every attempt.
pub fn message_key(message_id: &str) -> &str {
    message_id.trim_start_matches('<').trim_end_matches('>')
}

impl Channel for WebhookChannel {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    /// One post per webhook (a member's address is the webhook's name), in
    /// that webhook's format. A webhook no longer configured still gets its
    /// row, which then parks like any message to a removed receiver.
    fn render(
        &self,
        input: &render::Input<'_>,
        to: &[&Member],
        ctx: &render::Context<'_>,
    ) -> Vec<Draft> {
        let words = render::words(input, ctx);
        let keys = input.keys();
        to.iter()
            .map(|m| {
                let recipients = vec![m.address.clone()];
                let message_id = crate::channel::message_id(CHANNEL, &keys, &recipients);
                let format = self
                    .hooks
                    .get(&m.address)
                    .map(|h| h.format)
                    .unwrap_or_default();
                let message = body::Message {
                    id: message_key(&message_id),
                    event: words.event,
                    severity: severity(input, self.critical_days),
                    summary: &words.summary,
                    token: words.token.and_then(|t| serde_json::to_value(t).ok()),
                    folder: words.folder,
                    sent_at: ctx.now,
                    facts: words.facts.clone(),
                    advice: words.advice.iter().map(|a| a.to_string()).collect(),
                };
                Draft {
                    payload: body::render(format, &message),
                    message_id,
                    recipients,
                    title: words.summary.clone(),
                }
            })
            .collect()
    }

    fn deliver<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Result<String, DeliveryError>> {
        Box::pin(async move {
            let [name] = d.recipients else {
                return Err(DeliveryError::permanent(
                    "a webhook message names exactly one webhook",
                ));
            };
            let Some(hook) = self.hooks.get(name) else {
                return Err(DeliveryError::permanent(format!(
                    "webhook {name:?} is not configured (webhook removed)"
                )));
            };
            let Some(client) = &self.client else {
                return Err(DeliveryError::permanent("no HTTP client for webhooks"));
            };
            hook.post(client, message_key(d.message_id), d.payload)
                .await
        })
    }
}

#[cfg(test)]
mod tests;
