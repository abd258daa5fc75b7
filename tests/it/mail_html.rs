//! Every kind of mail as a recipient gets it: rendered by the mail channel,
//! written to `.eml` by the file transport, and its HTML part read back by
//! an XML parser: well-formed, styled only inline, nothing loaded from
//! elsewhere, with a badge, a facts table or list, the steps as a numbered
//! list and, in a digest, the 12-month timeline.

use chrono::{TimeZone, Utc};
use quick_xml::events::Event;
use quick_xml::Reader;

use tokenwatch::alerts::{Alert, AlertKind, AudienceId, Member};
use tokenwatch::assess::{Assessment, FolderAssessment};
use tokenwatch::channel::{Channel, Delivery};
use tokenwatch::evaluate::Status;
use tokenwatch::mail::transport::TransportSettings;
use tokenwatch::mail::MailChannel;
use tokenwatch::render::{Context, Input};
use tokenwatch::token::found::FolderState;
use tokenwatch::token::KindId;

use crate::util::mail::leaf_parts;

fn credential(i: usize, status: Status, days: i64) -> Assessment {
    let expires =
        Utc.with_ymd_and_hms(2027, 1, 10, 8, 30, 0).unwrap() + chrono::Duration::days(days - 14);
    Assessment {
        identity: format!("{i:x}f2a9c1b7d4e0000111122223333444455556666777788889999aaaabbbbccc"),
        path: format!("/srv/tokens/acme/sToken_for_Site_{i}.vpptoken"),
        kind: KindId::Vpp,
        org_name: Some(format!("Acme & Söhne <{i}>")),
        status,
        days_left: Some(days),
        expires_at: Some(expires),
        created_at: Some(expires - chrono::Duration::days(365)),
        account: Some("apps@acme.appleaccount.com".into()),
        detail: None,
        fingerprint: Some(format!("{i:x}f2a9c1b7d4e")),
        world_readable: false,
        modified_at: None,
        folder: 0,
        apple: None,
        silenced: None,
        superseded_by: (status == Status::Superseded)
            .then(|| "/srv/tokens/acme/new.vpptoken".into()),
        kind_facts: Default::default(),
        mdm_conflict: None,
        replaces_topic: None,
    }
}

fn alert(key: &str, kind: AlertKind, subject: Option<usize>, folder: Option<usize>) -> Alert {
    Alert {
        key: key.into(),
        kind,
        subject,
        folder,
        audience: AudienceId(0),
        also_done: vec![],
    }
}

/// Each element must close, in order; entity references must be XML's own
/// or numeric; nothing may be styled from outside the element or load
/// anything. Returns the start tags seen, with their `style` attribute.
fn check_html(html: &str, what: &str) -> Vec<(String, String)> {
    let mut reader = Reader::from_str(html);
    let mut open: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    loop {
        let event = reader.read_event().unwrap_or_else(|e| {
            panic!(
                "{what}: not well-formed at {}: {e}\n{html}",
                reader.buffer_position()
            )
        });
        let mut element = |e: &quick_xml::events::BytesStart, empty: bool| {
            let name = e.name().0.to_owned();
            assert!(
                !["style", "script", "link", "img", "iframe", "object"].contains(&name.as_str()),
                "{what}: <{name}> in\n{html}"
            );
            let mut style = String::new();
            for a in e.attributes() {
                let a = a.unwrap_or_else(|e| panic!("{what}: bad attribute: {e}"));
                let key = a.key.0.to_owned();
                let value = a
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .unwrap_or_else(|e| panic!("{what}: bad attribute value: {e}"));
                assert!(
                    !["src", "href", "background"].contains(&key.as_str())
                        && !key.starts_with("on"),
                    "{what}: {key}={value:?} in <{name}>"
                );
                assert!(!value.contains("url("), "{what}: {value}");
                if key == "style" {
                    style = value.into_owned();
                }
            }
            if !empty {
                open.push(name.clone());
            }
            seen.push((name, style));
        };
        match event {
            Event::Start(e) => element(&e, false),
            Event::Empty(e) => element(&e, true),
            Event::End(e) => {
                let name = e.name().0.to_owned();
                assert_eq!(
                    open.pop().as_deref(),
                    Some(name.as_str()),
                    "{what}: </{name}>"
                );
            }
            Event::GeneralRef(r) => {
                let name = r.xml10_content().into_owned();
                assert!(
                    r.is_char_ref() || ["amp", "lt", "gt", "quot", "apos"].contains(&name.as_str()),
                    "{what}: &{name}; is not XML"
                );
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(open.is_empty(), "{what}: left open: {open:?}");
    assert!(
        seen.first().is_some_and(|(n, _)| n == "html"),
        "{what}: no <html> root"
    );
    seen
}

#[test]
fn every_kind_of_mail_has_a_well_formed_self_contained_html_part() {
    let dir = tempfile::tempdir().unwrap();
    let channel = MailChannel::from_settings(
        "tokenwatch <tw@example.com>".parse().unwrap(),
        &TransportSettings::File {
            dir: dir.path().to_path_buf(),
        },
    )
    .unwrap();
    let ctx = Context {
        tz: chrono_tz::UTC,
        host: "mdm-host-1",
        now: Utc.with_ymd_and_hms(2026, 12, 27, 8, 0, 0).unwrap(),
    };
    let tokens = vec![
        credential(1, Status::Expiring, 14),
        credential(2, Status::Expired, -3),
        credential(3, Status::Invalidated, 100),
        credential(4, Status::Superseded, 20),
        Assessment {
            org_name: None,
            expires_at: None,
            days_left: None,
            created_at: None,
            fingerprint: None,
            ..credential(5, Status::Unreadable, 0)
        },
        credential(6, Status::Ok, 300),
    ];
    let folders = vec![FolderAssessment {
        path: "/srv/tokens/gone".into(),
        state: FolderState::Missing,
        tokens: 0,
        error: Some("No such file or directory".into()),
    }];
    let alerts = [
        alert(
            "expiring:1:14",
            AlertKind::Expiring {
                days: 14,
                first: true,
            },
            Some(0),
            None,
        ),
        alert(
            "expired:2",
            AlertKind::Expired { reminder: 0 },
            Some(1),
            None,
        ),
        alert(
            "invalidated:3",
            AlertKind::Invalidated {
                reason: "password_change".into(),
                reminder: 0,
            },
            Some(2),
            None,
        ),
        alert("superseded:4", AlertKind::Superseded, Some(3), None),
        alert(
            "unreadable:5",
            AlertKind::Unreadable {
                error: "not Base64".into(),
            },
            Some(4),
            None,
        ),
        alert(
            "folder:/srv/tokens/gone:problem:1",
            AlertKind::FolderProblem {
                state: "missing".into(),
                error: Some("No such file or directory".into()),
            },
            None,
            Some(0),
        ),
    ];
    let refs: Vec<&Assessment> = tokens.iter().collect();
    let mut inputs: Vec<(&str, Input)> = [
        "expiring",
        "expired",
        "invalidated",
        "superseded",
        "unreadable",
        "folder",
    ]
    .into_iter()
    .zip(&alerts)
    .map(|(name, a)| {
        (
            name,
            Input::Alert {
                alert: a,
                tokens: &tokens,
                folders: &folders,
            },
        )
    })
    .collect();
    inputs.push((
        "summary",
        Input::Summary {
            alerts: &alerts,
            tokens: &tokens,
            folders: &folders,
        },
    ));
    inputs.push((
        "digest",
        Input::Digest {
            key: "digest:2026-12-27:ops@example.com",
            tokens: &refs,
            folders: 2,
        },
    ));
    let ops = Member {
        channel: "mail",
        address: "ops@example.com".into(),
        key: "ops@example.com".into(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (what, input) in &inputs {
        let [draft] = &channel.render(input, &[&ops], &ctx)[..] else {
            panic!("{what}: one mail")
        };
        let written = rt
            .block_on(channel.deliver(Delivery {
                id: 1,
                message_id: &draft.message_id,
                recipients: &draft.recipients,
                payload: &draft.payload,
                date: ctx.now,
            }))
            .unwrap();
        assert!(written.ends_with(".eml"), "{written}");
        let raw = std::fs::read_to_string(&written).unwrap();
        let parts = leaf_parts(&raw);
        let part = |t: &str| {
            parts
                .iter()
                .find(|(c, _)| c.to_ascii_lowercase().starts_with(t))
                .map(|(_, b)| b.clone())
                .unwrap_or_else(|| panic!("{what}: no {t} part in\n{raw}"))
        };
        let (text, html) = (part("text/plain"), part("text/html"));
        let seen = check_html(&html, what);
        let has = |tag: &str| seen.iter().any(|(n, _)| n == tag);
        assert!(has("table") && has("title"), "{what}: {html}");
        // The badge: a coloured pill, the first thing in the card.
        assert!(
            seen.iter().any(|(n, s)| n == "span"
                && s.contains("background-color:#")
                && s.contains("border-radius")),
            "{what}: no badge in {html}"
        );
        assert!(
            html.contains("mdm-host-1") && text.contains("mdm-host-1"),
            "{what}"
        );
        // The plain part stands on its own: every fact is in it.
        assert!(
            !["<td", "<p ", "<br", "&amp;"]
                .iter()
                .any(|m| text.contains(m)),
            "{what}: markup in the text part:\n{text}"
        );
        match *what {
            "expiring" | "expired" | "invalidated" => {
                assert!(has("ol") && has("li"), "{what}: steps not numbered: {html}");
                assert!(text.contains("To renew"), "{what}: {text}");
                assert!(html.contains("To renew"), "{what}: {html}");
                assert!(text.contains("sToken_for_Site_"), "{what}: {text}");
            }
            "digest" => {
                // 12 month columns in the header, a row per dated credential
                // with exactly one marked month.
                assert!(html.contains("The next 12 months"), "{html}");
                for m in ["Dec<br/>2026", "Jan<br/>2027", "Nov<br/>&#160;"] {
                    assert!(html.contains(m), "{m} missing in {html}");
                }
                let marked = seen
                    .iter()
                    .filter(|(n, s)| {
                        n == "td"
                            && s.contains("font-weight:bold;")
                            && s.contains("background-color:#")
                    })
                    .count();
                assert_eq!(marked, 5, "one marked month per dated credential: {html}");
                for t in tokens.iter().filter(|t| t.expires_at.is_some()) {
                    assert!(text.contains(&t.path), "{} missing in {text}", t.path);
                }
            }
            _ => {}
        }
        // UTC is the configured zone: a date is said once.
        assert!(!text.contains(" UTC (20"), "{what}: {text}");
        assert!(!html.contains(" UTC (20"), "{what}: {html}");
        let invites = parts
            .iter()
            .filter(|(c, _)| c.to_ascii_lowercase().starts_with("text/calendar"))
            .count();
        assert_eq!(invites, usize::from(*what == "expiring"), "{what}: invites");
        // Kept for a look by hand: `cargo test ... -- --nocapture`.
        println!("{what}: {written}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        inputs.len(),
        "one .eml per mail"
    );
}
