//! Assessments and alerts to render, shared by the tests of renderers and
//! channels.

use chrono::{TimeZone, Utc};

use super::Context;
use crate::alerts::{Alert, AlertKind, AudienceId};
use crate::assess::Assessment;
use crate::evaluate::Status;

pub(crate) fn subject() -> Assessment {
    Assessment {
        identity: "3f2a9c1b7d4e0000111122223333444455556666777788889999aaaabbbbcccc".into(),
        path: "/srv/tokens/acme/sToken_for_Berlin.vpptoken".into(),
        kind: crate::token::KindId::Vpp,
        org_name: Some("Acme Corp".into()),
        status: Status::Expiring,
        days_left: Some(14),
        expires_at: Some(Utc.with_ymd_and_hms(2027, 1, 10, 8, 30, 0).unwrap()),
        created_at: Some(Utc.with_ymd_and_hms(2026, 1, 10, 8, 30, 0).unwrap()),
        account: Some("apps@acme.appleaccount.com".into()),
        detail: None,
        fingerprint: Some("3f2a9c1b7d4e".into()),
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

pub(crate) fn alert(kind: AlertKind) -> Alert {
    Alert {
        key: "k".into(),
        kind,
        subject: Some(0),
        folder: None,
        audience: AudienceId(0),
        also_done: vec![],
    }
}

pub(crate) fn ctx() -> Context<'static> {
    Context {
        tz: chrono_tz::Europe::Berlin,
        host: "mdm-host-1",
        now: Utc.with_ymd_and_hms(2026, 12, 27, 8, 0, 0).unwrap(),
    }
}

pub(crate) fn storm(n: usize, path: impl Fn(usize) -> String) -> (Vec<Assessment>, Vec<Alert>) {
    let subjects = (0..n)
        .map(|i| Assessment {
            path: path(i),
            status: Status::Unreadable,
            ..subject()
        })
        .collect();
    let alerts = (0..n)
        .map(|i| Alert {
            subject: Some(i),
            ..alert(AlertKind::Unreadable {
                error: "not Base64".into(),
            })
        })
        .collect();
    (subjects, alerts)
}

pub(crate) fn token_report(i: usize, path: String) -> Assessment {
    Assessment {
        path,
        kind: crate::token::KindId::Vpp,
        org_name: Some(format!("Org {i}")),
        fingerprint: Some("3f2a9c1b7d4e".into()),
        created_at: None,
        expires_at: Some(
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(i as i64),
        ),
        days_left: Some(100),
        account: None,
        status: Status::Ok,
        detail: None,
        world_readable: false,
        apple: None,
        silenced: None,
        superseded_by: None,
        mdm_conflict: None,
        replaces_topic: None,
        kind_facts: Default::default(),
        identity: String::new(),
        modified_at: None,
        folder: 0,
    }
}
