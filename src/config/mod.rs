//! Configuration: loading, validating, defaults, and errors located by
//! file, line and column.
//!
//! Loading has two phases. Phase one ([`doc`]) walks the TOML document and
//! reports every unknown key and wrong type; phase two (here) turns the
//! values into typed settings (time zones, cron schedules, mailboxes,
//! paths) and checks how they fit together. Both phases collect every
//! problem before failing, so a user fixes a config in one round.

mod doc;
pub mod edit;

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use lettre::message::Mailbox;

use crate::mail::transport::{default_port, TlsMode, TransportSettings};
use crate::probe::{validate_base_url, ProbeSettings, DEFAULT_BASE_URL};
use crate::schedule::CronSchedule;
pub use doc::Problem;
use doc::{Diagnostics, Section};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/tokenwatch/tokenwatch.toml";
pub const CONFIG_ENV: &str = "TOKENWATCH_CONFIG";
/// The documented production template, printed by `tokenwatch config example`.
pub const EXAMPLE: &str = include_str!("../../config/tokenwatch.toml");

// Defaults live here and nowhere else.
const DEFAULT_STATE_DIR: &str = "/var/lib/tokenwatch";
const DEFAULT_TIMEZONE: &str = "UTC";
const DEFAULT_LEAD_DAYS: [u32; 6] = [60, 30, 14, 7, 3, 1];
const DEFAULT_REPEAT_DAYS: u32 = 7;
const DEFAULT_FROM: &str = "tokenwatch <tokenwatch@localhost>";
const DEFAULT_GRACE_HOURS: u32 = 48;
const DEFAULT_MAX_MAILS_PER_PASS: u32 = 20;
const DEFAULT_WARNING_DAYS: i64 = 30;
const DEFAULT_CRITICAL_DAYS: i64 = 7;
const DEFAULT_CHECK_SCHEDULE: &str = "0 0 * * * *";
const DEFAULT_VERIFY_SCHEDULE: &str = "0 17 */6 * * *";
const DEFAULT_SMTP_TIMEOUT_SECS: i64 = 30;
const DEFAULT_APPLE_TIMEOUT_SECS: i64 = 20;
const DEFAULT_APPLE_MAX_RPS: i64 = 5;

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (as given, made absolute).
    pub file: PathBuf,
    pub state_dir: PathBuf,
    pub timezone: Tz,
    pub alerts: AlertPolicy,
    pub check: CheckPolicy,
    pub folders: Vec<Folder>,
    pub accounts: Vec<Account>,
    pub tokens: Vec<TokenLink>,
    pub schedule: Schedules,
    pub mail: TransportSettings,
    pub apple: AppleSettings,
}

#[derive(Debug, Clone)]
pub struct AlertPolicy {
    /// Sorted largest first, without duplicates; never empty.
    pub lead_days: Vec<u32>,
    pub repeat_days: u32,
    pub recipients: Vec<Mailbox>,
    pub from: Mailbox,
    pub password_change_grace_hours: u32,
    pub max_mails_per_pass: u32,
    pub require_account: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct CheckPolicy {
    /// Invariant: `critical_days <= warning_days`.
    pub warning_days: i64,
    pub critical_days: i64,
}

#[derive(Debug, Clone)]
pub struct Folder {
    /// Absolute (resolved against the config file's folder), not canonicalised.
    pub path: PathBuf,
    pub account: Option<String>,
    pub recipients: Vec<Mailbox>,
    pub allow_empty: bool,
    pub poll: bool,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub password_changed: Option<DateTime<Utc>>,
}

/// A per-token account link (`[[token]]`), which wins over the folder's.
#[derive(Debug, Clone)]
pub struct TokenLink {
    pub path: PathBuf,
    pub account: String,
}

#[derive(Debug, Clone)]
pub struct Schedules {
    pub check: CronSchedule,
    pub digest: Option<CronSchedule>,
    pub verify: CronSchedule,
}

#[derive(Debug, Clone)]
pub struct AppleSettings {
    pub verify: bool,
    pub probe: ProbeSettings,
}

impl Config {
    /// The account a token at `path` in folder `folder` belongs to:
    /// a `[[token]]` entry, else the folder's, else none.
    pub fn account_for<'a>(&'a self, path: &Path, folder: Option<&'a Folder>) -> Option<&'a str> {
        self.tokens
            .iter()
            .find(|t| t.path == path)
            .map(|t| t.account.as_str())
            .or_else(|| folder.and_then(|f| f.account.as_deref()))
    }

    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// Everyone who hears about a token in `folder`: `[alerts] recipients`
    /// plus the folder's own, without duplicates, in that order.
    pub fn recipients_for(&self, folder: Option<&Folder>) -> Vec<Mailbox> {
        let mut out: Vec<Mailbox> = Vec::new();
        let extra = folder.map(|f| f.recipients.as_slice()).unwrap_or(&[]);
        for m in self.alerts.recipients.iter().chain(extra) {
            if !out.iter().any(|o| o.email == m.email) {
                out.push(m.clone());
            }
        }
        out
    }
}

/// Every problem found in one config file.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn whole_file(file: &Path, message: String) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            problems: vec![Problem {
                line: 0,
                column: 0,
                key: String::new(),
                message,
            }],
        }
    }

    /// One line per problem, `file:line:col: key: cause`.
    pub fn lines(&self) -> Vec<String> {
        self.problems
            .iter()
            .map(|p| {
                if p.line == 0 {
                    format!("{}: {}", self.file.display(), p.message)
                } else {
                    doc::render_problem(&self.file, p)
                }
            })
            .collect()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid config {} ({n} problem{}):",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for line in self.lines() {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Which config file to use: `-c` wins over `TOKENWATCH_CONFIG`, which wins
/// over the default path.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(CONFIG_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

/// Where the state lives according to a config file that may be invalid:
/// `status` and `outbox` must still reach the daemon's state when ops have
/// broken the config the daemon is (still) running without.
pub fn state_dir_of(path: &Path) -> Option<PathBuf> {
    let file = absolute(path);
    let text = std::fs::read_to_string(&file).ok()?;
    let dir = match toml_edit::Document::parse(text.as_str()) {
        Ok(doc) => match doc.as_item().get("state_dir") {
            Some(item) => PathBuf::from(item.as_str()?),
            None => PathBuf::from(DEFAULT_STATE_DIR),
        },
        // Not even TOML (a half-edited file): `state_dir` is a top-level
        // key, so read it from the lines before the first table, each on
        // its own (regression test: config::tests::state_dir_of_a_config_that_is_not_valid_toml_is_still_found).
        Err(_) => text
            .lines()
            .take_while(|l| !l.trim_start().starts_with('['))
            .find_map(|l| {
                let doc = toml_edit::Document::parse(l).ok()?;
                doc.as_item().get("state_dir")?.as_str().map(PathBuf::from)
            })?,
    };
    Some(if dir.is_absolute() {
        dir
    } else {
        file.parent()?.join(dir)
    })
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = absolute(path);
    let text = std::fs::read(&file)
        .map_err(|e| ConfigError::whole_file(&file, format!("cannot read config: {e}")))?;
    let text = String::from_utf8(text)
        .map_err(|_| ConfigError::whole_file(&file, "cannot read config: not UTF-8 text".into()))?;
    parse(&text, &file)
}

/// Validates config text as if it were the file `file` (relative paths are
/// resolved against `file`'s folder).
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let file = absolute(file);
    let mut d = Diagnostics::new(text);
    let document = match toml_edit::Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            d.report(e.span(), "", format!("not valid TOML: {}", e.message()));
            return Err(ConfigError {
                file,
                problems: d.problems,
            });
        }
    };
    let base = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let Some(root) = document.as_item().as_table_like() else {
        return Err(ConfigError::whole_file(
            &file,
            "the document is not a table".into(),
        ));
    };
    let cfg = Builder {
        d: &mut d,
        base: &base,
    }
    .build(Section::root(root), &file);
    match cfg {
        Some(cfg) if d.problems.is_empty() => Ok(cfg),
        _ => {
            d.problems.sort_by_key(|p| (p.line, p.column));
            Err(ConfigError {
                file,
                problems: d.problems,
            })
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Phase two: typed values from a document walked by [`Section`].
struct Builder<'a, 'd> {
    d: &'a mut Diagnostics<'d>,
    base: &'a Path,
}

type Span = Option<Range<usize>>;

impl Builder<'_, '_> {
    fn build(&mut self, mut root: Section, file: &Path) -> Option<Config> {
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
        let path = match s.string(self.d, "path") {
            Some((p, span)) => self.path(&p, span, &s.key_path("path")),
            None => {
                self.d.report(
                    s.span(),
                    &s.key_path("path"),
                    "missing: every [[folder]] needs a path",
                );
                None
            }
        };
        let account = self.account_id(&mut s, "account");
        let recipients = self.mailboxes(&mut s, "recipients");
        let allow_empty = s.boolean(self.d, "allow_empty").unwrap_or(false);
        let poll = s.boolean(self.d, "poll").unwrap_or(false);
        let span = s.span();
        s.finish(self.d);
        Some((
            Folder {
                path: path?,
                account,
                recipients,
                allow_empty,
                poll,
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
        let path = match s.string(self.d, "path") {
            Some((p, span)) => self.path(&p, span, &s.key_path("path")),
            None => {
                self.d.report(
                    s.span(),
                    &s.key_path("path"),
                    "missing: every [[token]] needs a path",
                );
                None
            }
        };
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
                let password_file = match password_file {
                    Some((p, span)) => Some(Some(self.path(&p, span, "mail.password_file")?)),
                    None => Some(None),
                };
                let ca_file = match ca_file {
                    Some((p, span)) => Some(Some(self.path(&p, span, "mail.ca_file")?)),
                    None => Some(None),
                };
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
        let ca_file = match s.string(self.d, "ca_file") {
            Some((p, span)) => Some(Some(self.path(&p, span, "apple.ca_file")?)),
            None => Some(None),
        };
        s.finish(self.d);
        apple.probe.base_url = base?;
        apple.probe.timeout = Duration::from_secs(timeout? as u64);
        apple.probe.max_requests_per_sec = rps? as u32;
        apple.probe.ca_file = ca_file?;
        Some(apple)
    }
}

#[cfg(test)]
mod tests;
