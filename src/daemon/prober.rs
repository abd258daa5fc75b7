//! Asking Apple: a task that owns the probe and its own state connection,
//! verifies the tokens it is handed one at a time (so passes never
//! overlap), stores each verdict, and tells the loop when one changed.
//!
//! Only ever `GET /client/config` (see [`crate::probe`]): a POST would take
//! the token away from the organisation's MDM.

mod queue;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::assess::AppleRecord;
use crate::backoff::Backoff;
use crate::evaluate::Verdict;
use crate::probe::{Probe, ProbeOutcome};
use crate::scan;
use crate::state::StateStore;
use queue::ProbeQueue;

/// State meta key: since when every request to Apple has failed.
pub const APPLE_UNREACHABLE_SINCE: &str = "apple_unreachable_since";
/// A token file the prober cannot read is tried this many times.
const MAX_UNREADABLE_TRIES: u32 = 3;
/// Requests are spread out by up to this much on top of the rate limit.
const JITTER_MS: u64 = 250;

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
    probe: Probe,
    store: StateStore,
    changed: mpsc::Sender<()>,
    retry: Backoff,
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
            retry,
            cancel: cancel.clone(),
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
    probe: Probe,
    store: StateStore,
    queue: Arc<Mutex<ProbeQueue>>,
    wake: Arc<Notify>,
    /// A verdict changed: the loop should evaluate again. A full channel
    /// already holds that news, so a failed `try_send` loses nothing.
    changed: mpsc::Sender<()>,
    /// Transient failures are retried after this long, doubling, capped.
    retry: Backoff,
    cancel: CancellationToken,
}

/// Which tokens have been handed to the prober, as a hash of fingerprint
/// and path: a token is asked about when it appears, then on schedule. The
/// path counts because the prober reads the bearer from the file: a token
/// renamed before its turn is asked about again under its new name.
///
/// Holds exactly the tokens present at the latest pass: one that is gone
/// is forgotten (the set never outgrows the folders), and asked about again
/// if it comes back.
#[derive(Debug, Default)]
pub struct Requested(HashSet<u64>);

impl Requested {
    /// The tokens present now, as `(fingerprint, path)`, to hand to the
    /// prober: every one with `all`, else those not handed over before
    /// whose verdict is not `fresh`.
    pub fn select<'a>(
        &mut self,
        present: impl IntoIterator<Item = (&'a str, &'a Path)>,
        all: bool,
        fresh: impl Fn(&str) -> bool,
    ) -> Vec<ProbeRequest> {
        let mut now_present = HashSet::with_capacity(self.0.len());
        let mut batch = Vec::new();
        for (fp, path) in present {
            let key = requested_key(fp, path);
            now_present.insert(key);
            if !all && self.0.contains(&key) {
                continue;
            }
            if all || !fresh(fp) {
                batch.push(ProbeRequest {
                    fingerprint: fp.to_string(),
                    path: path.to_path_buf(),
                });
            }
        }
        self.0 = now_present;
        batch
    }

    /// Forgets every token (the Apple settings changed: ask afresh).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

fn requested_key(fingerprint: &str, path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    (fingerprint, path).hash(&mut h);
    h.finish()
}

impl Prober {
    pub async fn run(mut self) {
        loop {
            let next = lock(&self.queue).pop(Instant::now());
            if let Some((req, attempts)) = next {
                if self.cancel.is_cancelled() {
                    return;
                }
                let jitter = Duration::from_millis(rand::rng().random_range(0..=JITTER_MS));
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = tokio::time::sleep(jitter) => {}
                }
                let bearer = match tokio::task::block_in_place(|| {
                    scan::read_bearer(&req.path, &req.fingerprint)
                }) {
                    Ok(b) => b,
                    Err(scan::NoBearer::Unreadable(e)) => {
                        // Perhaps passing (permissions being fixed, out of
                        // descriptors): tried again a few times. A renamed
                        // file is asked about under its new name by the pass
                        // that sees the rename.
                        let n = attempts + 1;
                        if n < MAX_UNREADABLE_TRIES {
                            tracing::debug!(file = %req.path.display(), error = %e, "token file unreadable; asking Apple later");
                            lock(&self.queue).retry_at(req, Instant::now() + self.retry.nth(n), n);
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
                if let ProbeOutcome::RateLimited { retry_after } = &outcome {
                    // Apple asks everyone to slow down: pause the whole queue.
                    let wait = retry_after
                        .unwrap_or(Duration::from_secs(60))
                        .min(self.retry.max);
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
                    lock(&self.queue).retry_at(req, Instant::now() + self.retry.nth(n), n);
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

    /// Stores what Apple said; true when the verdict others read changed.
    fn record(&mut self, fp: &str, outcome: &ProbeOutcome) -> bool {
        let now = Utc::now();
        // Read from the store, not kept in memory: the map of every token
        // ever asked about only grew, and kept verdicts that housekeeping
        // had forgotten (a token that came back inherited them).
        let previous = match tokio::task::block_in_place(|| self.store.verdict(fp)) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the stored Apple verdict");
                None
            }
        };
        let mut v = previous.clone().unwrap_or(AppleRecord {
            fingerprint: fp.to_string(),
            verified_at: now,
            verdict: Verdict::Error,
            location_name: None,
            uid: None,
            mdm_name: None,
            apple_expires_at: None,
            error: None,
            first_failure_at: None,
        });
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
        let result = tokio::task::block_in_place(|| -> Result<(), crate::state::StateError> {
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

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(batch: &[ProbeRequest]) -> Vec<&str> {
        batch.iter().map(|r| r.fingerprint.as_str()).collect()
    }

    #[test]
    fn requested_forgets_tokens_that_are_gone_and_asks_again_when_they_return() {
        let (a, b) = (Path::new("/t/a.vpptoken"), Path::new("/t/b.vpptoken"));
        let stale = |_: &str| false;
        let mut r = Requested::default();
        assert_eq!(
            asked(&r.select([("aa", a), ("bb", b)], false, stale)),
            ["aa", "bb"]
        );
        // Asked about once, not at every pass.
        assert!(r.select([("aa", a), ("bb", b)], false, stale).is_empty());
        assert_eq!(r.len(), 2);
        // bb is gone: forgotten.
        assert!(r.select([("aa", a)], false, stale).is_empty());
        assert_eq!(r.len(), 1);
        // ...and asked about again when it comes back.
        assert_eq!(
            asked(&r.select([("aa", a), ("bb", b)], false, stale)),
            ["bb"]
        );
        // Renamed: asked about under its new name; the old name is forgotten.
        let moved = Path::new("/t/moved.vpptoken");
        assert_eq!(
            asked(&r.select([("aa", moved), ("bb", b)], false, stale)),
            ["aa"]
        );
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn requested_skips_fresh_verdicts_except_on_schedule() {
        let a = Path::new("/t/a.vpptoken");
        let fresh = |_: &str| true;
        let mut r = Requested::default();
        assert!(r.select([("aa", a)], false, fresh).is_empty());
        assert_eq!(asked(&r.select([("aa", a)], true, fresh)), ["aa"]);
    }

    #[test]
    fn requested_stays_the_size_of_the_folders_over_many_passes() {
        let mut r = Requested::default();
        let paths: Vec<PathBuf> = (0..1000)
            .map(|i| PathBuf::from(format!("/t/{i}")))
            .collect();
        for pass in 0..100 {
            // Each pass sees 1,000 tokens, a tenth of them new.
            let fps: Vec<String> = (0..1000).map(|i| format!("{}", i + pass * 100)).collect();
            r.select(
                fps.iter()
                    .map(String::as_str)
                    .zip(paths.iter().map(PathBuf::as_path)),
                false,
                |_| false,
            );
            assert_eq!(r.len(), 1000);
        }
    }

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
}
