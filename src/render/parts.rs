//! What one alert says, whichever way it is sent: its headline, the facts
//! about its token or folder, and the advice on what to do.

use super::Context;
use crate::alerts::{Alert, AlertKind};
use crate::assess::{Assessment, FolderAssessment};
use crate::show::{clean, local};
use crate::token::{self, KindId};

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

pub(super) fn file_stem(path: &str) -> &str {
    let name = file_name(path);
    match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

fn describe_reason(reason: &str, account: Option<&str>) -> String {
    match reason {
        crate::evaluate::REASON_PASSWORD_CHANGE => format!(
            "password of {} changed",
            clean(account.unwrap_or("its Managed Apple Account"), 60)
        ),
        crate::evaluate::REASON_APPLE_REVOKED => "revoked by Apple".into(),
        crate::evaluate::REASON_APPLE_INVALID => "rejected by Apple as invalid".into(),
        other => clean(other, 60),
    }
}

fn describe_unreadable(error: &str) -> String {
    match error {
        crate::evaluate::REASON_LINK_OUTSIDE_FOLDER => format!(
            "{}: {}",
            crate::evaluate::REASON_LINK_OUTSIDE_FOLDER,
            crate::evaluate::LINK_OUTSIDE_FOLDER_MEANS
        ),
        other => clean(other, 400),
    }
}

/// The one-line headline of an alert, without the `[tokenwatch]` prefix.
pub(super) fn headline(
    alert: &Alert,
    subjects: &[Assessment],
    folders: &[FolderAssessment],
) -> String {
    let s = alert.subject.and_then(|i| subjects.get(i));
    let token = |s: &Assessment| {
        format!(
            "{} for {} ({})",
            token::kind(s.kind).noun(),
            clean(s.org_name.as_deref().unwrap_or("unknown organisation"), 60),
            clean(file_stem(&s.path), 60)
        )
    };
    match (&alert.kind, s) {
        (AlertKind::Expiring { .. }, Some(s)) => {
            let days = s.days_left.unwrap_or(0);
            let date = s
                .expires_at
                .map(|e| e.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            let when = if days == 0 {
                "expires within a day".to_string()
            } else if days == 1 {
                "expires in 1 day".into()
            } else {
                format!("expires in {days} days")
            };
            format!("{} {when} ({date})", token(s))
        }
        (AlertKind::Expired { reminder }, Some(s)) => {
            format!(
                "{} has EXPIRED{}",
                token(s),
                if *reminder > 0 { " (reminder)" } else { "" }
            )
        }
        (AlertKind::Invalidated { reason, reminder }, Some(s)) => format!(
            "{} is INVALID: {}{}",
            token(s),
            describe_reason(reason, s.account.as_deref()),
            if *reminder > 0 { " (reminder)" } else { "" }
        ),
        (AlertKind::Unreadable { .. }, Some(s)) => {
            format!("Unreadable token file {}", clean(file_name(&s.path), 80))
        }
        (AlertKind::Superseded, Some(s)) => format!("{} was replaced by a newer token", token(s)),
        (AlertKind::NoAccount, Some(s)) => {
            format!("{} has no known Managed Apple Account", token(s))
        }
        (AlertKind::FolderProblem { state, .. }, _) => {
            let f = alert
                .folder
                .and_then(|i| folders.get(i))
                .map(|f| f.path.as_str())
                .unwrap_or("?");
            let what = match state.as_str() {
                "missing" => "is missing",
                "unreadable" => "cannot be read",
                "empty" => "holds no token",
                other => other,
            };
            format!("Token folder {} {what}", clean(f, 80))
        }
        (AlertKind::FolderRecovered, _) => {
            let f = alert
                .folder
                .and_then(|i| folders.get(i))
                .map(|f| f.path.as_str())
                .unwrap_or("?");
            format!("Token folder {} is back", clean(f, 80))
        }
        (AlertKind::CannotVerify { since }, Some(s)) => format!(
            "{} cannot be verified with Apple since {}",
            token(s),
            since.format("%Y-%m-%d")
        ),
        (AlertKind::AppleExpiryMismatch, Some(s)) => {
            format!("{}: Apple reports a different expiry date", token(s))
        }
        (AlertKind::AppleUnreachable { since }, _) => format!(
            "Apple's Apps and Books API cannot be reached since {}",
            since.format("%Y-%m-%d %H:%M UTC")
        ),
        _ => "tokenwatch alert".into(),
    }
}

/// A time in the configured zone, and in UTC too when that differs: in a
/// zone at UTC's offset (UTC itself, London in winter) the same time twice
/// only repeats itself.
fn local_and_utc(t: chrono::DateTime<chrono::Utc>, ctx: &Context) -> String {
    use chrono::Offset;
    let shown = local(t, ctx.tz);
    if t.with_timezone(&ctx.tz).offset().fix().local_minus_utc() == 0 {
        shown
    } else {
        format!("{shown} ({})", t.format("%Y-%m-%d %H:%M UTC"))
    }
}

/// Label/value rows describing the alert's token or folder.
pub(super) fn facts(
    alert: &Alert,
    subjects: &[Assessment],
    folders: &[FolderAssessment],
    ctx: &Context,
) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    if let Some(s) = alert.subject.and_then(|i| subjects.get(i)) {
        rows.push((
            "Organisation",
            clean(s.org_name.as_deref().unwrap_or("(unknown)"), 200),
        ));
        rows.push(("File", clean(&s.path, 400)));
        if let Some(e) = s.expires_at {
            rows.push(("Expires", local_and_utc(e, ctx)));
        }
        if let Some(d) = s.days_left {
            rows.push(("Days left", d.to_string()));
        }
        if let Some(c) = s.created_at {
            rows.push((
                "Created",
                format!("{} (derived: expiry minus one year)", local(c, ctx.tz)),
            ));
        }
        rows.push((
            "Managed Apple Account",
            clean(
                s.account
                    .as_deref()
                    .unwrap_or("(unknown: add it to the config)"),
                200,
            ),
        ));
        if s.identity.len() >= 12 && s.identity.bytes().all(|b| b.is_ascii_hexdigit()) {
            rows.push(("Fingerprint", s.identity[..12].to_string()));
        }
        rows.push(("Status", s.status.as_str().to_string()));
        if let Some(by) = &s.superseded_by {
            rows.push(("Replaced by", clean(by, 400)));
        }
        if let Some(a) = &s.apple {
            rows.push(("Apple verdict", a.verdict.to_string()));
            if let Some(at) = a.verified_at {
                rows.push(("Verified with Apple", local(at, ctx.tz)));
            }
            if let Some(l) = &a.location_name {
                rows.push(("Apple location", clean(l, 200)));
            }
            if let Some(m) = &a.mdm_name {
                rows.push(("MDM using it", clean(m, 200)));
            }
            if let Some(e) = a.apple_expires_at {
                rows.push(("Expiry according to Apple", local(e, ctx.tz)));
            }
            if let Some(e) = &a.error {
                rows.push(("Last Apple check failed", clean(e, 400)));
            }
        }
    }
    if let Some(f) = alert.folder.and_then(|i| folders.get(i)) {
        rows.push(("Folder", clean(&f.path, 400)));
        if let Some((state, error)) = f.problem() {
            rows.push(("State", state.to_owned()));
            if let Some(e) = error {
                rows.push(("Error", clean(e, 400)));
            }
        }
    }
    match &alert.kind {
        AlertKind::Invalidated { reason, .. } => {
            let s = alert.subject.and_then(|i| subjects.get(i));
            rows.push((
                "Reason",
                describe_reason(reason, s.and_then(|s| s.account.as_deref())),
            ));
        }
        AlertKind::Unreadable { error } => rows.push(("Error", describe_unreadable(error))),
        _ => {}
    }
    rows.push(("Sent by", clean(ctx.host, 200)));
    rows
}

/// The kind of the alert's file; alerts about no file (folders, Apple)
/// get the content token's texts, as before kinds.
fn kind_of(alert: &Alert, subjects: &[Assessment]) -> KindId {
    alert
        .subject
        .and_then(|i| subjects.get(i))
        .map_or(KindId::default(), |s| s.kind)
}

pub(super) fn advice(alert: &Alert, subjects: &[Assessment]) -> Vec<&'static str> {
    let of_kind = token::kind(kind_of(alert, subjects));
    match &alert.kind {
        AlertKind::Expiring { .. } | AlertKind::Expired { .. } | AlertKind::Invalidated { .. } => of_kind.renewal_advice().to_vec(),
        AlertKind::Unreadable { error } if error == crate::evaluate::REASON_LINK_OUTSIDE_FOLDER => vec!["tokenwatch does not follow a symbolic link out of every watched folder, so it reads nothing through it. Move the token into a watched folder (and point the link there), remove the link, or set follow_links = true on its [[folder]] if the link is meant."],
        AlertKind::Unreadable { .. } => vec![of_kind.unreadable_advice()],
        AlertKind::Superseded => vec!["Another token with the same Apple location expires later and is in use: the old file can be removed."],
        AlertKind::NoAccount => vec!["Name the Managed Apple Account that downloaded this token in the config (the folder's `account`, or a [[token]] entry), so that a password change can be caught."],
        AlertKind::FolderProblem { .. } => vec!["Check that the share is mounted and readable by the tokenwatch user. Tokens in this folder are not being watched until it is back."],
        AlertKind::FolderRecovered => vec!["The folder is readable again and is watched."],
        AlertKind::CannotVerify { .. } => vec!["Apple answers other requests from this host, but checks of this token keep failing. `tokenwatch probe FILE` shows Apple's answer."],
        AlertKind::AppleExpiryMismatch => vec!["The expiry date in the file and the one Apple reports differ by more than a day. tokenwatch warns by the file's date; check the token in Apple Business and replace the file if it is outdated."],
        AlertKind::AppleUnreachable { .. } => vec!["Every request to Apple from this host has failed for more than a day (connection, TLS or server errors), so revoked tokens cannot be detected. Check the network path, proxy (HTTPS_PROXY) and firewall to vpp.itunes.apple.com. Expiry warnings continue from the files' dates."],
    }
}

/// The renewal advice of every kind the alerts are about, each paragraph
/// once, in the order the kinds first appear; a summary about folders alone
/// ends with the content token's, as before kinds.
pub(super) fn summary_advice(alerts: &[Alert], subjects: &[Assessment]) -> Vec<&'static str> {
    let mut kinds: Vec<KindId> = Vec::new();
    for a in alerts {
        if let Some(s) = a.subject.and_then(|i| subjects.get(i)) {
            if !kinds.contains(&s.kind) {
                kinds.push(s.kind);
            }
        }
    }
    if kinds.is_empty() {
        kinds.push(KindId::default());
    }
    let mut paragraphs: Vec<&'static str> = Vec::new();
    for k in kinds {
        for &p in token::kind(k).renewal_advice() {
            if !paragraphs.contains(&p) {
                paragraphs.push(p);
            }
        }
    }
    paragraphs
}
