//! `[alerts]` and `[check]`: who is told, when, and how often.

use super::Builder;
use crate::config::doc::Section;
use crate::config::{
    AlertPolicy, CheckPolicy, DEFAULT_CRITICAL_DAYS, DEFAULT_FORGET_AFTER_DAYS, DEFAULT_FROM,
    DEFAULT_GRACE_HOURS, DEFAULT_LEAD_DAYS, DEFAULT_MAX_MAILS_PER_PASS, DEFAULT_REPEAT_DAYS,
    DEFAULT_WARNING_DAYS,
};

impl Builder<'_, '_> {
    pub(super) fn alerts_default(&mut self) -> Option<AlertPolicy> {
        Some(AlertPolicy {
            lead_days: DEFAULT_LEAD_DAYS.to_vec(),
            repeat_days: DEFAULT_REPEAT_DAYS,
            recipients: Vec::new(),
            from: DEFAULT_FROM.parse().ok()?,
            password_change_grace_hours: DEFAULT_GRACE_HOURS,
            max_mails_per_pass: DEFAULT_MAX_MAILS_PER_PASS,
            require_account: false,
            webhooks: Vec::new(),
            forget_after_days: DEFAULT_FORGET_AFTER_DAYS,
        })
    }

    pub(super) fn alerts(&mut self, mut s: Section) -> Option<AlertPolicy> {
        let mut policy = self.alerts_default()?;
        let mut ok = true;
        if let Some(days) = s.integers(self.d, "lead_days") {
            let mut lead = Vec::new();
            for (v, span) in days {
                match self.in_range(v, span, "alerts.lead_days", 0, 3650) {
                    Some(v) => lead.push(v as u32),
                    None => ok = false,
                }
            }
            if lead.is_empty() && ok {
                self.d.report(
                    s.value_span("lead_days"),
                    "alerts.lead_days",
                    "must list at least one day count",
                );
                ok = false;
            }
            lead.sort_unstable_by(|a, b| b.cmp(a));
            lead.dedup();
            policy.lead_days = lead;
        }
        policy.repeat_days =
            self.bounded(&mut s, "repeat_days", 1, 365, DEFAULT_REPEAT_DAYS as i64)? as u32;
        policy.recipients = self.mailboxes(&mut s, "recipients");
        policy.webhooks = self.webhook_names(&mut s, "webhooks");
        if let Some((v, span)) = s.string(self.d, "from") {
            policy.from = self.mailbox(&v, span, "alerts.from")?;
        }
        policy.password_change_grace_hours = self.bounded(
            &mut s,
            "password_change_grace_hours",
            0,
            24 * 30,
            DEFAULT_GRACE_HOURS as i64,
        )? as u32;
        policy.max_mails_per_pass = self.bounded(
            &mut s,
            "max_mails_per_pass",
            1,
            100_000,
            DEFAULT_MAX_MAILS_PER_PASS as i64,
        )? as u32;
        policy.require_account = s.boolean(self.d, "require_account").unwrap_or(false);
        // At least a month: a share unmounted over a long weekend must not
        // make its tokens new when it is back.
        policy.forget_after_days = self.bounded(
            &mut s,
            "forget_after_days",
            30,
            36_500,
            DEFAULT_FORGET_AFTER_DAYS as i64,
        )? as u32;
        s.finish(self.d);
        ok.then_some(policy)
    }

    pub(super) fn check(&mut self, mut s: Section) -> Option<CheckPolicy> {
        let warning_days = self.bounded(&mut s, "warning_days", 0, 3650, DEFAULT_WARNING_DAYS);
        let critical_days = self.bounded(&mut s, "critical_days", 0, 3650, DEFAULT_CRITICAL_DAYS);
        let span = s.value_span("critical_days");
        s.finish(self.d);
        let (warning_days, critical_days) = (warning_days?, critical_days?);
        if critical_days > warning_days {
            self.d.report(
                span,
                "check.critical_days",
                format!("{critical_days} is more than warning_days ({warning_days})"),
            );
            return None;
        }
        Some(CheckPolicy {
            warning_days,
            critical_days,
        })
    }
}
