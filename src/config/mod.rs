//! Configuration: loading, validating, defaults, and errors located by
//! file, line and column.
//!
//! Loading has two phases. Phase one ([`doc`]) walks the TOML document and
//! reports every unknown key and wrong type; phase two (here) turns the
//! values into typed settings (time zones, cron schedules, mailboxes,
//! paths) and checks how they fit together. Both phases collect every
//! problem before failing, so a user fixes a config in one round.

mod build;
mod doc;
pub mod edit;
mod policies;

use std::fmt;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use lettre::message::Mailbox;

use crate::mail::transport::TransportSettings;
use crate::probe::ProbeSettings;
use crate::scan::SharedKey;
use crate::schedule::CronSchedule;
use crate::token::ade::AdeKey;
use crate::token::KindId;
use crate::webhook::WebhookSettings;
use build::Builder;
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
const DEFAULT_FORGET_AFTER_DAYS: u32 = 400;
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
    /// `[[webhook]]`, in config order.
    pub webhooks: Vec<WebhookSettings>,
    /// `[metrics] listen`: where `/metrics` and `/healthz` are served; off
    /// when absent.
    pub metrics_listen: Option<std::net::SocketAddr>,
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
    /// Webhooks every alert also goes to, by name.
    pub webhooks: Vec<String>,
    /// Sent mail older than this, and the history of tokens gone for
    /// longer, is deleted by the daily housekeeping.
    pub forget_after_days: u32,
}

// The view owns its exit-code thresholds; the config fills them.
pub use crate::report::CheckPolicy;

#[derive(Debug, Clone)]
pub struct Folder {
    /// Absolute (resolved against the config file's folder), not canonicalised.
    pub path: PathBuf,
    pub account: Option<String>,
    pub recipients: Vec<Mailbox>,
    pub allow_empty: bool,
    pub poll: bool,
    /// Follow symlinks below it wherever they lead; otherwise a link whose
    /// target is outside every configured folder is reported, not followed.
    pub follow_links: bool,
    /// The credential kinds looked for; content tokens by default.
    pub kinds: Vec<KindId>,
    /// The MDM (Apple's `mdmInfo.name`) its content tokens should be used
    /// by; another one is reported.
    pub expected_mdm: Option<String>,
    /// Webhooks told about this folder's credentials, besides `[alerts]`'s.
    pub webhooks: Vec<String>,
    /// `ade_key`: the MDM's key and certificate for its ADE server tokens.
    pub ade_key: Option<KeyFile>,
}

/// A key file a setting names, and the key once [`load`] has read it
/// ([`parse`] reads no other file, so it leaves `key` empty).
#[derive(Clone)]
pub struct KeyFile {
    pub path: PathBuf,
    pub key: Option<SharedKey>,
    /// Where the setting is, for a problem with the file it names.
    span: Option<std::ops::Range<usize>>,
}

impl KeyFile {
    pub(crate) fn new(path: PathBuf, span: Option<std::ops::Range<usize>>) -> KeyFile {
        KeyFile {
            path,
            key: None,
            span,
        }
    }
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("path", &self.path)
            .field("read", &self.key.is_some())
            .finish()
    }
}

/// Largest key file read: a key and a certificate chain fit in a few KiB.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Reads every folder's `ade_key`, reporting each file that cannot serve
/// as a problem of its key.
fn read_keys(cfg: &mut Config, text: &str) -> Result<(), ConfigError> {
    let mut d = Diagnostics::new(text);
    for (i, folder) in cfg.folders.iter_mut().enumerate() {
        let Some(file) = folder.ade_key.as_mut() else {
            continue;
        };
        let read = crate::secret::read_private_file(
            &file.path,
            MAX_KEY_FILE_BYTES,
            "a key file holds the MDM's private key and certificate only",
        )
        .and_then(|pem| AdeKey::from_pem(&pem).map_err(|e| e.to_string()));
        match read {
            Ok(key) => file.key = Some(SharedKey(std::sync::Arc::new(key))),
            Err(cause) => d.report(
                file.span.clone(),
                &format!("folder[{}].ade_key", i + 1),
                format!("{}: {cause}", file.path.display()),
            ),
        }
    }
    if d.problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError {
            file: cfg.file.clone(),
            problems: d.problems,
        })
    }
}

// The rules own what an account is; the config only names them.
pub use crate::evaluate::Account;

/// A per-token account link (`[[token]]`), which wins over the folder's.
#[derive(Debug, Clone)]
pub struct TokenLink {
    pub path: PathBuf,
    pub account: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedules {
    pub check: CronSchedule,
    pub digest: Option<CronSchedule>,
    pub verify: CronSchedule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
    let mut cfg = parse(&text, &file)?;
    read_keys(&mut cfg, &text)?;
    Ok(cfg)
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

#[cfg(test)]
mod tests;
