//! A state database written by the release before the channel-neutral
//! outbox (schema 1, `tests/fixtures/state/make.sh`: mails 1-2 parked after
//! 554 answers, 3-4 pending while the relay was down, 5 dropped by ops)
//! under the current daemon: migrated in place on its first start, nothing
//! lost, nothing sent twice, and the ids ops see in `status` still name the
//! same mails.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::smtp_stub::{Received, SmtpStub};
use crate::util::mail::{decoded, header};
use crate::util::{Daemon, Env};

/// One outbox row of the fixture, as the release wrote it.
#[derive(Debug, Clone)]
struct V1Mail {
    id: i64,
    state: String,
    message_id: String,
    subject: String,
    to: Vec<String>,
    text: String,
    date: String,
}

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state/v1-pending-parked.db")
}

/// The release's `status --json` outbox entries of the fixture, by id.
fn v1_status_outbox() -> BTreeMap<i64, serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/state/v1-pending-parked.status.json");
    let status: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    status["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_i64().unwrap(), e.clone()))
        .collect()
}

/// The highest id the fixture's outbox ever gave, dropped mails included.
fn v1_last_id(db: &Path) -> i64 {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row(
        "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// The fixture's outbox, read from a copy so the committed file stays as
/// it is.
fn v1_outbox(db: &Path) -> Vec<V1Mail> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1, "the fixture must be a schema-1 database");
    let mut stmt = conn
        .prepare(
            "SELECT id, state, message_id, subject, to_addrs, text_body, date
             FROM outbox ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(V1Mail {
            id: r.get(0)?,
            state: r.get(1)?,
            message_id: r.get(2)?,
            subject: r.get(3)?,
            to: serde_json::from_str(&r.get::<_, String>(4)?).unwrap(),
            text: r.get(5)?,
            date: r.get(6)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Received mails by Message-ID.
fn by_message_id(msgs: &[Received]) -> BTreeMap<String, Vec<Received>> {
    let mut out: BTreeMap<String, Vec<Received>> = BTreeMap::new();
    for m in msgs {
        let id = header(&m.text(), "Message-ID").expect("Message-ID");
        out.entry(id).or_default().push(m.clone());
    }
    out
}

/// The one delivery of `mail`: same Message-ID, Subject, recipients, Date
/// and body as the release rendered and stored.
fn assert_delivered_once_as_stored(got: &BTreeMap<String, Vec<Received>>, mail: &V1Mail) {
    let copies = got.get(&mail.message_id).map_or(0, Vec::len);
    assert_eq!(copies, 1, "mail #{} arrived {copies} times", mail.id);
    let m = &got[&mail.message_id][0];
    let raw = m.text();
    assert_eq!(
        header(&raw, "Subject").as_deref(),
        Some(mail.subject.as_str())
    );
    let (mut to, mut want) = (m.to.clone(), mail.to.clone());
    to.sort();
    want.sort();
    assert_eq!(to, want, "recipients of mail #{}", mail.id);
    let sent_date = chrono::DateTime::parse_from_rfc2822(&header(&raw, "Date").unwrap()).unwrap();
    let stored_date = chrono::DateTime::parse_from_rfc3339(&mail.date).unwrap();
    assert_eq!(sent_date.timestamp(), stored_date.timestamp());
    // The stored body, not a new rendering: it names the fixture's token
    // paths, which no longer exist.
    let body = decoded(&raw);
    for line in mail.text.lines().filter(|l| !l.is_empty()) {
        assert!(
            body.contains(line),
            "mail #{}: {line:?} missing:\n{body}",
            mail.id
        );
    }
}

fn outbox_ids(status: &serde_json::Value) -> Vec<i64> {
    status["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn a_schema_1_database_is_migrated_in_place_and_nothing_is_lost_or_sent_twice() {
    let stub = SmtpStub::start();
    let env = Env::new();
    let db = env.path().join("state/tokenwatch.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::copy(fixture(), &db).unwrap();
    let v1 = v1_outbox(&db);
    let (parked, pending): (Vec<V1Mail>, Vec<V1Mail>) =
        v1.iter().cloned().partition(|m| m.state == "parked");
    assert_eq!(
        (parked.len(), pending.len(), v1.len()),
        (2, 2, 4),
        "{v1:#?}"
    );
    let dropped = v1_last_id(&db);
    assert!(
        v1.iter().all(|m| m.id < dropped),
        "the fixture must have a dropped id after the others"
    );
    // What the release showed ops is what the database holds.
    let v1_status = v1_status_outbox();
    assert_eq!(
        v1_status.keys().copied().collect::<Vec<_>>(),
        v1.iter().map(|m| m.id).collect::<Vec<_>>()
    );
    for m in &v1 {
        let e = &v1_status[&m.id];
        assert_eq!(e["subject"], m.subject.as_str());
        assert_eq!(e["to"], serde_json::json!(m.to));
        assert_eq!(e["message_id"], m.message_id.as_str());
    }
    let cfg = env.write(
        "tokenwatch.toml",
        format!(
            "state_dir = \"state\"\ntimezone = \"UTC\"\n[alerts]\nrecipients = [\"ops@example.com\", \"apps-team@example.com\"]\nfrom = \"tokenwatch <tokenwatch@example.com>\"\n[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout_secs = 5\n[[folder]]\npath = \"tokens\"\naccount = \"apps@example.appleaccount.com\"\n[[account]]\nid = \"apps@example.appleaccount.com\"\n",
            stub.port
        ),
    );
    // A token the release never saw: its alert is queued after migration.
    env.sample("tokens/new.vpptoken", "New Since Upgrade", 3);

    let mut d = Daemon::start(&env, &cfg);
    let s = d.wait_for("the pending mails sent, the parked ones kept", 30, |s| {
        outbox_ids(s) == [parked[0].id, parked[1].id]
            && by_message_id(&stub.messages()).len() > pending.len()
    });
    // A sender working through the outbox again would have done so by now.
    std::thread::sleep(Duration::from_secs(1));
    let got = by_message_id(&stub.messages());
    for m in &pending {
        assert_delivered_once_as_stored(&got, m);
    }
    for m in &parked {
        assert!(
            !got.contains_key(&m.message_id),
            "parked mail #{} was sent",
            m.id
        );
    }

    // Ops see the parked mails as the release showed them, plus the channel.
    for e in s["outbox"].as_array().unwrap() {
        let mut e = e.clone();
        let channel = e.as_object_mut().unwrap().remove("channel");
        assert_eq!(channel, Some(serde_json::json!("mail")), "{e}");
        assert_eq!(e, v1_status[&e["id"].as_i64().unwrap()]);
    }

    // `outbox retry ID` with the id the release gave the mail.
    let run = env.run(&[
        "-c",
        "tokenwatch.toml",
        "outbox",
        "retry",
        &parked[0].id.to_string(),
    ]);
    run.expect_code(0);
    d.wait_for("the retried mail sent", 30, |s| {
        outbox_ids(s) == [parked[1].id]
    });
    std::thread::sleep(Duration::from_secs(1));
    let got = by_message_id(&stub.messages());
    assert_delivered_once_as_stored(&got, &parked[0]);
    for m in &pending {
        assert_eq!(got[&m.message_id].len(), 1, "mail #{} sent again", m.id);
    }

    d.stop();

    let conn = Connection::open(&db).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, tokenwatch::state::SCHEMA_VERSION);
    let integrity: String = conn
        .pragma_query_value(None, "integrity_check", |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    // Every mail the release queued is still there under its id; the new
    // alert came after all of them, the dropped one included.
    let rows: Vec<(i64, String, String)> = conn
        .prepare("SELECT id, message_id, channel FROM outbox ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for m in &v1 {
        assert!(
            rows.iter()
                .any(|(id, mid, _)| *id == m.id && *mid == m.message_id),
            "mail #{} lost: {rows:?}",
            m.id
        );
    }
    let new: Vec<_> = rows.iter().filter(|(id, ..)| *id > dropped).collect();
    assert!(!new.is_empty(), "no new alert queued: {rows:?}");
    assert!(!rows.iter().any(|(id, ..)| *id == dropped), "{rows:?}");
    assert_eq!(rows.len(), v1.len() + new.len(), "{rows:?}");
    assert!(
        rows.iter().all(|(.., channel)| channel == "mail"),
        "{rows:?}"
    );
    for (_, mid, _) in &new {
        assert_eq!(got[mid].len(), 1, "new alert {mid}");
    }
}
