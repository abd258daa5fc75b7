//! Renewal events as iCalendar: `tokenwatch calendar` and the invite the
//! first mail about an expiring credential carries, read back by a real
//! iCalendar parser.

use chrono::{DateTime, Days, NaiveDate, Utc};
use icalendar::parser::{read_calendar, unfold};

use crate::util::mail::{leaf_parts, read_mails};
use crate::util::{Daemon, Env};

/// `(UID, DTSTART, SEQUENCE, alarm ACTION, alarm TRIGGER)` of every event.
fn events(ics: &str) -> Vec<(String, String, String, String, String)> {
    let unfolded = unfold(ics);
    let cal = read_calendar(&unfolded).unwrap_or_else(|e| panic!("not iCalendar: {e}\n{ics}"));
    let prop = |c: &icalendar::parser::Component, name: &str| {
        c.find_prop(name)
            .map(|p| p.val.as_str().to_owned())
            .unwrap_or_else(|| panic!("{name} missing in {ics}"))
    };
    let method = cal.properties.iter().find(|p| p.name == "METHOD");
    assert_eq!(method.map(|p| p.val.as_str()), Some("PUBLISH"), "{ics}");
    cal.components
        .iter()
        .filter(|c| c.name == "VEVENT")
        .map(|e| {
            let [alarm] = &e.components[..] else {
                panic!("one VALARM per event: {ics}")
            };
            assert_eq!(alarm.name.as_str(), "VALARM");
            (
                prop(e, "UID"),
                prop(e, "DTSTART"),
                prop(e, "SEQUENCE"),
                prop(alarm, "ACTION"),
                prop(alarm, "TRIGGER"),
            )
        })
        .collect()
}

/// The renew-by day (UTC, the default zone) of a `check --json` token, as
/// DTSTART writes it, and its SEQUENCE: days since 1970-01-01.
fn renew_by(token: &serde_json::Value) -> (String, String) {
    let expires: DateTime<Utc> = token["expires_at"].as_str().unwrap().parse().unwrap();
    let today = Utc::now().date_naive();
    let day = expires
        .date_naive()
        .checked_sub_days(Days::new(14))
        .unwrap()
        .max(today);
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    (
        day.format("%Y%m%d").to_string(),
        (day - epoch).num_days().to_string(),
    )
}

#[test]
fn calendar_has_one_event_per_credential_with_its_fingerprint_as_uid() {
    let env = Env::new();
    env.config("");
    env.sample("tokens/a.vpptoken", "Acme Corp", 200);
    env.sample("tokens/b.vpptoken", "Beta GmbH", 5);
    env.write("tokens/broken.vpptoken", "not a token");
    let check = env
        .run(&["-c", "tokenwatch.toml", "check", "--json"])
        .json();
    let run = env.run(&["-c", "tokenwatch.toml", "calendar"]);
    run.expect_code(0);
    let mut got = events(&run.stdout());
    got.sort();
    let mut want: Vec<_> = check["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["expires_at"].is_string())
        .map(|t| {
            let (day, seq) = renew_by(t);
            (
                format!("{}@tokenwatch", t["fingerprint"].as_str().unwrap()),
                day,
                seq,
                "DISPLAY".to_owned(),
                "-PT86400S".to_owned(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(want.len(), 2, "the unreadable file has no event");
    // A day boundary between `check` and `calendar` moves "today".
    assert_eq!(got, want, "{}", run.describe());

    let out = env.path().join("pub/renewals.ics");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, "old").unwrap();
    env.run(&[
        "-c",
        "tokenwatch.toml",
        "calendar",
        "-o",
        "pub/renewals.ics",
    ])
    .expect_code(0);
    let written = std::fs::read_to_string(&out).unwrap();
    // Meant to be published: readable by a web server, unlike the state.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(events(&written).len(), 2, "{written}");
    let left: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "no temp file left: {left:?}");
}

#[test]
fn calendar_with_a_bad_config_exits_3() {
    let env = Env::new();
    env.write("tokenwatch.toml", "no_such_key = 1\n");
    let run = env.run(&["-c", "tokenwatch.toml", "calendar"]);
    run.expect_code(3);
    assert!(run.stdout().is_empty(), "{}", run.describe());
}

/// The `text/calendar` parts of a mail: `(content type, body)`.
fn calendar_parts(raw: &str) -> Vec<(String, String)> {
    leaf_parts(raw)
        .into_iter()
        .filter(|(ctype, _)| ctype.to_ascii_lowercase().starts_with("text/calendar"))
        .collect()
}

#[test]
fn the_first_expiring_mail_carries_one_invite_for_the_renew_by_day() {
    let env = Env::new();
    let cfg = env.config("lead_days = [30, 14]");
    env.sample("tokens/a.vpptoken", "Acme Corp", 20);
    let mut d = Daemon::start(&env, &cfg);
    d.wait_for("the 30-day mail", 30, |s| {
        s["outbox"].as_array().is_some_and(Vec::is_empty)
            && read_mails(&env.path().join("state/mail")).len() == 1
    });
    let check = env
        .run(&["-c", "tokenwatch.toml", "check", "--json"])
        .json();
    let (day, seq) = renew_by(&check["tokens"][0]);
    let first = read_mails(&env.path().join("state/mail"));
    let raw = String::from_utf8_lossy(&first[0].1).into_owned();
    let parts = calendar_parts(&raw);
    let [(ctype, ics)] = &parts[..] else {
        panic!("one calendar part: {raw}")
    };
    assert!(
        ctype.to_ascii_lowercase().contains("method=publish"),
        "{ctype}"
    );
    let fp = check["tokens"][0]["fingerprint"].as_str().unwrap();
    assert_eq!(
        events(ics),
        [(
            format!("{fp}@tokenwatch"),
            day,
            seq,
            "DISPLAY".to_owned(),
            "-PT86400S".to_owned()
        )]
    );
    d.stop();
}

/// The lead days that came due while the credential was silenced carried no
/// mail, so no invite: the first mail after the silence carries it.
#[test]
fn the_first_mail_after_a_silence_carries_the_invite_the_silenced_lead_day_did_not() {
    let env = Env::new();
    let mails_about = |org: &str| -> Vec<String> {
        read_mails(&env.path().join("state/mail"))
            .into_iter()
            .map(|(_, raw, _)| String::from_utf8_lossy(&raw).into_owned())
            .filter(|raw| crate::util::mail::decoded(raw).contains(org))
            .collect()
    };
    // A first run, so there is a state to keep the silence in.
    let cfg = env.config("lead_days = [60]");
    env.sample("tokens/canary.vpptoken", "Canary Corp", -1);
    let mut d = Daemon::start(&env, &cfg);
    d.wait_for("the canary's mail", 30, |_| {
        !mails_about("Canary Corp").is_empty()
    });
    d.stop();
    std::fs::remove_file(env.path().join("tokens/canary.vpptoken")).unwrap();

    let file = env.sample("tokens/closed.vpptoken", "Closed Location", 20);
    let file = file.to_str().unwrap();
    env.run(&[
        "-c",
        "tokenwatch.toml",
        "silence",
        file,
        "--until",
        "2099-01-01",
    ])
    .expect_code(0);
    // Its 60-day alert comes due while silenced; a second canary shows the
    // pass queued its alerts.
    env.sample("tokens/canary2.vpptoken", "Second Canary", -1);
    let mut d = Daemon::start(&env, &cfg);
    d.wait_for("the second canary's mail", 30, |_| {
        !mails_about("Second Canary").is_empty()
    });
    d.stop();
    assert!(mails_about("Closed Location").is_empty(), "silenced");

    env.run(&["-c", "tokenwatch.toml", "silence", "clear", file])
        .expect_code(0);
    let cfg = env.config("lead_days = [60, 30]");
    let mut d = Daemon::start(&env, &cfg);
    d.wait_for("the 30-day mail", 30, |_| {
        !mails_about("Closed Location").is_empty()
    });
    d.stop();
    let mails = mails_about("Closed Location");
    let [raw] = &mails[..] else {
        panic!("one mail after the silence: {mails:#?}")
    };
    let subject = crate::util::mail::header(&crate::util::mail::decoded(raw), "Subject");
    assert!(
        subject.as_deref().is_some_and(|s| s.contains("expires in")),
        "the 30-day alert: {raw}"
    );
    assert_eq!(calendar_parts(raw).len(), 1, "one invite: {raw}");
}
