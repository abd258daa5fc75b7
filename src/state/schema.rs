//! The schema and its migrations, versioned with `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` takes a database from version `i` to `i + 1`. Released
//! entries are never edited: a change is a new entry at the end.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::{sqlite, user_version, StateError};

/// Version 1: scans, daemon status, meta, alert ledger, outbox, verdicts.
const V1: &str = r#"
-- One row per readable token fingerprint ever seen; public facts only.
CREATE TABLE tokens (
    fingerprint TEXT PRIMARY KEY NOT NULL,
    path        TEXT NOT NULL,
    org_name    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    account     TEXT,
    status      TEXT NOT NULL,
    detail      TEXT,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    present     INTEGER NOT NULL CHECK (present IN (0, 1)),
    -- scan_seq of the last scan that saw it; tokens a scan did not see are
    -- marked absent without rewriting every other row.
    seen_in     INTEGER NOT NULL
);

-- Exactly one row.
CREATE TABLE daemon_status (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    scan_seq      INTEGER NOT NULL DEFAULT 0,
    last_scan_at  TEXT,
    snapshot_json TEXT,
    config_error  TEXT        -- JSON array of strings, NULL when valid
);
INSERT INTO daemon_status (id) VALUES (1);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- The unique key is the de-duplication of alerts: a row means "done".
CREATE TABLE ledger (
    key         TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT,
    recorded_at TEXT NOT NULL,
    mailed      INTEGER NOT NULL CHECK (mailed IN (0, 1))
);

CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    TEXT NOT NULL UNIQUE,
    alert_keys    TEXT NOT NULL,   -- JSON array of ledger keys
    from_addr     TEXT NOT NULL,
    to_addrs      TEXT NOT NULL,   -- JSON array of addresses
    subject       TEXT NOT NULL,
    text_body     TEXT NOT NULL,
    html_body     TEXT NOT NULL,
    date          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'parked', 'sent')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_try_at   TEXT,            -- set while pending
    last_attempt_at TEXT,
    last_error    TEXT,
    sent_at       TEXT,
    server_answer TEXT
);
CREATE INDEX outbox_by_state ON outbox (state, next_try_at);

CREATE TABLE verdicts (
    fingerprint      TEXT PRIMARY KEY NOT NULL,
    verified_at      TEXT NOT NULL,
    verdict          TEXT NOT NULL,
    location_name    TEXT,
    uid              TEXT,
    mdm_name         TEXT,
    apple_expires_at TEXT,
    error            TEXT,
    first_failure_at TEXT
);
"#;

/// Version 2: indexes for housekeeping, which looks up a token's ledger
/// rows and the tokens gone since before a date.
const V2: &str = r#"
CREATE INDEX ledger_by_fingerprint ON ledger (fingerprint);
CREATE INDEX tokens_by_presence ON tokens (present, last_seen);
"#;

/// Version 3: the outbox holds messages for any channel. Rows stay where
/// they are (ids, `state`, `attempts`, `next_try_at` and `sqlite_sequence`
/// untouched), so pending mail stays due, parked mail stays parked and
/// `outbox retry|drop` ids keep naming the same mail. A mail's sender and
/// bodies move into a JSON payload that the mail channel decodes into the
/// same message as before.
const V3: &str = r#"
ALTER TABLE outbox RENAME COLUMN to_addrs TO recipients;  -- JSON array of the channel's addresses
ALTER TABLE outbox RENAME COLUMN subject TO title;        -- one line for status and logs
ALTER TABLE outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'mail';
ALTER TABLE outbox ADD COLUMN payload TEXT NOT NULL DEFAULT '{}';  -- JSON, the channel's own
UPDATE outbox SET payload = json_object('from', from_addr, 'subject', title,
                                        'text', text_body, 'html', html_body);
ALTER TABLE outbox DROP COLUMN from_addr;
ALTER TABLE outbox DROP COLUMN text_body;
ALTER TABLE outbox DROP COLUMN html_body;
"#;

/// Version 4: silences, one per credential fingerprint.
const V4: &str = r#"
CREATE TABLE silences (
    fingerprint TEXT PRIMARY KEY NOT NULL,
    until       TEXT NOT NULL,
    reason      TEXT,
    created_at  TEXT NOT NULL
);
"#;

pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies the migrations the database lacks, each in its own transaction
/// together with its `user_version` bump, so a failed step leaves the
/// database at the previous version.
pub(super) fn migrate(
    conn: &mut Connection,
    path: &Path,
    migrations: &[&str],
) -> Result<(), StateError> {
    let latest = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    loop {
        // IMMEDIATE and re-reading the version inside: a second process
        // migrating at the same moment waits, then finds nothing to do.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite(path, "begin migration"))?;
        let found = user_version(&tx).map_err(sqlite(path, "read schema version"))?;
        if found > latest {
            return Err(StateError::NewerSchema {
                path: path.to_path_buf(),
                found,
                supported: latest,
            });
        }
        let Some(step) = usize::try_from(found).ok().and_then(|i| migrations.get(i)) else {
            return Ok(());
        };
        tx.execute_batch(step)
            .map_err(sqlite(path, "migrate the schema"))?;
        tx.pragma_update(None, "user_version", found + 1)
            .map_err(sqlite(path, "record the schema version"))?;
        tx.commit().map_err(sqlite(path, "commit migration"))?;
    }
}

#[cfg(test)]
mod tests;
