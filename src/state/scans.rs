//! What scans saw, the daemon's latest status report, the rejected config,
//! and small daemon facts (meta).

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::{get_ts, sqlite, ts, StateError, StateStore};

/// What one scan saw of one readable token (keyed by the 64-hex
/// fingerprint). Public facts only: never the token content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeenToken {
    pub fingerprint: String,
    pub path: String,
    pub org_name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub account: Option<String>,
    pub status: String,
    pub detail: Option<String>,
}

impl StateStore {
    /// One transaction per scan: upserts every seen token (`first_seen`
    /// kept, `last_seen = now`, present), marks tokens not in `seen` absent,
    /// and stores `snapshot_json` (the full status report, opaque here) with
    /// `last_scan_at = now`.
    pub fn record_scan(
        &mut self,
        now: DateTime<Utc>,
        seen: &[SeenToken],
        snapshot_json: &str,
    ) -> Result<(), StateError> {
        let err = || sqlite(&self.path, "record scan");
        let now = ts(now);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err())?;
        let seq: i64 = tx
            .query_row(
                "UPDATE daemon_status SET scan_seq = scan_seq + 1, last_scan_at = ?1, snapshot_json = ?2
                 WHERE id = 1 RETURNING scan_seq",
                params![now, snapshot_json],
                |row| row.get(0),
            )
            .map_err(err())?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO tokens (fingerprint, path, org_name, created_at, expires_at, account,
                                         status, detail, first_seen, last_seen, present, seen_in)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, 1, ?10)
                     ON CONFLICT (fingerprint) DO UPDATE SET
                         path = excluded.path, org_name = excluded.org_name,
                         created_at = excluded.created_at, expires_at = excluded.expires_at,
                         account = excluded.account, status = excluded.status,
                         detail = excluded.detail, last_seen = excluded.last_seen,
                         present = 1, seen_in = excluded.seen_in",
                )
                .map_err(err())?;
            for t in seen {
                upsert
                    .execute(params![
                        t.fingerprint,
                        t.path,
                        t.org_name,
                        ts(t.created_at),
                        ts(t.expires_at),
                        t.account,
                        t.status,
                        t.detail,
                        now,
                        seq,
                    ])
                    .map_err(err())?;
            }
        }
        tx.execute(
            "UPDATE tokens SET present = 0 WHERE present = 1 AND seen_in <> ?1",
            params![seq],
        )
        .map_err(err())?;
        tx.commit().map_err(err())
    }

    /// `(last_scan_at, snapshot_json)` of the latest scan, or None before
    /// the first one.
    pub fn snapshot(&self) -> Result<Option<(DateTime<Utc>, String)>, StateError> {
        self.conn
            .query_row(
                "SELECT last_scan_at, snapshot_json FROM daemon_status
                 WHERE id = 1 AND last_scan_at IS NOT NULL",
                [],
                |row| Ok((get_ts(row, 0)?, row.get::<_, Option<String>>(1)?)),
            )
            .optional()
            .map(|found| found.map(|(at, json)| (at, json.unwrap_or_default())))
            .map_err(self.err("read the latest scan"))
    }

    /// Every token ever seen, sorted by path: `(token, first_seen,
    /// last_seen, present)`.
    #[allow(clippy::type_complexity)]
    pub fn known_tokens(
        &self,
    ) -> Result<Vec<(SeenToken, DateTime<Utc>, DateTime<Utc>, bool)>, StateError> {
        let read = || -> rusqlite::Result<Vec<_>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT fingerprint, path, org_name, created_at, expires_at, account, status,
                        detail, first_seen, last_seen, present
                 FROM tokens ORDER BY path, fingerprint",
            )?;
            let rows = stmt.query_map([], |row| {
                let token = SeenToken {
                    fingerprint: row.get(0)?,
                    path: row.get(1)?,
                    org_name: row.get(2)?,
                    created_at: get_ts(row, 3)?,
                    expires_at: get_ts(row, 4)?,
                    account: row.get(5)?,
                    status: row.get(6)?,
                    detail: row.get(7)?,
                };
                Ok((token, get_ts(row, 8)?, get_ts(row, 9)?, row.get(10)?))
            })?;
            rows.collect()
        };
        read().map_err(self.err("read known tokens"))
    }

    /// Records the errors of the config the daemon rejected last (one per
    /// line), or clears them with None once a valid config is loaded.
    pub fn set_config_error(&mut self, errors: Option<&[String]>) -> Result<(), StateError> {
        let json = errors.map(super::string_list);
        self.conn
            .execute(
                "UPDATE daemon_status SET config_error = ?1 WHERE id = 1",
                params![json],
            )
            .map(drop)
            .map_err(sqlite(&self.path, "record the config error"))
    }

    pub fn config_error(&self) -> Result<Option<Vec<String>>, StateError> {
        self.conn
            .query_row(
                "SELECT config_error FROM daemon_status WHERE id = 1 AND config_error IS NOT NULL",
                [],
                |row| super::get_string_list(row, 0),
            )
            .optional()
            .map_err(self.err("read the config error"))
    }

    /// Sets (or with None deletes) a daemon fact, e.g.
    /// `"watch_mode:/srv/tokens"` = `"inotify"`.
    pub fn set_meta(&mut self, key: &str, value: Option<&str>) -> Result<(), StateError> {
        let result = match value {
            Some(value) => self.conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            ),
            None => self
                .conn
                .execute("DELETE FROM meta WHERE key = ?1", params![key]),
        };
        result
            .map(drop)
            .map_err(sqlite(&self.path, "record a daemon fact"))
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StateError> {
        self.conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                params![key],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.err("read a daemon fact"))
    }

    /// Every fact whose key starts with `prefix` (taken literally), sorted
    /// by key.
    pub fn meta_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, StateError> {
        let read = || -> rusqlite::Result<Vec<_>> {
            // substr, not LIKE: '%' and '_' in a folder path are literal.
            let mut stmt = self.conn.prepare_cached(
                "SELECT key, value FROM meta WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
            )?;
            let rows = stmt.query_map(params![prefix], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        };
        read().map_err(self.err("read daemon facts"))
    }
}
