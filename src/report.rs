//! What `check` prints and `status` shows: every folder and every token's
//! [`Assessment`], and the exit code that sums it up. A projection of the
//! assessment; the JSON keys are a public interface (new keys may be added,
//! none renamed).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::assess::{self, Assessment, FolderAssessment, Policy};
// The old path of the verdicts map.
pub use crate::assess::Verdicts;
use crate::evaluate::Status;
use crate::token::found::{FolderState, FoundFile, Scan};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    #[serde(with = "crate::show::serde_rfc3339")]
    pub generated_at: DateTime<Utc>,
    pub folders: Vec<FolderReport>,
    pub tokens: Vec<Assessment>,
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

impl From<&FolderAssessment> for FolderReport {
    fn from(f: &FolderAssessment) -> FolderReport {
        FolderReport {
            path: f.path.clone(),
            state: f.state,
            tokens: f.tokens,
            error: f.error.clone(),
            watch: None,
        }
    }
}

/// Assesses a whole scan and projects it (what `check` runs).
pub fn build(now: DateTime<Utc>, policy: &Policy, scan: &Scan, verdicts: &Verdicts) -> Report {
    let files: Vec<&FoundFile> = scan.files.iter().collect();
    let tokens = assess::assess(now, &files, policy, verdicts);
    project(now, &assess::assess_folders(&scan.folders), tokens)
}

/// The view of assessed folders and tokens.
pub fn project(
    now: DateTime<Utc>,
    folders: &[FolderAssessment],
    tokens: Vec<Assessment>,
) -> Report {
    Report {
        generated_at: now,
        folders: folders.iter().map(FolderReport::from).collect(),
        tokens,
    }
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
/// A silenced credential counts again once its silence ends.
pub fn exit_code(report: &Report, check: &CheckPolicy, require_account: bool) -> i32 {
    let counted = || report.tokens.iter().filter(|t| t.silenced.is_none());
    let critical = counted().any(|t| {
        matches!(t.status, Status::Expired | Status::Invalidated)
            || (t.status != Status::Superseded
                && t.status != Status::Unreadable
                && t.days_left.is_some_and(|d| d <= check.critical_days))
    });
    if critical {
        return 2;
    }
    let unknown = counted().any(|t| t.status == Status::Unreadable)
        || report.folders.iter().any(|f| f.state != FolderState::Ok);
    if unknown {
        return 3;
    }
    let warning = counted().any(|t| {
        t.status == Status::Superseded
            || (require_account && t.account.is_none())
            || t.days_left.is_some_and(|d| d <= check.warning_days)
    });
    i32::from(warning)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::KindId;

    /// `status` reads the snapshot the daemon stored, which may have been
    /// written by the release before kinds: its tokens have no `kind`.
    #[test]
    fn a_snapshot_stored_before_kinds_reads_back_with_every_token_a_content_token() {
        let text = include_str!("../tests/fixtures/state/v1-pending-parked.status.json");
        assert!(!text.contains("\"kind\""), "the fixture predates kinds");
        let report: Report = serde_json::from_str(text).unwrap();
        assert_eq!(report.tokens.len(), 5);
        assert!(report.tokens.iter().all(|t| t.kind == KindId::Vpp));
        let again = serde_json::to_value(&report).unwrap();
        assert!(again["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["kind"] == "vpp"));
    }
}
