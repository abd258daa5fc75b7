use chrono::TimeZone;

use super::*;
use crate::assess::KindFacts;
use crate::token::found::FolderState;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

/// A content token in folder 0, fine.
fn subject() -> Assessment {
    Assessment {
        path: "/srv/push/a.vpptoken".into(),
        kind: crate::token::KindId::Vpp,
        org_name: Some("Acme Corp".into()),
        fingerprint: None,
        created_at: Some(now() - Duration::days(100)),
        expires_at: Some(now() + Duration::days(265)),
        days_left: Some(265),
        account: None,
        status: Status::Ok,
        detail: None,
        world_readable: false,
        apple: None,
        superseded_by: None,
        silenced: None,
        kind_facts: Default::default(),
        replaces_topic: None,
        mdm_conflict: None,
        identity: "f".repeat(64),
        modified_at: None,
        folder: 0,
    }
}

fn folders() -> Vec<FolderAssessment> {
    ["/srv/push", "/srv/other"]
        .map(|p| FolderAssessment {
            path: p.into(),
            state: FolderState::Ok,
            tokens: 1,
            error: None,
        })
        .to_vec()
}

/// A push certificate in folder 0, made `created_days_ago`, expiring
/// `expires_in_days` from now.
fn cert(name: &str, topic: &str, created_days_ago: i64, expires_in_days: i64) -> Assessment {
    let expires = now() + Duration::days(expires_in_days);
    Assessment {
        path: format!("/srv/push/{name}.pem"),
        identity: name.repeat(64 / name.len()),
        kind_facts: Box::new(KindFacts {
            topic: Some(format!("com.apple.mgmt.External.{topic}")),
            ..KindFacts::default()
        }),
        created_at: Some(now() - Duration::days(created_days_ago)),
        expires_at: Some(expires),
        status: if expires <= now() {
            Status::Expired
        } else {
            Status::Ok
        },
        ..subject()
    }
}

fn gone(topic: &str, created_days_ago: i64, days_ago: i64) -> GoneCert {
    GoneCert {
        path: "/srv/push/old.pem".into(),
        topic: format!("com.apple.mgmt.External.{topic}"),
        created_at: now() - Duration::days(created_days_ago),
        last_seen: now() - Duration::days(days_ago),
    }
}

fn marked(tokens: &mut [Assessment], gone: &[GoneCert]) -> Vec<Option<String>> {
    mark_topic_changes(now(), tokens, &folders(), gone);
    tokens.iter().map(|t| t.replaces_topic.clone()).collect()
}

fn topic(t: &str) -> Option<String> {
    Some(format!("com.apple.mgmt.External.{t}"))
}

#[test]
fn a_newer_certificate_with_another_topic_than_the_expired_one_is_marked() {
    let mut t = [cert("a", "old", 370, -5), cert("b", "new", 2, 363)];
    assert_eq!(marked(&mut t, &[]), [None, topic("old")]);
}

#[test]
fn a_renewal_with_the_same_topic_is_not_marked() {
    let mut t = [cert("a", "same", 370, -5), cert("b", "same", 2, 363)];
    assert_eq!(marked(&mut t, &[]), [None, None]);
    let mut t = [cert("b", "same", 2, 363)];
    assert_eq!(marked(&mut t, &[gone("same", 370, 1)]), [None]);
}

#[test]
fn a_removed_certificate_counts_by_the_topic_the_state_kept() {
    let mut t = [cert("b", "new", 2, 363)];
    assert_eq!(marked(&mut t, &[gone("old", 360, 3)]), [topic("old")]);
    // Removed more than 30 days ago: no longer what the new one replaces.
    let mut t = [cert("b", "new", 2, 363)];
    assert_eq!(marked(&mut t, &[gone("old", 360, 31)]), [None]);
    // Removed from another folder.
    let mut t = [cert("b", "new", 2, 363)];
    let elsewhere = GoneCert {
        path: "/srv/other/old.pem".into(),
        ..gone("old", 360, 3)
    };
    assert_eq!(marked(&mut t, &[elsewhere]), [None]);
    // A prefix of the folder's name is not the folder.
    let mut t = [cert("b", "new", 2, 363)];
    let sibling = GoneCert {
        path: "/srv/push2/old.pem".into(),
        ..gone("old", 360, 3)
    };
    assert_eq!(marked(&mut t, &[sibling]), [None]);
}

#[test]
fn only_an_older_certificate_expired_within_30_days_is_replaced() {
    // Expired 40 days ago: long gone.
    let mut t = [cert("a", "old", 400, -40), cert("b", "new", 2, 363)];
    assert_eq!(marked(&mut t, &[]), [None, None]);
    // Still valid: two certificates side by side, nothing replaced.
    let mut t = [cert("a", "old", 300, 60), cert("b", "new", 2, 363)];
    assert_eq!(marked(&mut t, &[]), [None, None]);
    // A certificate in another folder is not replaced by this one.
    let mut other = cert("a", "old", 370, -5);
    other.folder = 1;
    let mut t = [other, cert("b", "new", 2, 363)];
    assert_eq!(marked(&mut t, &[]), [None, None]);
}

#[test]
fn credentials_without_a_topic_are_left_alone() {
    let mut t = [subject(), cert("b", "new", 2, 363)];
    t[0].status = Status::Expired;
    t[0].expires_at = Some(now() - Duration::days(1));
    assert_eq!(marked(&mut t, &[]), [None, None]);
}
