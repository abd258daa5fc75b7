//! `[schedule]`: cron expressions read in the configured time zone.

use chrono_tz::Tz;

use super::Builder;
use crate::config::doc::Section;
use crate::config::{Schedules, DEFAULT_CHECK_SCHEDULE, DEFAULT_VERIFY_SCHEDULE};
use crate::schedule::CronSchedule;

impl Builder<'_, '_> {
    fn cron(
        &mut self,
        s: &mut Section,
        key: &'static str,
        tz: Tz,
        default: Option<&str>,
    ) -> Option<Option<CronSchedule>> {
        let (expr, span) = match s.string(self.d, key) {
            Some(v) => v,
            None if s.value_span(key).is_some() => return None,
            None => match default {
                Some(d) => (d.to_string(), None),
                None => return Some(None),
            },
        };
        match CronSchedule::parse(&expr, tz) {
            Ok(c) => Some(Some(c)),
            Err(e) => {
                self.d.report(
                    span,
                    &s.key_path(key),
                    format!("{expr:?} is not a valid schedule: {e}"),
                );
                None
            }
        }
    }

    pub(super) fn schedule_default(&mut self, tz: Tz) -> Option<Schedules> {
        Some(Schedules {
            check: CronSchedule::parse(DEFAULT_CHECK_SCHEDULE, tz).ok()?,
            digest: None,
            verify: CronSchedule::parse(DEFAULT_VERIFY_SCHEDULE, tz).ok()?,
        })
    }

    pub(super) fn schedule(&mut self, mut s: Section, tz: Tz) -> Option<Schedules> {
        let check = self.cron(&mut s, "check", tz, Some(DEFAULT_CHECK_SCHEDULE));
        let digest = self.cron(&mut s, "digest", tz, None);
        let verify = self.cron(&mut s, "verify", tz, Some(DEFAULT_VERIFY_SCHEDULE));
        s.finish(self.d);
        Some(Schedules {
            check: check??,
            digest: digest?,
            verify: verify??,
        })
    }
}
