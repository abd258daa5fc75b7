use super::*;
use std::os::unix::fs::PermissionsExt;

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// `N` scan times an hour apart, from 2026-12-01 00:00 UTC.
fn hourly<const N: usize>() -> [DateTime<Utc>; N] {
    std::array::from_fn(|h| t("2026-12-01T00:00:00Z") + chrono::Duration::hours(h as i64))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn seen(fp: &str, path: &str) -> SeenToken {
    SeenToken {
        fingerprint: fp.repeat(64 / fp.len()),
        path: path.to_owned(),
        org_name: "Acme Corp".to_owned(),
        created_at: t("2026-01-10T09:30:00Z"),
        expires_at: t("2027-01-10T09:30:00Z"),
        account: Some("apps@acme.appleaccount.com".to_owned()),
        status: "ok".to_owned(),
        detail: None,
        topic: None,
    }
}

fn row(key: &str) -> NewLedgerRow {
    NewLedgerRow {
        key: key.to_owned(),
        fingerprint: Some("ab".repeat(32)),
        mailed: true,
    }
}

fn mail(message_id: &str, keys: &[&str]) -> NewRow {
    NewRow {
        message_id: message_id.to_owned(),
        alert_keys: keys.iter().map(|k| k.to_string()).collect(),
        channel: "mail".to_owned(),
        recipients: vec![
            "it-ops@example.com".to_owned(),
            "acme-it@example.com".to_owned(),
        ],
        title: format!("[tokenwatch] {message_id}"),
        payload: r#"{"text":"text body","html":"<p>html body</p>"}"#.to_owned(),
        date: t("2026-12-27T09:30:00Z"),
    }
}

fn count(store: &StateStore, table: &str) -> i64 {
    store
        .conn
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn open_creates_private_folder_database_and_wal_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("var/lib/tokenwatch");
    let mut store = StateStore::open(&dir).unwrap();
    store.set_meta("k", Some("v")).unwrap();
    let db = dir.join(DB_FILE_NAME);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&db), 0o600);
    // While the connection is open in WAL mode both side files exist, and
    // SQLite gives them the database's mode.
    for suffix in ["-wal", "-shm"] {
        let side = dir.join(format!("{DB_FILE_NAME}{suffix}"));
        assert_eq!(mode(&side), 0o600, "{}", side.display());
    }
    let journal: String = store
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let sync: i64 = store
        .conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
}

#[test]
fn reopening_migrates_nothing_and_keeps_data() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut store = StateStore::open(tmp.path()).unwrap();
        store
            .set_meta("apple_unreachable_since", Some("x"))
            .unwrap();
    }
    let store = StateStore::open(tmp.path()).unwrap();
    assert_eq!(user_version(&store.conn).unwrap(), SCHEMA_VERSION);
    assert_eq!(
        store.meta("apple_unreachable_since").unwrap().as_deref(),
        Some("x")
    );
}

#[test]
fn database_from_a_newer_tokenwatch_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join(DB_FILE_NAME);
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE future (x); INSERT INTO future VALUES (1);")
            .unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    for result in [
        StateStore::open(tmp.path()),
        StateStore::open_read_only(tmp.path()),
        StateStore::open_existing(tmp.path(), Access::ReadWrite),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(err, StateError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1)
        );
        assert!(err.to_string().contains(&db.display().to_string()), "{err}");
    }
    assert_eq!(std::fs::read(&db).unwrap(), before);
    assert!(!tmp.path().join(format!("{DB_FILE_NAME}-wal")).exists());
}

#[test]
fn a_failing_migration_leaves_the_previous_version() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("m.db");
    let mut conn = Connection::open(&db).unwrap();
    let steps = [
        "CREATE TABLE one (x);",
        "CREATE TABLE two (x); THIS IS NOT SQL;",
    ];
    let err = schema::migrate(&mut conn, &db, &steps).unwrap_err();
    assert!(matches!(err, StateError::Sqlite { .. }), "{err}");
    assert_eq!(user_version(&conn).unwrap(), 1);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["one"]);
    // Fixed step: the migration continues from version 1.
    schema::migrate(
        &mut conn,
        &db,
        &["CREATE TABLE one (x);", "CREATE TABLE two (x);"],
    )
    .unwrap();
    assert_eq!(user_version(&conn).unwrap(), 2);
}

#[test]
fn read_only_open_of_a_missing_database_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("never-ran");
    let err = StateStore::open_read_only(&dir).unwrap_err();
    assert!(matches!(err, StateError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("has not run yet"), "{err}");
    assert!(!dir.exists());
    let err = StateStore::open_existing(tmp.path(), Access::ReadWrite).unwrap_err();
    assert!(matches!(err, StateError::NotFound { .. }), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn read_only_open_of_an_uninitialised_database_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(DB_FILE_NAME), b"").unwrap();
    let err = StateStore::open_read_only(tmp.path()).unwrap_err();
    assert!(matches!(err, StateError::Uninitialised { .. }), "{err}");
}

#[test]
fn read_only_open_of_a_non_database_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(DB_FILE_NAME), [7u8; 4096]).unwrap();
    let err = StateStore::open_read_only(tmp.path()).unwrap_err();
    assert_eq!(err.sqlite_code(), Some(ErrorCode::NotADatabase), "{err}");
    let err = StateStore::open(tmp.path()).unwrap_err();
    assert_eq!(err.sqlite_code(), Some(ErrorCode::NotADatabase), "{err}");
}

#[test]
fn readers_see_the_daemons_writes_while_it_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut daemon = StateStore::open(tmp.path()).unwrap();
    let mut reader = StateStore::open_read_only(tmp.path()).unwrap();
    assert_eq!(reader.snapshot().unwrap(), None);

    daemon
        .record_scan(
            t("2026-12-01T00:00:00Z"),
            &[seen("a", "/srv/a.vpptoken")],
            "{\"n\":1}",
        )
        .unwrap();
    assert_eq!(
        reader.snapshot().unwrap(),
        Some((t("2026-12-01T00:00:00Z"), "{\"n\":1}".to_owned()))
    );
    let err = reader.set_meta("k", Some("v")).unwrap_err();
    assert_eq!(err.sqlite_code(), Some(ErrorCode::ReadOnly), "{err}");

    // Ops act on the outbox through a second writer while the daemon runs;
    // the daemon notices through data_version.
    let ids = daemon
        .commit_alerts(
            t("2026-12-01T00:00:00Z"),
            &[row("k1")],
            &[mail("<m1@h>", &["k1"])],
        )
        .unwrap();
    daemon
        .mark_failed(ids[0], t("2026-12-01T00:00:01Z"), "550 no", None)
        .unwrap();
    let version = daemon.data_version().unwrap();
    let mut ops = StateStore::open_existing(tmp.path(), Access::ReadWrite).unwrap();
    assert!(ops.retry_mail(ids[0], t("2026-12-01T01:00:00Z")).unwrap());
    assert_ne!(daemon.data_version().unwrap(), version);
    let due = daemon.due_rows(t("2026-12-01T01:00:00Z"), 10).unwrap();
    assert_eq!(due.len(), 1);
    assert!(!reader.outbox().unwrap()[0].parked);
}

#[test]
fn record_scan_tracks_presence_and_first_and_last_sight() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let (t1, t2, t3) = (
        t("2026-12-01T00:00:00Z"),
        t("2026-12-02T00:00:00Z"),
        t("2026-12-03T00:00:00Z"),
    );
    let a = seen("a", "/srv/a.vpptoken");
    let b = seen("b", "/srv/b.vpptoken");
    let c = seen("c", "/srv/c.vpptoken");
    store.record_scan(t1, &[a.clone(), b.clone()], "1").unwrap();
    let mut b_moved = b.clone();
    b_moved.path = "/srv/moved/b.vpptoken".to_owned();
    b_moved.status = "expiring".to_owned();
    store
        .record_scan(t2, &[b_moved.clone(), c.clone()], "2")
        .unwrap();

    let known = store.known_tokens().unwrap();
    let by_fp = |fp: &str| {
        known
            .iter()
            .find(|k| k.0.fingerprint == fp)
            .unwrap()
            .clone()
    };
    assert_eq!(by_fp(&a.fingerprint), (a.clone(), t1, t1, false));
    assert_eq!(by_fp(&b.fingerprint), (b_moved, t1, t2, true));
    assert_eq!(by_fp(&c.fingerprint), (c.clone(), t2, t2, true));
    assert_eq!(store.snapshot().unwrap(), Some((t2, "2".to_owned())));

    // A token that comes back keeps its first sight.
    store
        .record_scan(t3, std::slice::from_ref(&a), "3")
        .unwrap();
    let known = store.known_tokens().unwrap();
    let a_row = known
        .iter()
        .find(|k| k.0.fingerprint == a.fingerprint)
        .unwrap();
    assert_eq!((a_row.1, a_row.2, a_row.3), (t1, t3, true));
    assert_eq!(known.iter().filter(|k| k.3).count(), 1);
}

#[test]
fn a_scan_writes_only_the_tokens_that_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let [t1, t2, t3, t4] = hourly();
    let (a, b, c) = (seen("a", "/a"), seen("b", "/b"), seen("c", "/c"));
    let all = [a.clone(), b.clone(), c.clone()];
    let w = |written, gone| ScanWrites { written, gone };
    assert_eq!(store.record_scan(t1, &all, "1").unwrap(), w(3, 0));
    // SQLite's own count: only the daemon_status row was written.
    let before = store.conn.total_changes();
    assert_eq!(store.record_scan(t2, &all, "2").unwrap(), w(0, 0));
    assert_eq!(store.conn.total_changes() - before, 1);
    let mut b2 = b.clone();
    b2.status = "expiring".to_owned();
    assert_eq!(
        store
            .record_scan(t3, &[a.clone(), b2.clone()], "3")
            .unwrap(),
        w(1, 1)
    );
    // Unwritten rows still read as seen by the latest scan; the vanished
    // one as last seen by the scan before it went.
    let known = store.known_tokens().unwrap();
    assert_eq!(
        known,
        [
            (a.clone(), t1, t3, true),
            (b2.clone(), t1, t3, true),
            (c.clone(), t1, t2, false),
        ]
    );
    assert_eq!(store.snapshot().unwrap(), Some((t3, "3".to_owned())));
    // Back again: written, first sight kept.
    assert_eq!(store.record_scan(t4, &all, "4").unwrap(), w(2, 0));
    let known = store.known_tokens().unwrap();
    assert_eq!(known[1], (b, t1, t4, true));
    assert_eq!(known[2], (c, t1, t4, true));
}

#[test]
fn of_a_fingerprint_seen_twice_in_one_scan_the_last_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let [t1, t2, t3] = hourly();
    let (a1, a2) = (seen("a", "/x"), seen("a", "/y"));
    let (b, c, d) = (seen("b", "/b"), seen("c", "/c"), seen("d", "/d"));
    let w = |written, gone| ScanWrites { written, gone };
    // Out of key order on purpose: the writes are made in key order.
    let first = [d.clone(), a1, b.clone(), a2.clone(), c.clone()];
    assert_eq!(store.record_scan(t1, &first, "1").unwrap(), w(5, 0));
    let known = store.known_tokens().unwrap();
    assert_eq!(known.len(), 4);
    assert!(known.contains(&(a2.clone(), t1, t1, true)), "{known:?}");
    // The last one is what was recorded: seen alone it is unchanged.
    let second = [c.clone(), a2.clone(), b.clone(), d];
    assert_eq!(store.record_scan(t2, &second, "2").unwrap(), w(0, 0));
    // Gone at both ends of the key order and in the middle.
    assert_eq!(
        store
            .record_scan(t3, std::slice::from_ref(&c), "3")
            .unwrap(),
        w(0, 3)
    );
    let present: Vec<_> = store
        .known_tokens()
        .unwrap()
        .into_iter()
        .filter(|k| k.3)
        .map(|k| k.0)
        .collect();
    assert_eq!(present, [c]);
}

#[test]
fn after_a_restart_the_first_scan_writes_only_what_changed_meanwhile() {
    let tmp = tempfile::tempdir().unwrap();
    let [t1, t2] = hourly();
    let (a, b) = (seen("a", "/a"), seen("b", "/b"));
    {
        let mut store = StateStore::open(tmp.path()).unwrap();
        store.record_scan(t1, &[a.clone(), b.clone()], "1").unwrap();
    }
    let mut store = StateStore::open(tmp.path()).unwrap();
    assert_eq!(
        store
            .record_scan(t2, std::slice::from_ref(&a), "2")
            .unwrap(),
        ScanWrites {
            written: 0,
            gone: 1
        }
    );
    assert_eq!(
        store.known_tokens().unwrap(),
        [(a, t1, t2, true), (b, t1, t1, false)]
    );
}

#[test]
fn a_refused_scan_keeps_what_is_stored_and_the_next_one_starts_from_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let [t1, t2, t3] = hourly();
    let (a, b) = (seen("a", "/a"), seen("b", "/b"));
    store.record_scan(t1, &[a.clone(), b.clone()], "1").unwrap();
    let bad = seen("x", "/x");
    let err = store
        .record_scan(t2, &[a.clone(), bad], "2")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("xxxx") && err.contains("not a 64-hex-digit"),
        "{err}"
    );
    // Upper case would never match when marked absent.
    let upper = seen("A", "/A");
    assert!(store.record_scan(t2, &[upper], "2").is_err());
    assert_eq!(store.snapshot().unwrap(), Some((t1, "1".to_owned())));
    assert_eq!(
        store.known_tokens().unwrap().iter().filter(|k| k.3).count(),
        2
    );
    // What the failed scan had already compared is forgotten.
    assert_eq!(
        store
            .record_scan(t3, std::slice::from_ref(&a), "3")
            .unwrap(),
        ScanWrites {
            written: 0,
            gone: 1
        }
    );
}

#[test]
fn scans_at_the_same_instant_still_mark_missing_tokens_absent() {
    // An injected clock may hand two scans the same `now`.
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let now = t("2026-12-01T00:00:00Z");
    store
        .record_scan(now, &[seen("a", "/a"), seen("b", "/b")], "{}")
        .unwrap();
    store.record_scan(now, &[seen("b", "/b")], "{}").unwrap();
    let present: Vec<String> = store
        .known_tokens()
        .unwrap()
        .into_iter()
        .filter(|k| k.3)
        .map(|k| k.0.path)
        .collect();
    assert_eq!(present, ["/b"]);
}

#[test]
fn config_error_and_meta_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    assert_eq!(store.config_error().unwrap(), None);
    let errors = vec![
        "/etc/tokenwatch/tokenwatch.toml:3:1: unknown key \"foo\"".to_owned(),
        "second \"quoted\"\nline".to_owned(),
    ];
    store.set_config_error(Some(&errors)).unwrap();
    assert_eq!(store.config_error().unwrap(), Some(errors));
    store.set_config_error(None).unwrap();
    assert_eq!(store.config_error().unwrap(), None);

    store
        .set_meta("watch_mode:/srv/a_b", Some("inotify"))
        .unwrap();
    store.set_meta("watch_mode:/srv/axb", Some("poll")).unwrap();
    store.set_meta("watch_mode:/srv/a_b", Some("poll")).unwrap();
    store.set_meta("other", Some("1")).unwrap();
    assert_eq!(
        store.meta("watch_mode:/srv/a_b").unwrap().as_deref(),
        Some("poll")
    );
    // '_' is literal, not a LIKE wildcard.
    assert_eq!(
        store.meta_prefix("watch_mode:/srv/a_").unwrap(),
        [("watch_mode:/srv/a_b".to_owned(), "poll".to_owned())]
    );
    assert_eq!(store.meta_prefix("watch_mode:").unwrap().len(), 2);
    store.set_meta("other", None).unwrap();
    assert_eq!(store.meta("other").unwrap(), None);
}

#[test]
fn commit_alerts_writes_nothing_when_any_part_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let now = t("2026-12-01T00:00:00Z");
    let err = store
        .commit_alerts(
            now,
            &[row("k1"), row("k2")],
            &[mail("<same@h>", &["k1"]), mail("<same@h>", &["k2"])],
        )
        .unwrap_err();
    assert_eq!(
        err.sqlite_code(),
        Some(ErrorCode::ConstraintViolation),
        "{err}"
    );
    assert_eq!(count(&store, "ledger"), 0);
    assert_eq!(count(&store, "outbox"), 0);
    assert_eq!(store.counters().unwrap(), Counters::default());
}

#[test]
fn replaying_a_plan_queues_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let t1 = t("2026-12-01T00:00:00Z");
    let stale = NewLedgerRow {
        mailed: false,
        ..row("expiring:ab:60")
    };
    let rows = [row("expiring:ab:14"), stale];
    let mails = [mail("<a@h>", &["expiring:ab:14"])];
    let ids = store.commit_alerts(t1, &rows, &mails).unwrap();
    assert_eq!(ids.len(), 1);
    let ids = store
        .commit_alerts(t("2026-12-02T00:00:00Z"), &rows, &mails)
        .unwrap();
    assert!(ids.is_empty());
    assert_eq!(count(&store, "outbox"), 1);

    let ledger = store.ledger().unwrap();
    assert_eq!(ledger.len(), 2);
    assert!(ledger.iter().all(|r| r.recorded_at == t1));
    let mailed: Vec<(&str, bool)> = ledger.iter().map(|r| (r.key.as_str(), r.mailed)).collect();
    assert_eq!(
        mailed,
        [("expiring:ab:14", true), ("expiring:ab:60", false)]
    );

    // A mail with one new key is queued; so is a mail without keys.
    let ids = store
        .commit_alerts(
            t1,
            &[row("folder_missing:/srv")],
            &[
                mail("<summary@h>", &["expiring:ab:14", "folder_missing:/srv"]),
                mail("<digest@h>", &[]),
            ],
        )
        .unwrap();
    assert_eq!(ids.len(), 2);
    let queued = store.outbox().unwrap();
    assert_eq!(queued.len(), 3);
    assert_eq!(
        queued[1].row.alert_keys,
        [
            "expiring:ab:14".to_owned(),
            "folder_missing:/srv".to_owned()
        ]
    );
}

#[test]
fn outbox_lifecycle_retry_park_and_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let t0 = t("2026-12-01T00:00:00Z");
    let ids = store
        .commit_alerts(
            t0,
            &[row("k1"), row("k2")],
            &[mail("<m1@h>", &["k1"]), mail("<m2@h>", &["k2"])],
        )
        .unwrap();
    let (m1, m2) = (ids[0], ids[1]);
    assert_eq!(store.next_due_at().unwrap(), Some(t0));
    let due = store.due_rows(t0, 10).unwrap();
    assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [m1, m2]);
    assert_eq!(store.due_rows(t0, 1).unwrap().len(), 1);
    let first = &due[0];
    assert_eq!(first.row.message_id, "<m1@h>");
    assert_eq!(first.row.recipients.len(), 2);
    assert_eq!(
        (first.attempts, first.parked, first.created_at),
        (0, false, t0)
    );
    assert_eq!(first.row.date, t("2026-12-27T09:30:00Z"));

    // Transient failure: due again later.
    let retry_at = t("2026-12-01T00:00:05Z");
    store
        .mark_failed(m1, t0, "421 try later", Some(retry_at))
        .unwrap();
    assert_eq!(store.due_rows(t0, 10).unwrap().len(), 1);
    let again = store.due_rows(retry_at, 10).unwrap();
    assert_eq!(again[0].id, m1);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("421 try later"));
    assert_eq!(again[0].next_try_at, Some(retry_at));

    // Permanent failure: parked, no longer due, shown and counted.
    store
        .mark_failed(m1, retry_at, "550 rejected", None)
        .unwrap();
    assert_eq!(
        store.due_rows(t("2030-01-01T00:00:00Z"), 10).unwrap().len(),
        1
    );
    let parked = store.outbox().unwrap();
    assert!(parked[0].parked && parked[0].next_try_at.is_none());
    assert_eq!(
        store.counters().unwrap(),
        Counters {
            sent: 0,
            pending: 1,
            parked: 1
        }
    );

    // m2 is delivered.
    store.mark_sent(m2, t0, "250 2.0.0 queued as 1234").unwrap();
    assert_eq!(store.next_due_at().unwrap(), None);
    assert_eq!(
        store.counters().unwrap(),
        Counters {
            sent: 1,
            pending: 0,
            parked: 1
        }
    );
    assert!(
        !store.retry_mail(m2, t0).unwrap(),
        "a sent mail is not retried"
    );
    assert!(!store.drop_mail(m2).unwrap(), "a sent mail is not dropped");
    assert!(!store.retry_mail(9999, t0).unwrap());

    // Ops retry the parked mail.
    let t5 = t("2026-12-05T00:00:00Z");
    assert!(store.retry_mail(m1, t5).unwrap());
    let due = store.due_rows(t5, 10).unwrap();
    assert_eq!((due[0].id, due[0].attempts, due[0].parked), (m1, 0, false));
    store.mark_failed(m1, t5, "550 rejected", None).unwrap();
    assert_eq!(store.retry_all(t5).unwrap(), 1);
    assert_eq!(store.next_due_at().unwrap(), Some(t5));

    // Dropping deletes the mail but keeps the ledger: it is not planned again.
    assert!(store.drop_mail(m1).unwrap());
    assert!(store.outbox().unwrap().is_empty());
    assert_eq!(store.ledger().unwrap().len(), 2);
    let ids = store
        .commit_alerts(t5, &[row("k1")], &[mail("<m1-replanned@h>", &["k1"])])
        .unwrap();
    assert!(ids.is_empty());
    // Marking a dropped mail is harmless (it was being sent meanwhile).
    store.mark_sent(m1, t5, "250 ok").unwrap();
    assert_eq!(
        store.counters().unwrap(),
        Counters {
            sent: 1,
            pending: 0,
            parked: 0
        }
    );
}

#[test]
fn times_keep_microseconds_and_compare_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let now = t("2026-12-01T10:00:00.123456789Z");
    let ids = store
        .commit_alerts(now, &[], &[mail("<m@h>", &[])])
        .unwrap();
    let stored = &store.outbox().unwrap()[0];
    assert_eq!(stored.created_at, t("2026-12-01T10:00:00.123456Z"));
    // Stored times are truncated, never rounded up: due at its own `now`.
    assert_eq!(store.due_rows(now, 10).unwrap()[0].id, ids[0]);
    assert!(store
        .due_rows(t("2026-12-01T09:59:59.999999Z"), 10)
        .unwrap()
        .is_empty());
}

#[test]
fn verdicts_are_upserted_by_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let failing = StoredVerdict {
        fingerprint: "cd".repeat(32),
        verified_at: t("2026-12-01T00:00:00Z"),
        verdict: crate::evaluate::Verdict::Error,
        location_name: None,
        uid: None,
        mdm_name: None,
        apple_expires_at: None,
        error: Some("connection refused".to_owned()),
        first_failure_at: Some(t("2026-11-30T00:00:00Z")),
    };
    store.put_verdict(&failing).unwrap();
    assert_eq!(store.verdicts().unwrap(), std::slice::from_ref(&failing));
    let valid = StoredVerdict {
        verified_at: t("2026-12-01T06:00:00Z"),
        verdict: crate::evaluate::Verdict::Valid,
        location_name: Some("Berlin".to_owned()),
        uid: Some("123".to_owned()),
        mdm_name: Some("Jamf".to_owned()),
        apple_expires_at: Some(t("2027-01-10T09:30:00Z")),
        error: None,
        first_failure_at: None,
        ..failing.clone()
    };
    store.put_verdict(&valid).unwrap();
    let other = StoredVerdict {
        fingerprint: "ab".repeat(32),
        ..failing
    };
    store.put_verdict(&other).unwrap();
    assert_eq!(
        store.verdict(&"cd".repeat(32)).unwrap().as_ref(),
        Some(&valid)
    );
    assert_eq!(store.verdict(&"ef".repeat(32)).unwrap(), None);
    assert_eq!(store.verdicts().unwrap(), [other, valid]);
}

#[test]
fn a_full_disk_fails_the_write_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    store
        .commit_alerts(
            t("2026-12-01T00:00:00Z"),
            &[row("k0")],
            &[mail("<m0@h>", &["k0"])],
        )
        .unwrap();
    // max_page_count makes SQLite answer SQLITE_FULL like a full filesystem.
    let pages: i64 = store
        .conn
        .pragma_query_value(None, "page_count", |r| r.get(0))
        .unwrap();
    store
        .conn
        .pragma_update(None, "max_page_count", pages + 1)
        .unwrap();
    let mut big = mail("<big@h>", &["k1"]);
    big.payload = "x".repeat(256 * 1024);
    let err = store
        .commit_alerts(t("2026-12-01T00:00:00Z"), &[row("k1")], &[big.clone()])
        .unwrap_err();
    assert_eq!(err.sqlite_code(), Some(ErrorCode::DiskFull), "{err}");
    assert!(err.to_string().contains(DB_FILE_NAME), "{err}");
    assert_eq!(store.ledger().unwrap().len(), 1);
    assert_eq!(store.outbox().unwrap().len(), 1);
    assert_eq!(store.integrity_check().unwrap(), "ok");

    // Space returns: the same write succeeds on the same connection.
    store
        .conn
        .pragma_update(None, "max_page_count", 1_000_000_000i64)
        .unwrap();
    store
        .commit_alerts(t("2026-12-01T00:00:00Z"), &[row("k1")], &[big])
        .unwrap();
    assert_eq!(store.outbox().unwrap().len(), 2);
}

#[test]
fn integrity_check_of_a_fresh_database_is_ok() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StateStore::open(tmp.path()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let reader = StateStore::open_read_only(tmp.path()).unwrap();
    assert_eq!(reader.integrity_check().unwrap(), "ok");
}

#[test]
fn an_unknown_verdict_in_the_database_is_an_error_naming_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StateStore::open(tmp.path()).unwrap();
    let fingerprint = "cd".repeat(32);
    store
        .conn
        .execute(
            "INSERT INTO verdicts (fingerprint, verified_at, verdict) VALUES (?1, ?2, 'suspended')",
            rusqlite::params![fingerprint, ts(t("2026-12-01T00:00:00Z"))],
        )
        .unwrap();
    for e in [
        store.verdicts().unwrap_err(),
        store.verdict(&fingerprint).unwrap_err(),
    ] {
        assert!(
            matches!(&e, StateError::UnknownVerdict { fingerprint: f, text, .. }
                if *f == fingerprint && text == "suspended"),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&fingerprint) && msg.contains("\"suspended\""),
            "{msg}"
        );
    }
}

#[test]
fn silences_are_kept_per_fingerprint_listed_with_their_path_and_lifted() {
    use crate::assess::Silence;
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    store
        .record_scan(
            t("2026-12-01T00:00:00Z"),
            &[seen("ab", "/t/a.vpptoken")],
            "{}",
        )
        .unwrap();
    let a = "ab".repeat(32);
    let gone = "cd".repeat(32);
    let first = Silence {
        until: t("2027-03-01T00:00:00Z"),
        reason: None,
    };
    let second = Silence {
        until: t("2027-02-01T00:00:00Z"),
        reason: Some("closed location".to_owned()),
    };
    let now = t("2026-12-01T10:00:00Z");
    store.put_silence(&a, &first, now).unwrap();
    store.put_silence(&a, &second, now).unwrap();
    store.put_silence(&gone, &first, now).unwrap();

    let rows = store.silence_rows().unwrap();
    assert_eq!(rows.len(), 2, "one silence per fingerprint");
    assert_eq!(rows[0].fingerprint, a);
    assert_eq!(
        rows[0].silence, second,
        "the later silence replaced the first"
    );
    assert_eq!(rows[0].path.as_deref(), Some("/t/a.vpptoken"));
    assert_eq!(rows[1].path, None, "no scan stored it");
    assert_eq!(store.silences().unwrap()[&a], second);

    assert!(store.clear_silence(&a).unwrap());
    assert!(!store.clear_silence(&a).unwrap());
    assert_eq!(store.silences().unwrap().len(), 1);
}

#[test]
fn credentials_are_found_by_a_fingerprint_prefix_only() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    store
        .record_scan(
            t("2026-12-01T00:00:00Z"),
            &[seen("ab", "/t/a.vpptoken"), seen("abc1", "/t/b.vpptoken")],
            "{}",
        )
        .unwrap();
    let found = |p: &str| -> Vec<String> {
        store
            .credentials_by_prefix(p)
            .unwrap()
            .into_iter()
            .map(|c| c.path)
            .collect()
    };
    assert_eq!(found("abab"), ["/t/a.vpptoken"]);
    assert_eq!(found("abc1abc1"), ["/t/b.vpptoken"]);
    assert_eq!(found("ab").len(), 2);
    assert!(found("ab%").is_empty(), "no pattern matching");
    assert!(found("ff").is_empty());
}

#[test]
fn a_push_certificate_gone_is_remembered_with_its_topic_and_when_last_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let cert = SeenToken {
        topic: Some("com.apple.mgmt.External.old".to_owned()),
        ..seen("c", "/push/old.pem")
    };
    let token = seen("d", "/tokens/a.vpptoken");
    let kept = SeenToken {
        topic: Some("com.apple.mgmt.External.kept".to_owned()),
        ..seen("e", "/push/kept.pem")
    };
    let all = [cert.clone(), token.clone(), kept.clone()];
    store
        .record_scan(t("2026-12-01T10:00:00Z"), &all, "{}")
        .unwrap();
    // Nothing gone yet.
    assert!(store
        .gone_certificates(t("2026-11-01T00:00:00Z"))
        .unwrap()
        .is_empty());
    store
        .record_scan(t("2026-12-02T10:00:00Z"), &[kept], "{}")
        .unwrap();
    let gone = store.gone_certificates(t("2026-11-01T00:00:00Z")).unwrap();
    assert_eq!(
        gone,
        [crate::assess::GoneCert {
            path: "/push/old.pem".into(),
            topic: "com.apple.mgmt.External.old".into(),
            created_at: cert.created_at,
            last_seen: t("2026-12-01T10:00:00Z"),
        }]
    );
    // Last seen before `since`: too long ago.
    assert!(store
        .gone_certificates(t("2026-12-01T10:00:01Z"))
        .unwrap()
        .is_empty());
}

#[test]
fn parking_a_removed_webhook_s_rows_leaves_other_webhooks_and_mail_pending() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let hook = |id: &str, name: &str| NewRow {
        channel: "webhook".to_owned(),
        recipients: vec![name.to_owned()],
        ..mail(id, &[])
    };
    let now = t("2026-12-27T09:30:00Z");
    store
        .commit_alerts(
            now,
            &[],
            &[
                hook("<a@t>", "gone"),
                hook("<b@t>", "kept"),
                mail("<c@t>", &[]),
            ],
        )
        .unwrap();
    assert_eq!(
        store
            .park_rows_to("webhook", "gone", "webhook removed")
            .unwrap(),
        1
    );
    let rows = store.outbox().unwrap();
    let state = |id: &str| {
        let r = rows.iter().find(|r| r.row.message_id == id).unwrap();
        (r.parked, r.last_error.clone(), r.attempts)
    };
    assert_eq!(
        state("<a@t>"),
        (true, Some("webhook removed".to_owned()), 0)
    );
    assert_eq!(state("<b@t>"), (false, None, 0));
    assert_eq!(state("<c@t>"), (false, None, 0));
    let a = rows.iter().find(|r| r.row.message_id == "<a@t>").unwrap();
    assert!(
        store.retry_mail(a.id, now).unwrap(),
        "outbox retry works on it"
    );
}

fn snapshot_type_and_seq(store: &StateStore) -> (String, i64) {
    store
        .conn
        .query_row(
            "SELECT typeof(snapshot_json), scan_seq FROM daemon_status WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

#[test]
fn a_snapshot_is_streamed_into_its_row_and_one_that_changes_while_written_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let (t1, t2) = (t("2026-12-01T10:00:00Z"), t("2026-12-01T11:00:00Z"));
    let big = format!("{{\"tokens\":\"{}\"}}", "x".repeat(300_000));
    store.record_scan(t1, &[], &big).unwrap();
    assert_eq!(store.snapshot().unwrap(), Some((t1, big.clone())));
    assert_eq!(snapshot_type_and_seq(&store), ("blob".to_owned(), 1));
    store.record_scan(t2, &[], "{}").unwrap();
    assert_eq!(store.snapshot().unwrap(), Some((t2, "{}".to_owned())));

    // One that writes other bytes when stored than when measured is
    // refused whole, naming the database.
    let calls = std::cell::Cell::new(0);
    let fickle = |w: &mut dyn std::io::Write| {
        calls.set(calls.get() + 1);
        w.write_all(if calls.get() == 1 { b"[1]" } else { b"[22]" })
    };
    let err = store
        .record_scan_with_progress(t("2026-12-01T13:00:00Z"), &[], &fickle, &|| {})
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&tmp.path().join(DB_FILE_NAME).display().to_string()),
        "{err}"
    );
    assert_eq!(store.snapshot().unwrap(), Some((t2, "{}".to_owned())));
    assert_eq!(snapshot_type_and_seq(&store).1, 2);
}

#[test]
fn a_snapshot_stored_as_text_by_an_earlier_version_still_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    store
        .record_scan(t("2026-12-01T10:00:00Z"), &[], "{}")
        .unwrap();
    store
        .conn
        .execute(
            "UPDATE daemon_status SET snapshot_json = '{\"tokens\":[]}'",
            [],
        )
        .unwrap();
    assert_eq!(snapshot_type_and_seq(&store).0, "text");
    assert_eq!(
        store.snapshot().unwrap(),
        Some((t("2026-12-01T10:00:00Z"), "{\"tokens\":[]}".to_owned()))
    );
}
