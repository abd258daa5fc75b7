//! Asking Apple: a task that owns the probe and its own state connection,
//! verifies the tokens it is handed one at a time (so passes never
//! overlap), stores each verdict, and tells the loop when one changed.
//!
//! Only ever `GET /client/config` (see [`crate::probe`]): a POST would take
//! the token away from the organisation's MDM.

mod queue;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::deps::{Clock, Verify};
use super::{db, Timing};
use crate::assess::AppleRecord;
use crate::evaluate::Verdict;
use crate::metrics::Metrics;
use crate::probe::ProbeOutcome;
use crate::scan;
use crate::state::StateStore;
use queue::ProbeQueue;

/// State meta key: since when every request to Apple has failed.
pub const APPLE_UNREACHABLE_SINCE: &str = "apple_unreachable_since";
/// A token file the prober cannot read is tried this many times.
const MAX_UNREADABLE_TRIES: u32 = 3;

/// A token to ask Apple about. The bearer is read from the file when its
/// turn comes, not held in the queue.
pub struct ProbeRequest {
    pub fingerprint: String,
    pub path: PathBuf,
}

/// The loop's side of a running prober; dropping it stops the prober.
///
/// The loop hands requests over by putting them straight into the
/// prober's queue, which holds each token once: a request is never
/// dropped however busy the prober is (an order channel that was full lost
/// them until the next schedule), and the queue never outgrows the number
/// of tokens.
pub struct ProberHandle {
    queue: Arc<Mutex<ProbeQueue>>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
}

impl ProberHandle {
    /// Queues these tokens for a check with Apple.
    pub fn verify(&self, batch: Vec<ProbeRequest>) {
        let mut q = lock(&self.queue);
        for r in batch {
            q.ask(r);
        }
        let (waiting, retrying) = q.len();
        drop(q);
        tracing::debug!(waiting, retrying, "Apple checks queued");
        self.wake.notify_one();
    }
}

impl Drop for ProberHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A prober and its handle; the prober does nothing until `run`.
pub fn prober(
    probe: Arc<dyn Verify>,
    store: StateStore,
    changed: mpsc::Sender<()>,
    clock: Arc<dyn Clock>,
    timing: Timing,
) -> (Prober, ProberHandle) {
    let queue = Arc::new(Mutex::new(ProbeQueue::default()));
    let wake = Arc::new(Notify::new());
    let cancel = CancellationToken::new();
    (
        Prober {
            probe,
            store,
            queue: queue.clone(),
            wake: wake.clone(),
            changed,
            clock,
            timing,
            cancel: cancel.clone(),
            metrics: Arc::new(Metrics::new()),
        },
        ProberHandle {
            queue,
            wake,
            cancel,
        },
    )
}

/// The queue is only ever held for a few map operations, none of which
/// panics; a poisoned lock still holds a consistent queue.
fn lock(q: &Mutex<ProbeQueue>) -> MutexGuard<'_, ProbeQueue> {
    q.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct Prober {
    probe: Arc<dyn Verify>,
    store: StateStore,
    queue: Arc<Mutex<ProbeQueue>>,
    wake: Arc<Notify>,
    /// A verdict changed: the loop should evaluate again. A full channel
    /// already holds that news, so a failed `try_send` loses nothing.
    changed: mpsc::Sender<()>,
    /// When a verdict was reached.
    clock: Arc<dyn Clock>,
    /// The retry backoff (transient failures are retried after
    /// `probe_retry`, doubling, capped), the jitter between requests and
    /// the pause when Apple rate-limits without saying how long.
    timing: Timing,
    cancel: CancellationToken,
    /// Counts requests by result; when Apple last answered per token.
    metrics: Arc<Metrics>,
}

impl Prober {
    /// Counts in the daemon's `metrics` (else in a private set).
    pub fn counting(mut self, metrics: Arc<Metrics>) -> Prober {
        self.metrics = metrics;
        self
    }

    pub async fn run(mut self) {
        loop {
            let next = lock(&self.queue).pop(Instant::now());
            if let Some((req, attempts)) = next {
                if self.cancel.is_cancelled() {
                    return;
                }
                let jitter = self.jitter();
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = tokio::time::sleep(jitter) => {}
                }
                // A file read, not SQLite, but as short and as blocking.
                let bearer = match db(|| scan::read_bearer(&req.path, &req.fingerprint)) {
                    Ok(b) => b,
                    Err(scan::NoBearer::Unreadable(e)) => {
                        // Perhaps passing (permissions being fixed, out of
                        // descriptors): tried again a few times. A renamed
                        // file is asked about under its new name by the pass
                        // that sees the rename.
                        let n = attempts + 1;
                        if n < MAX_UNREADABLE_TRIES {
                            tracing::debug!(file = %req.path.display(), error = %e, "token file unreadable; asking Apple later");
                            lock(&self.queue).retry_at(
                                req,
                                Instant::now() + self.timing.probe_retry.nth(n),
                                n,
                            );
                        } else {
                            tracing::warn!(file = %req.path.display(), error = %e, "token file unreadable; not asking Apple until the next verification");
                        }
                        continue;
                    }
                    Err(why) => {
                        // The pass that sees the change asks about whatever
                        // the file holds now.
                        tracing::debug!(file = %req.path.display(), why = %why, "not asking Apple");
                        continue;
                    }
                };
                let outcome = tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    o = self.probe.verify(&bearer) => o,
                };
                drop(bearer);
                self.metrics.count_apple_request(request_result(&outcome));
                if let ProbeOutcome::RateLimited { retry_after } = &outcome {
                    // Apple asks everyone to slow down: pause the whole queue.
                    let wait = retry_after
                        .unwrap_or(self.timing.rate_limit_pause)
                        .min(self.timing.probe_retry.max);
                    tracing::warn!(
                        wait_secs = wait.as_secs(),
                        "Apple rate-limits us; pausing checks"
                    );
                    lock(&self.queue).push_front(req, attempts);
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
                let n = attempts + 1;
                let changed = self.record(&req.fingerprint, &outcome);
                if outcome.is_retryable() {
                    lock(&self.queue).retry_at(
                        req,
                        Instant::now() + self.timing.probe_retry.nth(n),
                        n,
                    );
                }
                if changed {
                    let _ = self.changed.try_send(());
                }
                continue;
            }
            let next_retry = lock(&self.queue).next_retry();
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                () = self.wake.notified() => {}
                _ = sleep_until_opt(next_retry) => {}
            }
        }
    }

    /// Up to `probe_jitter`, uniformly.
    fn jitter(&self) -> Duration {
        let max = u64::try_from(self.timing.probe_jitter.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=max))
    }

    /// Stores what Apple said; true when the verdict others read changed.
    fn record(&mut self, fp: &str, outcome: &ProbeOutcome) -> bool {
        let now = self.clock.now();
        // Read from the store, not kept in memory: the map of every token
        // ever asked about only grew, and kept verdicts that housekeeping
        // had forgotten (a token that came back inherited them).
        let previous = match db(|| self.store.verdict(fp)) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the stored Apple verdict");
                None
            }
        };
        let mut v = previous
            .clone()
            .unwrap_or_else(|| first_record(fp, now, Verdict::Error));
        let definitive = outcome.verdict().is_definitive();
        if definitive {
            v.verdict = outcome.verdict();
        }
        match outcome {
            ProbeOutcome::Valid(cfg) => {
                v.location_name = cfg.location_name.clone();
                v.uid = cfg.uid.clone();
                v.mdm_name = cfg.mdm_name.clone();
                v.apple_expires_at = cfg.apple_expires_at;
            }
            ProbeOutcome::Other { .. } => {
                tracing::warn!(token = &fp[..12.min(fp.len())], outcome = %outcome, "unexpected answer from Apple");
            }
            ProbeOutcome::Revoked { .. }
            | ProbeOutcome::Expired { .. }
            | ProbeOutcome::Invalid { .. }
            | ProbeOutcome::Transient { .. }
            | ProbeOutcome::Unreachable { .. }
            | ProbeOutcome::RateLimited { .. } => {}
        }
        if definitive {
            self.metrics.apple_verified(&fp[..12.min(fp.len())], now);
            v.verified_at = now;
            v.error = None;
            v.first_failure_at = None;
            tracing::info!(token = &fp[..12.min(fp.len())], verdict = %v.verdict, "Apple verdict");
        } else {
            v.error = Some(outcome.to_string());
            v.first_failure_at = v.first_failure_at.or(Some(now));
            if previous.is_none() {
                v.verified_at = now;
            }
            tracing::warn!(token = &fp[..12.min(fp.len())], outcome = %outcome, "Apple check failed");
        }
        // Apple reachable at all? Any answer from Apple says yes.
        let host_failure = outcome.is_host_failure();
        let result = db(|| -> Result<(), crate::state::StateError> {
            self.store.put_verdict(&v)?;
            let since = self.store.meta(APPLE_UNREACHABLE_SINCE)?;
            match (host_failure, since) {
                (true, None) => self
                    .store
                    .set_meta(APPLE_UNREACHABLE_SINCE, Some(&now.to_rfc3339())),
                (false, Some(_)) => self.store.set_meta(APPLE_UNREACHABLE_SINCE, None),
                _ => Ok(()),
            }
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot store Apple's verdict");
        }
        let changed = previous
            .as_ref()
            .map(|p| (&p.verdict, &p.uid, p.apple_expires_at, p.first_failure_at))
            != Some((&v.verdict, &v.uid, v.apple_expires_at, v.first_failure_at));
        changed
    }
}

/// How `tokenwatch_apple_requests_total` names an answer: the verdict it
/// gives, or `rate_limited`.
fn request_result(outcome: &ProbeOutcome) -> &'static str {
    match outcome {
        ProbeOutcome::RateLimited { .. } => "rate_limited",
        o => o.verdict().as_str(),
    }
}

/// A token's record before Apple said anything about it: `verdict` as of
/// `at`, nothing else known.
pub(super) fn first_record(fp: &str, at: DateTime<Utc>, verdict: Verdict) -> AppleRecord {
    AppleRecord {
        fingerprint: fp.to_string(),
        verified_at: at,
        verdict,
        location_name: None,
        uid: None,
        mdm_name: None,
        apple_expires_at: None,
        error: None,
        first_failure_at: None,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_handed_to_a_busy_prober_are_all_kept_once() {
        let (queue, wake) = (
            Arc::new(Mutex::new(ProbeQueue::default())),
            Arc::new(Notify::new()),
        );
        let handle = ProberHandle {
            queue: queue.clone(),
            wake,
            cancel: CancellationToken::new(),
        };
        // Nobody takes from the queue: 1,000 batches must all arrive.
        for batch in 0..1000 {
            handle.verify(vec![ProbeRequest {
                fingerprint: format!("{batch:064x}"),
                path: PathBuf::from("/t/x"),
            }]);
        }
        handle.verify(vec![ProbeRequest {
            fingerprint: format!("{:064x}", 0),
            path: PathBuf::from("/t/y"),
        }]);
        assert_eq!(lock(&queue).len(), (1000, 0));
    }

    #[test]
    fn retries_double_up_to_the_cap() {
        let retry = super::super::Timing::default().probe_retry;
        let first = Duration::from_secs(30);
        assert_eq!(retry.nth(1), first);
        assert_eq!(retry.nth(2), first * 2);
        assert_eq!(retry.nth(40), Duration::from_secs(3600));
    }

    /// Answers nothing; `record` is driven by hand.
    struct Silent;

    impl Verify for Silent {
        fn verify<'a>(
            &'a self,
            _: &'a crate::secret::Secret,
        ) -> futures_util::future::BoxFuture<'a, ProbeOutcome> {
            Box::pin(std::future::pending())
        }
    }

    /// When a verdict was reached, since when checks fail and since when
    /// Apple is unreachable all come from the injected clock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verdict_times_come_from_the_injected_clock() {
        let tmp = tempfile::tempdir().unwrap();
        let start: chrono::DateTime<chrono::Utc> = "2027-01-10T12:00:00Z".parse().unwrap();
        let clock = super::super::deps::FakeClock::at(start);
        let (changed_tx, _changed_rx) = mpsc::channel(1);
        let (mut prober, _handle) = prober(
            Arc::new(Silent),
            StateStore::open(tmp.path()).unwrap(),
            changed_tx,
            clock.clone(),
            Timing::default(),
        );
        let fp = "ab".repeat(32);
        let hour = chrono::Duration::hours(1);
        let unreachable = || ProbeOutcome::Unreachable {
            reason: "connection refused".into(),
        };
        let reader = StateStore::open_read_only(tmp.path()).unwrap();

        let valid = ProbeOutcome::Valid(crate::probe::AppleConfig {
            location_name: None,
            uid: None,
            mdm_name: None,
            apple_expires_at: None,
            country: None,
        });
        assert!(prober.record(&fp, &valid));
        let v = reader.verdict(&fp).unwrap().unwrap();
        assert_eq!((v.verdict, v.verified_at), (Verdict::Valid, start));

        clock.advance(hour);
        assert!(
            prober.record(&fp, &unreachable()),
            "a first failure is news"
        );
        clock.advance(hour);
        assert!(!prober.record(&fp, &unreachable()), "a second one is not");
        let v = reader.verdict(&fp).unwrap().unwrap();
        assert_eq!(
            (v.verdict, v.verified_at, v.first_failure_at),
            (Verdict::Valid, start, Some(start + hour))
        );
        assert_eq!(
            reader.meta(APPLE_UNREACHABLE_SINCE).unwrap(),
            Some((start + hour).to_rfc3339())
        );
    }
}
