//! What Apple said about a credential, as the prober recorded it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::evaluate::Verdict;

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
