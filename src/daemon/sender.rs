//! The outbox sender: a task that owns its own state connection and the
//! mailer, delivers due mails, and records each outcome. It is woken when
//! mail is queued and handed new mail settings on reload (see
//! [`SenderHandle`]); it never decides what to send, only when to try again.
//!
//! Guarantee: a mail is in the outbox (written with its ledger rows in one
//! transaction) before the first attempt, and marked sent only after the
//! server accepted it, so a crash loses nothing; the only duplicate is a
//! mail accepted right before a crash, and it carries the same Message-ID.
//! When the database refuses to record an outcome (disk full, read-only),
//! the sender keeps it in memory and sends nothing more until it is
//! recorded, so a full disk does not turn into the same mail sent over and
//! over (regression test: faults::disk::a_full_disk_is_survived_and_nothing_is_lost_or_sent_twice).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use futures_util::StreamExt as _;
use rand::Rng;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::Timing;
use crate::backoff::Backoff;
use crate::mail::payload::{self, MailPayload};
use crate::mail::transport::{MailError, Mailer, OutgoingMail};
use crate::state::{OutboxRow, StateStore};

/// Permanent failures (5xx) get this many attempts, then are parked.
pub const PERMANENT_ATTEMPTS: u32 = 3;
/// Mails sent at once. Each SMTP session spends most of its time waiting
/// (lettre 0.11.23 leaves Nagle on, so every message waits ~40 ms for the
/// server's delayed ACK; a remote relay adds round trips): 1,000 alerts one
/// by one took 45 s. Outcomes are still recorded one at a time.
pub const PARALLEL_SENDS: usize = 4;

/// Delay before attempt `attempts + 1`, after `attempts` failures:
/// 5 s, 10 s, 20 s, ... capped at an hour, each ±20 %.
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    millis(Timing::default().send_retry.nth_jittered(attempts, jitter))
}

fn millis(d: StdDuration) -> Duration {
    Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The mail an outbox row holds. Only mail is sent today: a row of another
/// channel stays in the outbox, retried, until a tokenwatch that has that
/// channel sends it.
pub fn to_outgoing(m: &OutboxRow) -> Result<OutgoingMail, String> {
    if m.row.channel != payload::CHANNEL {
        return Err(format!("channel {:?} is not configured", m.row.channel));
    }
    MailPayload::outgoing(
        &m.row.payload,
        &m.row.message_id,
        &m.row.recipients,
        m.row.date,
    )
}

/// The loop's side of the sender. Neither order can be lost: a wake-up is
/// a permit that waits until the sender looks (many become one), and the
/// mailer is a value the sender reads before each round of sends, so the
/// latest settings win however busy the sender is.
pub struct SenderHandle {
    wake: Arc<Notify>,
    mailer: watch::Sender<Arc<Mailer>>,
}

impl SenderHandle {
    /// New mail is in the outbox, or ops asked for a retry.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Deliver with this mailer from now on (mails already being sent
    /// finish with the previous one).
    pub fn use_mailer(&self, mailer: Mailer) {
        self.mailer.send_replace(Arc::new(mailer));
    }
}

/// A sender and its handle; the sender does nothing until `run`.
pub fn sender(
    store: StateStore,
    mailer: Mailer,
    timing: Timing,
    cancel: CancellationToken,
) -> (Sender, SenderHandle) {
    let wake = Arc::new(Notify::new());
    let (mailer_tx, mailer_rx) = watch::channel(Arc::new(mailer));
    (
        Sender {
            store,
            mailer: mailer_rx,
            wake: wake.clone(),
            timing,
            cancel,
        },
        SenderHandle {
            wake,
            mailer: mailer_tx,
        },
    )
}

pub struct Sender {
    store: StateStore,
    mailer: watch::Receiver<Arc<Mailer>>,
    wake: Arc<Notify>,
    /// Retries, the send limit and the outbox poll.
    timing: Timing,
    cancel: CancellationToken,
}

/// What happened to one attempt, to be written to the outbox.
#[derive(Debug, Clone)]
enum Outcome {
    Sent {
        answer: String,
    },
    Failed {
        error: String,
        /// None parks the mail.
        next: Option<chrono::DateTime<Utc>>,
    },
}

/// An attempt whose outcome is not in the outbox yet.
#[derive(Debug, Clone)]
struct Attempt {
    id: i64,
    at: chrono::DateTime<Utc>,
    outcome: Outcome,
}

impl Sender {
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
                    let next = tokio::task::block_in_place(|| self.store.next_due_at())
                        .unwrap_or_else(|e| {
                            tracing::error!(error = %e, "cannot read the outbox; retrying in 30 s");
                            Some(Utc::now() + Duration::seconds(30))
                        });
                    next.map(|t| (t - Utc::now()).to_std().unwrap_or(StdDuration::ZERO))
                        .unwrap_or(self.timing.outbox_poll)
                        .min(self.timing.outbox_poll)
                }
            };
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                () = self.wake.notified() => {}
                changed = self.mailer.changed() => {
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
            let now = Utc::now();
            let due = match tokio::task::block_in_place(|| self.store.due_rows(now, 50)) {
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
            let mailer = self.mailer.borrow_and_update().clone();
            let mut refused = Vec::new();
            let mut stop = false;
            // Set once the database refuses an outcome: no new send starts.
            let halt = std::sync::atomic::AtomicBool::new(false);
            {
                let (mailer, cancel, store, halt, timing) =
                    (&*mailer, &self.cancel, &mut self.store, &halt, self.timing);
                let mut sends = futures_util::stream::iter(due)
                    .map(|mail| async move {
                        // Finish the mails in flight, start no new one after
                        // shutdown or a refused outcome.
                        if cancel.is_cancelled() || halt.load(std::sync::atomic::Ordering::Relaxed)
                        {
                            return None;
                        }
                        let result = send(mailer, &mail, timing.send_limit).await;
                        Some(attempt_of(&mail, result, timing.send_retry))
                    })
                    .buffer_unordered(PARALLEL_SENDS);
                // Each outcome is written as soon as it is known, so a crash
                // repeats at most the mails in flight.
                while let Some(a) = sends.next().await {
                    let Some(a) = a else {
                        stop = true;
                        continue;
                    };
                    if !refused.is_empty() {
                        refused.push(a);
                        continue;
                    }
                    if let Err(e) = record_in(store, &a) {
                        tracing::error!(id = a.id, error = %e, "cannot record the delivery outcome; sending nothing until it is recorded");
                        halt.store(true, std::sync::atomic::Ordering::Relaxed);
                        refused.push(a);
                    }
                }
            }
            if stop || !refused.is_empty() || self.cancel.is_cancelled() {
                return refused;
            }
        }
    }

    fn record(&mut self, a: &Attempt) -> Result<(), crate::state::StateError> {
        record_in(&mut self.store, a)
    }
}

fn record_in(store: &mut StateStore, a: &Attempt) -> Result<(), crate::state::StateError> {
    tokio::task::block_in_place(|| match &a.outcome {
        Outcome::Sent { answer } => store.mark_sent(a.id, a.at, answer),
        Outcome::Failed { error, next } => store.mark_failed(a.id, a.at, error, *next),
    })
}

async fn send(mailer: &Mailer, mail: &OutboxRow, limit: StdDuration) -> Result<String, Failure> {
    match to_outgoing(mail) {
        Ok(out) => match tokio::time::timeout(limit, mailer.send(&out)).await {
            Ok(r) => r.map_err(Failure::Mail),
            Err(_) => Err(Failure::Other(format!(
                "the send did not finish within {} s",
                limit.as_secs()
            ))),
        },
        Err(e) => Err(Failure::Other(e)),
    }
}

/// The outcome of one send as it is to be recorded: sent, retry at a
/// backed-off time, or parked.
fn attempt_of(mail: &OutboxRow, result: Result<String, Failure>, retry: Backoff) -> Attempt {
    let now = Utc::now();
    let outcome = match result {
        Ok(answer) => {
            tracing::info!(id = mail.id, message_id = %mail.row.message_id, subject = %mail.row.title, answer = %answer, "mail delivered");
            Outcome::Sent { answer }
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
                Some(now + millis(retry.nth_jittered(attempts, jitter)))
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

enum Failure {
    Mail(MailError),
    Other(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::transport::TransportSettings;
    use crate::state::NewRow;

    fn file_mailer(dir: &std::path::Path) -> Mailer {
        Mailer::new(&TransportSettings::File {
            dir: dir.to_path_buf(),
        })
        .unwrap()
    }

    fn eml_count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |d| d.count())
    }

    /// Regression: a reload that changed the mail settings while the
    /// sender's order queue was full lost the new settings silently.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn new_mail_settings_are_not_lost_when_orders_pile_up() {
        let tmp = tempfile::tempdir().unwrap();
        let (old_dir, new_dir) = (tmp.path().join("old"), tmp.path().join("new"));
        std::fs::create_dir_all(&old_dir).unwrap();
        std::fs::create_dir_all(&new_dir).unwrap();
        let state = tmp.path().join("state");
        let mut store = StateStore::open(&state).unwrap();
        let now = Utc::now();
        store
            .commit_alerts(
                now,
                &[],
                &[NewRow {
                    message_id: "<m1@tokenwatch>".into(),
                    alert_keys: vec![],
                    channel: payload::CHANNEL.into(),
                    recipients: vec!["ops@example.com".into()],
                    title: "s".into(),
                    payload: MailPayload {
                        from: "tokenwatch <tw@example.com>".into(),
                        subject: "s".into(),
                        text: "t".into(),
                        html: "h".into(),
                    }
                    .to_json(),
                    date: now,
                }],
            )
            .unwrap();
        let cancel = CancellationToken::new();
        let (sender, handle) = sender(
            StateStore::open(&state).unwrap(),
            file_mailer(&old_dir),
            Timing::default(),
            cancel.clone(),
        );
        // The sender is not running yet: every order waits for it.
        for _ in 0..1000 {
            handle.wake();
        }
        handle.use_mailer(file_mailer(&new_dir));
        let task = tokio::spawn(sender.run());
        let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
        while store.counters().unwrap().sent == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the mail was never sent"
            );
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(
            (eml_count(&old_dir), eml_count(&new_dir)),
            (0, 1),
            "the mail must go out with the new settings"
        );
    }

    fn queue_one_mail(store: &mut StateStore) {
        let now = Utc::now();
        store
            .commit_alerts(
                now,
                &[],
                &[NewRow {
                    message_id: "<m1@tokenwatch>".into(),
                    alert_keys: vec![],
                    channel: payload::CHANNEL.into(),
                    recipients: vec!["ops@example.com".into()],
                    title: "s".into(),
                    payload: MailPayload {
                        from: "tokenwatch <tw@example.com>".into(),
                        subject: "s".into(),
                        text: "t".into(),
                        html: "h".into(),
                    }
                    .to_json(),
                    date: now,
                }],
            )
            .unwrap();
    }

    /// The sender retries after the injected `Timing::send_retry`, not the
    /// built-in 5 s: with a 20 ms retry a mail that cannot be written is
    /// tried several times within a second.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_injected_send_retry_is_the_one_used() {
        let tmp = tempfile::tempdir().unwrap();
        // A regular file where the mail folder should be: every send fails,
        // and not permanently (the disk may be fixed).
        let not_a_dir = tmp.path().join("not-a-dir");
        std::fs::write(&not_a_dir, "").unwrap();
        let state = tmp.path().join("state");
        let mut store = StateStore::open(&state).unwrap();
        queue_one_mail(&mut store);
        let retry = StdDuration::from_millis(20);
        let timing = Timing {
            send_retry: Backoff::new(retry, retry),
            ..Timing::default()
        };
        let cancel = CancellationToken::new();
        let (sender, _handle) = sender(
            StateStore::open(&state).unwrap(),
            file_mailer(&not_a_dir),
            timing,
            cancel.clone(),
        );
        let task = tokio::spawn(sender.run());
        let started = std::time::Instant::now();
        let attempts = loop {
            let attempts = store.outbox().unwrap()[0].attempts;
            if attempts >= 3 || started.elapsed() > StdDuration::from_secs(30) {
                break attempts;
            }
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        };
        let took = started.elapsed();
        cancel.cancel();
        task.await.unwrap();
        assert!(attempts >= 3, "only {attempts} attempts");
        // Two retries at the default timing would take 5 s + 10 s.
        assert!(took < StdDuration::from_secs(5), "3 attempts took {took:?}");
    }

    #[test]
    fn backoff_doubles_from_5_seconds_and_caps_at_an_hour() {
        assert_eq!(backoff(1, 0.0), Duration::seconds(5));
        assert_eq!(backoff(2, 0.0), Duration::seconds(10));
        assert_eq!(backoff(3, 0.0), Duration::seconds(20));
        assert_eq!(backoff(20, 0.0), Duration::seconds(3600));
        assert_eq!(backoff(1, 0.2), Duration::seconds(6));
        assert_eq!(backoff(1, -0.9), Duration::seconds(4));
    }

    #[test]
    fn a_shorter_test_base_scales_the_doubling_and_the_cap() {
        let backoff_from = |first_secs: f64, attempts, jitter| {
            let first = StdDuration::from_secs_f64(first_secs);
            millis(
                Timing::default()
                    .send_retry
                    .scaled(first)
                    .nth_jittered(attempts, jitter),
            )
        };
        assert_eq!(backoff_from(0.1, 1, 0.0), Duration::milliseconds(100));
        assert_eq!(backoff_from(0.1, 3, 0.0), Duration::milliseconds(400));
        assert_eq!(backoff_from(0.1, 30, 0.0), Duration::seconds(72));
    }
}
