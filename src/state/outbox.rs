//! The alert ledger and the outbox.
//!
//! An alert is written (ledger row + outbox row, one transaction) before any
//! delivery is attempted, and marked sent only after the receiver accepted
//! it: a crash loses nothing, and the only possible duplicate is a message
//! accepted right before the crash, carrying the same Message-ID.
//!
//! The outbox does not know how a channel delivers: a row holds the
//! channel's name, its recipients, a title for people and an opaque
//! payload (JSON) that only that channel reads.
//!
//! Outbox states: `pending` (with `next_try_at`), `parked` (given up until
//! ops retry it), `sent` (kept for the record and the counters).

use chrono::{DateTime, Utc};
use rusqlite::{params, Row, TransactionBehavior};
use serde::Serialize;

use super::{get_opt_ts, get_string_list, get_ts, sqlite, string_list, ts, StateError, StateStore};

/// One alert counted as done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerRow {
    pub key: String,
    pub fingerprint: Option<String>,
    pub recorded_at: DateTime<Utc>,
    /// False when the alert was counted as done without a mail (e.g. a stale
    /// threshold skipped for a more urgent one).
    pub mailed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewLedgerRow {
    pub key: String,
    pub fingerprint: Option<String>,
    /// False = "counted as done" without a mail (e.g. stale thresholds).
    pub mailed: bool,
}

/// One delivery attempt, as it is written to its outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub outcome: Outcome,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; the receiver's answer.
    Sent { answer: String },
    /// Not accepted: retry at `next`, or park (None).
    Failed {
        error: String,
        next: Option<DateTime<Utc>>,
    },
}

/// A rendered message to queue. `message_id` is unique in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewRow {
    /// The message's stable id and the idempotency key of its delivery:
    /// every attempt, on any channel, carries this same id.
    pub message_id: String,
    /// The ledger keys this message delivers; a message whose keys are all
    /// in the ledger already is not queued again.
    pub alert_keys: Vec<String>,
    /// The channel that delivers it ("mail").
    pub channel: String,
    /// The channel's addresses, e.g. mailboxes `Ops <ops@example.com>`.
    pub recipients: Vec<String>,
    /// One line for `status` and logs (a mail's subject).
    pub title: String,
    /// What the channel needs to deliver it, in its own JSON shape.
    pub payload: String,
    pub date: DateTime<Utc>,
}

/// An unsent (or, inside the store, sent) message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub row: NewRow,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    /// Set while pending; None once parked.
    pub next_try_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub parked: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub sent: u64,
    pub pending: u64,
    pub parked: u64,
}

/// Unsent messages, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxTally {
    /// (state: `pending` or `parked`, channel, how many)
    pub counts: Vec<(String, String, i64)>,
    pub oldest_pending: Option<DateTime<Utc>>,
}

const ROW_COLUMNS: &str = "id, message_id, alert_keys, channel, recipients, title, payload,
    date, created_at, attempts, next_try_at, last_error, state";

fn outbox_row(row: &Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: row.get(0)?,
        row: NewRow {
            message_id: row.get(1)?,
            alert_keys: get_string_list(row, 2)?,
            channel: row.get(3)?,
            recipients: get_string_list(row, 4)?,
            title: row.get(5)?,
            payload: row.get(6)?,
            date: get_ts(row, 7)?,
        },
        created_at: get_ts(row, 8)?,
        attempts: row.get(9)?,
        next_try_at: get_opt_ts(row, 10)?,
        last_error: row.get(11)?,
        parked: row.get::<_, String>(12)? == "parked",
    })
}

impl StateStore {
    /// Every ledger row, sorted by key. The alert planner is pure and gets
    /// the whole ledger.
    pub fn ledger(&self) -> Result<Vec<LedgerRow>, StateError> {
        let read = || -> rusqlite::Result<Vec<_>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT key, fingerprint, recorded_at, mailed FROM ledger ORDER BY key",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok(LedgerRow {
                    key: row.get(0)?,
                    fingerprint: row.get(1)?,
                    recorded_at: get_ts(row, 2)?,
                    mailed: row.get(3)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(self.err("read the alert ledger"))
    }

    /// ONE transaction: inserts the ledger rows (a key already there is kept
    /// as it was: the ledger is the de-duplication) and queues the messages,
    /// due at once. A message whose `alert_keys` were all in the ledger
    /// before this call is skipped, so a replayed plan cannot queue twice; a
    /// message without keys is always queued. Returns the ids of the queued
    /// messages.
    ///
    /// Any failure (e.g. a `message_id` already in the outbox or twice in
    /// the batch, a full disk) writes nothing.
    pub fn commit_alerts(
        &mut self,
        now: DateTime<Utc>,
        rows: &[NewLedgerRow],
        messages: &[NewRow],
    ) -> Result<Vec<i64>, StateError> {
        let err = || sqlite(&self.path, "record alerts");
        let now = ts(now);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err())?;
        let mut ids = Vec::with_capacity(messages.len());
        {
            // Decided before inserting this batch's rows: "already done" means
            // done by an earlier call.
            let mut in_ledger = tx
                .prepare_cached("SELECT 1 FROM ledger WHERE key = ?1")
                .map_err(err())?;
            let mut to_queue = Vec::with_capacity(messages.len());
            for m in messages {
                let mut all_done = !m.alert_keys.is_empty();
                for key in &m.alert_keys {
                    if !in_ledger.exists(params![key]).map_err(err())? {
                        all_done = false;
                        break;
                    }
                }
                if !all_done {
                    to_queue.push(m);
                }
            }
            let mut insert_row = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO ledger (key, fingerprint, recorded_at, mailed)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(err())?;
            for row in rows {
                insert_row
                    .execute(params![row.key, row.fingerprint, now, row.mailed])
                    .map_err(err())?;
            }
            let mut insert_message = tx
                .prepare_cached(
                    "INSERT INTO outbox (message_id, alert_keys, channel, recipients, title,
                                         payload, date, created_at, state, next_try_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?8)
                     RETURNING id",
                )
                .map_err(err())?;
            for m in to_queue {
                let id: i64 = insert_message
                    .query_row(
                        params![
                            m.message_id,
                            string_list(&m.alert_keys),
                            m.channel,
                            string_list(&m.recipients),
                            m.title,
                            m.payload,
                            ts(m.date),
                            now,
                        ],
                        |row| row.get(0),
                    )
                    .map_err(err())?;
                ids.push(id);
            }
        }
        tx.commit().map_err(err())?;
        Ok(ids)
    }

    /// Pending messages due at `now`, oldest first, at most `limit`.
    pub fn due_rows(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxRow>, StateError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let read = || -> rusqlite::Result<Vec<_>> {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM outbox
                 WHERE state = 'pending' AND next_try_at <= ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![ts(now), limit], outbox_row)?;
            rows.collect()
        };
        read().map_err(self.err("read due mails"))
    }

    /// When the next pending mail is due (possibly in the past), or None
    /// when nothing is pending.
    pub fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StateError> {
        self.conn
            .query_row(
                "SELECT min(next_try_at) FROM outbox WHERE state = 'pending'",
                [],
                |row| get_opt_ts(row, 0),
            )
            .map_err(self.err("read the next due mail"))
    }

    /// The server accepted the mail. A mail that is no longer unsent (ops
    /// dropped it while it was being sent) is left alone.
    pub fn mark_sent(
        &mut self,
        id: i64,
        now: DateTime<Utc>,
        server_answer: &str,
    ) -> Result<(), StateError> {
        self.record_attempts(&[Attempt {
            id,
            at: now,
            outcome: Outcome::Sent {
                answer: server_answer.to_owned(),
            },
        }])
    }

    /// Records a failed attempt: `attempts += 1`, `last_error`, and either
    /// the next try (still pending) or, with None, parks the mail.
    pub fn mark_failed(
        &mut self,
        id: i64,
        now: DateTime<Utc>,
        error: &str,
        next_try_at: Option<DateTime<Utc>>,
    ) -> Result<(), StateError> {
        self.record_attempts(&[Attempt {
            id,
            at: now,
            outcome: Outcome::Failed {
                error: error.to_owned(),
                next: next_try_at,
            },
        }])
    }

    /// Writes the outcomes of several attempts in one transaction: one
    /// fsync for all of them (a loopback SMTP server accepts mail faster
    /// than one commit each allows). All or none are written.
    pub fn record_attempts(&mut self, attempts: &[Attempt]) -> Result<(), StateError> {
        let action = "record delivery outcomes";
        let tx = self
            .conn
            .transaction()
            .map_err(sqlite(&self.path, action))?;
        for a in attempts {
            let written = match &a.outcome {
                Outcome::Sent { answer } => tx.execute(
                    "UPDATE outbox SET state = 'sent', sent_at = ?2, last_attempt_at = ?2, server_answer = ?3,
                            attempts = attempts + 1, next_try_at = NULL
                     WHERE id = ?1 AND state <> 'sent'",
                    params![a.id, ts(a.at), answer],
                ),
                Outcome::Failed { error, next } => tx.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?2, last_error = ?3,
                            state = ?4, next_try_at = ?5
                     WHERE id = ?1 AND state <> 'sent'",
                    params![
                        a.id,
                        ts(a.at),
                        error,
                        if next.is_some() { "pending" } else { "parked" },
                        next.map(ts)
                    ],
                ),
            };
            written.map_err(sqlite(&self.path, action))?;
        }
        tx.commit().map_err(sqlite(&self.path, action))
    }

    /// Parks every pending row of `channel` addressed to `recipient` alone,
    /// with `reason` as its error, without counting an attempt: the
    /// receiver is gone, so trying would only fail. `outbox retry` sends
    /// them again (once the receiver is back). Returns how many.
    pub fn park_rows_to(
        &mut self,
        channel: &str,
        recipient: &str,
        reason: &str,
    ) -> Result<usize, StateError> {
        let ids: Vec<i64> = self
            .outbox()?
            .into_iter()
            .filter(|r| !r.parked && r.row.channel == channel && r.row.recipients == [recipient])
            .map(|r| r.id)
            .collect();
        let tx = self
            .conn
            .transaction()
            .map_err(sqlite(&self.path, "park rows"))?;
        for id in &ids {
            tx.execute(
                "UPDATE outbox SET state = 'parked', next_try_at = NULL, last_error = ?2
                 WHERE id = ?1 AND state = 'pending'",
                params![id, reason],
            )
            .map_err(sqlite(&self.path, "park rows"))?;
        }
        tx.commit().map_err(sqlite(&self.path, "park rows"))?;
        Ok(ids.len())
    }

    /// Pending and parked mails (not sent), oldest first, for `status`.
    pub fn outbox(&self) -> Result<Vec<OutboxRow>, StateError> {
        let read = || -> rusqlite::Result<Vec<_>> {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM outbox WHERE state <> 'sent' ORDER BY id"
            ))?;
            let rows = stmt.query_map([], outbox_row)?;
            rows.collect()
        };
        read().map_err(self.err("read the outbox"))
    }

    /// Makes an unsent mail (parked or pending) due now with its attempts
    /// reset. False if there is no such unsent mail.
    pub fn retry_mail(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool, StateError> {
        self.conn
            .execute(
                "UPDATE outbox SET state = 'pending', next_try_at = ?2, attempts = 0
                 WHERE id = ?1 AND state <> 'sent'",
                params![id, ts(now)],
            )
            .map(|n| n == 1)
            .map_err(sqlite(&self.path, "retry a mail"))
    }

    /// [`retry_mail`](Self::retry_mail) for every unsent mail; returns how many.
    pub fn retry_all(&mut self, now: DateTime<Utc>) -> Result<usize, StateError> {
        self.conn
            .execute(
                "UPDATE outbox SET state = 'pending', next_try_at = ?1, attempts = 0
                 WHERE state <> 'sent'",
                params![ts(now)],
            )
            .map_err(sqlite(&self.path, "retry all mails"))
    }

    /// Deletes an unsent mail. Its ledger rows stay, so the alert is not
    /// planned again. False if there is no such unsent mail.
    pub fn drop_mail(&mut self, id: i64) -> Result<bool, StateError> {
        self.conn
            .execute(
                "DELETE FROM outbox WHERE id = ?1 AND state <> 'sent'",
                params![id],
            )
            .map(|n| n == 1)
            .map_err(sqlite(&self.path, "drop a mail"))
    }

    /// Unsent messages per (state, channel), and when the oldest pending
    /// one was queued, for the metrics.
    pub fn outbox_tally(&self) -> Result<OutboxTally, StateError> {
        let read = || -> rusqlite::Result<OutboxTally> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT state, channel, count(*) FROM outbox
                 WHERE state <> 'sent' GROUP BY state, channel ORDER BY state, channel",
            )?;
            let counts = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let oldest_pending = self.conn.query_row(
                "SELECT min(created_at) FROM outbox WHERE state = 'pending'",
                [],
                |row| get_opt_ts(row, 0),
            )?;
            Ok(OutboxTally {
                counts,
                oldest_pending,
            })
        };
        read().map_err(self.err("count unsent messages"))
    }

    pub fn counters(&self) -> Result<Counters, StateError> {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        self.conn
            .query_row(
                "SELECT count(*) FILTER (WHERE state = 'sent'),
                        count(*) FILTER (WHERE state = 'pending'),
                        count(*) FILTER (WHERE state = 'parked')
                 FROM outbox",
                [],
                |row| {
                    Ok(Counters {
                        sent: count(row.get(0)?),
                        pending: count(row.get(1)?),
                        parked: count(row.get(2)?),
                    })
                },
            )
            .map_err(self.err("count mails"))
    }
}
