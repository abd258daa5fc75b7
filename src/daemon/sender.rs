//! The outbox sender: a task that owns its own state connection and the
//! mailer, delivers due mails, and records each outcome. It takes orders
//! over a channel; it never decides what to send, only when to try again.
//!
//! Guarantee: a mail is in the outbox (written with its ledger rows in one
//! transaction) before the first attempt, and marked sent only after the
//! server accepted it, so a crash loses nothing; the only duplicate is a
//! mail accepted right before a crash, and it carries the same Message-ID.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use futures_util::StreamExt as _;
use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::mail::transport::{MailError, Mailer, OutgoingMail};
use crate::state::{OutboxMail, StateStore};

/// First retry after about this long, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF_SECS: f64 = 5.0;
const MAX_BACKOFF_SECS: f64 = 3600.0;
/// Permanent failures (5xx) get this many attempts, then are parked.
pub const PERMANENT_ATTEMPTS: u32 = 3;
/// Upper bound of one send, beyond the transport's own timeouts.
const SEND_LIMIT: StdDuration = StdDuration::from_secs(120);
/// Mails sent at once, each in its own SMTP session. Kept small: some relays
/// limit connections per client, and one refused for that is only a
/// transient failure, retried later.
const PARALLEL_SENDS: usize = 4;
/// `tokenwatch outbox retry` writes to the database from another process;
/// the sender looks at the outbox at least this often to notice.
const OUTBOX_POLL: StdDuration = StdDuration::from_secs(15);

pub enum SenderOrder {
    /// New mail is in the outbox, or ops asked for a retry.
    Wake,
    /// The config changed: deliver with this mailer from now on.
    UseMailer(Box<Mailer>),
}

/// Delay before attempt `attempts + 1`, after `attempts` failures:
/// 5 s, 10 s, 20 s, ... capped at an hour, each ±20 %.
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    let base = (FIRST_BACKOFF_SECS * 2f64.powi(attempts.saturating_sub(1).min(30) as i32))
        .min(MAX_BACKOFF_SECS);
    let factor = 1.0 + jitter.clamp(-0.2, 0.2);
    Duration::milliseconds((base * factor * 1000.0) as i64)
}

pub fn to_outgoing(m: &OutboxMail) -> Result<OutgoingMail, String> {
    let from = m
        .from
        .parse()
        .map_err(|e| format!("bad sender {:?}: {e}", m.from))?;
    let to =
        m.to.iter()
            .map(|t| t.parse().map_err(|e| format!("bad recipient {t:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
    Ok(OutgoingMail {
        message_id: m.message_id.clone(),
        from,
        to,
        subject: m.subject.clone(),
        text: m.text.clone(),
        html: m.html.clone(),
        date: m.date,
    })
}

pub struct Sender {
    pub store: StateStore,
    pub mailer: Mailer,
    pub orders: mpsc::Receiver<SenderOrder>,
    pub cancel: CancellationToken,
}

impl Sender {
    pub async fn run(mut self) {
        loop {
            if self.cancel.is_cancelled() {
                break;
            }
            if self.deliver_due().await > 0 {
                // A storm's summary mail is built in several MiB; give
                // them back (see `release_freed_memory`).
                super::pass::release_freed_memory();
            }
            let next =
                tokio::task::block_in_place(|| self.store.next_due_at()).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "cannot read the outbox; retrying in 30 s");
                    Some(Utc::now() + Duration::seconds(30))
                });
            let wait = next
                .map(|t| (t - Utc::now()).to_std().unwrap_or(StdDuration::ZERO))
                .unwrap_or(OUTBOX_POLL)
                .min(OUTBOX_POLL);
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                order = self.orders.recv() => match order {
                    Some(SenderOrder::Wake) => {}
                    Some(SenderOrder::UseMailer(m)) => self.mailer = *m,
                    None => break,
                },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Delivers (or fails) every due mail; returns how many it tried.
    async fn deliver_due(&mut self) -> usize {
        let mut tried = 0;
        loop {
            let now = Utc::now();
            let due = match tokio::task::block_in_place(|| self.store.due_mails(now, 50)) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    return tried;
                }
            };
            if due.is_empty() {
                return tried;
            }
            // A few sends at once: each SMTP session spends most of its time
            // waiting (lettre 0.11.23 leaves Nagle on, so every message
            // waits ~40 ms for the server's delayed ACK; a remote relay adds
            // round trips), and 1,000 alerts one by one took 45 s.
            // Outcomes are still recorded one at a time.
            let (mailer, store, cancel) = (&self.mailer, &mut self.store, &self.cancel);
            let mut sends = futures_util::stream::iter(due)
                .map(|mail| async move {
                    // Finish the mails in flight, start no new one after shutdown.
                    if cancel.is_cancelled() {
                        return None;
                    }
                    let result = send(mailer, &mail).await;
                    Some((mail, result))
                })
                .buffer_unordered(PARALLEL_SENDS);
            while let Some(done) = sends.next().await {
                match done {
                    Some((mail, result)) => {
                        tried += 1;
                        record(store, &mail, result);
                    }
                    None => return tried,
                }
            }
        }
    }
}

async fn send(mailer: &Mailer, mail: &OutboxMail) -> Result<String, Failure> {
    match to_outgoing(mail) {
        Ok(out) => match tokio::time::timeout(SEND_LIMIT, mailer.send(&out)).await {
            Ok(r) => r.map_err(Failure::Mail),
            Err(_) => Err(Failure::Other(
                "the send did not finish within 120 s".into(),
            )),
        },
        Err(e) => Err(Failure::Other(e)),
    }
}

fn record(store: &mut StateStore, mail: &OutboxMail, result: Result<String, Failure>) {
    let now = Utc::now();
    let outcome = match result {
        Ok(answer) => {
            tracing::info!(id = mail.id, message_id = %mail.message_id, subject = %mail.subject, answer = %answer, "mail delivered");
            tokio::task::block_in_place(|| store.mark_sent(mail.id, now, &answer))
        }
        Err(failure) => {
            let attempts = mail.attempts + 1;
            let (permanent, error) = match &failure {
                Failure::Mail(e) => (e.is_permanent(), e.to_string()),
                Failure::Other(e) => (false, e.clone()),
            };
            let next = if permanent && attempts >= PERMANENT_ATTEMPTS {
                None
            } else {
                let jitter = rand::rng().random_range(-0.2..=0.2);
                Some(now + backoff(attempts, jitter))
            };
            match next {
                Some(at) => {
                    tracing::warn!(id = mail.id, attempts, error = %error, next_try = %at, "mail not delivered; will retry")
                }
                None => {
                    tracing::error!(id = mail.id, attempts, error = %error, subject = %mail.subject, "mail parked after permanent failures; `tokenwatch outbox retry` sends it again")
                }
            }
            tokio::task::block_in_place(|| store.mark_failed(mail.id, now, &error, next))
        }
    };
    if let Err(e) = outcome {
        tracing::error!(id = mail.id, error = %e, "cannot record the delivery outcome");
    }
}

enum Failure {
    Mail(MailError),
    Other(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_5_seconds_and_caps_at_an_hour() {
        assert_eq!(backoff(1, 0.0), Duration::seconds(5));
        assert_eq!(backoff(2, 0.0), Duration::seconds(10));
        assert_eq!(backoff(3, 0.0), Duration::seconds(20));
        assert_eq!(backoff(20, 0.0), Duration::seconds(3600));
        assert_eq!(backoff(1, 0.2), Duration::seconds(6));
        assert_eq!(backoff(1, -0.9), Duration::seconds(4));
    }
}
