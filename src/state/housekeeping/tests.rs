use super::*;
use crate::state::{schema, user_version, NewLedgerRow, NewRow, SeenToken, StoredVerdict};
use crate::state::{DB_FILE_NAME, SCHEMA_VERSION};

/// The moment housekeeping runs in these tests.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2028-06-01T04:30:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn days_ago(days: i64) -> DateTime<Utc> {
    now() - Duration::days(days)
}

const WINDOW: i64 = 400;

fn fp(c: char) -> String {
    c.to_string().repeat(64)
}

fn seen(c: char) -> SeenToken {
    SeenToken {
        fingerprint: fp(c),
        path: format!("/t/{c}.vpptoken"),
        org_name: "Acme Corp".to_owned(),
        created_at: days_ago(800),
        expires_at: days_ago(435),
        account: None,
        status: "expired".to_owned(),
        detail: None,
    }
}

fn row(key: &str, fingerprint: Option<&str>) -> NewLedgerRow {
    NewLedgerRow {
        key: key.to_owned(),
        fingerprint: fingerprint.map(str::to_owned),
        mailed: true,
    }
}

fn mail(id: &str, keys: &[&str]) -> NewRow {
    NewRow {
        message_id: format!("<{id}@tokenwatch>"),
        alert_keys: keys.iter().map(|k| k.to_string()).collect(),
        channel: "mail".to_owned(),
        recipients: vec!["ops@example.com".to_owned()],
        title: id.to_owned(),
        payload: "{}".to_owned(),
        date: days_ago(500),
    }
}

fn verdict(c: char) -> StoredVerdict {
    StoredVerdict {
        fingerprint: fp(c),
        verified_at: days_ago(402),
        verdict: crate::evaluate::Verdict::Valid,
        location_name: None,
        uid: None,
        mdm_name: None,
        apple_expires_at: None,
        error: None,
        first_failure_at: None,
    }
}

fn count(store: &StateStore, sql: &str) -> i64 {
    store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn keys(store: &StateStore) -> Vec<String> {
    store.ledger().unwrap().into_iter().map(|r| r.key).collect()
}

fn present(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn housekeep(store: &mut StateStore, present: &HashSet<String>) -> Forgotten {
    store
        .housekeep(now(), Duration::days(WINDOW), present)
        .unwrap()
}

/// a: gone 401 days; b: gone 399 days; c: present, first seen 401 days ago.
fn three_tokens(store: &mut StateStore) {
    store
        .record_scan(days_ago(401), &[seen('a'), seen('b'), seen('c')], "{}")
        .unwrap();
    for c in ['a', 'b', 'c'] {
        let f = fp(c);
        store
            .commit_alerts(
                days_ago(401),
                &[
                    row(&format!("expired:{f}"), Some(&f)),
                    row(&format!("expiring:{f}:30"), Some(&f)),
                ],
                &[],
            )
            .unwrap();
        store.put_verdict(&verdict(c)).unwrap();
    }
    store
        .record_scan(days_ago(399), &[seen('b'), seen('c')], "{}")
        .unwrap();
    store.record_scan(days_ago(1), &[seen('c')], "{}").unwrap();
}

#[test]
fn a_token_gone_401_days_is_forgotten_399_days_is_kept_and_a_present_one_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    three_tokens(&mut store);
    assert_eq!(count(&store, "SELECT count(*) FROM tokens"), 3);
    assert_eq!(count(&store, "SELECT count(*) FROM ledger"), 6);
    assert_eq!(count(&store, "SELECT count(*) FROM verdicts"), 3);

    let f = housekeep(&mut store, &present(&[&fp('c')]));

    assert_eq!(
        f,
        Forgotten {
            mails: 0,
            tokens: 1,
            files: 0,
            ledger_rows: 2
        }
    );
    assert_eq!(count(&store, "SELECT count(*) FROM tokens"), 2);
    assert_eq!(count(&store, "SELECT count(*) FROM ledger"), 4);
    assert_eq!(count(&store, "SELECT count(*) FROM verdicts"), 2);
    let a = fp('a');
    assert!(keys(&store).iter().all(|k| !k.contains(&a)));
    assert_eq!(
        count(
            &store,
            &format!("SELECT count(*) FROM tokens WHERE fingerprint = '{a}'")
        ),
        0
    );
    // Running again changes nothing.
    assert_eq!(
        housekeep(&mut store, &present(&[&fp('c')])),
        Forgotten::default()
    );
}

#[test]
fn a_forgotten_token_takes_its_silence_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    three_tokens(&mut store);
    let silence = crate::assess::Silence {
        until: now() + Duration::days(90),
        reason: Some("closed location".to_owned()),
    };
    for c in ['a', 'b'] {
        store.put_silence(&fp(c), &silence, days_ago(500)).unwrap();
    }
    housekeep(&mut store, &present(&[&fp('c')]));
    let left: Vec<String> = store.silences().unwrap().into_keys().collect();
    assert_eq!(left, [fp('b')], "a is gone 401 days, b only 399");
}

#[test]
fn a_forgotten_token_that_comes_back_is_new() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    three_tokens(&mut store);
    housekeep(&mut store, &present(&[&fp('c')]));
    store
        .record_scan(now(), &[seen('a'), seen('c')], "{}")
        .unwrap();
    let a = fp('a');
    assert!(store.ledger_for([a.as_str()]).unwrap().is_empty());
    assert!(store.verdicts().unwrap().iter().all(|v| v.fingerprint != a));
    let (_, first_seen, _, present) = store
        .known_tokens()
        .unwrap()
        .into_iter()
        .find(|(t, ..)| t.fingerprint == a)
        .unwrap();
    assert_eq!((first_seen, present), (now(), true));
}

#[test]
fn sent_mail_older_than_the_window_goes_pending_and_parked_mail_never() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let ids = store
        .commit_alerts(
            days_ago(900),
            &[],
            &[
                mail("old-sent", &[]),
                mail("new-sent", &[]),
                mail("parked", &[]),
                mail("pending", &[]),
            ],
        )
        .unwrap();
    store.mark_sent(ids[0], days_ago(401), "250 ok").unwrap();
    store.mark_sent(ids[1], days_ago(399), "250 ok").unwrap();
    store
        .mark_failed(ids[2], days_ago(800), "554 no", None)
        .unwrap();
    store
        .mark_failed(ids[3], days_ago(800), "451 later", Some(days_ago(799)))
        .unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM outbox"), 4);

    let f = housekeep(&mut store, &HashSet::new());

    assert_eq!(f.mails, 1);
    let left: Vec<String> = store
        .conn
        .prepare("SELECT title FROM outbox ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(left, ["new-sent", "parked", "pending"]);
}

#[test]
fn a_gone_token_named_by_a_mail_still_in_the_outbox_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    three_tokens(&mut store);
    let key = format!("expired:{}", fp('a'));
    let ids = store
        // A summary naming it with an alert not in the ledger yet.
        .commit_alerts(days_ago(500), &[], &[mail("parked", &[&key, "other"])])
        .unwrap();
    store
        .mark_failed(ids[0], days_ago(500), "554", None)
        .unwrap();

    let f = housekeep(&mut store, &present(&[&fp('c')]));

    assert_eq!((f.tokens, f.ledger_rows), (0, 0));
    assert!(keys(&store).contains(&key));
}

#[test]
fn unreadable_files_are_forgotten_once_absent_and_old() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let (gone, here, recent) = (fp('1'), "path:/t/fifo.vpptoken".to_owned(), fp('2'));
    store
        .commit_alerts(
            days_ago(401),
            &[
                row(&format!("unreadable:{gone}:/t/x"), Some(&gone)),
                row(&format!("unreadable:{here}:/t/fifo"), Some(&here)),
            ],
            &[],
        )
        .unwrap();
    store
        .commit_alerts(
            days_ago(399),
            &[row(&format!("unreadable:{recent}:/t/y"), Some(&recent))],
            &[],
        )
        .unwrap();

    let f = housekeep(&mut store, &present(&[&here]));

    assert_eq!((f.files, f.ledger_rows), (1, 1));
    assert_eq!(
        keys(&store),
        [
            format!("unreadable:{recent}:/t/y"),
            format!("unreadable:{here}:/t/fifo"),
        ]
    );
}

#[test]
fn rows_of_no_token_go_when_old_and_folder_episodes_only_when_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let old = [
        "digest:2027-01-04:ops@example.com",
        "apple_unreachable:1700000000",
        // Closed: two episodes, both over.
        "folder:/srv/a:b:problem:1",
        "folder:/srv/a:b:recovered:1",
        "folder:/srv/a:b:problem:2",
        "folder:/srv/a:b:recovered:2",
        // Open: the folder is still missing.
        "folder:/srv/gone:problem:1",
        // Closed, but its recovery is recent (below).
        "folder:/srv/c:problem:1",
    ];
    let recent = [
        "digest:2028-05-29:ops@example.com",
        "folder:/srv/c:recovered:1",
        "something:else",
    ];
    let rows: Vec<_> = old.iter().map(|k| row(k, None)).collect();
    store.commit_alerts(days_ago(401), &rows, &[]).unwrap();
    let rows: Vec<_> = recent.iter().map(|k| row(k, None)).collect();
    store.commit_alerts(days_ago(3), &rows, &[]).unwrap();

    let f = housekeep(&mut store, &HashSet::new());

    assert_eq!(f.ledger_rows, 6);
    assert_eq!(
        keys(&store),
        [
            "digest:2028-05-29:ops@example.com",
            "folder:/srv/c:problem:1",
            "folder:/srv/c:recovered:1",
            "folder:/srv/gone:problem:1",
            "something:else",
        ]
    );
}

#[test]
fn a_pass_reads_only_the_ledger_rows_of_present_tokens_and_of_no_token() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let (a, b) = (fp('a'), fp('b'));
    store
        .commit_alerts(
            days_ago(1),
            &[
                row(&format!("expired:{a}"), Some(&a)),
                row(&format!("expired:{a}:1"), Some(&a)),
                row(&format!("expired:{b}"), Some(&b)),
                row("folder:/srv/a:problem:1", None),
            ],
            &[],
        )
        .unwrap();
    let keys_for = |ids: &[&str]| -> Vec<String> {
        store
            .ledger_for(ids.iter().copied())
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect()
    };
    assert_eq!(
        keys_for(&[&a, &a]),
        [
            format!("expired:{a}"),
            format!("expired:{a}:1"),
            "folder:/srv/a:problem:1".to_owned()
        ]
    );
    assert_eq!(keys_for(&[]), ["folder:/srv/a:problem:1"]);
    assert_eq!(keys_for(&[&a, &b]).len(), 4);
}

#[test]
fn a_version_1_database_is_migrated_in_place_keeping_its_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join(DB_FILE_NAME);
    {
        let mut conn = rusqlite::Connection::open(&db).unwrap();
        schema::migrate(&mut conn, &db, &schema::MIGRATIONS[..1]).unwrap();
        conn.execute(
            "INSERT INTO ledger (key, fingerprint, recorded_at, mailed)
             VALUES ('expired:x', 'x', '2027-01-01T00:00:00.000000Z', 1)",
            [],
        )
        .unwrap();
        assert_eq!(user_version(&conn).unwrap(), 1);
    }
    let store = StateStore::open(tmp.path()).unwrap();
    assert_eq!(user_version(&store.conn).unwrap(), SCHEMA_VERSION);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM sqlite_master WHERE type = 'index'
             AND name IN ('ledger_by_fingerprint', 'tokens_by_presence')"
        ),
        2
    );
    assert_eq!(keys(&store), ["expired:x"]);
}

/// Years of history: `n` tokens gone 401 days with two ledger rows and a
/// verdict each (every seventh named by a parked mail, every fifth
/// present again), `n` old sent mails, `n` unreadable files gone, old
/// digests and closed folder episodes.
fn years_of_rows(store: &mut StateStore, n: usize) -> HashSet<String> {
    let fps: Vec<String> = (0..n).map(|i| format!("{i:064x}")).collect();
    let tokens: Vec<SeenToken> = fps
        .iter()
        .map(|f| SeenToken {
            fingerprint: f.clone(),
            path: format!("/t/{f}.vpptoken"),
            ..seen('a')
        })
        .collect();
    store.record_scan(days_ago(401), &tokens, "{}").unwrap();
    let mut rows = Vec::new();
    for f in &fps {
        rows.push(row(&format!("expired:{f}"), Some(f)));
        rows.push(row(&format!("expiring:{f}:30"), Some(f)));
        rows.push(row(
            &format!("unreadable:file{f}"),
            Some(&format!("file{f}")),
        ));
    }
    for d in 0..n {
        rows.push(row(&format!("digest:{d}:ops@example.com"), None));
        rows.push(row(&format!("folder:/srv/{d}:problem:1"), None));
        rows.push(row(&format!("folder:/srv/{d}:recovered:1"), None));
    }
    store.commit_alerts(days_ago(401), &rows, &[]).unwrap();
    for f in &fps {
        store
            .put_verdict(&StoredVerdict {
                fingerprint: f.clone(),
                ..verdict('a')
            })
            .unwrap();
    }
    let mut named: Vec<String> = fps
        .iter()
        .step_by(7)
        .map(|f| format!("expired:{f}"))
        .collect();
    // Not in the ledger yet, so the mail is queued.
    named.push("other".to_owned());
    let mut mails: Vec<NewRow> = (0..n).map(|i| mail(&format!("sent-{i}"), &[])).collect();
    mails.push(NewRow {
        alert_keys: named,
        ..mail("parked", &[])
    });
    let ids = store.commit_alerts(days_ago(500), &[], &mails).unwrap();
    for id in &ids[..n] {
        store.mark_sent(*id, days_ago(450), "250 ok").unwrap();
    }
    store
        .mark_failed(ids[n], days_ago(450), "554", None)
        .unwrap();
    store.record_scan(days_ago(1), &[], "{}").unwrap();
    fps.iter().step_by(5).cloned().collect()
}

/// Every row of every table housekeeping touches, to compare two stores.
fn everything(store: &StateStore) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT key || ' ' || coalesce(fingerprint, '') FROM ledger ORDER BY key",
        "SELECT fingerprint FROM verdicts ORDER BY fingerprint",
        "SELECT fingerprint FROM tokens ORDER BY fingerprint",
        "SELECT message_id || ' ' || state FROM outbox ORDER BY id",
    ] {
        let rows: Vec<String> = store
            .conn
            .prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        out.push(format!("{sql}: {rows:?}"));
    }
    out
}

#[test]
fn housekeeping_in_small_batches_forgets_exactly_what_one_transaction_does() {
    let (one, many) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut whole = StateStore::open(one.path()).unwrap();
    let mut batched = StateStore::open(many.path()).unwrap();
    let present = years_of_rows(&mut whole, 60);
    years_of_rows(&mut batched, 60);

    let a = whole
        .housekeep_in_batches(now(), Duration::days(WINDOW), &present, usize::MAX, &|| {})
        .unwrap();
    let b = batched
        .housekeep_in_batches(now(), Duration::days(WINDOW), &present, 7, &|| {})
        .unwrap();

    assert_eq!(a, b);
    // Something of every kind went, and something of every kind stayed.
    assert_eq!((a.mails, a.files), (60, 60));
    assert!(a.tokens > 0 && a.tokens < 60, "{a:?}");
    assert_eq!(everything(&whole), everything(&batched));
}

#[test]
fn housekeeping_of_many_rows_reports_progress_and_lets_other_writers_in_between_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(tmp.path()).unwrap();
    let present = years_of_rows(&mut store, 200);
    // Another writer (the sender, the prober) with no patience at all: it
    // gets the write lock only between two transactions.
    let other = rusqlite::Connection::open(tmp.path().join(DB_FILE_NAME)).unwrap();
    other.busy_timeout(std::time::Duration::ZERO).unwrap();
    let calls = std::cell::Cell::new(0usize);
    let turns = std::cell::Cell::new(0usize);
    let progress = || {
        calls.set(calls.get() + 1);
        if other.execute_batch("BEGIN IMMEDIATE; ROLLBACK").is_ok() {
            turns.set(turns.get() + 1);
        }
    };

    let f = store
        .housekeep_in_batches(now(), Duration::days(WINDOW), &present, 50, &progress)
        .unwrap();

    // 200 gone tokens and 200 gone files looked at one by one, 600 rows
    // of no token read, each batch of 50 committed.
    assert!(calls.get() >= 1000, "{} progress calls", calls.get());
    let batches = 200 / 50 + 200 / 50 + 200 / 50;
    assert!(
        turns.get() >= batches,
        "{} turns for other writers",
        turns.get()
    );
    assert_eq!((f.mails, f.files), (200, 200));
}
