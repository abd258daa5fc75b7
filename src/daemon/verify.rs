//! Which tokens the loop hands to Apple's check, and the prober that does
//! it: started when `[apple] verify` is on, started afresh when a reload
//! changes `[apple]`, asked about new tokens after each pass and about
//! every token on the verify schedule.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::deps::{Clock, ProberFactory, Verify};
use super::prober::{self, ProbeRequest, ProberHandle};
use super::Timing;
use crate::assess::Verdicts;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::schedule::CronSchedule;
use crate::state::StateStore;
use crate::token::found::FoundFile;

pub struct Verifier {
    factory: ProberFactory,
    /// The running prober, when `[apple] verify` is on; dropping it stops
    /// the prober.
    prober: Option<ProberHandle>,
    /// Tokens handed to the prober (or found freshly verified).
    requested: Requested,
    /// Handed to each prober: a verdict changed, evaluate again.
    changed: mpsc::Sender<()>,
    clock: Arc<dyn Clock>,
    timing: Timing,
    /// Handed to each prober.
    metrics: Arc<Metrics>,
}

impl Verifier {
    pub fn new(
        factory: ProberFactory,
        changed: mpsc::Sender<()>,
        clock: Arc<dyn Clock>,
        timing: Timing,
    ) -> Verifier {
        Verifier {
            factory,
            prober: None,
            requested: Requested::default(),
            changed,
            clock,
            timing,
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Probers count in the daemon's `metrics`.
    pub fn counting(mut self, metrics: Arc<Metrics>) -> Verifier {
        self.metrics = metrics;
        self
    }

    /// The probe `cfg`'s `[apple]` asks for; None when `verify` is off.
    /// Every error is in the settings or the CA file they name.
    pub fn probe_for(&self, cfg: &Config) -> Result<Option<Arc<dyn Verify>>, String> {
        if !cfg.apple.verify {
            return Ok(None);
        }
        (self.factory)(&cfg.apple.probe).map(Some)
    }

    /// Starts a prober asking through `probe`, with its own connection to
    /// the state database.
    pub fn start(&mut self, probe: Arc<dyn Verify>, store: StateStore) {
        let (prober, handle) = prober::prober(
            probe,
            store,
            self.changed.clone(),
            self.clock.clone(),
            self.timing,
        );
        tokio::spawn(prober.counting(self.metrics.clone()).run());
        self.prober = Some(handle);
    }

    /// Stops the prober, and forgets what was asked: the Apple settings
    /// changed, every token is asked about afresh.
    pub fn stop(&mut self) {
        self.prober = None;
        self.requested.clear();
    }

    /// Hands tokens among `files` to the prober: every verifiable one on
    /// the schedule (`all`), else those not asked about yet and not
    /// verified within the last interval of `schedule`.
    pub fn request<'a>(
        &mut self,
        now: DateTime<Utc>,
        all: bool,
        verdicts: &Verdicts,
        schedule: &CronSchedule,
        files: impl IntoIterator<Item = &'a FoundFile>,
    ) {
        let Some(prober) = &self.prober else {
            return;
        };
        let fresh_for = self.fresh_for(schedule, now);
        let batch = select(&mut self.requested, now, all, verdicts, fresh_for, files);
        if !batch.is_empty() {
            tracing::debug!(
                tokens = batch.len(),
                known = self.requested.len(),
                "asking Apple"
            );
            prober.verify(batch);
        }
    }

    /// How long a verdict keeps a pass from asking again: the verify
    /// schedule's interval around `now`.
    fn fresh_for(&self, schedule: &CronSchedule, now: DateTime<Utc>) -> chrono::Duration {
        schedule.interval_near(now).unwrap_or_else(|| {
            chrono::Duration::from_std(self.timing.verify_fresh_for)
                .unwrap_or(chrono::Duration::MAX)
        })
    }
}

/// The tokens among `files` to ask about at `now`, recorded in
/// `requested`.
fn select<'a>(
    requested: &mut Requested,
    now: DateTime<Utc>,
    all: bool,
    verdicts: &Verdicts,
    fresh_for: chrono::Duration,
    files: impl IntoIterator<Item = &'a FoundFile>,
) -> Vec<ProbeRequest> {
    let present = files.into_iter().filter_map(|f| {
        let asks_apple = crate::token::kind(f.kind).rules().apple_verification;
        let t = f
            .token()
            .filter(|t| asks_apple && t.verifiable_with_apple())?;
        Some((t.fingerprint.as_str(), f.path.as_path()))
    });
    // A failed check is never fresh: it is asked again.
    let fresh = |fp: &str| {
        verdicts
            .get(fp)
            .is_some_and(|v| v.first_failure_at.is_none() && (now - v.verified_at) < fresh_for)
    };
    requested.select(present, all, fresh)
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

#[cfg(test)]
mod tests;
