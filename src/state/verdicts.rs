//! Apple's verdicts per token fingerprint: what the prober last learnt, kept
//! so `check`, the daemon and its mails agree on a revoked token.

use rusqlite::{params, OptionalExtension, Row};

use super::{get_opt_ts, get_ts, sqlite, ts, StateError, StateStore};
use crate::evaluate::Verdict;

use crate::assess::{AppleRecord, Verdicts};
// The record is a core type; the old name stays for existing callers.
pub use crate::assess::AppleRecord as StoredVerdict;

impl StateStore {
    /// Stores the verdict, replacing the token's previous one.
    pub fn put_verdict(&mut self, v: &AppleRecord) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO verdicts (fingerprint, verified_at, verdict, location_name, uid,
                                       mdm_name, apple_expires_at, error, first_failure_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (fingerprint) DO UPDATE SET
                     verified_at = excluded.verified_at, verdict = excluded.verdict,
                     location_name = excluded.location_name, uid = excluded.uid,
                     mdm_name = excluded.mdm_name, apple_expires_at = excluded.apple_expires_at,
                     error = excluded.error, first_failure_at = excluded.first_failure_at",
                params![
                    v.fingerprint,
                    ts(v.verified_at),
                    v.verdict.as_str(),
                    v.location_name,
                    v.uid,
                    v.mdm_name,
                    v.apple_expires_at.map(ts),
                    v.error,
                    v.first_failure_at.map(ts),
                ],
            )
            .map(drop)
            .map_err(sqlite(&self.path, "record an Apple verdict"))
    }

    /// The stored verdict of one token, if any.
    pub fn verdict(&self, fingerprint: &str) -> Result<Option<AppleRecord>, StateError> {
        self.conn
            .query_row(
                "SELECT fingerprint, verified_at, verdict, location_name, uid, mdm_name,
                        apple_expires_at, error, first_failure_at
                 FROM verdicts WHERE fingerprint = ?1",
                params![fingerprint],
                verdict_from_row,
            )
            .optional()
            .map_err(self.err("read an Apple verdict"))?
            .map(|row| self.known(row))
            .transpose()
    }

    /// Every stored verdict, sorted by fingerprint.
    pub fn verdicts(&self) -> Result<Vec<AppleRecord>, StateError> {
        let read = || -> rusqlite::Result<Vec<_>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT fingerprint, verified_at, verdict, location_name, uid, mdm_name,
                        apple_expires_at, error, first_failure_at
                 FROM verdicts ORDER BY fingerprint",
            )?;
            let rows = stmt.query_map([], verdict_from_row)?;
            rows.collect()
        };
        read()
            .map_err(self.err("read Apple verdicts"))?
            .into_iter()
            .map(|row| self.known(row))
            .collect()
    }

    /// Every stored verdict, keyed by full fingerprint.
    pub fn verdicts_by_fingerprint(&self) -> Result<Verdicts, StateError> {
        Ok(self
            .verdicts()?
            .into_iter()
            .map(|v| (v.fingerprint.clone(), v))
            .collect())
    }

    fn known(&self, row: RowVerdict) -> Result<AppleRecord, StateError> {
        row.map_err(|(fingerprint, text)| StateError::UnknownVerdict {
            path: self.path.clone(),
            fingerprint,
            text,
        })
    }
}

/// A row, or its fingerprint and verdict text when that text is no
/// [`Verdict`]: a newer tokenwatch may have written a word this one lacks,
/// and the error must say which token it is.
type RowVerdict = Result<AppleRecord, (String, String)>;

fn verdict_from_row(row: &Row<'_>) -> rusqlite::Result<RowVerdict> {
    let fingerprint: String = row.get(0)?;
    let text: String = row.get(2)?;
    let Ok(verdict) = text.parse::<Verdict>() else {
        return Ok(Err((fingerprint, text)));
    };
    Ok(Ok(AppleRecord {
        fingerprint,
        verified_at: get_ts(row, 1)?,
        verdict,
        location_name: row.get(3)?,
        uid: row.get(4)?,
        mdm_name: row.get(5)?,
        apple_expires_at: get_opt_ts(row, 6)?,
        error: row.get(7)?,
        first_failure_at: get_opt_ts(row, 8)?,
    }))
}
