//! What `check` prints and `status` shows: every folder and token with its
//! evaluation, and the exit code that sums it up. Built purely from a scan,
//! the config and the clock; the JSON keys are a public interface (new keys
//! may be added, none renamed).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use crate::assess::Policy;
use crate::evaluate::{self, Facts, Status};
use crate::token::found::{FolderScan, FolderState, FoundFile, Scan};
// Moved to `show`; the old paths stay while callers move.
pub use crate::show::{rfc3339, show_path};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    #[serde(with = "crate::show::serde_rfc3339")]
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
    #[serde(with = "crate::show::serde_rfc3339_opt")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::show::serde_rfc3339_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    pub days_left: Option<i64>,
    pub account: Option<String>,
    pub status: Status,
    pub detail: Option<String>,
    /// The token file can be read by every user of the host.
    #[serde(default)]
    pub world_readable: bool,
    /// What Apple said when last asked; null when never asked.
    #[serde(default)]
    pub apple: Option<AppleReport>,
    /// Path of the token that replaced this one (status `superseded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
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

// Moved to `assess`; the old name stays for existing callers.
pub use crate::assess::AppleAssessment as AppleReport;
pub use crate::assess::Verdicts;

pub fn build(now: DateTime<Utc>, policy: &Policy, scan: &Scan, verdicts: &Verdicts) -> Report {
    let files: Vec<&FoundFile> = scan.files.iter().collect();
    build_from(now, policy, &scan.folders, &files, verdicts)
}

/// [`build`] from borrowed parts: the daemon's folders keep their files,
/// and copying 100,000 of them for each pass would double its memory.
/// `files` must be de-duplicated already (the scan's `dedup_refs`).
pub fn build_from(
    now: DateTime<Utc>,
    policy: &Policy,
    folders: &[FolderScan],
    files: &[&FoundFile],
    verdicts: &Verdicts,
) -> Report {
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
    let current = current_by_uid(verdicts, files);
    let mut tokens: Vec<TokenReport> = files
        .iter()
        .map(|f| {
            let account = policy
                .accounts
                .account_for(&f.path, f.folder)
                .map(str::to_string);
            let fingerprint = f.fingerprint.as_ref().map(|fp| fp.short().to_string());
            let identity = match &f.fingerprint {
                Some(fp) => fp.as_str().to_string(),
                None => format!("path:{}", show_path(&f.path)),
            };
            let modified_at = f.mtime.map(DateTime::<Utc>::from);
            match &f.content {
                Ok(t) => {
                    let apple = match verdicts.get(t.fingerprint.as_str()) {
                        Some(v) => Some(AppleReport::from_record(v, t.expires_at)),
                        None if !t.verifiable_with_apple() && policy.apple_verify => {
                            Some(AppleReport::unverifiable())
                        }
                        None => None,
                    };
                    let superseded_by = verdicts
                        .get(t.fingerprint.as_str())
                        .and_then(|v| v.uid.as_deref())
                        .and_then(|uid| current.get(uid))
                        .filter(|(_, fp, _)| *fp != t.fingerprint.as_str())
                        .map(|(_, _, path)| show_path(path));
                    let facts = Facts {
                        expires_at: t.expires_at,
                        created_at: t.created_at,
                        account: account.as_deref().and_then(|a| policy.accounts.get(a)),
                        apple: apple
                            .as_ref()
                            .map(|a| a.verdict)
                            .filter(|v| v.is_definitive()),
                        superseded: superseded_by.is_some(),
                    };
                    let e = evaluate::evaluate(now, &facts, &policy.rules);
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
                        apple,
                        superseded_by,
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
                    apple: None,
                    superseded_by: None,
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

/// Tokens with the same Apple `uId` are copies of one location's token:
/// the one that expires last is current. Returns, per uid, the current
/// token's (expiry, fingerprint, path); ties go to the larger fingerprint so
/// exactly one token stays current.
fn current_by_uid<'a>(
    verdicts: &'a Verdicts,
    files: &[&'a FoundFile],
) -> HashMap<&'a str, (DateTime<Utc>, &'a str, &'a std::path::Path)> {
    let mut best: HashMap<&str, (DateTime<Utc>, &str, &std::path::Path)> = HashMap::new();
    for f in files {
        let Some(t) = f.token() else { continue };
        let Some(uid) = verdicts
            .get(t.fingerprint.as_str())
            .and_then(|v| v.uid.as_deref())
        else {
            continue;
        };
        let candidate = (t.expires_at, t.fingerprint.as_str(), f.path.as_path());
        best.entry(uid)
            .and_modify(|b| {
                if (candidate.0, candidate.1) > (b.0, b.1) {
                    *b = candidate;
                }
            })
            .or_insert(candidate);
    }
    best
}

/// `check`'s exit-code thresholds, in days left.
#[derive(Debug, Clone, Copy)]
pub struct CheckPolicy {
    /// Invariant: `critical_days <= warning_days`.
    pub warning_days: i64,
    pub critical_days: i64,
}

/// Monitoring-plugin exit code: 2 critical, 3 unknown (unreadable files,
/// missing/unreadable/empty folders), 1 warning, 0 fine.
pub fn exit_code(report: &Report, check: &CheckPolicy, require_account: bool) -> i32 {
    let critical = report.tokens.iter().any(|t| {
        matches!(t.status, Status::Expired | Status::Invalidated)
            || (t.status != Status::Superseded
                && t.status != Status::Unreadable
                && t.days_left.is_some_and(|d| d <= check.critical_days))
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
            || (require_account && t.account.is_none())
            || t.days_left.is_some_and(|d| d <= check.warning_days)
    });
    i32::from(warning)
}
