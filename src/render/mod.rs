//! Alerts, storm summaries and digests into words: a subject line, plain
//! text and HTML, which every channel builds its payload from. Pure: the
//! same alert renders the same message, so a re-sent one matches the first.
//!
//! Only public facts reach a message (org, path, dates, account, the
//! 12-digit fingerprint); the token content never does, because it is never
//! given to this module.

use std::fmt::Write;

use chrono_tz::Tz;

use crate::alerts::{Alert, AlertKind};
use crate::assess::{Assessment, FolderAssessment};
use crate::show::html_escape;
pub use crate::show::{clean, local};
use crate::token::{self, KindId};

/// What is to be said: one alert, many at once (storm guard), or a digest.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Alert {
        alert: &'a Alert,
        tokens: &'a [Assessment],
        folders: &'a [FolderAssessment],
    },
    Summary {
        alerts: &'a [Alert],
        tokens: &'a [Assessment],
        folders: &'a [FolderAssessment],
    },
    Digest {
        /// Every token the recipient hears about.
        tokens: &'a [&'a Assessment],
        /// How many folders they hear about.
        folders: usize,
    },
}

/// Renders any [`Input`].
pub fn render(input: &Input<'_>, ctx: &Context) -> Rendered {
    match *input {
        Input::Alert {
            alert,
            tokens,
            folders,
        } => render_alert(alert, tokens, folders, ctx),
        Input::Summary {
            alerts,
            tokens,
            folders,
        } => render_summary(alerts, tokens, folders, ctx),
        Input::Digest { tokens, folders } => render_digest(tokens, folders, ctx),
    }
}

pub struct Context<'a> {
    pub tz: Tz,
    /// The host that sends, named in every mail.
    pub host: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A summary or digest lists at most this many items and counts the rest:
/// a storm of a million broken files must still make one mail a relay
/// accepts, and nobody reads past the first few hundred lines anyway.
pub const MAX_LISTED: usize = 200;
/// The listed items of one body part stay within this many bytes, whatever
/// the names in them hold (multi-byte characters, HTML escapes). With the
/// fixed text around them, base64 or quoted-printable encoding (at most
/// about 4/3) and both parts, a whole message stays well under 1 MiB.
pub const MAX_LISTING_BYTES: usize = 256 * 1024;

/// The items of a summary or digest as they are added, up to
/// [`MAX_LISTED`] and [`MAX_LISTING_BYTES`] per part; the rest are counted.
#[derive(Default)]
struct Listing {
    text: String,
    html: String,
    listed: usize,
    left_out: usize,
}

impl Listing {
    /// Whether another item could still be listed (so it is worth rendering).
    fn has_room(&self) -> bool {
        self.left_out == 0 && self.listed < MAX_LISTED
    }

    fn push(&mut self, text: &str, html: &str) {
        if self.has_room()
            && self.text.len() + text.len() <= MAX_LISTING_BYTES
            && self.html.len() + html.len() <= MAX_LISTING_BYTES
        {
            self.text.push_str(text);
            self.html.push_str(html);
            self.listed += 1;
        } else {
            self.left_out += 1;
        }
    }

    fn skip(&mut self) {
        self.left_out += 1;
    }

    /// The line that says how many were left out, or "" when none were.
    fn more(&self) -> (String, String) {
        if self.left_out == 0 {
            return (String::new(), String::new());
        }
        (
            format!("... and {} more (see `tokenwatch status`)\n", self.left_out),
            format!(
                "and {} more (see <code>tokenwatch status</code>)",
                self.left_out
            ),
        )
    }
}

/// A stable Message-ID: the same alert (or summary of the same alerts)
/// always gets the same id, so a duplicate is recognisable as one.
pub fn message_id(keys: &[String]) -> String {
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    for k in sorted {
        h.update(k.as_bytes());
        h.update(&[0]);
    }
    format!("<{}@tokenwatch>", &hex::encode(h.finish())[..32])
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn file_stem(path: &str) -> &str {
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
fn headline(alert: &Alert, subjects: &[Assessment], folders: &[FolderAssessment]) -> String {
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

/// Label/value rows describing the alert's token or folder.
fn facts(
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
            rows.push((
                "Expires",
                format!("{} ({})", local(e, ctx.tz), e.format("%Y-%m-%d %H:%M UTC")),
            ));
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

fn advice(alert: &Alert, subjects: &[Assessment]) -> Vec<&'static str> {
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

pub fn render_alert(
    alert: &Alert,
    subjects: &[Assessment],
    folders: &[FolderAssessment],
    ctx: &Context,
) -> Rendered {
    let head = headline(alert, subjects, folders);
    let rows = facts(alert, subjects, folders, ctx);
    let advice = advice(alert, subjects);
    let mut text = format!("{head}\n\n");
    for (k, v) in &rows {
        let _ = writeln!(text, "{k}: {v}");
    }
    for a in &advice {
        let _ = write!(text, "\n{a}\n");
    }
    let mut html = format!("<html><body>\n<h2>{}</h2>\n<table>\n", html_escape(&head));
    for (k, v) in &rows {
        let _ = writeln!(
            html,
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            html_escape(k),
            html_escape(v)
        );
    }
    html.push_str("</table>\n");
    for a in &advice {
        let _ = writeln!(html, "<p>{}</p>", html_escape(a));
    }
    html.push_str("</body></html>\n");
    Rendered {
        subject: format!("[tokenwatch] {head}"),
        text,
        html,
    }
}

/// One mail for many alerts (storm guard): the first [`MAX_LISTED`]
/// listed, the rest counted.
pub fn render_summary(
    alerts: &[Alert],
    subjects: &[Assessment],
    folders: &[FolderAssessment],
    ctx: &Context,
) -> Rendered {
    let subject = format!(
        "[tokenwatch] {} alerts at once: tokens or folders need attention",
        alerts.len()
    );
    let mut list = Listing::default();
    for a in alerts {
        if !list.has_room() {
            list.skip();
            continue;
        }
        let h = headline(a, subjects, folders);
        let path = a
            .subject
            .and_then(|i| subjects.get(i))
            .map(|s| clean(&s.path, 400))
            .or_else(|| {
                a.folder
                    .and_then(|i| folders.get(i))
                    .map(|f| clean(&f.path, 400))
            })
            .unwrap_or_default();
        list.push(
            &format!("- {h}\n  {path}\n"),
            &format!(
                "<li>{}<br><code>{}</code></li>\n",
                html_escape(&h),
                html_escape(&path)
            ),
        );
    }
    let (more_text, more_html) = list.more();
    let mut text = format!("tokenwatch found {} things that need attention in one pass; they are listed here in one mail instead of {} mails.\n\n", alerts.len(), alerts.len());
    text.push_str(&list.text);
    text.push_str(&more_text);
    let mut html = format!(
        "<html><body>\n<h2>{}</h2>\n<ul>\n",
        html_escape(&subject[13..])
    );
    html.push_str(&list.html);
    if !more_html.is_empty() {
        let _ = writeln!(html, "<li>{more_html}</li>");
    }
    html.push_str("</ul>\n");
    for a in summary_advice(alerts, subjects) {
        let _ = write!(text, "\n{a}\n");
        let _ = writeln!(html, "<p>{}</p>", html_escape(a));
    }
    let _ = write!(text, "\nSent by: {}\n", clean(ctx.host, 200));
    let _ = write!(
        html,
        "<p>Sent by: {}</p>\n</body></html>\n",
        html_escape(&clean(ctx.host, 200))
    );
    Rendered {
        subject,
        text,
        html,
    }
}

/// The renewal advice of every kind the alerts are about, each paragraph
/// once, in the order the kinds first appear; a summary about folders alone
/// ends with the content token's, as before kinds.
fn summary_advice(alerts: &[Alert], subjects: &[Assessment]) -> Vec<&'static str> {
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

/// The scheduled digest for one recipient: every token they hear about
/// counted, the first [`MAX_LISTED`] by soonest expiry listed, so silence
/// is never ambiguous.
pub fn render_digest(tokens: &[&Assessment], folders: usize, ctx: &Context) -> Rendered {
    let mut sorted: Vec<&&Assessment> = tokens.iter().collect();
    sorted.sort_by_key(|t| (t.expires_at.is_none(), t.expires_at));
    let attention = sorted
        .iter()
        .filter(|t| t.status != crate::evaluate::Status::Ok)
        .count();
    let plural = |n: usize, w: &str| {
        if n == 1 {
            format!("{n} {w}")
        } else {
            format!("{n} {w}s")
        }
    };
    let summary = if attention == 0 {
        format!(
            "tokenwatch is watching {} in {}; all fine",
            plural(tokens.len(), "token"),
            plural(folders, "folder")
        )
    } else {
        format!(
            "tokenwatch is watching {} in {}; {} need{} attention",
            plural(tokens.len(), "token"),
            plural(folders, "folder"),
            attention,
            if attention == 1 { "s" } else { "" }
        )
    };
    let mut list = Listing::default();
    for t in sorted {
        if !list.has_room() {
            list.skip();
            continue;
        }
        let expires = t.expires_at.map(|e| local(e, ctx.tz)).unwrap_or_default();
        let days = t.days_left.map(|d| d.to_string()).unwrap_or_default();
        let org = clean(t.org_name.as_deref().unwrap_or(""), 60);
        let account = clean(t.account.as_deref().unwrap_or("(unknown)"), 60);
        let path = clean(&t.path, 400);
        let status = t.status.as_str();
        list.push(
            &format!("{status:<12} {days:>5}  {expires:<22} {org}  {account}  {path}\n"),
            &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                html_escape(status),
                html_escape(&days),
                html_escape(&expires),
                html_escape(&org),
                html_escape(&account),
                html_escape(&path)
            ),
        );
    }
    let (more_text, more_html) = list.more();
    let mut text = format!("{summary}.\n\n");
    text.push_str(&list.text);
    text.push_str(&more_text);
    let mut html = format!("<html><body>\n<h2>{}</h2>\n<table>\n<tr><th>Status</th><th>Days left</th><th>Expires</th><th>Organisation</th><th>Account</th><th>File</th></tr>\n", html_escape(&summary));
    html.push_str(&list.html);
    if !more_html.is_empty() {
        let _ = writeln!(html, "<tr><td colspan=\"6\">{more_html}</td></tr>");
    }
    let _ = write!(text, "\nSent by: {}\n", clean(ctx.host, 200));
    let _ = write!(
        html,
        "</table>\n<p>Sent by: {}</p>\n</body></html>\n",
        html_escape(&clean(ctx.host, 200))
    );
    Rendered {
        subject: format!("[tokenwatch] Digest: {summary}"),
        text,
        html,
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
