//! What `check` prints and `status` shows: every folder and token with its
//! evaluation, and the exit code that sums it up. Built purely from a scan,
//! the config and the clock; the JSON keys are a public interface (new keys
//! may be added, none renamed).

use std::os::unix::ffi::OsStrExt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::evaluate::{self, Facts, Policy, Status};
use crate::scan::{FolderScan, FolderState, FoundFile, Scan};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    #[serde(with = "rfc3339")]
    pub generated_at: DateTime<Utc>,
    pub folders: Vec<FolderReport>,
    pub tokens: Vec<TokenReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FolderReport {
    pub path: String,
    pub state: FolderState,
    pub tokens: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How the daemon watches it: "inotify", "poll", ... (status only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenReport {
    pub path: String,
    pub org_name: Option<String>,
    /// First 12 hex digits of the SHA-256 fingerprint.
    pub fingerprint: Option<String>,
    #[serde(with = "rfc3339_opt")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    pub days_left: Option<i64>,
    pub account: Option<String>,
    pub status: Status,
    pub detail: Option<String>,
    /// The token file can be read by every user of the host.
    #[serde(default)]
    pub world_readable: bool,
    /// Full fingerprint of the content, or `path:<path>` when nothing could
    /// be read: what alert history follows.
    #[serde(skip)]
    pub identity: String,
    #[serde(skip)]
    pub modified_at: Option<DateTime<Utc>>,
    /// Index of the configured folder.
    #[serde(skip)]
    pub folder: usize,
}

/// Lossy for display only; token paths are identified by bytes elsewhere.
pub fn show_path(p: &std::path::Path) -> String {
    String::from_utf8_lossy(p.as_os_str().as_bytes()).into_owned()
}

pub fn build(now: DateTime<Utc>, cfg: &Config, scan: &Scan) -> Report {
    let files: Vec<&FoundFile> = scan.files.iter().collect();
    build_from(now, cfg, &scan.folders, &files)
}

/// [`build`] from borrowed parts: the daemon's folders keep their files,
/// and copying 100,000 of them for each pass would double its memory.
/// `files` must be de-duplicated already ([`crate::scan::dedup_refs`]).
pub fn build_from(
    now: DateTime<Utc>,
    cfg: &Config,
    folders: &[FolderScan],
    files: &[&FoundFile],
) -> Report {
    let policy = Policy::from_config(cfg);
    let folders = folders
        .iter()
        .map(|f| FolderReport {
            path: show_path(&f.path),
            state: f.state,
            tokens: f.tokens,
            error: f.error.clone(),
            watch: None,
        })
        .collect();
    let mut tokens: Vec<TokenReport> = files
        .iter()
        .map(|f| {
            let folder = cfg.folders.get(f.folder);
            let account = cfg.account_for(&f.path, folder).map(str::to_string);
            let fingerprint = f.fingerprint.as_ref().map(|fp| fp.short().to_string());
            let identity = match &f.fingerprint {
                Some(fp) => fp.as_str().to_string(),
                None => format!("path:{}", show_path(&f.path)),
            };
            let modified_at = f.mtime.map(DateTime::<Utc>::from);
            match &f.content {
                Ok(t) => {
                    let facts = Facts {
                        expires_at: t.expires_at,
                        created_at: t.created_at,
                        account: account.as_deref().and_then(|a| cfg.account(a)),
                        apple: None,
                        superseded: false,
                    };
                    let e = evaluate::evaluate(now, &facts, &policy);
                    TokenReport {
                        path: show_path(&f.path),
                        org_name: Some(t.org_name.clone()),
                        fingerprint,
                        created_at: Some(t.created_at),
                        expires_at: Some(t.expires_at),
                        days_left: Some(e.days_left),
                        account,
                        status: e.status,
                        detail: e.detail,
                        world_readable: f.world_readable,
                        identity,
                        modified_at,
                        folder: f.folder,
                    }
                }
                Err(err) => TokenReport {
                    path: show_path(&f.path),
                    org_name: None,
                    fingerprint,
                    created_at: None,
                    expires_at: None,
                    days_left: None,
                    account,
                    status: Status::Unreadable,
                    detail: Some(err.to_string()),
                    world_readable: f.world_readable,
                    identity,
                    modified_at,
                    folder: f.folder,
                },
            }
        })
        .collect();
    // Soonest expiry first; unreadable files (no date) last, by path.
    tokens.sort_by(|a, b| {
        (a.expires_at.is_none(), a.expires_at, &a.path).cmp(&(
            b.expires_at.is_none(),
            b.expires_at,
            &b.path,
        ))
    });
    Report {
        generated_at: now,
        folders,
        tokens,
    }
}

/// Monitoring-plugin exit code: 2 critical, 3 unknown (unreadable files,
/// missing/unreadable/empty folders), 1 warning, 0 fine.
pub fn exit_code(report: &Report, cfg: &Config) -> i32 {
    let critical = report.tokens.iter().any(|t| {
        matches!(t.status, Status::Expired | Status::Invalidated)
            || (t.status != Status::Superseded
                && t.status != Status::Unreadable
                && t.days_left.is_some_and(|d| d <= cfg.check.critical_days))
    });
    if critical {
        return 2;
    }
    let unknown = report.tokens.iter().any(|t| t.status == Status::Unreadable)
        || report.folders.iter().any(|f| f.state != FolderState::Ok);
    if unknown {
        return 3;
    }
    let warning = report.tokens.iter().any(|t| {
        t.status == Status::Superseded
            || (cfg.alerts.require_account && t.account.is_none())
            || t.days_left.is_some_and(|d| d <= cfg.check.warning_days)
    });
    i32::from(warning)
}

pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(d)
    }
}

mod rfc3339_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::rfc3339(t)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<DateTime<Utc>>::deserialize(d)
    }
}
