//! The SQLite state database: the daemon's memory.
//!
//! It holds what scans saw (public facts per token fingerprint, never token
//! content), the daemon's latest status report, the alert ledger and the mail
//! outbox that make each alert go out exactly once, and Apple's verdicts per
//! token. This module only stores:
//! the daemon and the pure planners decide what to write.
//!
//! Who opens it how:
//! - the daemon: [`StateStore::open`] creates the folder (0700) and the file
//!   (0600; SQLite gives its `-wal`/`-shm` files the same mode), switches to
//!   WAL and migrates the schema;
//! - `status`, `check`: [`StateStore::open_existing`] read-only never
//!   creates or migrates anything, so it is safe while the daemon runs;
//! - `outbox retry|drop`: the same for writing, next to the running daemon,
//!   again without creating or migrating.
//!
//! Timestamps are stored as fixed-width RFC 3339 UTC text to the microsecond
//! (`2027-01-10T09:30:00.000000Z`), readable with the `sqlite3` shell and
//! ordered correctly by plain text comparison.
//!
//! rusqlite is synchronous. The daemon's tasks (the loop, the outbox sender,
//! the Apple prober) each own a connection and call it in place, inside
//! `tokio::task::block_in_place` (`daemon::db`), on the multi-threaded
//! runtime `cli/run` builds: the worker blocks for the call while the
//! runtime hands its other tasks to the other worker. Not `spawn_blocking`
//! or a thread of its own: each task's calls are sequential anyway, a pass
//! borrows the store along with the folders it reads, and a hop per call
//! (a pass writes thousands of rows, the sender records each outcome as it
//! comes) would cost time for nothing. The CLI calls it directly. A
//! [`StateStore`] owns one connection and is `Send`, not `Sync`.

mod housekeeping;
mod outbox;
mod scans;
mod schema;
mod silences;
mod verdicts;

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::Type;
use rusqlite::{Connection, ErrorCode, OpenFlags, Row};

pub use housekeeping::Forgotten;
pub use outbox::{
    Attempt, Counters, LedgerRow, NewLedgerRow, NewRow, OutboxRow, OutboxTally, Outcome,
};
pub use scans::{ScanWrites, SeenRef, SeenToken};
pub use schema::SCHEMA_VERSION;
pub use silences::{KnownCredential, SilenceRow};
pub use verdicts::StoredVerdict;

/// The database file inside `state_dir`.
pub const DB_FILE_NAME: &str = "tokenwatch.db";

/// How long a statement waits for another connection's lock (the daemon and
/// an ops command writing at the same moment) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database {} does not exist: the daemon has not run yet", path.display())]
    NotFound { path: PathBuf },

    #[error(
        "cannot open state database {}: {cause}; reading it needs the tokenwatch user's rights (or root)",
        path.display()
    )]
    NoAccess { path: PathBuf, cause: String },

    #[error(
        "state database {} has schema version {found}, newer than this tokenwatch understands ({supported}): \
         it was written by a newer tokenwatch; upgrade tokenwatch (the database was left unchanged)",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error(
        "state database {} has schema version {found}, older than this tokenwatch needs ({supported}): \
         restart the daemon so it migrates the database",
        path.display()
    )]
    OlderSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error("state database {} is not initialised yet: the daemon has not finished its first start", path.display())]
    Uninitialised { path: PathBuf },

    #[error(
        "state database {}: cannot use WAL journal mode (SQLite kept {mode:?}); \
         the state directory must be on a local filesystem",
        path.display()
    )]
    WalUnavailable { path: PathBuf, mode: String },

    /// A caller's bug, not the database's: fingerprints are SHA-256 in hex.
    #[error("state database {}: cannot record token {fingerprint:?}: not a 64-hex-digit (lower-case) fingerprint", path.display())]
    BadFingerprint { path: PathBuf, fingerprint: String },

    #[error("state database {}: token {fingerprint}: unknown Apple verdict {text:?}; a newer tokenwatch may have written it", path.display())]
    UnknownVerdict {
        path: PathBuf,
        fingerprint: String,
        text: String,
    },

    // `cause` rather than `source`: the cause is already in the message, and
    // `{:#}` in the binary would print it twice.
    #[error("cannot {action} {}: {cause}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        cause: io::Error,
    },

    #[error("state database {}: cannot {action}: {cause}", path.display())]
    Sqlite {
        path: PathBuf,
        action: &'static str,
        cause: rusqlite::Error,
    },
}

impl StateError {
    /// Opening the database again, unchanged, fails the same way: rights,
    /// a path that cannot be a folder, a read-only filesystem, a newer
    /// schema, no WAL. A busy lock, a full disk or an I/O error may pass.
    pub fn restart_cannot_fix(&self) -> bool {
        match self {
            StateError::Io { cause, .. } => matches!(
                cause.raw_os_error(),
                Some(
                    libc::EACCES
                        | libc::EPERM
                        | libc::EROFS
                        | libc::ENOTDIR
                        | libc::EEXIST
                        | libc::EISDIR
                        | libc::ENAMETOOLONG
                        | libc::ELOOP
                )
            ),
            StateError::NoAccess { .. }
            | StateError::NewerSchema { .. }
            | StateError::WalUnavailable { .. } => true,
            StateError::Sqlite { cause, .. } => matches!(
                cause.sqlite_error_code(),
                Some(
                    ErrorCode::ReadOnly
                        | ErrorCode::CannotOpen
                        | ErrorCode::PermissionDenied
                        | ErrorCode::NotADatabase
                )
            ),
            StateError::NotFound { .. }
            | StateError::OlderSchema { .. }
            | StateError::Uninitialised { .. }
            | StateError::BadFingerprint { .. }
            | StateError::UnknownVerdict { .. } => false,
        }
    }

    /// SQLite's primary error code, e.g. `DiskFull`, `ReadOnly`,
    /// `DatabaseBusy`, for callers that word their log line by the cause.
    pub fn sqlite_code(&self) -> Option<ErrorCode> {
        match self {
            StateError::Sqlite { cause, .. } => cause.sqlite_error_code(),
            _ => None,
        }
    }
}

/// How [`StateStore::open_existing`] opens the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// The state database. One connection; `Send`, not `Sync`.
pub struct StateStore {
    conn: Connection,
    path: PathBuf,
    /// The daemon's scans write only what changed (see `record_scan`);
    /// None until the first one, and after a failed one.
    recorded: Option<scans::Recorded>,
}

// Each daemon task owns a store, and tokio moves tasks between threads.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<StateStore>();
};

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish()
    }
}

impl StateStore {
    /// Opens the database for the daemon: creates `state_dir` (mode 0700) and
    /// the database file (mode 0600) when missing, switches to WAL with
    /// `synchronous=FULL`, and applies pending migrations. A database written
    /// by a newer tokenwatch is refused before anything in it is touched.
    pub fn open(state_dir: &Path) -> Result<StateStore, StateError> {
        // An existing folder keeps its mode: systemd's StateDirectory= or the
        // admin chose it, and the database file itself is 0600 anyway.
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|cause| StateError::Io {
                path: state_dir.to_path_buf(),
                action: "create state directory",
                cause,
            })?;
        let path = state_dir.join(DB_FILE_NAME);
        // Create the file ourselves: SQLite would create it 0644 (minus the
        // umask), and the `-wal`/`-shm` files copy the database's mode.
        // Only when it is missing: closing any descriptor of the database
        // drops every POSIX lock this process holds on it, so touching the
        // file while another connection here is open would make other
        // processes believe nobody uses the WAL, and checkpoint it away
        // under us (regression test: mail::permanent_failures_are_parked_and_can_be_retried).
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(cause) => {
                return Err(StateError::Io {
                    path: path.clone(),
                    action: "create state database",
                    cause,
                })
            }
        }
        // No SQLITE_OPEN_CREATE: had the file vanished since, SQLite would
        // recreate it with the wrong mode.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(sqlite(&path, "open"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sqlite(&path, "set busy timeout"))?;
        let found = user_version(&conn).map_err(sqlite(&path, "read schema version"))?;
        if found > SCHEMA_VERSION {
            return Err(StateError::NewerSchema {
                path,
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(sqlite(&path, "switch to WAL journal mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StateError::WalUnavailable { path, mode });
        }
        set_connection_pragmas(&conn, &path)?;
        let mut store = StateStore {
            conn,
            path,
            recorded: None,
        };
        schema::migrate(&mut store.conn, &store.path, schema::MIGRATIONS)?;
        Ok(store)
    }

    /// Opens an existing, current database next to the running daemon:
    /// read-only for `status` and `check`, for writing for `outbox
    /// retry|drop`. Never creates or migrates anything.
    ///
    /// A missing database is [`StateError::NotFound`]. Reading a WAL
    /// database needs its `-shm` file, or write access to the folder to
    /// create it: without the tokenwatch user's rights (or root) this is
    /// [`StateError::NoAccess`].
    pub fn open_existing(state_dir: &Path, access: Access) -> Result<StateStore, StateError> {
        let path = existing_db(state_dir)?;
        let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX
            | match access {
                Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
                Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
            };
        let conn = Connection::open_with_flags(&path, flags).map_err(open_error(&path, "open"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sqlite(&path, "set busy timeout"))?;
        // SQLite opens lazily: this first read is where access problems show.
        let found = user_version(&conn).map_err(open_error(&path, "read schema version"))?;
        check_existing_version(&path, found)?;
        if access == Access::ReadWrite {
            set_connection_pragmas(&conn, &path)?;
        }
        Ok(StateStore {
            conn,
            path,
            recorded: None,
        })
    }

    /// [`open_existing`](Self::open_existing) read-only.
    pub fn open_read_only(state_dir: &Path) -> Result<StateStore, StateError> {
        Self::open_existing(state_dir, Access::ReadOnly)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `PRAGMA integrity_check`: `"ok"`, or SQLite's list of problems (one
    /// per line).
    pub fn integrity_check(&self) -> Result<String, StateError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(self.err("check integrity"))?;
        let lines = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.err("check integrity"))?;
        Ok(lines.join("\n"))
    }

    /// Hands this connection's page cache back to the allocator: after a
    /// pass wrote 10,000 rows it holds up to SQLite's default 2 MiB, kept
    /// until the next pass (an hour) for nothing. Best effort: a failure
    /// only leaves the cache as it was.
    pub fn release_memory(&self) {
        if let Err(e) = self.conn.execute_batch("PRAGMA shrink_memory") {
            tracing::debug!(error = %e, "cannot shrink the state database's cache");
        }
    }

    /// A number that changes whenever *another* connection committed (e.g.
    /// `outbox retry` by ops), so the daemon can notice without a signal.
    pub fn data_version(&self) -> Result<i64, StateError> {
        self.conn
            .pragma_query_value(None, "data_version", |row| row.get(0))
            .map_err(self.err("read data version"))
    }

    fn err(&self, action: &'static str) -> impl FnOnce(rusqlite::Error) -> StateError + '_ {
        sqlite(&self.path, action)
    }
}

fn set_connection_pragmas(conn: &Connection, path: &Path) -> Result<(), StateError> {
    // FULL: a ledger row or outbox mail that was reported committed must
    // survive a power cut; WAL makes this one fsync per transaction.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite(path, "set synchronous=FULL"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(sqlite(path, "enable foreign keys"))
}

/// The database path, if the file exists; the CLI distinguishes "never ran"
/// from "cannot look".
fn existing_db(state_dir: &Path) -> Result<PathBuf, StateError> {
    let path = state_dir.join(DB_FILE_NAME);
    match std::fs::metadata(&path) {
        Ok(_) => Ok(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StateError::NotFound { path }),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(StateError::NoAccess {
            path,
            cause: e.to_string(),
        }),
        Err(cause) => Err(StateError::Io {
            path,
            action: "look at state database",
            cause,
        }),
    }
}

fn check_existing_version(path: &Path, found: i64) -> Result<(), StateError> {
    let path = path.to_path_buf();
    match found {
        0 => Err(StateError::Uninitialised { path }),
        v if v > SCHEMA_VERSION => Err(StateError::NewerSchema {
            path,
            found,
            supported: SCHEMA_VERSION,
        }),
        v if v < SCHEMA_VERSION => Err(StateError::OlderSchema {
            path,
            found,
            supported: SCHEMA_VERSION,
        }),
        _ => Ok(()),
    }
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

fn sqlite<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(rusqlite::Error) -> StateError + 'a {
    move |cause| StateError::Sqlite {
        path: path.to_path_buf(),
        action,
        cause,
    }
}

/// Like [`sqlite`], but access problems (no read right on the file, no way
/// to open the `-shm` file) become [`StateError::NoAccess`].
fn open_error<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(rusqlite::Error) -> StateError + 'a {
    move |cause| {
        match cause.sqlite_error_code() {
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => StateError::NoAccess {
            path: path.to_path_buf(),
            cause: cause.to_string(),
        },
        // A WAL database needs its `-shm` file; while the daemon is stopped
        // there is none, and a reader without write access to the folder
        // cannot create it.
        Some(ErrorCode::ReadOnly) => StateError::NoAccess {
            path: path.to_path_buf(),
            cause: format!(
                "{cause} (SQLite must create {}-shm next to it, which needs write access to the folder)",
                path.display()
            ),
        },
        _ => StateError::Sqlite {
            path: path.to_path_buf(),
            action,
            cause,
        },
    }
    }
}

/// The one text form of a timestamp in the database.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn conversion_error(idx: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, what.into())
}

fn parse_ts(idx: usize, text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| conversion_error(idx, format!("stored time {text:?} is not RFC 3339: {e}")))
}

fn get_ts(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    parse_ts(idx, &row.get::<_, String>(idx)?)
}

fn get_opt_ts(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get::<_, Option<String>>(idx)?
        .map(|text| parse_ts(idx, &text))
        .transpose()
}

/// A stored JSON list of strings (outbox recipients and alert keys).
fn get_string_list(row: &Row<'_>, idx: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| {
        conversion_error(
            idx,
            format!("stored list {text:?} is not a JSON string array: {e}"),
        )
    })
}

fn string_list(items: &[String]) -> String {
    // Serialising a slice of strings cannot fail.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests;
