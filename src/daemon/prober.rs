//! Asking Apple: a task that owns the probe and its own state connection,
//! verifies the tokens it is handed one at a time (so passes never
//! overlap), stores each verdict, and tells the loop when one changed.
//!
//! Only ever `GET /client/config` (see [`crate::probe`]): a POST would take
//! the token away from the organisation's MDM.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::probe::{Probe, ProbeOutcome};
use crate::scan;
use crate::state::{StateStore, StoredVerdict};

/// State meta key: since when every request to Apple has failed.
pub const APPLE_UNREACHABLE_SINCE: &str = "apple_unreachable_since";
/// Transient failures are retried after this long, doubling, capped.
const FIRST_RETRY: Duration = Duration::from_secs(30);
const MAX_RETRY: Duration = Duration::from_secs(3600);
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

pub enum ProberOrder {
    Verify(Vec<ProbeRequest>),
}

/// The loop's side of a running prober; dropping it stops the prober.
pub struct ProberHandle {
    pub orders: mpsc::Sender<ProberOrder>,
    pub cancel: CancellationToken,
}

impl Drop for ProberHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub struct Prober {
    pub probe: Probe,
    pub store: StateStore,
    pub orders: mpsc::Receiver<ProberOrder>,
    /// A verdict changed: the loop should evaluate again.
    pub changed: mpsc::Sender<()>,
    pub cancel: CancellationToken,
}

struct Retry {
    at: Instant,
    attempts: u32,
    request: ProbeRequest,
}

impl Prober {
    pub async fn run(mut self) {
        let mut known: HashMap<String, StoredVerdict> =
            match tokio::task::block_in_place(|| self.store.verdicts()) {
                Ok(v) => v.into_iter().map(|v| (v.fingerprint.clone(), v)).collect(),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read stored Apple verdicts");
                    HashMap::new()
                }
            };
        let mut queue: VecDeque<ProbeRequest> = VecDeque::new();
        let mut retries: Vec<Retry> = Vec::new();
        let mut attempts: HashMap<String, u32> = HashMap::new();
        loop {
            // Due retries join the queue.
            let now = Instant::now();
            let (due, later): (Vec<Retry>, Vec<Retry>) =
                retries.into_iter().partition(|r| r.at <= now);
            retries = later;
            for r in due {
                attempts.insert(r.request.fingerprint.clone(), r.attempts);
                enqueue(&mut queue, r.request);
            }
            if let Some(req) = queue.pop_front() {
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
                        let n = attempts.remove(&req.fingerprint).unwrap_or(0) + 1;
                        if n < MAX_UNREADABLE_TRIES {
                            tracing::debug!(file = %req.path.display(), error = %e, "token file unreadable; asking Apple later");
                            retries.push(Retry {
                                at: Instant::now() + backoff(n),
                                attempts: n,
                                request: req,
                            });
                        } else {
                            tracing::warn!(file = %req.path.display(), error = %e, "token file unreadable; not asking Apple until the next verification");
                        }
                        continue;
                    }
                    Err(why) => {
                        // The pass that sees the change asks about whatever
                        // the file holds now.
                        tracing::debug!(file = %req.path.display(), why = %why, "not asking Apple");
                        attempts.remove(&req.fingerprint);
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
                        .min(MAX_RETRY);
                    tracing::warn!(
                        wait_secs = wait.as_secs(),
                        "Apple rate-limits us; pausing checks"
                    );
                    queue.push_front(req);
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
                let n = attempts.remove(&req.fingerprint).unwrap_or(0) + 1;
                let changed = self.record(&mut known, &req.fingerprint, &outcome);
                if outcome.is_retryable() {
                    retries.push(Retry {
                        at: Instant::now() + backoff(n),
                        attempts: n,
                        request: req,
                    });
                }
                if changed {
                    let _ = self.changed.try_send(());
                }
                continue;
            }
            let next_retry = retries.iter().map(|r| r.at).min();
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                order = self.orders.recv() => match order {
                    Some(ProberOrder::Verify(list)) => {
                        for r in list {
                            retries.retain(|x| x.request.fingerprint != r.fingerprint);
                            enqueue(&mut queue, r);
                        }
                    }
                    None => return,
                },
                _ = sleep_until_opt(next_retry) => {}
            }
        }
    }

    /// Stores what Apple said; true when the verdict others read changed.
    fn record(
        &mut self,
        known: &mut HashMap<String, StoredVerdict>,
        fp: &str,
        outcome: &ProbeOutcome,
    ) -> bool {
        let now = Utc::now();
        let previous = known.get(fp).cloned();
        let mut v = previous.clone().unwrap_or(StoredVerdict {
            fingerprint: fp.to_string(),
            verified_at: now,
            verdict: "error".into(),
            location_name: None,
            uid: None,
            mdm_name: None,
            apple_expires_at: None,
            error: None,
            first_failure_at: None,
        });
        match outcome {
            ProbeOutcome::Valid(cfg) => {
                v.verdict = "valid".into();
                v.location_name = cfg.location_name.clone();
                v.uid = cfg.uid.clone();
                v.mdm_name = cfg.mdm_name.clone();
                v.apple_expires_at = cfg.apple_expires_at;
            }
            ProbeOutcome::Revoked { .. } => v.verdict = "revoked".into(),
            ProbeOutcome::Expired { .. } => v.verdict = "expired".into(),
            ProbeOutcome::Invalid { .. } => v.verdict = "invalid".into(),
            ProbeOutcome::Other { .. } => {
                tracing::warn!(token = &fp[..12.min(fp.len())], outcome = %outcome, "unexpected answer from Apple");
            }
            ProbeOutcome::Transient { .. }
            | ProbeOutcome::Unreachable { .. }
            | ProbeOutcome::RateLimited { .. } => {}
        }
        let definitive = matches!(
            outcome,
            ProbeOutcome::Valid(_)
                | ProbeOutcome::Revoked { .. }
                | ProbeOutcome::Expired { .. }
                | ProbeOutcome::Invalid { .. }
        );
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
        known.insert(fp.to_string(), v);
        changed
    }
}

/// Queues a token once; asked again under another path (renamed, or a
/// copy), the queued request takes the newer path.
/// The wait before the `n`th retry (from 1): doubling, capped.
fn backoff(n: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(16)))
        .min(MAX_RETRY)
}

fn enqueue(queue: &mut VecDeque<ProbeRequest>, r: ProbeRequest) {
    match queue.iter_mut().find(|q| q.fingerprint == r.fingerprint) {
        Some(queued) => queued.path = r.path,
        None => queue.push_back(r),
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

    fn request(fp: &str, path: &str) -> ProbeRequest {
        ProbeRequest {
            fingerprint: fp.to_owned(),
            path: PathBuf::from(path),
        }
    }

    #[test]
    fn a_token_asked_about_again_under_a_new_path_is_queued_once_with_it() {
        let mut queue = VecDeque::new();
        enqueue(&mut queue, request("aa", "/t/old.vpptoken"));
        enqueue(&mut queue, request("bb", "/t/b.vpptoken"));
        enqueue(&mut queue, request("aa", "/t/renamed.vpptoken"));
        let queued: Vec<_> = queue
            .iter()
            .map(|r| (r.fingerprint.as_str(), r.path.to_str().unwrap()))
            .collect();
        assert_eq!(
            queued,
            [("aa", "/t/renamed.vpptoken"), ("bb", "/t/b.vpptoken")]
        );
    }

    #[test]
    fn retries_double_up_to_the_cap() {
        assert_eq!(backoff(1), FIRST_RETRY);
        assert_eq!(backoff(2), FIRST_RETRY * 2);
        assert_eq!(backoff(40), MAX_RETRY);
    }
}
