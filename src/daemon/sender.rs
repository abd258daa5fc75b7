//! The outbox sender: a task that owns its own state connection and the
//! configured channels, delivers due messages through the channel each row
//! names, and records each outcome. It is woken when mail is queued and
//! handed new channels on reload (see [`SenderHandle`]); it never decides
//! what to send, only when to try again. It never learns how a channel
//! delivers: a [`DeliveryError`]'s class decides between retry and park.
//!
//! Guarantee: a mail is in the outbox (written with its ledger rows in one
//! transaction) before the first attempt, and marked sent only after the
//! server accepted it, so a crash loses nothing; the only duplicates are
//! mails accepted right before a crash, and they carry the same
//! Message-ID. Outcomes that come in together are recorded in one
//! transaction, and a mail holds its place among the [`PARALLEL_SENDS`]
//! until its outcome is recorded, so a crash repeats at most that many.
//! When the database refuses to record an outcome (disk full, read-only),
//! the sender keeps it in memory and sends nothing more until it is
//! recorded, so a full disk does not turn into the same mail sent over and
//! over (regression test: faults::disk::a_full_disk_is_survived_and_nothing_is_lost_or_sent_twice).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _};
use rand::Rng;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::deps::Clock;
use super::{db, Timing};
use crate::backoff::Backoff;
use crate::channel::{Channels, Delivery, DeliveryError};
use crate::metrics::Metrics;
use crate::state::{Attempt, OutboxRow, Outcome, StateStore};

/// Permanent failures (5xx, a channel that is not configured) get this
/// many attempts, then are parked.
pub const PERMANENT_ATTEMPTS: u32 = 3;
/// Mails sent at once. Each SMTP session spends most of its time waiting:
/// lettre 0.11.23 leaves Nagle on, so every message waits ~40 ms for the
/// server's delayed ACK before its final `.` goes out, and a remote relay
/// adds round trips. 1,000 alerts took 45 s one by one and 12.6-13.9 s four
/// at a time; 16 keeps under the per-client limits relays set by default
/// (Exchange: 20 connections per source, Postfix: 50). The SMTP transport
/// keeps as many connections open across a burst.
pub const PARALLEL_SENDS: usize = 16;
/// Outbox rows read at a time: a few rounds of [`PARALLEL_SENDS`] (the
/// sends of a round finish before the next rows are read).
const DUE_ROWS: usize = 4 * PARALLEL_SENDS;

/// Delay before attempt `attempts + 1`, after `attempts` failures:
/// 5 s, 10 s, 20 s, ... capped at an hour, each ±20 %.
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    millis(Timing::default().send_retry.nth_jittered(attempts, jitter))
}

fn millis(d: StdDuration) -> Duration {
    Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The loop's side of the sender. Neither order can be lost: a wake-up is
/// a permit that waits until the sender looks (many become one), and the
/// channels are a value the sender reads before each round of sends, so
/// the latest settings win however busy the sender is.
pub struct SenderHandle {
    wake: Arc<Notify>,
    channels: watch::Sender<Arc<Channels>>,
}

impl SenderHandle {
    /// New mail is in the outbox, or ops asked for a retry.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Deliver through these channels from now on (messages already being
    /// sent finish with the previous ones).
    pub fn use_channels(&self, channels: Arc<Channels>) {
        self.channels.send_replace(channels);
    }
}

/// A sender and its handle; the sender does nothing until `run`.
pub fn sender(
    store: StateStore,
    channels: Arc<Channels>,
    clock: Arc<dyn Clock>,
    timing: Timing,
    cancel: CancellationToken,
) -> (Sender, SenderHandle) {
    let wake = Arc::new(Notify::new());
    let (channels_tx, channels_rx) = watch::channel(channels);
    (
        Sender {
            store,
            channels: channels_rx,
            wake: wake.clone(),
            cancel,
            clock,
            timing,
            metrics: Arc::new(Metrics::new()),
        },
        SenderHandle {
            wake,
            channels: channels_tx,
        },
    )
}

pub struct Sender {
    store: StateStore,
    channels: watch::Receiver<Arc<Channels>>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
    /// When mail is due, and when an attempt was made.
    clock: Arc<dyn Clock>,
    /// Retries, the send limit and the outbox poll.
    timing: Timing,
    /// Counts each attempt by channel and result.
    metrics: Arc<Metrics>,
}

impl Sender {
    /// Counts attempts in the daemon's `metrics` (else in a private set).
    pub fn counting(mut self, metrics: Arc<Metrics>) -> Sender {
        self.metrics = metrics;
        self
    }

    pub async fn run(mut self) {
        // Outcomes the database refused. Until they are written nothing
        // else is sent: those mails are still "pending" in the outbox, and
        // sending on would deliver them again and again while the disk is
        // full. After a crash they are sent once more (same Message-ID).
        let mut unrecorded: Vec<Attempt> = Vec::new();
        // Rounds in a row in which the database refused an outcome.
        let mut refused_rounds = 0u32;
        loop {
            if self.cancel.is_cancelled() {
                break;
            }
            let record_retry = self.timing.record_retry.nth(refused_rounds + 1);
            unrecorded = self.record_all(unrecorded, record_retry);
            let wait = if !unrecorded.is_empty() {
                refused_rounds = refused_rounds.saturating_add(1);
                record_retry
            } else {
                refused_rounds = 0;
                unrecorded = self.deliver_due().await;
                if !unrecorded.is_empty() {
                    self.timing.record_retry.first
                } else {
                    let next = db(|| self.store.next_due_at()).unwrap_or_else(|e| {
                        let retry = self.timing.outbox_read_retry;
                        tracing::error!(error = %e, "cannot read the outbox; retrying in {} s", retry.as_secs());
                        Some(self.clock.now() + millis(retry))
                    });
                    next.map(|t| (t - self.clock.now()).to_std().unwrap_or(StdDuration::ZERO))
                        .unwrap_or(self.timing.outbox_poll)
                        .min(self.timing.outbox_poll)
                }
            };
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                () = self.wake.notified() => {}
                changed = self.channels.changed() => {
                    // The handle is gone only when the daemon stops.
                    if changed.is_err() {
                        break;
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        for a in &unrecorded {
            if let Err(e) = self.record(a) {
                tracing::error!(id = a.id, error = %e, "stopping with a delivery outcome unrecorded; the mail stays pending and is sent again (same Message-ID) after the restart");
            }
        }
    }

    /// Writes what it can; returns the outcomes still refused.
    fn record_all(&mut self, attempts: Vec<Attempt>, retry_in: StdDuration) -> Vec<Attempt> {
        let mut left = Vec::new();
        for a in attempts {
            if let Err(e) = self.record(&a) {
                tracing::error!(id = a.id, error = %e, ?retry_in, "cannot record the delivery outcome; sending nothing until it is recorded");
                left.push(a);
            }
        }
        left
    }

    /// Delivers every due mail, a few at a time; stops starting new sends
    /// once the database refuses an outcome, and returns those outcomes.
    async fn deliver_due(&mut self) -> Vec<Attempt> {
        loop {
            let now = self.clock.now();
            let due = match db(|| self.store.due_rows(now, DUE_ROWS)) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    return Vec::new();
                }
            };
            if due.is_empty() {
                return Vec::new();
            }
            // Read per round: a reload's settings apply to the next mail.
            let channels = self.channels.borrow_and_update().clone();
            let (channels, clock, timing, metrics) =
                (&*channels, &*self.clock, self.timing, &*self.metrics);
            let mut due = due.into_iter();
            let mut in_flight = FuturesUnordered::new();
            let mut refused = Vec::new();
            let mut stop = false;
            loop {
                // Finish the mails in flight, start no new one after
                // shutdown or a refused outcome.
                stop |= self.cancel.is_cancelled() || !refused.is_empty();
                // A mail whose outcome is not recorded yet holds its place
                // (`in_flight` only shrinks as outcomes are taken out), so
                // the mails a crash could repeat are never more than
                // PARALLEL_SENDS.
                while !stop && in_flight.len() < PARALLEL_SENDS {
                    let Some(mail) = due.next() else { break };
                    in_flight.push(async move {
                        let result = send(channels, &mail, timing.send_limit).await;
                        metrics.count_delivery(&mail.row.channel, delivery_result(&result));
                        attempt_of(&mail, result, timing.send_retry, clock.now())
                    });
                }
                let Some(first) = in_flight.next().await else {
                    break;
                };
                // Each outcome is written as soon as it is known, with
                // those that came in meanwhile: one commit (one fsync) for
                // the group.
                let mut group = vec![first];
                while let Some(Some(a)) = in_flight.next().now_or_never() {
                    group.push(a);
                }
                if !refused.is_empty() {
                    refused.extend(group);
                    continue;
                }
                if let Err(e) = record_in(&mut self.store, &group) {
                    let ids: Vec<i64> = group.iter().map(|a| a.id).collect();
                    tracing::error!(?ids, error = %e, "cannot record the delivery outcome; sending nothing until it is recorded");
                    refused.extend(group);
                }
            }
            if stop || !refused.is_empty() || self.cancel.is_cancelled() {
                return refused;
            }
        }
    }

    fn record(&mut self, a: &Attempt) -> Result<(), crate::state::StateError> {
        record_in(&mut self.store, std::slice::from_ref(a))
    }
}

fn record_in(store: &mut StateStore, group: &[Attempt]) -> Result<(), crate::state::StateError> {
    db(|| store.record_attempts(group))
}

/// One attempt through the row's channel. A row whose channel is not
/// configured fails permanently: it parks after the usual attempts, and
/// `outbox retry` sends it once the config names that channel again.
async fn send(
    channels: &Channels,
    mail: &OutboxRow,
    limit: StdDuration,
) -> Result<String, DeliveryError> {
    let Some(channel) = channels.get(&mail.row.channel) else {
        return Err(DeliveryError::permanent(format!(
            "channel {:?} is not configured",
            mail.row.channel
        )));
    };
    let delivery = Delivery {
        id: mail.id,
        message_id: &mail.row.message_id,
        recipients: &mail.row.recipients,
        payload: &mail.row.payload,
        date: mail.row.date,
    };
    match tokio::time::timeout(limit, channel.deliver(delivery)).await {
        Ok(r) => r,
        Err(_) => Err(DeliveryError::transient(format!(
            "the send did not finish within {} s",
            limit.as_secs()
        ))),
    }
}

/// How `tokenwatch_deliveries_total` names a send's result.
fn delivery_result(result: &Result<String, DeliveryError>) -> &'static str {
    match result {
        Ok(_) => "delivered",
        Err(e) if e.is_permanent() => "permanent_failure",
        Err(_) => "transient_failure",
    }
}

/// The outcome of one send, which ended at `now`, as it is to be
/// recorded: sent, retry at a backed-off time (after `send_retry`), or
/// parked.
fn attempt_of(
    mail: &OutboxRow,
    result: Result<String, DeliveryError>,
    send_retry: Backoff,
    now: DateTime<Utc>,
) -> Attempt {
    let outcome = match result {
        Ok(answer) => {
            tracing::info!(id = mail.id, message_id = %mail.row.message_id, subject = %mail.row.title, answer = %answer, "mail delivered");
            Outcome::Sent { answer }
        }
        Err(failure) => {
            let attempts = mail.attempts + 1;
            let (permanent, error) = (failure.is_permanent(), failure.message);
            let next = if permanent && attempts >= PERMANENT_ATTEMPTS {
                None
            } else {
                let jitter = rand::rng().random_range(-0.2..=0.2);
                let backoff = millis(send_retry.nth_jittered(attempts, jitter));
                // A receiver that says when to come back is obeyed: sooner
                // would only earn another refusal.
                let asked = failure
                    .retry_after
                    .and_then(|d| chrono::Duration::from_std(d).ok())
                    .unwrap_or_default();
                Some(now + backoff.max(asked))
            };
            match next {
                Some(at) => {
                    tracing::warn!(id = mail.id, attempts, error = %error, next_try = %at, "mail not delivered; will retry")
                }
                None => {
                    tracing::error!(id = mail.id, attempts, error = %error, subject = %mail.row.title, "mail parked after permanent failures; `tokenwatch outbox retry` sends it again")
                }
            }
            Outcome::Failed { error, next }
        }
    };
    Attempt {
        id: mail.id,
        at: now,
        outcome,
    }
}

#[cfg(test)]
mod tests;
