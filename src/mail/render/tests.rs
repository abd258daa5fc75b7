use super::*;
use crate::evaluate::Status;
use chrono::TimeZone;

fn subject() -> Subject {
    Subject {
        identity: "3f2a9c1b7d4e0000111122223333444455556666777788889999aaaabbbbcccc".into(),
        path: "/srv/tokens/acme/sToken_for_Berlin.vpptoken".into(),
        org_name: Some("Acme Corp".into()),
        status: Status::Expiring,
        days_left: Some(14),
        expires_at: Some(Utc.with_ymd_and_hms(2027, 1, 10, 8, 30, 0).unwrap()),
        created_at: Some(Utc.with_ymd_and_hms(2026, 1, 10, 8, 30, 0).unwrap()),
        account: Some("apps@acme.appleaccount.com".into()),
        detail: None,
        modified_at: None,
        recipients: vec![],
        folder: "/srv/tokens/acme".into(),
        apple: None,
        superseded_by: None,
    }
}

fn alert(kind: AlertKind) -> Alert {
    Alert {
        key: "k".into(),
        kind,
        subject: Some(0),
        folder: None,
        recipients: vec![],
        also_done: vec![],
    }
}

fn ctx() -> Context<'static> {
    Context {
        tz: chrono_tz::Europe::Berlin,
        host: "mdm-host-1",
    }
}

#[test]
fn expiring_subject_names_org_file_days_and_date() {
    let r = render_alert(
        &alert(AlertKind::Expiring { days: 14 }),
        &[subject()],
        &[],
        &ctx(),
    );
    assert_eq!(r.subject, "[tokenwatch] Content token for Acme Corp (sToken_for_Berlin) expires in 14 days (2027-01-10)");
    for body in [&r.text, &r.html] {
        for needle in [
            "Acme Corp",
            "/srv/tokens/acme/sToken_for_Berlin.vpptoken",
            "2027-01-10 09:30 CET",
            "2027-01-10 08:30 UTC",
            "14",
            "2026-01-10 09:30 CET",
            "apps@acme.appleaccount.com",
            "3f2a9c1b7d4e",
            "mdm-host-1",
            "Apps &",
            "password",
        ] {
            assert!(body.contains(needle), "{needle:?} missing in\n{body}");
        }
        assert!(
            !body.contains("3f2a9c1b7d4e0"),
            "more than 12 digits of the fingerprint"
        );
    }
}

#[test]
fn invalidated_and_expired_subjects() {
    let mut s = subject();
    s.status = Status::Invalidated;
    let r = render_alert(
        &alert(AlertKind::Invalidated {
            reason: "password_change".into(),
            reminder: 0,
        }),
        &[s.clone()],
        &[],
        &ctx(),
    );
    assert_eq!(r.subject, "[tokenwatch] Content token for Acme Corp (sToken_for_Berlin) is INVALID: password of apps@acme.appleaccount.com changed");
    let r = render_alert(
        &alert(AlertKind::Expired { reminder: 0 }),
        &[s],
        &[],
        &ctx(),
    );
    assert_eq!(
        r.subject,
        "[tokenwatch] Content token for Acme Corp (sToken_for_Berlin) has EXPIRED"
    );
}

#[test]
fn control_characters_are_removed_and_long_names_shortened() {
    let mut s = subject();
    s.org_name = Some(format!(
        "Evil\r\nBcc: victim@example.com {}",
        "x".repeat(200)
    ));
    let r = render_alert(
        &alert(AlertKind::Expired { reminder: 0 }),
        &[s],
        &[],
        &ctx(),
    );
    assert!(!r.subject.contains('\n') && !r.subject.contains('\r'));
    assert!(r.subject.chars().count() < 200, "{}", r.subject);
}

#[test]
fn html_is_escaped() {
    let mut s = subject();
    s.org_name = Some("<script>alert(1)</script>".into());
    let r = render_alert(
        &alert(AlertKind::Expired { reminder: 0 }),
        &[s],
        &[],
        &ctx(),
    );
    assert!(!r.html.contains("<script>"));
    assert!(r.html.contains("&lt;script&gt;"));
}

#[test]
fn message_ids_are_stable_and_order_free() {
    let a = message_id(&["x".into(), "y".into()]);
    assert_eq!(a, message_id(&["y".into(), "x".into()]));
    assert_ne!(a, message_id(&["x".into()]));
    assert!(a.starts_with('<') && a.ends_with("@tokenwatch>"));
}

/// Message-IDs are stored with pending mail and recognise duplicates, so
/// they must not change between versions: SHA-256 of the sorted keys, each
/// followed by a NUL.
#[test]
fn message_ids_do_not_change_between_versions() {
    assert_eq!(
        message_id(&["invalidated:abc".into(), "expiring:abc:30".into()]),
        "<37d3eae9dc1dddd3a0ef5581198bbe0e@tokenwatch>"
    );
}

#[test]
fn summary_lists_every_alert() {
    let subjects: Vec<Subject> = (0..3)
        .map(|i| Subject {
            path: format!("/t/{i}.vpptoken"),
            ..subject()
        })
        .collect();
    let alerts: Vec<Alert> = (0..3)
        .map(|i| Alert {
            subject: Some(i),
            ..alert(AlertKind::Expired { reminder: 0 })
        })
        .collect();
    let r = render_summary(&alerts, &subjects, &[], &ctx());
    assert!(r.subject.starts_with("[tokenwatch] 3 alerts"));
    for i in 0..3 {
        assert!(
            r.text.contains(&format!("/t/{i}.vpptoken"))
                && r.html.contains(&format!("/t/{i}.vpptoken"))
        );
    }
}

#[test]
fn a_link_out_of_the_folders_is_explained_with_what_to_do() {
    let mut s = subject();
    s.status = Status::Unreadable;
    s.org_name = None;
    s.path = "/srv/tokens/acme/pw.vpptoken".into();
    let r = render_alert(
        &alert(AlertKind::Unreadable {
            error: "link_outside_folder".into(),
        }),
        &[s],
        &[],
        &ctx(),
    );
    assert_eq!(r.subject, "[tokenwatch] Unreadable token file pw.vpptoken");
    for body in [&r.text, &r.html] {
        assert!(body.contains("link_outside_folder: a symbolic link whose target is outside every configured folder"), "{body}");
        assert!(body.contains("follow_links = true"), "{body}");
        assert!(
            !body.contains("Replace the file with the .vpptoken"),
            "{body}"
        );
    }
}
