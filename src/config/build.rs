//! Phase two of config loading: typed values (time zones, cron schedules,
//! mailboxes, paths) from a document walked by [`Section`], checked for how
//! they fit together. Every problem is collected, none stops the walk.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use lettre::message::Mailbox;

use super::doc::{Diagnostics, Section};
use super::*;
use crate::mail::transport::{default_port, TlsMode, TransportSettings};
use crate::probe::{validate_base_url, ProbeSettings, DEFAULT_BASE_URL};
use crate::schedule::CronSchedule;

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
        root.finish(self.d);

        let alerts = alerts?;
        self.cross_checks(&alerts, &folders, &accounts);
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
        })
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
            if addresses_ok && alerts.recipients.is_empty() && f.recipients.is_empty() {
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
                self.d.report(
                    s.span(),
                    &s.key_path("path"),
                    format!("missing: every [[{table}]] needs a path"),
                );
                None
            }
        }
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
            Some((v, _)) if (min..=max).contains(&v) => Some(v),
            Some((v, span)) => {
                self.d.report(
                    span,
                    &s.key_path(key),
                    format!("{v} is out of range {min}..={max}"),
                );
                None
            }
            None => Some(default),
        }
    }

    fn alerts_default(&mut self) -> Option<AlertPolicy> {
        Some(AlertPolicy {
            lead_days: DEFAULT_LEAD_DAYS.to_vec(),
            repeat_days: DEFAULT_REPEAT_DAYS,
            recipients: Vec::new(),
            from: DEFAULT_FROM.parse().ok()?,
            password_change_grace_hours: DEFAULT_GRACE_HOURS,
            max_mails_per_pass: DEFAULT_MAX_MAILS_PER_PASS,
            require_account: false,
            forget_after_days: DEFAULT_FORGET_AFTER_DAYS,
        })
    }

    fn alerts(&mut self, mut s: Section) -> Option<AlertPolicy> {
        let mut policy = self.alerts_default()?;
        let mut ok = true;
        if let Some(days) = s.integers(self.d, "lead_days") {
            let mut lead = Vec::new();
            for (v, span) in days {
                if (0..=3650).contains(&v) {
                    lead.push(v as u32);
                } else {
                    self.d.report(
                        span,
                        "alerts.lead_days",
                        format!("{v} is out of range 0..=3650"),
                    );
                    ok = false;
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

    fn check(&mut self, mut s: Section) -> Option<CheckPolicy> {
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

    fn folder(&mut self, mut s: Section) -> Option<(Folder, Span)> {
        let path = self.required_path(&mut s, "folder");
        let account = self.account_id(&mut s, "account");
        let recipients = self.mailboxes(&mut s, "recipients");
        let allow_empty = s.boolean(self.d, "allow_empty").unwrap_or(false);
        let poll = s.boolean(self.d, "poll").unwrap_or(false);
        let follow_links = s.boolean(self.d, "follow_links").unwrap_or(false);
        let span = s.span();
        s.finish(self.d);
        Some((
            Folder {
                path: path?,
                account,
                recipients,
                allow_empty,
                poll,
                follow_links,
            },
            span,
        ))
    }

    fn account_id(&mut self, s: &mut Section, key: &'static str) -> Option<String> {
        let (v, span) = s.string(self.d, key)?;
        if v.trim().is_empty() || v.chars().any(char::is_control) {
            self.d.report(
                span,
                &s.key_path(key),
                "must be a non-empty account name without control characters",
            );
            return None;
        }
        Some(v)
    }

    fn account(&mut self, mut s: Section) -> Option<Account> {
        let id = self.account_id(&mut s, "id");
        if id.is_none() && s.value_span("id").is_none() {
            self.d.report(
                s.span(),
                &s.key_path("id"),
                "missing: every [[account]] needs an id",
            );
        }
        let password_changed = match s.datetime_text(self.d, "password_changed") {
            Some((text, span)) => match DateTime::parse_from_rfc3339(&text) {
                Ok(t) => Some(Some(t.with_timezone(&Utc))),
                Err(e) => {
                    self.d.report(
                        span,
                        &s.key_path("password_changed"),
                        format!("{text:?} is not a date-time with an offset, such as 2026-10-01T12:00:00Z ({e})"),
                    );
                    None
                }
            },
            None => Some(None),
        };
        s.finish(self.d);
        Some(Account {
            id: id?,
            password_changed: password_changed?,
        })
    }

    fn token_link(&mut self, mut s: Section) -> Option<TokenLink> {
        let path = self.required_path(&mut s, "token");
        let account = self.account_id(&mut s, "account");
        if account.is_none() && s.value_span("account").is_none() {
            self.d.report(
                s.span(),
                &s.key_path("account"),
                "missing: every [[token]] needs an account",
            );
        }
        s.finish(self.d);
        Some(TokenLink {
            path: path?,
            account: account?,
        })
    }

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

    fn schedule_default(&mut self, tz: Tz) -> Option<Schedules> {
        Some(Schedules {
            check: CronSchedule::parse(DEFAULT_CHECK_SCHEDULE, tz).ok()?,
            digest: None,
            verify: CronSchedule::parse(DEFAULT_VERIFY_SCHEDULE, tz).ok()?,
        })
    }

    fn schedule(&mut self, mut s: Section, tz: Tz) -> Option<Schedules> {
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

    fn mail(&mut self, mut s: Section, state_dir: &Path) -> Option<TransportSettings> {
        let transport = s.string(self.d, "transport");
        let host = s.string(self.d, "host");
        let port = s.integer(self.d, "port");
        let tls = s.string(self.d, "tls");
        let username = s.string(self.d, "username");
        let password_file = s.string(self.d, "password_file");
        let ca_file = s.string(self.d, "ca_file");
        let timeout = self.bounded(&mut s, "timeout_secs", 1, 3600, DEFAULT_SMTP_TIMEOUT_SECS);
        let dir = s.string(self.d, "dir");
        let span = s.span();
        s.finish(self.d);

        match transport
            .as_ref()
            .map(|(t, span)| (t.as_str(), span.clone()))
        {
            None | Some(("file", _)) => {
                for (key, present) in [
                    ("host", host.is_some()),
                    ("port", port.is_some()),
                    ("tls", tls.is_some()),
                    ("username", username.is_some()),
                    ("password_file", password_file.is_some()),
                    ("ca_file", ca_file.is_some()),
                ] {
                    if present {
                        self.d.report(
                            span.clone(),
                            &format!("mail.{key}"),
                            "only used with transport = \"smtp\"",
                        );
                    }
                }
                let dir = match dir {
                    Some((d, span)) => self.path(&d, span, "mail.dir")?,
                    None => state_dir.join("mail"),
                };
                Some(TransportSettings::File { dir })
            }
            Some(("smtp", _)) => {
                if let Some((_, dspan)) = &dir {
                    self.d.report(
                        dspan.clone(),
                        "mail.dir",
                        "only used with transport = \"file\"",
                    );
                }
                let tls = match tls {
                    None => Some(TlsMode::StartTls),
                    Some((t, span)) => {
                        match t.as_str() {
                            "none" => Some(TlsMode::None),
                            "starttls" => Some(TlsMode::StartTls),
                            "implicit" => Some(TlsMode::Implicit),
                            other => {
                                self.d.report(span, "mail.tls", format!("{other:?} is not one of \"none\", \"starttls\", \"implicit\""));
                                None
                            }
                        }
                    }
                };
                let host = match host {
                    Some((h, span)) if h.trim().is_empty() => {
                        self.d.report(span, "mail.host", "must not be empty");
                        None
                    }
                    Some((h, _)) => Some(h),
                    None => {
                        self.d.report(
                            span.clone(),
                            "mail.host",
                            "missing: transport = \"smtp\" needs a host",
                        );
                        None
                    }
                };
                let port = match port {
                    Some((p, _)) if (1..=65535).contains(&p) => Some(Some(p as u16)),
                    Some((p, span)) => {
                        self.d
                            .report(span, "mail.port", format!("{p} is not a TCP port"));
                        None
                    }
                    None => Some(None),
                };
                let password_file = self.optional_path(password_file, "mail.password_file");
                let ca_file = self.optional_path(ca_file, "mail.ca_file");
                let username = username.map(|(u, _)| u);
                let tls = tls?;
                if tls == TlsMode::None
                    && (username.is_some() || password_file.as_ref().is_some_and(Option::is_some))
                {
                    self.d.report(span, "mail.tls", "credentials are never sent without TLS: use tls = \"starttls\" or \"implicit\", or drop username and password_file");
                    return None;
                }
                Some(TransportSettings::Smtp {
                    host: host?,
                    port: port?.unwrap_or_else(|| default_port(tls)),
                    tls,
                    username,
                    password_file: password_file?,
                    ca_file: ca_file?,
                    timeout: Duration::from_secs(timeout? as u64),
                })
            }
            Some((other, span)) => {
                self.d.report(
                    span,
                    "mail.transport",
                    format!("{other:?} is not one of \"smtp\", \"file\""),
                );
                None
            }
        }
    }

    fn apple_default(&mut self) -> Option<AppleSettings> {
        Some(AppleSettings {
            verify: false,
            probe: ProbeSettings {
                base_url: validate_base_url(DEFAULT_BASE_URL).ok()?,
                timeout: Duration::from_secs(DEFAULT_APPLE_TIMEOUT_SECS as u64),
                ca_file: None,
                max_requests_per_sec: DEFAULT_APPLE_MAX_RPS as u32,
            },
        })
    }

    fn apple(&mut self, mut s: Section) -> Option<AppleSettings> {
        let mut apple = self.apple_default()?;
        apple.verify = s.boolean(self.d, "verify").unwrap_or(false);
        let base = match s.string(self.d, "base_url") {
            Some((u, span)) => match validate_base_url(&u) {
                Ok(url) => Some(url),
                Err(e) => {
                    self.d.report(span, "apple.base_url", e);
                    None
                }
            },
            None => Some(apple.probe.base_url.clone()),
        };
        let timeout = self.bounded(&mut s, "timeout_secs", 1, 600, DEFAULT_APPLE_TIMEOUT_SECS);
        let rps = self.bounded(&mut s, "max_requests_per_sec", 1, 15, DEFAULT_APPLE_MAX_RPS);
        let ca_file = s.string(self.d, "ca_file");
        let ca_file = self.optional_path(ca_file, "apple.ca_file");
        s.finish(self.d);
        apple.probe.base_url = base?;
        apple.probe.timeout = Duration::from_secs(timeout? as u64);
        apple.probe.max_requests_per_sec = rps? as u32;
        apple.probe.ca_file = ca_file?;
        Some(apple)
    }
}
