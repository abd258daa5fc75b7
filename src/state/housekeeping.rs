//! Forgetting what no longer matters, so the database stops growing: sent
//! mail older than the window, and the history of tokens gone for longer
//! than it. The daemon runs [`StateStore::housekeep`] once at start-up and
//! daily; a pass reads only the ledger rows of what is present
//! ([`StateStore::ledger_for`]).
//!
//! Which ledger rows belong to what:
//! - rows with a fingerprint belong to one token or unreadable file (its
//!   expiry, expired, invalidated, superseded, Apple and unreadable-file
//!   alerts). A token's rows go, with its verdict and its `tokens` row, once
//!   it has been gone (`present = 0`) since before the window. An
//!   unreadable file is not in `tokens`; its rows go once it is not present
//!   and its latest row is older than the window.
//! - rows without one: a folder's episodes (`folder:PATH:problem:N`,
//!   `folder:PATH:recovered:N`) go all together once the last episode is
//!   closed and every row is older than the window, so the count of open
//!   episodes stays right; digests (`digest:DAY:ADDR`) and Apple outages
//!   (`apple_unreachable:SINCE`) go once older than the window. Any other
//!   row without a fingerprint is kept.
//!
//! A forgotten token that comes back is new: its alerts start afresh (a
//! Message-ID may repeat a mail sent more than the window ago). Rows are
//! kept while a mail in the outbox names one of their keys, since a new
//! mail for the same keys would carry the same Message-ID; pending and
//! parked mails are never deleted here.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, TransactionBehavior};

use super::{get_string_list, get_ts, sqlite, ts, LedgerRow, StateError, StateStore};

/// What one [`StateStore::housekeep`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Sent mails.
    pub mails: usize,
    /// Tokens (their `tokens` row, ledger rows and verdict).
    pub tokens: usize,
    /// Unreadable files no longer present.
    pub files: usize,
    /// Ledger rows in all.
    pub ledger_rows: usize,
}

impl StateStore {
    /// One transaction: deletes sent mail sent before `now - forget_after`,
    /// and the ledger rows, verdicts and `tokens` rows of whatever has been
    /// gone since before then (see the module documentation). `present`
    /// holds the identities (fingerprints, or `path:` identities) in the
    /// daemon's latest pass; they are never touched.
    pub fn housekeep(
        &mut self,
        now: DateTime<Utc>,
        forget_after: Duration,
        present: &HashSet<String>,
    ) -> Result<Forgotten, StateError> {
        let cutoff = ts(now - forget_after);
        let err = || sqlite(&self.path, "forget old state");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err())?;
        let mut out = Forgotten {
            mails: tx
                .execute(
                    "DELETE FROM outbox WHERE state = 'sent' AND coalesce(sent_at, created_at) < ?1",
                    params![cutoff],
                )
                .map_err(err())?,
            ..Forgotten::default()
        };
        let kept: HashSet<String> = {
            let mut stmt = tx.prepare("SELECT alert_keys FROM outbox").map_err(err())?;
            let lists = stmt
                .query_map([], |row| get_string_list(row, 0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(err())?;
            lists.into_iter().flatten().collect()
        };
        {
            let mut keys_of = tx
                .prepare_cached("SELECT key FROM ledger WHERE fingerprint = ?1")
                .map_err(err())?;
            let mut forget_rows = tx
                .prepare_cached("DELETE FROM ledger WHERE fingerprint = ?1")
                .map_err(err())?;
            let mut forget_verdict = tx
                .prepare_cached("DELETE FROM verdicts WHERE fingerprint = ?1")
                .map_err(err())?;
            let mut forget_token = tx
                .prepare_cached("DELETE FROM tokens WHERE fingerprint = ?1")
                .map_err(err())?;
            // Whether a subject's rows may go: none of its keys is in a
            // mail still in the outbox.
            let mut unreferenced = |fp: &str| -> rusqlite::Result<bool> {
                let keys = keys_of
                    .query_map(params![fp], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(!keys.iter().any(|k| kept.contains(k)))
            };

            let gone_tokens: Vec<String> = tx
                .prepare("SELECT fingerprint FROM tokens WHERE present = 0 AND last_seen < ?1")
                .and_then(|mut s| {
                    s.query_map(params![cutoff], |row| row.get(0))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(err())?;
            for fp in gone_tokens {
                if present.contains(&fp) || !unreferenced(&fp).map_err(err())? {
                    continue;
                }
                out.ledger_rows += forget_rows.execute(params![fp]).map_err(err())?;
                forget_verdict.execute(params![fp]).map_err(err())?;
                out.tokens += forget_token.execute(params![fp]).map_err(err())?;
            }

            let gone_files: Vec<String> = tx
                .prepare(
                    "SELECT fingerprint FROM ledger
                     WHERE fingerprint IS NOT NULL
                       AND fingerprint NOT IN (SELECT fingerprint FROM tokens)
                     GROUP BY fingerprint HAVING max(recorded_at) < ?1",
                )
                .and_then(|mut s| {
                    s.query_map(params![cutoff], |row| row.get(0))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(err())?;
            for fp in gone_files {
                if present.contains(&fp) || !unreferenced(&fp).map_err(err())? {
                    continue;
                }
                out.ledger_rows += forget_rows.execute(params![fp]).map_err(err())?;
                forget_verdict.execute(params![fp]).map_err(err())?;
                out.files += 1;
            }
        }

        let hostwide: Vec<(String, DateTime<Utc>)> = tx
            .prepare("SELECT key, recorded_at FROM ledger WHERE fingerprint IS NULL")
            .and_then(|mut s| {
                s.query_map([], |row| Ok((row.get(0)?, get_ts(row, 1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(err())?;
        let old = |at: &DateTime<Utc>| ts(*at) < cutoff;
        let mut doomed: Vec<&str> = Vec::new();
        // Folder path → (problems, recoveries, all old, none kept, keys).
        let mut episodes: BTreeMap<&str, (usize, usize, bool, Vec<&str>)> = BTreeMap::new();
        for (key, at) in &hostwide {
            if key.starts_with("digest:") || key.starts_with("apple_unreachable:") {
                if old(at) && !kept.contains(key) {
                    doomed.push(key);
                }
            } else if let Some(rest) = key.strip_prefix("folder:") {
                // PATH may hold ':'; the episode kind and number never do.
                let mut parts = rest.rsplitn(3, ':');
                let (_, kind, path) = (parts.next(), parts.next(), parts.next());
                let Some(path) = path else { continue };
                let e = episodes.entry(path).or_insert((0, 0, true, Vec::new()));
                match kind {
                    Some("problem") => e.0 += 1,
                    Some("recovered") => e.1 += 1,
                    _ => {}
                }
                e.2 &= old(at) && !kept.contains(key);
                e.3.push(key);
            }
        }
        for (problems, recoveries, all_old, keys) in episodes.into_values() {
            if problems == recoveries && all_old {
                doomed.extend(keys);
            }
        }
        {
            let mut forget = tx
                .prepare_cached("DELETE FROM ledger WHERE key = ?1")
                .map_err(err())?;
            for key in doomed {
                out.ledger_rows += forget.execute(params![key]).map_err(err())?;
            }
        }
        tx.commit().map_err(err())?;
        Ok(out)
    }

    /// The ledger rows a pass needs: those of the identities in `present`
    /// (fingerprints, or `path:` identities) and those of no token (folder
    /// episodes, Apple outages, digests). Sorted by key.
    ///
    /// One walk over the ledger that builds only the rows it keeps: with
    /// every token present, 100,000 indexed look-ups one by one took half
    /// as long again as the walk, and housekeeping keeps the rows of
    /// absent tokens few.
    pub fn ledger_for<'a>(
        &self,
        present: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<LedgerRow>, StateError> {
        let present: HashSet<&str> = present.into_iter().collect();
        let read = || -> rusqlite::Result<Vec<LedgerRow>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT key, fingerprint, recorded_at, mailed FROM ledger ORDER BY key",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let wanted = match row.get_ref(1)?.as_str_or_null()? {
                    None => true,
                    Some(fp) => present.contains(fp),
                };
                if wanted {
                    out.push(LedgerRow {
                        key: row.get(0)?,
                        fingerprint: row.get(1)?,
                        recorded_at: get_ts(row, 2)?,
                        mailed: row.get(3)?,
                    });
                }
            }
            Ok(out)
        };
        read().map_err(self.err("read the alert ledger"))
    }
}

#[cfg(test)]
mod tests;
