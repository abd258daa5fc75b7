//! Silences, keyed by full fingerprint (see [`crate::assess::silence`]).
//! Written by `tokenwatch silence`, read by the daemon and `check`.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{get_ts, sqlite, ts, StateError, StateStore};
use crate::assess::{Silence, Silences};

/// A stored silence with what it silences, for `silence list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceRow {
    pub fingerprint: String,
    pub silence: Silence,
    pub created_at: DateTime<Utc>,
    /// Where the credential was last seen; None when no scan stored it.
    pub path: Option<String>,
}

/// A credential a scan stored, as a silence names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownCredential {
    pub fingerprint: String,
    pub path: String,
    pub present: bool,
}

impl StateStore {
    /// Silences `fingerprint` until `silence.until`, replacing an earlier
    /// silence of it.
    pub fn put_silence(
        &mut self,
        fingerprint: &str,
        silence: &Silence,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO silences (fingerprint, until, reason, created_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (fingerprint) DO UPDATE SET
                     until = excluded.until, reason = excluded.reason,
                     created_at = excluded.created_at",
                params![fingerprint, ts(silence.until), silence.reason, ts(now)],
            )
            .map(drop)
            .map_err(sqlite(&self.path, "record a silence"))
    }

    /// Lifts the silence of `fingerprint`; false when there was none.
    pub fn clear_silence(&mut self, fingerprint: &str) -> Result<bool, StateError> {
        self.conn
            .execute(
                "DELETE FROM silences WHERE fingerprint = ?1",
                params![fingerprint],
            )
            .map(|n| n > 0)
            .map_err(sqlite(&self.path, "lift a silence"))
    }

    /// Every stored silence (also those whose date has passed), soonest
    /// end first.
    pub fn silence_rows(&self) -> Result<Vec<SilenceRow>, StateError> {
        let read = || -> rusqlite::Result<Vec<SilenceRow>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT s.fingerprint, s.until, s.reason, s.created_at, t.path
                 FROM silences s LEFT JOIN tokens t ON t.fingerprint = s.fingerprint
                 ORDER BY s.until, s.fingerprint",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok(SilenceRow {
                    fingerprint: row.get(0)?,
                    silence: Silence {
                        until: get_ts(row, 1)?,
                        reason: row.get(2)?,
                    },
                    created_at: get_ts(row, 3)?,
                    path: row.get(4)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(self.err("read silences"))
    }

    /// Every stored silence by fingerprint, for assessing credentials.
    pub fn silences(&self) -> Result<Silences, StateError> {
        Ok(self
            .silence_rows()?
            .into_iter()
            .map(|r| (r.fingerprint, r.silence))
            .collect())
    }

    /// Credentials a scan stored whose fingerprint starts with `prefix`
    /// (lower-case hex), present ones first.
    pub fn credentials_by_prefix(&self, prefix: &str) -> Result<Vec<KnownCredential>, StateError> {
        let read = || -> rusqlite::Result<Vec<KnownCredential>> {
            // substr, not LIKE: a prefix is hex, but LIKE would still
            // treat `_` and `%` in it as patterns.
            let mut stmt = self.conn.prepare_cached(
                "SELECT fingerprint, path, present FROM tokens
                 WHERE substr(fingerprint, 1, length(?1)) = ?1
                 ORDER BY present DESC, fingerprint",
            )?;
            let rows = stmt.query_map(params![prefix], |row| {
                Ok(KnownCredential {
                    fingerprint: row.get(0)?,
                    path: row.get(1)?,
                    present: row.get(2)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(self.err("look up credentials"))
    }
}
