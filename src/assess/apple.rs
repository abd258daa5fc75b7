//! What Apple said about a credential: as the prober recorded it, and as
//! the rules and views take it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::evaluate::Verdict;

/// Apple's expiry and the file's may differ by this much before anyone is
/// told (the file's is exact to the second, Apple's may be rounded).
const EXPIRY_MISMATCH_SLACK_SECS: i64 = 86_400;

/// The latest answer from Apple about one token (or the failure to get one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppleRecord {
    pub fingerprint: String,
    pub verified_at: DateTime<Utc>,
    pub verdict: Verdict,
    pub location_name: Option<String>,
    pub uid: Option<String>,
    pub mdm_name: Option<String>,
    pub apple_expires_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// Start of a run of transient failures; None after a success.
    pub first_failure_at: Option<DateTime<Utc>>,
}

/// What Apple said about one token, as `check --json` shows it in `apple`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppleAssessment {
    #[serde(with = "crate::show::serde_rfc3339_opt")]
    pub verified_at: Option<DateTime<Utc>>,
    pub verdict: Verdict,
    pub location_name: Option<String>,
    pub uid: Option<String>,
    pub mdm_name: Option<String>,
    #[serde(with = "crate::show::serde_rfc3339_opt")]
    pub apple_expires_at: Option<DateTime<Utc>>,
    /// Apple's expiry differs from the file's by more than a day.
    #[serde(default)]
    pub expiry_mismatch: bool,
    /// The last failure, while checks keep failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Since when checks of this token keep failing.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::show::serde_rfc3339_opt"
    )]
    pub failing_since: Option<DateTime<Utc>>,
}

impl AppleAssessment {
    pub fn from_record(v: &AppleRecord, file_expiry: DateTime<Utc>) -> AppleAssessment {
        AppleAssessment {
            verified_at: Some(v.verified_at),
            verdict: v.verdict,
            location_name: v.location_name.clone(),
            uid: v.uid.clone(),
            mdm_name: v.mdm_name.clone(),
            apple_expires_at: v.apple_expires_at,
            expiry_mismatch: v.apple_expires_at.is_some_and(|a| {
                (a - file_expiry).num_seconds().abs() > EXPIRY_MISMATCH_SLACK_SECS
            }),
            error: v.error.clone(),
            failing_since: v.first_failure_at,
        }
    }

    /// A token saved as raw JSON: Apple cannot be asked about it.
    pub fn unverifiable() -> AppleAssessment {
        AppleAssessment {
            verified_at: None,
            verdict: Verdict::Unverifiable,
            location_name: None,
            uid: None,
            mdm_name: None,
            apple_expires_at: None,
            expiry_mismatch: false,
            error: Some("saved as raw JSON: the original Base64 that Apple takes is lost".into()),
            failing_since: None,
        }
    }
}
