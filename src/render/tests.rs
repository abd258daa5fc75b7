use chrono::{TimeZone, Utc};

use super::testing::{alert, ctx, storm, subject, token_report};
use super::*;
use crate::alerts::AlertKind;
use crate::evaluate::Status;

#[test]
fn expiring_subject_names_org_file_days_and_date() {
    let r = render_alert(
        &alert(AlertKind::Expiring {
            days: 14,
            first: true,
        }),
        &[subject()],
        &[],
        &ctx(),
    );
    assert_eq!(r.subject, "[tokenwatch] Content token for Acme Corp (sToken_for_Berlin.vpptoken) expires in 14 days (2027-01-10)");
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
    assert_eq!(r.subject, "[tokenwatch] Content token for Acme Corp (sToken_for_Berlin.vpptoken) is INVALID: password of apps@acme.appleaccount.com changed");
    let r = render_alert(
        &alert(AlertKind::Expired { reminder: 0 }),
        &[s],
        &[],
        &ctx(),
    );
    assert_eq!(
        r.subject,
        "[tokenwatch] Content token for Acme Corp (sToken_for_Berlin.vpptoken) has EXPIRED"
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
    let subjects: Vec<Assessment> = (0..3)
        .map(|i| Assessment {
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

/// Regression: a summary of every broken file in a storm became one mail
/// bigger than relays accept; it was refused (5xx), parked, and ops heard
/// nothing.
#[test]
fn a_storm_summary_lists_200_items_and_counts_the_rest() {
    let (subjects, alerts) = storm(10_000, |i| format!("/t/broken-{i:05}.vpptoken"));
    let r = render_summary(&alerts, &subjects, &[], &ctx());
    assert!(r.subject.starts_with("[tokenwatch] 10000 alerts"));
    for body in [&r.text, &r.html] {
        assert!(body.contains("/t/broken-00199.vpptoken"));
        assert!(!body.contains("/t/broken-00200.vpptoken"));
        assert!(body.contains("and 9800 more (see "), "{body:.300}");
    }
    assert_eq!(r.text.matches("\n- ").count(), 200);
    // A row per listed item and one for the rest.
    assert_eq!(
        r.html.matches("<tr><td style=\"padding:6px 0;").count(),
        201
    );
}

#[test]
fn a_storm_summary_of_long_hostile_paths_stays_within_the_listing_bound() {
    // 4096 bytes a path, every character escaped in HTML and multi-byte in
    // UTF-8: the size bound, not the item count, has to hold here.
    let (subjects, alerts) = storm(1_000, |i| format!("/t/{i}/{}", "<\"€&'".repeat(4096 / 12)));
    let r = render_summary(&alerts, &subjects, &[], &ctx());
    assert!(r.text.contains(" more (see `tokenwatch status`)"));
    assert!(r.text.len() < 300 * 1024 && r.html.len() < 300 * 1024);
}

#[test]
fn a_small_summary_says_nothing_about_more() {
    let (subjects, alerts) = storm(200, |i| format!("/t/{i}.vpptoken"));
    let r = render_summary(&alerts, &subjects, &[], &ctx());
    assert!(r.text.contains("/t/199.vpptoken"));
    assert!(!r.text.contains(" more (see") && !r.html.contains(" more (see"));
}

#[test]
fn a_digest_of_10000_tokens_lists_the_200_soonest() {
    let tokens: Vec<_> = (0..10_000)
        .rev()
        .map(|i| token_report(i, format!("/t/tok-{i:05}.vpptoken")))
        .collect();
    let refs: Vec<_> = tokens.iter().collect();
    let r = render_digest(&refs, 3, &ctx());
    assert!(r.subject.contains("10000 tokens in 3 folders"));
    for body in [&r.text, &r.html] {
        assert!(body.contains("/t/tok-00199.vpptoken"));
        assert!(!body.contains("/t/tok-00200.vpptoken"));
        assert!(body.contains("and 9800 more (see "));
    }

    let long: Vec<_> = (0..1_000)
        .map(|i| token_report(i, format!("/t/{i}/{}", "<€&".repeat(4096 / 8))))
        .collect();
    let refs: Vec<_> = long.iter().collect();
    let r = render_digest(&refs, 1, &ctx());
    assert!(r.text.contains(" more (see `tokenwatch status`)"));
}

#[test]
fn a_digest_marks_a_silenced_credential_in_text_html_and_chat_facts() {
    let until = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
    let closed = Assessment {
        silenced: Some(Box::new(crate::assess::silence::Silence {
            until,
            reason: Some("location <closed>".into()),
        })),
        ..token_report(1, "/t/closed.vpptoken".into())
    };
    let open = token_report(2, "/t/open.vpptoken".into());
    let refs = vec![&closed, &open];
    let r = render_digest(&refs, 1, &ctx());
    let mark = "silenced until 2027-03-01 01:00 CET: location <closed>";
    let line = |name: &str| {
        r.text
            .lines()
            .find(|l| l.contains(name))
            .unwrap()
            .to_owned()
    };
    assert!(
        line("closed.vpptoken").ends_with(&format!("({mark})")),
        "{}",
        r.text
    );
    assert!(!line("open.vpptoken").contains("silenced"), "{}", r.text);
    assert!(
        r.html
            .contains("silenced until 2027-03-01 01:00 CET: location &lt;closed&gt;"),
        "{}",
        r.html
    );
    assert_eq!(r.html.matches("silenced until").count(), 1);

    let input = Input::Digest {
        key: "digest:2026-12-27:ops",
        tokens: &refs,
        folders: 1,
    };
    let w = words(&input, &ctx());
    let silenced: Vec<&String> = w
        .facts
        .iter()
        .filter(|(label, _)| *label == "Silenced")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(silenced, [&format!("Org 1 (closed.vpptoken): {mark}")]);
}

#[test]
fn a_silenced_credential_in_a_digest_needs_no_attention() {
    let expiring = |n, path: &str| Assessment {
        status: Status::Expiring,
        days_left: Some(9),
        ..token_report(n, path.into())
    };
    let closed = Assessment {
        silenced: Some(Box::new(crate::assess::silence::Silence {
            until: Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap(),
            reason: None,
        })),
        ..expiring(1, "/t/closed.vpptoken")
    };
    let open = token_report(2, "/t/open.vpptoken".into());
    let r = render_digest(&[&closed, &open], 1, &ctx());
    assert_eq!(
        r.subject,
        "[tokenwatch] Digest: tokenwatch is watching 2 tokens in 1 folder; all fine (1 silenced)"
    );
    assert!(r.html.contains("ALL FINE"), "{}", r.html);

    let due = expiring(3, "/t/due.vpptoken");
    let r = render_digest(&[&closed, &open, &due], 1, &ctx());
    assert_eq!(
        r.subject,
        "[tokenwatch] Digest: tokenwatch is watching 3 tokens in 1 folder; 1 needs attention (1 silenced)"
    );
}

#[test]
fn an_mdm_conflict_names_both_mdms_and_warns_against_sharing() {
    let r = render_alert(
        &alert(AlertKind::MdmConflict {
            expected: "Jamf Pro".into(),
            actual: "Apple Business Essentials".into(),
        }),
        &[subject()],
        &[],
        &ctx(),
    );
    assert_eq!(
        r.subject,
        "[tokenwatch] Content token for Acme Corp (sToken_for_Berlin.vpptoken) is used by MDM \"Apple Business Essentials\", expected \"Jamf Pro\""
    );
    for body in [&r.text, &r.html] {
        for needle in ["Jamf Pro", "Apple Business Essentials", "must not share"] {
            assert!(body.contains(needle), "{needle:?} missing in\n{body}");
        }
    }
}

#[test]
fn a_topic_change_names_the_folder_and_both_topics() {
    let mut s = subject();
    s.path = "/srv/push/new.pem".into();
    s.kind_facts.topic = Some("com.apple.mgmt.External.new".into());
    let folder = FolderAssessment {
        path: "/srv/push".into(),
        state: crate::token::found::FolderState::Ok,
        tokens: 1,
        error: None,
    };
    let r = render_alert(
        &alert(AlertKind::TopicChanged {
            old: "com.apple.mgmt.External.old".into(),
        }),
        &[s],
        &[folder],
        &ctx(),
    );
    assert!(
        r.subject.ends_with(
            "topic changed in /srv/push: com.apple.mgmt.External.old → com.apple.mgmt.External.new"
        ),
        "{}",
        r.subject
    );
    for body in [&r.text, &r.html] {
        assert!(
            body.contains("the new push certificate was made with another Apple Account: every device would have to enrol again; renew the old one instead"),
            "{body}"
        );
    }
}

#[test]
fn subjects_name_push_certificates_by_topic_and_server_tokens_by_server() {
    use crate::token::KindId;
    let mut push = subject();
    push.kind = KindId::Apns;
    push.path = "/srv/push/mdm push.pem".into();
    push.kind_facts.topic = Some("com.apple.mgmt.External.1f2e".into());
    let r = render_alert(
        &alert(AlertKind::Expiring {
            days: 14,
            first: true,
        }),
        &[push.clone()],
        &[],
        &ctx(),
    );
    assert_eq!(
        r.subject,
        "[tokenwatch] APNs push certificate com.apple.mgmt.External.1f2e (mdm push.pem) expires in 14 days (2027-01-10)"
    );
    assert!(
        r.text.contains("Apple Push Certificates Portal"),
        "{}",
        r.text
    );
    push.status = Status::Unreadable;
    let r = render_alert(
        &alert(AlertKind::Unreadable {
            error: "not a certificate".into(),
        }),
        &[push],
        &[],
        &ctx(),
    );
    assert_eq!(
        r.subject,
        "[tokenwatch] Unreadable APNs push certificate file mdm push.pem"
    );

    let mut ade = subject();
    ade.kind = KindId::Ade;
    ade.path = "/srv/ade/Berlin MDM_Token_2026-01-10T08-30-00Z_smime.p7m".into();
    ade.kind_facts.server = Some("Berlin MDM".into());
    let r = render_alert(
        &alert(AlertKind::Expired { reminder: 0 }),
        &[ade.clone()],
        &[],
        &ctx(),
    );
    assert_eq!(
        r.subject,
        "[tokenwatch] ADE server token Berlin MDM (Berlin MDM_Token_2026-01-10T08-30-00Z_smime.p7m) has EXPIRED"
    );
    ade.path = "/srv/ade/renamed.p7m".into();
    ade.kind_facts.server = None;
    let r = render_alert(
        &alert(AlertKind::Expired { reminder: 0 }),
        &[ade],
        &[],
        &ctx(),
    );
    assert_eq!(
        r.subject,
        "[tokenwatch] ADE server token (renamed.p7m) has EXPIRED"
    );
}

/// Regression: with `timezone = "UTC"` a date read
/// "2027-01-10 08:30 UTC (2027-01-10 08:30 UTC)".
#[test]
fn a_zone_at_utc_s_offset_says_the_expiry_once() {
    let kind = AlertKind::Expiring {
        days: 14,
        first: true,
    };
    for tz in [chrono_tz::UTC, chrono_tz::Europe::London] {
        let ctx = Context { tz, ..ctx() };
        let r = render_alert(&alert(kind.clone()), &[subject()], &[], &ctx);
        let line = r.text.lines().find(|l| l.starts_with("Expires: ")).unwrap();
        assert!(
            line == "Expires: 2027-01-10 08:30 UTC" || line == "Expires: 2027-01-10 08:30 GMT",
            "{line}"
        );
    }
    let r = render_alert(&alert(kind), &[subject()], &[], &ctx());
    assert!(r
        .text
        .contains("Expires: 2027-01-10 09:30 CET (2027-01-10 08:30 UTC)\n"));
}
