//! What the daemon shows Prometheus: the metrics each pass sets, and the
//! `[metrics] listen` endpoint, moved when a reload changes the address.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::db;
use crate::config::Config;
use crate::metrics::server::{Health, Server};
use crate::metrics::{Metrics, OutboxFacts, PassFacts};
use crate::report::Report;
use crate::schedule::CronSchedule;

/// Used when the check schedule has no two fires left (it cannot, with
/// the 6-field cron, but `/healthz` must still judge something).
const FALLBACK_MAX_AGE: Duration = Duration::from_secs(2 * 3600);

pub(super) struct Observer {
    pub metrics: Arc<Metrics>,
    /// The running endpoint; None when `[metrics] listen` is absent or
    /// could not be bound.
    server: Option<Server>,
    /// The address `server` was asked to bind.
    listen: Option<SocketAddr>,
    /// Written by the loop after each pass, read by `/healthz`: one small
    /// value, so a lock rather than a task.
    health: Arc<Mutex<Health>>,
}

impl Observer {
    pub fn new(cfg: &Config, now: DateTime<Utc>) -> Observer {
        Observer {
            metrics: Arc::new(Metrics::new()),
            server: None,
            listen: None,
            health: Arc::new(Mutex::new(Health {
                last_pass: None,
                max_age: max_age(&cfg.schedule.check, now),
                state_problem: None,
            })),
        }
    }

    /// Serves `cfg`'s `[metrics] listen`, stopping the endpoint at another
    /// address first. On a bind failure nothing listens and the error
    /// (naming the key and address) is returned for the caller to report.
    pub fn listen(&mut self, cfg: &Config, now: DateTime<Utc>) -> Result<(), String> {
        self.lock().max_age = max_age(&cfg.schedule.check, now);
        if cfg.metrics_listen == self.listen && (self.server.is_some() || self.listen.is_none()) {
            return Ok(());
        }
        if let Some(old) = self.server.take() {
            old.stop();
            tracing::info!(address = %old.addr, "metrics endpoint stopped");
        }
        self.listen = cfg.metrics_listen;
        let Some(addr) = cfg.metrics_listen else {
            return Ok(());
        };
        let health = self.health.clone();
        let source = Arc::new(move || {
            health
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        });
        let server = Server::start(addr, self.metrics.clone(), source)?;
        tracing::info!(address = %server.addr, "serving /metrics and /healthz");
        self.server = Some(server);
        Ok(())
    }

    /// What a pass saw, and whether it could write the state database.
    pub fn passed(
        &self,
        facts: PassFacts,
        outbox: Option<&OutboxFacts>,
        ended: DateTime<Utc>,
        took: Duration,
        state_problem: Option<String>,
    ) {
        self.metrics.observe_pass(facts, ended, took);
        if let Some(o) = outbox {
            self.metrics.set_outbox(o);
        }
        let mut h = self.lock();
        h.last_pass = Some(ended);
        h.state_problem = state_problem;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Health> {
        // Only plain assignments happen under the lock; a poisoned one
        // still holds a whole value.
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl super::Daemon {
    /// Hands what a pass reported to the metrics: the credentials (with
    /// the silences in force at `now`), the folders, the outbox.
    pub(super) fn observe_pass(
        &self,
        now: DateTime<Utc>,
        report: &Report,
        took: Duration,
        state_problem: Option<String>,
    ) {
        // The credential facts are kept only for a scrape. The config is
        // the new one already when a reload's pass gets here, so a reload
        // that turns the endpoint on serves this pass's facts. The pass
        // marked the silences holding at `now` in the report.
        let facts = if self.cfg.metrics_listen.is_some() {
            PassFacts::from_report(report)
        } else {
            PassFacts::default()
        };
        let outbox = match db(|| self.store.outbox_tally()) {
            Ok(t) => Some(OutboxFacts {
                counts: t.counts,
                oldest_pending: t.oldest_pending,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the outbox for the metrics");
                None
            }
        };
        self.observer
            .passed(facts, outbox.as_ref(), now, took, state_problem);
    }
}

/// Twice the time between two consecutive fires of the check schedule.
fn max_age(check: &CronSchedule, now: DateTime<Utc>) -> Duration {
    check
        .interval_near(now)
        .and_then(|d| d.to_std().ok())
        .map_or(FALLBACK_MAX_AGE, |d| d * 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn health_allows_twice_the_check_interval() {
        let now = Utc.with_ymd_and_hms(2026, 3, 4, 10, 30, 0).unwrap();
        let hourly = CronSchedule::parse("0 0 * * * *", chrono_tz::UTC).unwrap();
        assert_eq!(max_age(&hourly, now), Duration::from_secs(2 * 3600));
        let every_ten = CronSchedule::parse("0 */10 * * * *", chrono_tz::UTC).unwrap();
        assert_eq!(max_age(&every_ten, now), Duration::from_secs(20 * 60));
    }
}
