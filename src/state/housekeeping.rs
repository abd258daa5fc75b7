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
use rusqlite::{params, Transaction, TransactionBehavior};

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

/// Rows (sent mails, fingerprints, ledger keys) forgotten per transaction.
/// Each transaction holds the write lock: after an upgrade with years of
/// rows, one transaction for all of them kept the sender and the prober
/// from writing for as long as it ran. A few thousand take milliseconds.
pub const HOUSEKEEPING_BATCH: usize = 2_000;

impl StateStore {
    /// Deletes sent mail sent before `now - forget_after`, and the ledger
    /// rows, verdicts and `tokens` rows of whatever has been gone since
    /// before then (see the module documentation). `present` holds the
    /// identities (fingerprints, or `path:` identities) in the daemon's
    /// latest pass; they are never touched.
    pub fn housekeep(
        &mut self,
        now: DateTime<Utc>,
        forget_after: Duration,
        present: &HashSet<String>,
    ) -> Result<Forgotten, StateError> {
        self.housekeep_with_progress(now, forget_after, present, &|| {})
    }

    /// [`StateStore::housekeep`], calling `progress` for each mail batch,
    /// fingerprint and key it looks at, so that the daemon's watchdog sees
    /// it advance however many rows there are.
    pub fn housekeep_with_progress(
        &mut self,
        now: DateTime<Utc>,
        forget_after: Duration,
        present: &HashSet<String>,
        progress: &dyn Fn(),
    ) -> Result<Forgotten, StateError> {
        self.housekeep_in_batches(now, forget_after, present, HOUSEKEEPING_BATCH, progress)
    }

    /// Works in transactions of at most `batch` rows (a folder's episodes
    /// always go in one). Every transaction checks again, under the write
    /// lock, that what it deletes may still go: between two of them a pass
    /// may have seen a token come back, or the sender queued a mail naming
    /// a key. A failure keeps what earlier transactions deleted, which was
    /// due to go anyway.
    pub(crate) fn housekeep_in_batches(
        &mut self,
        now: DateTime<Utc>,
        forget_after: Duration,
        present: &HashSet<String>,
        batch: usize,
        progress: &dyn Fn(),
    ) -> Result<Forgotten, StateError> {
        let batch = batch.max(1);
        let cutoff = ts(now - forget_after);
        let path = self.path.clone();
        let err = || sqlite(&path, "forget old state");
        let mut out = Forgotten::default();

        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err())?;
            let n = tx
                .execute(
                    "DELETE FROM outbox WHERE id IN (
                         SELECT id FROM outbox
                         WHERE state = 'sent' AND coalesce(sent_at, created_at) < ?1
                         LIMIT ?2)",
                    params![cutoff, batch as i64],
                )
                .map_err(err())?;
            tx.commit().map_err(err())?;
            progress();
            out.mails += n;
            if n < batch {
                break;
            }
        }

        let (n, rows) = forget_gone(
            &mut self.conn,
            "SELECT fingerprint FROM tokens WHERE present = 0 AND last_seen < ?1",
            batch,
            &cutoff,
            present,
            "SELECT EXISTS (SELECT 1 FROM tokens
             WHERE fingerprint = ?1 AND present = 0 AND last_seen < ?2)",
            progress,
            |tx, fp| {
                tx.prepare_cached("DELETE FROM tokens WHERE fingerprint = ?1")?
                    .execute(params![fp])
                    .map(drop)
            },
        )
        .map_err(err())?;
        out.tokens += n;
        out.ledger_rows += rows;

        let (n, rows) = forget_gone(
            &mut self.conn,
            "SELECT fingerprint FROM ledger
             WHERE fingerprint IS NOT NULL
               AND fingerprint NOT IN (SELECT fingerprint FROM tokens)
             GROUP BY fingerprint HAVING max(recorded_at) < ?1",
            batch,
            &cutoff,
            present,
            "SELECT NOT EXISTS (SELECT 1 FROM tokens WHERE fingerprint = ?1)
                AND (SELECT max(recorded_at) FROM ledger WHERE fingerprint = ?1) < ?2",
            progress,
            |_, _| Ok(()),
        )
        .map_err(err())?;
        out.files += n;
        out.ledger_rows += rows;

        // Rows of no token: each transaction works out again which may go
        // (a folder's episodes only all together), and deletes whole
        // groups until it has deleted about `batch` rows.
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err())?;
            let kept = outbox_keys(&tx).map_err(err())?;
            let groups = doomed_hostwide(&tx, &kept, &cutoff, progress).map_err(err())?;
            let mut deleted = 0;
            let mut more = false;
            {
                let mut forget = tx
                    .prepare_cached("DELETE FROM ledger WHERE key = ?1")
                    .map_err(err())?;
                for group in &groups {
                    if deleted >= batch {
                        more = true;
                        break;
                    }
                    for key in group {
                        progress();
                        deleted += forget.execute(params![key]).map_err(err())?;
                    }
                }
            }
            tx.commit().map_err(err())?;
            progress();
            out.ledger_rows += deleted;
            if !more {
                break;
            }
        }
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

/// Forgets, in transactions of at most `batch`, each fingerprint the
/// `candidates` query (`?1` the cutoff) lists that is not present, whose ledger rows no mail in the outbox names, and that
/// `still_gone` (`?1` the fingerprint, `?2` the cutoff; NULL counts as no)
/// still confirms under the write lock: its ledger rows and verdict, and
/// whatever `also` deletes. Returns how many were forgotten and the ledger
/// rows that went with them.
#[allow(clippy::too_many_arguments)]
fn forget_gone(
    conn: &mut rusqlite::Connection,
    candidates: &str,
    batch: usize,
    cutoff: &str,
    present: &HashSet<String>,
    still_gone: &str,
    progress: &dyn Fn(),
    mut also: impl FnMut(&Transaction<'_>, &str) -> rusqlite::Result<()>,
) -> rusqlite::Result<(usize, usize)> {
    let candidates: Vec<String> = conn
        .prepare(candidates)?
        .query_map(params![cutoff], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let (mut forgotten, mut ledger_rows) = (0, 0);
    for chunk in candidates.chunks(batch) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let kept = outbox_keys(&tx)?;
        for fp in chunk {
            progress();
            let gone = tx
                .prepare_cached(still_gone)?
                .query_row(params![fp, cutoff], |row| {
                    Ok(row.get::<_, Option<bool>>(0)?.unwrap_or(false))
                })?;
            if !gone || present.contains(fp) || !unreferenced(&tx, &kept, fp)? {
                continue;
            }
            ledger_rows += forget_subject(&tx, fp)?;
            also(&tx, fp)?;
            forgotten += 1;
        }
        tx.commit()?;
        progress();
    }
    Ok((forgotten, ledger_rows))
}

/// Every ledger key a mail in the outbox names: their rows are kept.
fn outbox_keys(tx: &Transaction<'_>) -> rusqlite::Result<HashSet<String>> {
    let mut stmt = tx.prepare_cached("SELECT alert_keys FROM outbox")?;
    let lists = stmt
        .query_map([], |row| get_string_list(row, 0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(lists.into_iter().flatten().collect())
}

/// Whether a subject's rows may go: none of its keys is in a mail still in
/// the outbox.
fn unreferenced(tx: &Transaction<'_>, kept: &HashSet<String>, fp: &str) -> rusqlite::Result<bool> {
    let mut stmt = tx.prepare_cached("SELECT key FROM ledger WHERE fingerprint = ?1")?;
    let keys = stmt
        .query_map(params![fp], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(!keys.iter().any(|k| kept.contains(k)))
}

/// Deletes a token's or unreadable file's ledger rows and verdict; returns
/// the number of ledger rows.
fn forget_subject(tx: &Transaction<'_>, fp: &str) -> rusqlite::Result<usize> {
    let rows = tx
        .prepare_cached("DELETE FROM ledger WHERE fingerprint = ?1")?
        .execute(params![fp])?;
    tx.prepare_cached("DELETE FROM verdicts WHERE fingerprint = ?1")?
        .execute(params![fp])?;
    tx.prepare_cached("DELETE FROM silences WHERE fingerprint = ?1")?
        .execute(params![fp])?;
    Ok(rows)
}

/// The rows of no token that may go, in groups that go together: one key
/// for a digest or an Apple outage, all of a folder's episodes.
fn doomed_hostwide(
    tx: &Transaction<'_>,
    kept: &HashSet<String>,
    cutoff: &str,
    progress: &dyn Fn(),
) -> rusqlite::Result<Vec<Vec<String>>> {
    let hostwide: Vec<(String, DateTime<Utc>)> = tx
        .prepare_cached("SELECT key, recorded_at FROM ledger WHERE fingerprint IS NULL")?
        .query_map([], |row| Ok((row.get(0)?, get_ts(row, 1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let old = |at: &DateTime<Utc>| ts(*at).as_str() < cutoff;
    let mut doomed: Vec<Vec<String>> = Vec::new();
    // Folder path → (problems, recoveries, all old and none kept, keys).
    let mut episodes: BTreeMap<&str, (usize, usize, bool, Vec<String>)> = BTreeMap::new();
    for (key, at) in &hostwide {
        progress();
        if key.starts_with("digest:") || key.starts_with("apple_unreachable:") {
            if old(at) && !kept.contains(key) {
                doomed.push(vec![key.clone()]);
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
            e.3.push(key.clone());
        }
    }
    for (problems, recoveries, all_old, keys) in episodes.into_values() {
        if problems == recoveries && all_old {
            doomed.push(keys);
        }
    }
    Ok(doomed)
}

#[cfg(test)]
mod tests;
