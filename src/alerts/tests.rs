use super::*;
use crate::token::found::FolderState;
use chrono::TimeZone;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

fn policy() -> Policy {
    Policy {
        lead_days: vec![60, 30, 14, 7, 3, 1],
        repeat_days: 7,
        require_account: false,
    }
}

fn token(fp: &str, status: Status, days_left: i64) -> Assessment {
    Assessment {
        identity: fp.into(),
        path: format!("/srv/tokens/{fp}.vpptoken"),
        kind: crate::token::KindId::Vpp,
        org_name: Some("Acme".into()),
        fingerprint: None,
        status,
        days_left: Some(days_left),
        expires_at: Some(now() + Duration::days(days_left)),
        created_at: None,
        account: Some("apps@acme".into()),
        detail: None,
        world_readable: false,
        modified_at: None,
        folder: 0,
        apple: None,
        silenced: None,
        superseded_by: None,
        mdm_conflict: None,
        replaces_topic: None,
        kind_facts: Default::default(),
    }
}

fn member(address: &str) -> Member {
    Member {
        channel: "mail",
        address: address.into(),
        key: address.to_lowercase(),
    }
}

/// Folder 0 and the host tell ops@example.com; folder 1 tells
/// acme@example.com.
fn audiences() -> Audiences {
    let mut out = Audiences::default();
    let ops = out.add(Audience {
        members: vec![member("ops@example.com")],
    });
    let acme = out.add(Audience {
        members: vec![member("acme@example.com")],
    });
    out.folder = vec![ops, acme];
    out.host = ops;
    out
}

fn folder(path: &str, state: FolderState) -> FolderAssessment {
    FolderAssessment {
        path: path.into(),
        state,
        tokens: 0,
        error: None,
    }
}

/// A plan with no host facts and the default policy.
fn quick(
    now: DateTime<Utc>,
    subjects: &[Assessment],
    folders: &[FolderAssessment],
    ledger: &Ledger,
) -> Plan {
    plan(
        now,
        subjects,
        folders,
        &HostFacts::default(),
        ledger,
        &policy(),
        &audiences(),
    )
}

/// Applies a plan to the ledger as the daemon would.
fn record(ledger: &mut Ledger, plan: &Plan, at: DateTime<Utc>) {
    for a in &plan.alerts {
        ledger.insert(a.key.clone(), Recorded { at, mailed: true });
        for k in &a.also_done {
            ledger.insert(k.clone(), Recorded { at, mailed: false });
        }
    }
}

fn keys(plan: &Plan) -> Vec<&str> {
    plan.alerts.iter().map(|a| a.key.as_str()).collect()
}

#[test]
fn first_sight_at_20_days_sends_only_the_most_urgent_threshold() {
    let subjects = [token("aaa", Status::Expiring, 20)];
    let mut ledger = Ledger::new();
    let p = quick(now(), &subjects, &[], &ledger);
    assert_eq!(keys(&p), ["expiring:aaa:30"]);
    assert_eq!(p.alerts[0].also_done, ["expiring:aaa:60"]);
    record(&mut ledger, &p, now());
    // The same pass again (restart) plans nothing.
    assert!(quick(now(), &subjects, &[], &ledger).alerts.is_empty());
    // Crossing 14 later sends exactly that one.
    let later = [token("aaa", Status::Expiring, 14)];
    assert_eq!(
        keys(&quick(now(), &later, &[], &ledger)),
        ["expiring:aaa:14"]
    );
}

#[test]
fn only_the_first_lead_day_alert_of_a_credential_is_marked_first() {
    let mut ledger = Ledger::new();
    let p = quick(now(), &[token("aaa", Status::Expiring, 20)], &[], &ledger);
    assert!(matches!(
        p.alerts[0].kind,
        AlertKind::Expiring {
            days: 30,
            first: true
        }
    ));
    record(&mut ledger, &p, now());
    let later = quick(now(), &[token("aaa", Status::Expiring, 14)], &[], &ledger);
    assert!(matches!(
        later.alerts[0].kind,
        AlertKind::Expiring {
            days: 14,
            first: false
        }
    ));
}

#[test]
fn the_first_lead_day_mailed_after_a_silence_is_marked_first() {
    // 60 and 30 came due while the credential was silenced: recorded as
    // done without a message, so nobody got the invite yet.
    let mut ledger = Ledger::new();
    for d in [60, 30] {
        let r = Recorded {
            at: now(),
            mailed: false,
        };
        ledger.insert(format!("expiring:aaa:{d}"), r);
    }
    let p = quick(now(), &[token("aaa", Status::Expiring, 14)], &[], &ledger);
    assert!(
        matches!(
            p.alerts[0].kind,
            AlertKind::Expiring {
                days: 14,
                first: true
            }
        ),
        "{p:?}"
    );
}

#[test]
fn threshold_is_crossed_exactly_at_days_left_equal() {
    let ledger = Ledger::new();
    assert!(plan(
        now(),
        &[token("a", Status::Ok, 61)],
        &[],
        &HostFacts::default(),
        &ledger,
        &policy(),
        &audiences(),
    )
    .alerts
    .is_empty());
    assert_eq!(
        keys(&plan(
            now(),
            &[token("a", Status::Expiring, 60)],
            &[],
            &HostFacts::default(),
            &ledger,
            &policy(),
            &audiences(),
        )),
        ["expiring:a:60"]
    );
}

#[test]
fn a_down_daemon_sends_no_burst_of_stale_warnings() {
    let mut ledger = Ledger::new();
    let p = plan(
        now(),
        &[token("a", Status::Expiring, 59)],
        &[],
        &HostFacts::default(),
        &ledger,
        &policy(),
        &audiences(),
    );
    record(&mut ledger, &p, now());
    // Down for 57 days: 30, 14, 7, 3 all crossed; only 3 is sent.
    let p = plan(
        now(),
        &[token("a", Status::Expiring, 2)],
        &[],
        &HostFacts::default(),
        &ledger,
        &policy(),
        &audiences(),
    );
    assert_eq!(keys(&p), ["expiring:a:3"]);
    assert_eq!(
        p.alerts[0].also_done,
        ["expiring:a:30", "expiring:a:14", "expiring:a:7"]
    );
}

#[test]
fn expired_mails_once_then_reminds_every_repeat_days() {
    let mut ledger = Ledger::new();
    let t = |days| [token("e", Status::Expired, days)];
    let p = quick(now(), &t(0), &[], &ledger);
    assert_eq!(keys(&p), ["expired:e"]);
    record(&mut ledger, &p, now());
    assert!(quick(now(), &t(-6), &[], &ledger).alerts.is_empty());
    let p = quick(now(), &t(-7), &[], &ledger);
    assert_eq!(keys(&p), ["expired:e:1"]);
    record(&mut ledger, &p, now());
    assert!(quick(now(), &t(-13), &[], &ledger).alerts.is_empty());
    assert_eq!(keys(&quick(now(), &t(-14), &[], &ledger)), ["expired:e:2"]);
}

#[test]
fn a_long_expired_token_seen_first_gets_one_mail() {
    let p = plan(
        now(),
        &[token("e", Status::Expired, -30)],
        &[],
        &HostFacts::default(),
        &Ledger::new(),
        &policy(),
        &audiences(),
    );
    assert_eq!(keys(&p), ["expired:e"]);
    // Days -30 → reminder number 4 (every 7 days): 1..=4 count as done.
    assert_eq!(
        p.alerts[0].also_done,
        ["expired:e:1", "expired:e:2", "expired:e:3", "expired:e:4"]
    );
}

#[test]
fn invalidated_sends_once_then_reminds_and_stops_expiry_mails() {
    let mut ledger = Ledger::new();
    let mut t = token("i", Status::Invalidated, 5);
    t.detail = Some("password_change".into());
    let p = quick(now(), std::slice::from_ref(&t), &[], &ledger);
    assert_eq!(keys(&p), ["invalidated:i:password_change"]);
    record(&mut ledger, &p, now());
    // No expiring mail although 5 days are left.
    assert!(quick(
        now() + Duration::days(6),
        std::slice::from_ref(&t),
        &[],
        &ledger
    )
    .alerts
    .is_empty());
    let p = quick(
        now() + Duration::days(7),
        std::slice::from_ref(&t),
        &[],
        &ledger,
    );
    assert_eq!(keys(&p), ["invalidated:i:password_change:1"]);
}

#[test]
fn unreadable_waits_until_the_file_settles_and_alerts_once_per_content() {
    let mut t = token("u", Status::Unreadable, 0);
    t.days_left = None;
    t.detail = Some("empty file".into());
    t.modified_at = Some(now() - Duration::seconds(3));
    let mut ledger = Ledger::new();
    let p = quick(now(), std::slice::from_ref(&t), &[], &ledger);
    assert!(p.alerts.is_empty());
    assert_eq!(p.recheck_at, Some(now() + Duration::seconds(7)));
    let p = quick(
        now() + Duration::seconds(7),
        std::slice::from_ref(&t),
        &[],
        &ledger,
    );
    assert_eq!(keys(&p), ["unreadable:u:/srv/tokens/u.vpptoken"]);
    record(&mut ledger, &p, now());
    assert!(quick(
        now() + Duration::days(1),
        std::slice::from_ref(&t),
        &[],
        &ledger
    )
    .alerts
    .is_empty());
    // New broken content is a new alert.
    t.identity = "u2".into();
    assert_eq!(
        keys(&quick(now() + Duration::days(1), &[t], &[], &ledger)),
        ["unreadable:u2:/srv/tokens/u.vpptoken"]
    );
}

#[test]
fn files_with_the_same_broken_content_are_each_mailed() {
    // Two empty downloads share one fingerprint; both must be reported,
    // and so must a third that appears after the first two were mailed.
    let unreadable = |path: &str| {
        let mut t = token("e3b0c442", Status::Unreadable, 0);
        t.path = path.into();
        t.days_left = None;
        t.detail = Some("empty file".into());
        t
    };
    let mut ledger = Ledger::new();
    let first = [unreadable("/srv/a.vpptoken"), unreadable("/srv/b.vpptoken")];
    let p = quick(now(), &first, &[], &ledger);
    assert_eq!(
        keys(&p),
        [
            "unreadable:e3b0c442:/srv/a.vpptoken",
            "unreadable:e3b0c442:/srv/b.vpptoken"
        ]
    );
    record(&mut ledger, &p, now());
    let later = [
        unreadable("/srv/a.vpptoken"),
        unreadable("/srv/b.vpptoken"),
        unreadable("/srv/c.vpptoken"),
    ];
    let p = quick(now(), &later, &[], &ledger);
    assert_eq!(keys(&p), ["unreadable:e3b0c442:/srv/c.vpptoken"]);
}

#[test]
fn renaming_a_token_sends_nothing_new() {
    let mut ledger = Ledger::new();
    let mut t = token("r", Status::Expiring, 20);
    let p = quick(now(), std::slice::from_ref(&t), &[], &ledger);
    record(&mut ledger, &p, now());
    t.path = "/srv/tokens/elsewhere/renamed.vpptoken".into();
    assert!(quick(now(), &[t], &[], &ledger).alerts.is_empty());
}

#[test]
fn folder_problems_alert_once_and_once_more_when_recovered() {
    let mut ledger = Ledger::new();
    let bad = folder("/srv/a", FolderState::Missing);
    let good = folder("/srv/a", FolderState::Ok);
    assert!(quick(now(), &[], std::slice::from_ref(&good), &ledger)
        .alerts
        .is_empty());
    let p = quick(now(), &[], std::slice::from_ref(&bad), &ledger);
    assert_eq!(keys(&p), ["folder:/srv/a:problem:1"]);
    record(&mut ledger, &p, now());
    assert!(quick(now(), &[], std::slice::from_ref(&bad), &ledger)
        .alerts
        .is_empty());
    let p = quick(now(), &[], std::slice::from_ref(&good), &ledger);
    assert_eq!(keys(&p), ["folder:/srv/a:recovered:1"]);
    record(&mut ledger, &p, now());
    assert_eq!(
        keys(&quick(now(), &[], &[bad], &ledger)),
        ["folder:/srv/a:problem:2"]
    );
}

#[test]
fn require_account_warns_about_tokens_without_one() {
    let mut t = token("n", Status::Ok, 200);
    t.account = None;
    let mut pol = policy();
    assert!(plan(
        now(),
        std::slice::from_ref(&t),
        &[],
        &HostFacts::default(),
        &Ledger::new(),
        &pol,
        &audiences(),
    )
    .alerts
    .is_empty());
    pol.require_account = true;
    assert_eq!(
        keys(&plan(
            now(),
            &[t],
            &[],
            &HostFacts::default(),
            &Ledger::new(),
            &pol,
            &audiences(),
        )),
        ["noaccount:n"]
    );
}

#[test]
fn storm_guard_collapses_per_recipient_set() {
    let many: Vec<Assessment> = (0..25)
        .map(|i| token(&format!("t{i}"), Status::Expired, -1))
        .collect();
    let mut other = token("solo", Status::Expired, -1);
    other.folder = 1;
    let mut subjects = many;
    subjects.push(other);
    let p = quick(now(), &subjects, &[], &Ledger::new());
    let groups = group_for_storm_guard(p.alerts, &audiences(), 20);
    let mut sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
    sizes.sort();
    assert_eq!(sizes, [1, 25]);
    let p = quick(now(), &subjects[..20], &[], &Ledger::new());
    assert_eq!(group_for_storm_guard(p.alerts, &audiences(), 20).len(), 20);
}

fn apple(verdict: &str) -> crate::assess::AppleAssessment {
    crate::assess::AppleAssessment {
        verified_at: Some(now()),
        verdict: verdict.parse().unwrap(),
        location_name: None,
        uid: None,
        mdm_name: None,
        apple_expires_at: None,
        expiry_mismatch: false,
        error: None,
        failing_since: None,
    }
}

#[test]
fn a_token_failing_apple_checks_for_over_a_day_mails_once_unless_apple_is_down() {
    let mut t = token("f", Status::Ok, 200);
    let mut a = apple("valid");
    a.failing_since = Some(now() - Duration::hours(23));
    t.apple = Some(Box::new(a.clone()));
    assert!(quick(now(), std::slice::from_ref(&t), &[], &Ledger::new())
        .alerts
        .is_empty());
    a.failing_since = Some(now() - Duration::hours(25));
    t.apple = Some(Box::new(a));
    let p = quick(now(), std::slice::from_ref(&t), &[], &Ledger::new());
    assert_eq!(p.alerts.len(), 1);
    assert!(matches!(p.alerts[0].kind, AlertKind::CannotVerify { .. }));
    // Apple unreachable for everyone: only the host mail.
    let host = HostFacts {
        apple_unreachable_since: Some(now() - Duration::hours(30)),
    };
    let p = plan(
        now(),
        &[t],
        &[],
        &host,
        &Ledger::new(),
        &policy(),
        &audiences(),
    );
    assert_eq!(p.alerts.len(), 1);
    assert!(matches!(
        p.alerts[0].kind,
        AlertKind::AppleUnreachable { .. }
    ));
    let mut ledger = Ledger::new();
    record(&mut ledger, &p, now());
    assert!(
        plan(now(), &[], &[], &host, &ledger, &policy(), &audiences())
            .alerts
            .is_empty()
    );
}

#[test]
fn apple_expiry_mismatch_mails_once() {
    let mut t = token("m", Status::Ok, 200);
    let mut a = apple("valid");
    a.expiry_mismatch = true;
    t.apple = Some(Box::new(a));
    let p = quick(now(), std::slice::from_ref(&t), &[], &Ledger::new());
    assert_eq!(keys(&p), ["apple_expiry:m"]);
    let mut ledger = Ledger::new();
    record(&mut ledger, &p, now());
    assert!(quick(now(), &[t], &[], &ledger).alerts.is_empty());
}

#[test]
fn superseded_tokens_get_one_mail_and_no_expiry_mails() {
    let mut t = token("s", Status::Superseded, 5);
    t.superseded_by = Some("/srv/tokens/new.vpptoken".into());
    let p = quick(now(), std::slice::from_ref(&t), &[], &Ledger::new());
    assert_eq!(keys(&p), ["superseded:s"]);
}

#[test]
fn a_digest_goes_once_to_each_recipient_however_often_the_config_names_them() {
    let mut audiences = audiences();
    let both = audiences.add(Audience {
        members: vec![member("acme@example.com"), member("OPS@example.com")],
    });
    audiences.folder.push(both);
    let mut t2 = token("b", Status::Ok, 90);
    t2.folder = 2;
    let tokens = [token("a", Status::Ok, 90), t2, token("c", Status::Ok, 90)];
    let groups = digest_groups(&tokens, &audiences);
    let got: Vec<(&str, &[usize], usize)> = groups
        .iter()
        .map(|g| (g.member.address.as_str(), g.tokens.as_slice(), g.folders))
        .collect();
    assert_eq!(
        got,
        [
            ("acme@example.com", &[1][..], 2),
            ("ops@example.com", &[0, 1, 2][..], 2)
        ]
    );
}

#[test]
fn an_mdm_conflict_mails_once_per_mdm_apple_names() {
    let mut t = token("c", Status::Ok, 200);
    t.mdm_conflict = Some(Box::new(crate::assess::MdmConflict {
        expected: "Jamf Pro".into(),
        actual: "Fleet".into(),
    }));
    let p = quick(now(), std::slice::from_ref(&t), &[], &Ledger::new());
    assert_eq!(keys(&p), ["mdm_conflict:c:Fleet"]);
    assert_eq!(p.alerts[0].kind.name(), "mdm_conflict");
    let mut ledger = Ledger::new();
    record(&mut ledger, &p, now());
    assert!(quick(now(), std::slice::from_ref(&t), &[], &ledger)
        .alerts
        .is_empty());
    t.mdm_conflict.as_mut().unwrap().actual = "Mosyle".into();
    let p = quick(now(), &[t], &[], &ledger);
    assert_eq!(keys(&p), ["mdm_conflict:c:Mosyle"]);
}

#[test]
fn a_changed_push_topic_mails_once() {
    let mut t = token("n", Status::Ok, 300);
    t.kind_facts.topic = Some("com.apple.mgmt.External.new".into());
    t.replaces_topic = Some("com.apple.mgmt.External.old".into());
    let p = quick(now(), std::slice::from_ref(&t), &[], &Ledger::new());
    assert_eq!(keys(&p), ["topic_changed:n:com.apple.mgmt.External.old"]);
    assert_eq!(p.alerts[0].subject, Some(0));
    let mut ledger = Ledger::new();
    record(&mut ledger, &p, now());
    assert!(quick(now(), &[t], &[], &ledger).alerts.is_empty());
}
