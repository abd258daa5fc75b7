//! Phase two of config loading: typed values (time zones, cron schedules,
//! mailboxes, paths) from a document walked by [`Section`], checked for how
//! they fit together. Every problem is collected, none stops the walk.

mod alerts;
mod apple;
mod folders;
mod mail;
mod schedule;
mod webhook;

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use lettre::message::Mailbox;

use super::doc::{Diagnostics, Section};
use super::*;
use crate::mail::transport::TransportSettings;

/// Phase two: typed values from a document walked by [`Section`].
pub(super) struct Builder<'a, 'd> {
    pub(super) d: &'a mut Diagnostics<'d>,
    pub(super) base: &'a Path,
}

type Span = Option<Range<usize>>;

impl Builder<'_, '_> {
    pub(super) fn build(&mut self, mut root: Section, file: &Path) -> Option<Config> {
        let state_dir = match root.string(self.d, "state_dir") {
            Some((s, span)) => self.path(&s, span, "state_dir"),
            None => Some(PathBuf::from(DEFAULT_STATE_DIR)),
        };
        let timezone = match root.string(self.d, "timezone") {
            Some((s, span)) => {
                match s.parse::<Tz>() {
                    Ok(tz) => Some(tz),
                    Err(_) => {
                        self.d.report(span, "timezone", format!("unknown time zone {s:?} (use an IANA name such as \"Europe/Berlin\")"));
                        None
                    }
                }
            }
            None => DEFAULT_TIMEZONE.parse::<Tz>().ok(),
        };
        let tz = timezone.unwrap_or(chrono_tz::UTC);

        let alerts = match root.table(self.d, "alerts") {
            Some(s) => self.alerts(s),
            None => self.alerts_default(),
        };
        let check = match root.table(self.d, "check") {
            Some(s) => self.check(s),
            None => Some(CheckPolicy {
                warning_days: DEFAULT_WARNING_DAYS,
                critical_days: DEFAULT_CRITICAL_DAYS,
            }),
        };
        let folder_sections = root.tables(self.d, "folder");
        if folder_sections.is_empty() && root.value_span("folder").is_none() {
            self.d.report(
                None,
                "folder",
                "no [[folder]] configured: add at least one token folder",
            );
        }
        let folders: Vec<(Folder, Span)> = folder_sections
            .into_iter()
            .filter_map(|s| self.folder(s))
            .collect();
        let accounts: Vec<Account> = root
            .tables(self.d, "account")
            .into_iter()
            .filter_map(|s| self.account(s))
            .collect();
        let tokens: Vec<TokenLink> = root
            .tables(self.d, "token")
            .into_iter()
            .filter_map(|s| self.token_link(s))
            .collect();
        let schedule = match root.table(self.d, "schedule") {
            Some(s) => self.schedule(s, tz),
            None => self.schedule_default(tz),
        };
        let state_for_mail = state_dir.clone().unwrap_or_default();
        let mail = match root.table(self.d, "mail") {
            Some(s) => self.mail(s, &state_for_mail),
            None => Some(TransportSettings::File {
                dir: state_for_mail.join("mail"),
            }),
        };
        let apple = match root.table(self.d, "apple") {
            Some(s) => self.apple(s),
            None => self.apple_default(),
        };
        let metrics_listen = match root.table(self.d, "metrics") {
            Some(s) => self.metrics(s),
            None => Some(None),
        };
        let webhooks: Vec<_> = root
            .tables(self.d, "webhook")
            .into_iter()
            .filter_map(|s| self.webhook(s))
            .collect();
        root.finish(self.d);

        let alerts = alerts?;
        self.cross_checks(&alerts, &folders, &accounts);
        self.webhook_checks(&webhooks, &alerts.webhooks, &folders);
        if folders.is_empty() {
            return None;
        }
        let folders = folders.into_iter().map(|(f, _)| f).collect();
        Some(Config {
            file: file.to_path_buf(),
            state_dir: state_dir?,
            timezone: timezone?,
            alerts,
            check: check?,
            folders,
            accounts,
            tokens,
            schedule: schedule?,
            mail: mail?,
            apple: apple?,
            webhooks: webhooks.into_iter().map(|(w, _)| w).collect(),
            metrics_listen: metrics_listen?,
        })
    }

    /// `[metrics]`: an address and port to listen on, no default.
    fn metrics(&mut self, mut s: Section) -> Option<Option<std::net::SocketAddr>> {
        let listen = s.string(self.d, "listen");
        s.finish(self.d);
        match listen {
            Some((text, span)) => match text.parse::<std::net::SocketAddr>() {
                Ok(addr) => Some(Some(addr)),
                Err(_) => {
                    self.d.report(
                        span,
                        "metrics.listen",
                        format!("{text:?} is not an address and port, such as \"127.0.0.1:9817\" or \"[::1]:9817\""),
                    );
                    None
                }
            },
            None => Some(None),
        }
    }

    /// Rules that span sections: duplicates, and mail that would go nowhere.
    fn cross_checks(
        &mut self,
        alerts: &AlertPolicy,
        folders: &[(Folder, Span)],
        accounts: &[Account],
    ) {
        // A bad address elsewhere leaves a recipient list empty; saying
        // "nobody would be told" on top of that would only confuse.
        let addresses_ok = !self.d.problems.iter().any(|p| p.key.contains("recipients"));
        let mut seen = BTreeSet::new();
        for (i, (f, span)) in folders.iter().enumerate() {
            if !seen.insert(f.path.clone()) {
                self.d.report(
                    span.clone(),
                    &format!("folder[{}].path", i + 1),
                    format!("folder {} is configured twice", f.path.display()),
                );
            }
            let nobody = alerts.recipients.is_empty()
                && f.recipients.is_empty()
                && alerts.webhooks.is_empty()
                && f.webhooks.is_empty();
            if addresses_ok && nobody {
                self.d.report(
                    span.clone(),
                    &format!("folder[{}].recipients", i + 1),
                    format!("nobody would be told about tokens in {}: set [alerts] recipients or this folder's recipients", f.path.display()),
                );
            }
        }
        let mut ids = BTreeSet::new();
        for (i, a) in accounts.iter().enumerate() {
            if !ids.insert(a.id.clone()) {
                self.d.report(
                    None,
                    &format!("account[{}].id", i + 1),
                    format!("account {:?} is configured twice", a.id),
                );
            }
        }
    }

    /// An optional path key: `Some(None)` when absent, `None` when invalid.
    fn optional_path(
        &mut self,
        value: Option<(String, Span)>,
        key: &str,
    ) -> Option<Option<PathBuf>> {
        match value {
            Some((p, span)) => Some(Some(self.path(&p, span, key)?)),
            None => Some(None),
        }
    }

    /// The `path` key every `[[folder]]` and `[[token]]` must have.
    fn required_path(&mut self, s: &mut Section, table: &str) -> Option<PathBuf> {
        match s.string(self.d, "path") {
            Some((p, span)) => self.path(&p, span, &s.key_path("path")),
            None => {
                self.missing(s, "path", &format!("every [[{table}]] needs a path"));
                None
            }
        }
    }

    /// A key an entry cannot do without, reported at the entry since the
    /// key itself has no place in the file.
    fn missing(&mut self, s: &Section, key: &str, rule: &str) {
        self.d
            .report(s.span(), &s.key_path(key), format!("missing: {rule}"));
    }

    fn path(&mut self, s: &str, span: Span, key: &str) -> Option<PathBuf> {
        if s.trim().is_empty() {
            self.d.report(span, key, "must not be empty");
            return None;
        }
        let p = PathBuf::from(s);
        Some(if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        })
    }

    fn mailbox(&mut self, s: &str, span: Span, key: &str) -> Option<Mailbox> {
        match s.parse::<Mailbox>() {
            Ok(m) => Some(m),
            Err(e) => {
                self.d
                    .report(span, key, format!("{s:?} is not a valid mail address: {e}"));
                None
            }
        }
    }

    fn mailboxes(&mut self, s: &mut Section, key: &'static str) -> Vec<Mailbox> {
        let full = s.key_path(key);
        s.strings(self.d, key)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter_map(|(i, (v, span))| self.mailbox(&v, span, &format!("{full}[{i}]")))
            .collect()
    }

    fn bounded(
        &mut self,
        s: &mut Section,
        key: &'static str,
        min: i64,
        max: i64,
        default: i64,
    ) -> Option<i64> {
        match s.integer(self.d, key) {
            Some((v, span)) => self.in_range(v, span, &s.key_path(key), min, max),
            None => Some(default),
        }
    }

    fn in_range(&mut self, v: i64, span: Span, key: &str, min: i64, max: i64) -> Option<i64> {
        if (min..=max).contains(&v) {
            return Some(v);
        }
        self.d
            .report(span, key, format!("{v} is out of range {min}..={max}"));
        None
    }
}
