//! Copies of one location's token: Apple gives every copy the same `uId`,
//! and only the one that expires last is in use.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::Verdicts;
use crate::token::found::FoundFile;

/// Per uid, the current token's (expiry, fingerprint, path).
pub(super) type Current<'a> = HashMap<&'a str, (DateTime<Utc>, &'a str, &'a Path)>;

/// Tokens with the same Apple `uId` are copies of one location's token:
/// the one that expires last is current. Ties go to the larger fingerprint
/// so exactly one token stays current.
pub(super) fn current_by_uid<'a>(verdicts: &'a Verdicts, files: &[&'a FoundFile]) -> Current<'a> {
    let mut best: Current<'a> = HashMap::new();
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
