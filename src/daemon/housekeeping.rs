//! The daily housekeeping job: forgets sent mail and the history of tokens
//! gone for longer than `[alerts] forget_after_days` (see
//! `state::housekeeping` for which rows go when). It runs after the
//! start-up pass, every day at [`HOUSEKEEPING_AT`] in `timezone`, and on a
//! reload that changes `forget_after_days`.

use std::collections::HashSet;

use chrono::Duration;

use super::Daemon;
use crate::schedule::CronSchedule;

/// 04:30 local time: after the night's scheduled checks, before office
/// hours. Not a config key; nothing depends on when it runs.
pub(super) const HOUSEKEEPING_AT: &str = "0 30 4 * * *";

impl Daemon {
    /// The housekeeping schedule in the configured time zone.
    pub(super) fn housekeeping_schedule(&self) -> Option<CronSchedule> {
        match CronSchedule::parse(HOUSEKEEPING_AT, self.cfg.timezone) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(schedule = HOUSEKEEPING_AT, error = %e, "no daily housekeeping");
                None
            }
        }
    }

    pub(super) fn housekeep(&mut self) {
        let now = self.clock.now();
        let days = self.cfg.alerts.forget_after_days;
        // Whatever the latest scan holds is never forgotten, however old.
        let present: HashSet<String> = self
            .report(now, &self.verdicts())
            .tokens
            .into_iter()
            .map(|t| t.identity)
            .collect();
        // The first housekeeping after an upgrade may forget years of rows:
        // it runs past any `WatchdogSec` unless its progress pings.
        let keepalive = &self.keepalive;
        let result = tokio::task::block_in_place(|| {
            self.store.housekeep_with_progress(
                now,
                Duration::days(i64::from(days)),
                &present,
                &|| keepalive.progress(),
            )
        });
        match result {
            Ok(f) => tracing::info!(
                forget_after_days = days,
                sent_mails = f.mails,
                tokens = f.tokens,
                unreadable_files = f.files,
                ledger_rows = f.ledger_rows,
                "housekeeping done"
            ),
            Err(e) => {
                tracing::error!(error = %e, "housekeeping failed; trying again tomorrow")
            }
        }
    }
}
