//! Migrations of a database written by a released tokenwatch.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::{Duration, TimeZone, Utc};
use rusqlite::types::Value;
use rusqlite::Connection;

use super::MIGRATIONS;
use crate::state::{user_version, StateError, StateStore, DB_FILE_NAME, SCHEMA_VERSION};

/// Schema 1, written by the release binary (tests/fixtures/state/make.sh):
/// mails 1-2 parked, 3-4 pending, 5 dropped.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state/v1-pending-parked.db")
}

/// A copy of the fixture as the database of a new state folder.
fn state_dir_with_fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(fixture(), tmp.path().join(DB_FILE_NAME)).unwrap();
    tmp
}

/// Every row of `sql`, each value in its SQLite type.
fn rows(conn: &Connection, sql: &str) -> Vec<Vec<Value>> {
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The schema and every row of every table: equal dumps, equal databases.
fn dump(conn: &Connection) -> Vec<Vec<Value>> {
    let mut out = rows(
        conn,
        "SELECT type, name, sql FROM sqlite_master ORDER BY name",
    );
    let tables = rows(
        conn,
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
    );
    for t in tables {
        let Value::Text(name) = &t[0] else { panic!() };
        out.push(vec![Value::Text(name.clone())]);
        out.extend(rows(
            conn,
            &format!("SELECT * FROM \"{name}\" ORDER BY rowid"),
        ));
    }
    out
}

/// The outbox columns that V3 leaves as they were.
const KEPT: &str = "id, message_id, alert_keys, date, created_at, state, attempts, next_try_at,
    last_attempt_at, last_error, sent_at, server_answer";

#[test]
fn the_released_schema_1_database_migrates_through_2_to_3_keeping_every_mail() {
    let tmp = state_dir_with_fixture();
    let db = tmp.path().join(DB_FILE_NAME);
    let mut conn = Connection::open(&db).unwrap();
    assert_eq!(user_version(&conn).unwrap(), 1);
    let kept_before = rows(&conn, &format!("SELECT {KEPT} FROM outbox ORDER BY id"));
    let mails_before = rows(
        &conn,
        "SELECT id, from_addr, to_addrs, subject, text_body, html_body FROM outbox ORDER BY id",
    );
    let states: Vec<Vec<Value>> = rows(&conn, "SELECT id, state FROM outbox ORDER BY id");
    assert_eq!(
        states,
        [(1, "parked"), (2, "parked"), (3, "pending"), (4, "pending")]
            .map(|(id, s)| vec![Value::Integer(id), Value::Text(s.into())])
    );
    let others_before: Vec<_> = ["tokens", "ledger", "verdicts", "meta", "daemon_status"]
        .iter()
        .map(|t| rows(&conn, &format!("SELECT * FROM {t} ORDER BY rowid")))
        .collect();
    let sequence = "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'";
    let seq_before = rows(&conn, sequence);
    // Mail #5 was dropped: the next id is 6, never 5 again.
    assert_eq!(seq_before, [[Value::Integer(5)]]);

    // V2 alone: indexes only, the outbox as it was.
    super::migrate(&mut conn, &db, &MIGRATIONS[..2]).unwrap();
    assert_eq!(user_version(&conn).unwrap(), 2);
    assert_eq!(
        rows(
            &conn,
            "SELECT id, from_addr, to_addrs, subject, text_body, html_body FROM outbox ORDER BY id"
        ),
        mails_before
    );
    drop(conn);
    // A reader of this build before the daemon migrated: as for schema 1.
    assert!(matches!(
        StateStore::open_read_only(tmp.path()),
        Err(StateError::OlderSchema {
            found: 2,
            supported: 4,
            ..
        })
    ));

    // V3 and on by the daemon's open.
    let store = StateStore::open(tmp.path()).unwrap();
    assert_eq!(SCHEMA_VERSION, 4);
    let conn = &store.conn;
    assert_eq!(user_version(conn).unwrap(), 4);
    assert_eq!(store.integrity_check().unwrap(), "ok");
    assert_eq!(
        rows(conn, &format!("SELECT {KEPT} FROM outbox ORDER BY id")),
        kept_before
    );
    assert_eq!(rows(conn, sequence), seq_before);
    for (t, before) in ["tokens", "ledger", "verdicts", "meta", "daemon_status"]
        .iter()
        .zip(&others_before)
    {
        assert_eq!(
            &rows(conn, &format!("SELECT * FROM {t} ORDER BY rowid")),
            before,
            "{t}"
        );
    }
    let columns: Vec<String> = rows(conn, "SELECT name FROM pragma_table_info('outbox')")
        .into_iter()
        .map(|r| match &r[0] {
            Value::Text(t) => t.clone(),
            v => panic!("{v:?}"),
        })
        .collect();
    for gone in ["from_addr", "to_addrs", "subject", "text_body", "html_body"] {
        assert!(!columns.iter().any(|c| c == gone), "{gone} in {columns:?}");
    }

    // The payload holds exactly what the columns held; title and
    // recipients are the subject and addresses.
    let migrated = store.outbox().unwrap();
    assert_eq!(migrated.len(), 4);
    for (m, before) in migrated.iter().zip(&mails_before) {
        let text = |i: usize| match &before[i] {
            Value::Text(t) => t.clone(),
            v => panic!("{v:?}"),
        };
        assert_eq!(Value::Integer(m.id), before[0]);
        assert_eq!(m.row.channel, "mail");
        assert_eq!(
            m.row.recipients,
            serde_json::from_str::<Vec<String>>(&text(2)).unwrap()
        );
        assert_eq!(m.row.title, text(3));
        let payload: serde_json::Value = serde_json::from_str(&m.row.payload).unwrap();
        assert_eq!(
            payload,
            serde_json::json!({
                "from": text(1), "subject": text(3), "text": text(4), "html": text(5),
            })
        );
    }
    assert_eq!(
        migrated.iter().map(|m| m.parked).collect::<Vec<_>>(),
        [true, true, false, false]
    );
    // Pending mail is still due, with the retry time it had.
    let due = store
        .due_rows(Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap(), 10)
        .unwrap();
    assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [3, 4]);
}

#[test]
fn migrating_the_released_database_twice_changes_nothing() {
    let tmp = state_dir_with_fixture();
    let once = {
        let store = StateStore::open(tmp.path()).unwrap();
        dump(&store.conn)
    };
    let mut store = StateStore::open(tmp.path()).unwrap();
    assert_eq!(dump(&store.conn), once);
    let path = store.path.clone();
    super::migrate(&mut store.conn, &path, MIGRATIONS).unwrap();
    assert_eq!(dump(&store.conn), once);
    assert_eq!(user_version(&store.conn).unwrap(), SCHEMA_VERSION);
}

#[test]
fn housekeeping_after_the_migration_keeps_unsent_mail_and_what_it_names() {
    let tmp = state_dir_with_fixture();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let keys_before: HashSet<String> = store.ledger().unwrap().into_iter().map(|r| r.key).collect();
    // Years later, with none of the fixture's tokens present any more.
    let later = Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap();
    store
        .housekeep(later, Duration::days(400), &HashSet::new())
        .unwrap();
    assert_eq!(store.outbox().unwrap().len(), 4);
    let keys_after: HashSet<String> = store.ledger().unwrap().into_iter().map(|r| r.key).collect();
    for m in store.outbox().unwrap() {
        for k in &m.row.alert_keys {
            assert!(keys_after.contains(k), "{k} was forgotten");
        }
    }
    assert!(keys_after.is_subset(&keys_before));
    assert_eq!(store.integrity_check().unwrap(), "ok");
}
