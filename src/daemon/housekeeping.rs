//! The daily housekeeping job: forgets sent mail and the history of tokens
//! gone for longer than `[alerts] forget_after_days` (see
//! `state::housekeeping` for which rows go when). It runs after the
//! start-up pass, every day at [`HOUSEKEEPING_AT`] in `timezone`, and on a
//! reload that changes `forget_after_days`.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::db;
use crate::schedule::CronSchedule;
use crate::state::StateStore;

/// 04:30 local time: after the night's scheduled checks, before office
/// hours. Not a config key; nothing depends on when it runs.
pub(super) const HOUSEKEEPING_AT: &str = "0 30 4 * * *";

/// The housekeeping schedule in the configured time zone.
pub(super) fn schedule(tz: Tz) -> Option<CronSchedule> {
    match CronSchedule::parse(HOUSEKEEPING_AT, tz) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(schedule = HOUSEKEEPING_AT, error = %e, "no daily housekeeping");
            None
        }
    }
}

/// Forgets what is older than `days` at `now`, except the tokens whose
/// fingerprints are `present` (whatever the latest scan holds is never
/// forgotten, however old). `progress` is called as rows go.
pub(super) fn run(
    store: &mut StateStore,
    now: DateTime<Utc>,
    days: u32,
    present: &HashSet<String>,
    progress: &dyn Fn(),
) {
    // The first housekeeping after an upgrade may forget years of rows:
    // it runs past any `WatchdogSec` unless its progress pings.
    let result = db(|| {
        store.housekeep_with_progress(now, Duration::days(i64::from(days)), present, progress)
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
