//! What scans saw, the daemon's latest status report, the rejected config,
//! and small daemon facts (meta).

use std::hash::{Hash, Hasher};
use std::io::{self, Seek as _, Write as _};

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior, MAIN_DB};
use serde::Serialize;

use super::{get_ts, sqlite, ts, StateError, StateStore};
use crate::assess::GoneCert;

/// Writes the status snapshot (JSON) for [`StateStore::record_scan_with_progress`],
/// which calls it twice: to measure it, then to store it. It must write
/// the same bytes both times.
pub type WriteSnapshot<'a> = dyn Fn(&mut dyn io::Write) -> io::Result<()> + 'a;

/// The buffer between the snapshot's many small writes and the row.
const SNAPSHOT_BUFFER: usize = 64 * 1024;

/// How long a snapshot is, told without keeping it.
fn measure(snapshot: &WriteSnapshot<'_>) -> io::Result<u64> {
    struct Counter(u64);
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut w = io::BufWriter::with_capacity(SNAPSHOT_BUFFER, Counter(0));
    snapshot(&mut w)?;
    Ok(w.into_inner().map_err(io::IntoInnerError::into_error)?.0)
}

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
    /// A push certificate's topic; None for other kinds.
    pub topic: Option<String>,
}

/// A [`SeenToken`] borrowed from whatever the caller holds: what
/// [`StateStore::record_scan_with_progress`] takes, so a pass of 100,000
/// tokens does not copy every path, org and account first (17 MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeenRef<'a> {
    pub fingerprint: &'a str,
    pub path: &'a str,
    pub org_name: &'a str,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub account: Option<&'a str>,
    pub status: &'a str,
    pub detail: Option<&'a str>,
    pub topic: Option<&'a str>,
}

impl SeenToken {
    pub fn as_ref(&self) -> SeenRef<'_> {
        SeenRef {
            fingerprint: &self.fingerprint,
            path: &self.path,
            org_name: &self.org_name,
            created_at: self.created_at,
            expires_at: self.expires_at,
            account: self.account.as_deref(),
            status: &self.status,
            detail: self.detail.as_deref(),
            topic: self.topic.as_deref(),
        }
    }
}

/// What the store last wrote of each present token: a hash of its row by
/// fingerprint. A scan writes only the tokens that appeared, changed or
/// vanished; rewriting 10,000 unchanged rows took most of a pass
/// (BENCHMARKS.md, rename latency).
///
/// Sorted by fingerprint, one entry each: 40 bytes a token. A hash map
/// took 82 MiB for a million (2^21 buckets of 41 bytes, for its load factor),
/// an eighth of the daemon's memory (BENCHMARKS.md, the
/// million-credential rows).
///
/// A 64-bit hash can in theory hide a change (2^-64 a changed row); the next
/// change of that row writes it.
#[derive(Debug, Default)]
pub(super) struct Recorded(Vec<([u8; 32], u64)>);

impl Recorded {
    /// From entries in any order; of a key given twice the last one counts.
    fn from_entries(mut entries: Vec<([u8; 32], u64)>) -> Recorded {
        // Stable: equal keys stay in the order given.
        entries.sort_by_key(|e| e.0);
        let mut out: Vec<([u8; 32], u64)> = Vec::with_capacity(entries.len());
        for e in entries {
            match out.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => out.push(e),
            }
        }
        out.shrink_to_fit();
        Recorded(out)
    }

    fn get(&self, key: &[u8; 32]) -> Option<u64> {
        self.0
            .binary_search_by(|e| e.0.cmp(key))
            .ok()
            .map(|i| self.0[i].1)
    }
}

/// What one [`StateStore::record_scan`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanWrites {
    /// Tokens that appeared, came back or changed.
    pub written: usize,
    /// Tokens no longer seen, now marked absent.
    pub gone: usize,
}

/// Lower-case hex only: a vanished token is marked absent by its key
/// written back as lower-case hex, which must match the stored text.
fn key_of(fingerprint: &str) -> Option<[u8; 32]> {
    if fingerprint.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut key = [0; 32];
    hex::decode_to_slice(fingerprint, &mut key).ok()?;
    Some(key)
}

/// Of the borrowed form only, so a row read back hashes as it was written.
fn row_hash(t: SeenRef<'_>) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

impl StateStore {
    /// One transaction per scan: writes the tokens in `seen` that are new,
    /// back, or changed since the last scan (`first_seen` kept), marks the
    /// ones no longer in `seen` absent, and stores `snapshot_json` (the full
    /// status report, opaque here) with `last_scan_at = now`.
    ///
    /// `last_seen` of a present token is read as the latest scan's time (see
    /// [`StateStore::known_tokens`]), so unchanged rows need no write; a token
    /// that vanishes gets the time of the last scan that saw it. In the file
    /// itself (schema version 1), `last_seen` and `seen_in` of a present row
    /// are those of the scan that last wrote it.
    ///
    /// Fingerprints must be 64 hex digits, as [`crate::token::Fingerprint`]
    /// makes them.
    pub fn record_scan(
        &mut self,
        now: DateTime<Utc>,
        seen: &[SeenToken],
        snapshot_json: &str,
    ) -> Result<ScanWrites, StateError> {
        let snapshot = |w: &mut dyn io::Write| w.write_all(snapshot_json.as_bytes());
        let seen: Vec<SeenRef<'_>> = seen.iter().map(SeenToken::as_ref).collect();
        self.record_scan_with_progress(now, &seen, &snapshot, &|| {})
    }

    /// [`StateStore::record_scan`], calling `progress` for each row written:
    /// the first scan of a million tokens writes a million rows, and the
    /// daemon's watchdog must see that it advances.
    pub fn record_scan_with_progress(
        &mut self,
        now: DateTime<Utc>,
        seen: &[SeenRef<'_>],
        snapshot: &WriteSnapshot<'_>,
        progress: &dyn Fn(),
    ) -> Result<ScanWrites, StateError> {
        // Taken out: a failed write leaves it None, so the next scan starts
        // again from what the database holds.
        let recorded = match self.recorded.take() {
            Some(r) => r,
            None => self.load_recorded()?,
        };
        let mut keyed: Vec<([u8; 32], u64, &SeenRef<'_>)> = Vec::with_capacity(seen.len());
        for t in seen {
            let key = key_of(t.fingerprint).ok_or_else(|| StateError::BadFingerprint {
                path: self.path.clone(),
                fingerprint: t.fingerprint.to_owned(),
            })?;
            keyed.push((key, row_hash(*t), t));
        }
        // In key order: rows inserted at random places in the fingerprint
        // index made SQLite's small page cache spill and re-read pages, 9 s
        // of a first pass over a million tokens. Stable, so that of a
        // fingerprint seen twice the last one is still written last (the
        // key's order is the lower-case hex text's).
        keyed.sort_by_key(|e| e.0);
        let mut changed = Vec::new();
        let mut current = Vec::with_capacity(keyed.len());
        for (n, &(key, hash, t)) in keyed.iter().enumerate() {
            // The same fingerprint twice in one scan: each is written, and
            // the last one counts.
            let again = n > 0 && keyed[n - 1].0 == key;
            if again || recorded.get(&key) != Some(hash) {
                changed.push(t);
            }
            if again {
                current.pop();
            }
            current.push((key, hash));
        }
        drop(keyed);
        let current = Recorded(current);
        // Both sorted: the recorded keys no longer seen, in order.
        let mut gone: Vec<String> = Vec::new();
        let mut seen_keys = current.0.iter().map(|e| &e.0).peekable();
        for (key, _) in &recorded.0 {
            while seen_keys.next_if(|k| *k < key).is_some() {}
            if seen_keys.peek() != Some(&key) {
                gone.push(hex::encode(key));
            }
        }

        // Measured first and streamed into the row: a snapshot of 100,000
        // credentials is about 45 MiB of JSON, and held as a string it was
        // there twice (SQLite copies what it is given to bind). It changes
        // at nearly every pass (each token's days left ticks down at its
        // own time of day), so it is not compared with the last one.
        let len = measure(snapshot).map_err(|cause| StateError::Io {
            path: self.path.clone(),
            action: "write the status snapshot to",
            cause,
        })?;

        let err = || sqlite(&self.path, "record scan");
        let now = ts(now);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err())?;
        let previous_scan: Option<String> = tx
            .query_row(
                "SELECT last_scan_at FROM daemon_status WHERE id = 1",
                [],
                |row| row.get(0),
            )
            .map_err(err())?;
        let seq: i64 = tx
            .query_row(
                "UPDATE daemon_status SET scan_seq = scan_seq + 1, last_scan_at = ?1,
                                          snapshot_json = zeroblob(?2)
                 WHERE id = 1 RETURNING scan_seq",
                params![now, len],
                |row| row.get(0),
            )
            .map_err(err())?;
        let blob = tx
            .blob_open(MAIN_DB, c"daemon_status", c"snapshot_json", 1, false)
            .map_err(err())?;
        let mut w = io::BufWriter::with_capacity(SNAPSHOT_BUFFER, blob);
        let written = snapshot(&mut w)
            .and_then(|()| w.flush())
            .and_then(|()| w.get_mut().stream_position())
            .and_then(|n| {
                if n == len {
                    Ok(())
                } else {
                    Err(io::Error::other(format!(
                        "it came out {n} bytes long, {len} when measured"
                    )))
                }
            });
        if let Err(cause) = written {
            return Err(StateError::Io {
                path: self.path.clone(),
                action: "write the status snapshot to",
                cause,
            });
        }
        drop(w);
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO tokens (fingerprint, path, org_name, created_at, expires_at, account,
                                         status, detail, first_seen, last_seen, present, seen_in,
                                         topic)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, 1, ?10, ?11)
                     ON CONFLICT (fingerprint) DO UPDATE SET
                         path = excluded.path, org_name = excluded.org_name,
                         created_at = excluded.created_at, expires_at = excluded.expires_at,
                         account = excluded.account, status = excluded.status,
                         detail = excluded.detail, last_seen = excluded.last_seen,
                         present = 1, seen_in = excluded.seen_in, topic = excluded.topic",
                )
                .map_err(err())?;
            for t in &changed {
                progress();
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
                        t.topic,
                    ])
                    .map_err(err())?;
            }
            let mut absent = tx
                .prepare_cached(
                    "UPDATE tokens SET present = 0, last_seen = coalesce(?2, last_seen)
                     WHERE fingerprint = ?1 AND present = 1",
                )
                .map_err(err())?;
            for fp in &gone {
                progress();
                absent.execute(params![fp, previous_scan]).map_err(err())?;
            }
        }
        tx.commit().map_err(err())?;
        self.recorded = Some(current);
        Ok(ScanWrites {
            written: changed.len(),
            gone: gone.len(),
        })
    }

    /// The present tokens as the database holds them: after a restart the
    /// first scan writes only what changed while the daemon was down.
    fn load_recorded(&self) -> Result<Recorded, StateError> {
        let read = || -> rusqlite::Result<Recorded> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT fingerprint, path, org_name, created_at, expires_at, account, status, detail,
                        topic
                 FROM tokens WHERE present = 1",
            )?;
            let mut rows = stmt.query([])?;
            let mut entries = Vec::new();
            while let Some(row) = rows.next()? {
                let token = seen_token(row)?;
                // record_scan writes no other kind of fingerprint.
                if let Some(key) = key_of(&token.fingerprint) {
                    entries.push((key, row_hash(token.as_ref())));
                }
            }
            Ok(Recorded::from_entries(entries))
        };
        read().map_err(self.err("read the recorded tokens"))
    }

    /// `(last_scan_at, snapshot_json)` of the latest scan, or None before
    /// the first one.
    pub fn snapshot(&self) -> Result<Option<(DateTime<Utc>, String)>, StateError> {
        self.conn
            .query_row(
                "SELECT last_scan_at, snapshot_json FROM daemon_status
                 WHERE id = 1 AND last_scan_at IS NOT NULL",
                [],
                // Text before this version, a blob written in place since.
                |row| {
                    let json = match row.get_ref(1)? {
                        ValueRef::Text(b) | ValueRef::Blob(b) => {
                            Some(String::from_utf8_lossy(b).into_owned())
                        }
                        _ => None,
                    };
                    Ok((get_ts(row, 0)?, json))
                },
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
            // Unchanged rows are not rewritten by each scan: a present
            // token was last seen by the latest one.
            let mut stmt = self.conn.prepare_cached(
                "SELECT fingerprint, path, org_name, created_at, expires_at, account, status,
                        detail, topic, first_seen,
                        CASE WHEN present = 1
                             THEN coalesce((SELECT last_scan_at FROM daemon_status WHERE id = 1),
                                           last_seen)
                             ELSE last_seen END,
                        present
                 FROM tokens ORDER BY path, fingerprint",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok((
                    seen_token(row)?,
                    get_ts(row, 9)?,
                    get_ts(row, 10)?,
                    row.get(11)?,
                ))
            })?;
            rows.collect()
        };
        read().map_err(self.err("read known tokens"))
    }

    /// The push certificates no longer present that a scan saw at `since`
    /// or later, by path.
    pub fn gone_certificates(&self, since: DateTime<Utc>) -> Result<Vec<GoneCert>, StateError> {
        let read = || -> rusqlite::Result<Vec<_>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT path, topic, created_at, last_seen FROM tokens
                 WHERE present = 0 AND last_seen >= ?1 AND topic IS NOT NULL
                 ORDER BY path, fingerprint",
            )?;
            let rows = stmt.query_map(params![ts(since)], |row| {
                Ok(GoneCert {
                    path: row.get(0)?,
                    topic: row.get(1)?,
                    created_at: get_ts(row, 2)?,
                    last_seen: get_ts(row, 3)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(self.err("read the certificates gone"))
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

/// A [`SeenToken`] from the first nine columns of a `tokens` row.
fn seen_token(row: &Row<'_>) -> rusqlite::Result<SeenToken> {
    Ok(SeenToken {
        fingerprint: row.get(0)?,
        path: row.get(1)?,
        org_name: row.get(2)?,
        created_at: get_ts(row, 3)?,
        expires_at: get_ts(row, 4)?,
        account: row.get(5)?,
        status: row.get(6)?,
        detail: row.get(7)?,
        topic: row.get(8)?,
    })
}
