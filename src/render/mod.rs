//! Alerts, storm summaries and digests into words: a subject line, plain
//! text and HTML, which every channel builds its payload from. Pure: the
//! same alert renders the same message, so a re-sent one matches the first.
//!
//! Only public facts reach a message (org, path, dates, account, the
//! 12-digit fingerprint); the token content never does, because it is never
//! given to this module.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub mod calendar;
mod html;
mod parts;

use crate::alerts::Alert;
use crate::assess::{Assessment, FolderAssessment};
pub use crate::show::{clean, local};
use html::Page;
use parts::{advice, facts, headline, summary_advice};

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
        /// The digest's ledger key.
        key: &'a str,
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
        Input::Digest {
            tokens, folders, ..
        } => render_digest(tokens, folders, ctx),
    }
}

impl Input<'_> {
    /// The ledger keys the message stands for: what its Message-ID is
    /// made of.
    pub fn keys(&self) -> Vec<String> {
        match *self {
            Input::Alert { alert, .. } => vec![alert.key.clone()],
            Input::Summary { alerts, .. } => alerts.iter().map(|a| a.key.clone()).collect(),
            Input::Digest { key, .. } => vec![key.to_owned()],
        }
    }
}

/// What a message says, in parts, for channels that lay it out themselves
/// (chat cards) rather than take the finished text.
#[derive(Debug, Clone)]
pub struct Words<'a> {
    /// What it is about: the alert kind's name (`expiring`, `expired`,
    /// ...), `summary` or `digest`.
    pub event: &'static str,
    /// The subject without its `[tokenwatch]` prefix.
    pub summary: String,
    /// The credential it is about, when one.
    pub token: Option<&'a Assessment>,
    /// The folder it is about, when one.
    pub folder: Option<&'a str>,
    pub facts: Vec<(&'static str, String)>,
    pub advice: Vec<&'static str>,
}

/// [`render`] in parts: the same headline, facts and advice.
pub fn words<'a>(input: &Input<'a>, ctx: &Context) -> Words<'a> {
    match *input {
        Input::Alert {
            alert,
            tokens,
            folders,
        } => {
            let token = alert.subject.and_then(|i| tokens.get(i));
            Words {
                event: alert.kind.name(),
                summary: headline(alert, tokens, folders),
                token,
                folder: alert
                    .folder
                    .and_then(|i| folders.get(i))
                    .map(|f| f.path.as_str()),
                facts: facts(alert, tokens, folders, ctx),
                advice: advice(alert, tokens),
            }
        }
        Input::Summary { .. } | Input::Digest { .. } => {
            let r = render(input, ctx);
            let advice = match *input {
                Input::Summary { alerts, tokens, .. } => summary_advice(alerts, tokens),
                _ => Vec::new(),
            };
            Words {
                event: if matches!(input, Input::Summary { .. }) {
                    "summary"
                } else {
                    "digest"
                },
                summary: r.subject.trim_start_matches("[tokenwatch] ").to_owned(),
                token: None,
                folder: None,
                facts: match *input {
                    Input::Digest { tokens, .. } => digest_facts(tokens, ctx),
                    _ => vec![("Sent by", clean(ctx.host, 200))],
                },
                advice,
            }
        }
    }
}

pub struct Context<'a> {
    pub tz: Tz,
    /// The host that sends, named in every mail.
    pub host: &'a str,
    /// When the message is queued (the pass's `now`); a retry keeps it.
    pub now: DateTime<Utc>,
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
    let mut page = Page::new(&head, html::alert_badge(&alert.kind), &head, 640);
    page.section("", &html::facts_table(&rows));
    if !advice.is_empty() {
        page.section("What to do", &html::steps(&advice));
    }
    let html = page.finish(ctx.host);
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
            &html::summary_item(&h, &path),
        );
    }
    let (more_text, more_html) = list.more();
    let intro = format!("tokenwatch found {} things that need attention in one pass; they are listed here in one mail instead of {} mails.", alerts.len(), alerts.len());
    let mut text = format!("{intro}\n\n");
    text.push_str(&list.text);
    text.push_str(&more_text);
    let title = &subject["[tokenwatch] ".len()..];
    let mut page = Page::new(
        title,
        (html::Tone::Critical, &format!("{} ALERTS", alerts.len())),
        title,
        640,
    );
    page.paragraph(&intro);
    let mut items = String::from(html::LIST_START);
    items.push_str(&list.html);
    if !more_html.is_empty() {
        let _ = writeln!(
            items,
            "<tr><td style=\"padding:6px 0;font-size:14px;\">{more_html}</td></tr>"
        );
    }
    items.push_str(html::LIST_END);
    page.section("", &items);
    let advice = summary_advice(alerts, subjects);
    for a in &advice {
        let _ = write!(text, "\n{a}\n");
    }
    page.section("What to do", &html::steps(&advice));
    let html = page.finish(ctx.host);
    sign_text(&mut text, ctx);
    Rendered {
        subject,
        text,
        html,
    }
}

/// The scheduled digest for one recipient: every token they hear about
/// counted, the first [`MAX_LISTED`] by soonest expiry listed, so silence
/// is never ambiguous.
pub fn render_digest(tokens: &[&Assessment], folders: usize, ctx: &Context) -> Rendered {
    let mut sorted: Vec<&&Assessment> = tokens.iter().collect();
    sorted.sort_by_key(|t| (t.expires_at.is_none(), t.expires_at));
    // A silenced credential was left to expire on purpose: it is listed
    // (marked) but needs no one's attention, as in `check`'s exit code.
    let needs_attention =
        |t: &Assessment| t.status != crate::evaluate::Status::Ok && t.silenced.is_none();
    let attention = sorted.iter().filter(|t| needs_attention(t)).count();
    let silenced = sorted.iter().filter(|t| t.silenced.is_some()).count();
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
    let summary = match silenced {
        0 => summary,
        n => format!("{summary} ({n} silenced)"),
    };
    let mut list = Listing::default();
    for t in &sorted {
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
        let note = silenced_note(t, ctx);
        let marked = note
            .as_deref()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        list.push(
            &format!("{status:<12} {days:>5}  {expires:<22} {org}  {account}  {path}{marked}\n"),
            &html::digest_row(t, [&days, &expires, &org, &account, &path], note.as_deref()),
        );
    }
    let (more_text, more_html) = list.more();
    let mut text = format!("{summary}.\n\n");
    text.push_str(&list.text);
    text.push_str(&more_text);
    let badge = match attention {
        0 => (html::Tone::Fine, "ALL FINE".to_owned()),
        n => {
            let critical = sorted
                .iter()
                .filter(|t| needs_attention(t))
                .any(|t| html::status_tone(t.status) == html::Tone::Critical);
            let tone = if critical {
                html::Tone::Critical
            } else {
                html::Tone::Warning
            };
            (
                tone,
                format!("{n} NEED{} ATTENTION", if n == 1 { "S" } else { "" }),
            )
        }
    };
    let mut page = Page::new(&summary, (badge.0, &badge.1), &summary, 760);
    let mut table = html::digest_table_start();
    table.push_str(&list.html);
    if !more_html.is_empty() {
        let _ = writeln!(
            table,
            "<tr><td colspan=\"{}\" style=\"padding:6px 0;font-size:13px;\">{more_html}</td></tr>",
            html::DIGEST_COLUMNS
        );
    }
    table.push_str("</table>");
    page.section("", &table);
    let dated: Vec<&Assessment> = sorted
        .iter()
        .filter(|t| t.expires_at.is_some())
        .map(|t| **t)
        .collect();
    if !dated.is_empty() {
        page.section("The next 12 months", &html::timeline(&dated, ctx));
    }
    let html = page.finish(ctx.host);
    sign_text(&mut text, ctx);
    Rendered {
        subject: format!("[tokenwatch] Digest: {summary}"),
        text,
        html,
    }
}

/// "silenced until DATE: reason" for a credential silenced with
/// `tokenwatch silence`, as the status tables mark it; None otherwise.
fn silenced_note(t: &Assessment, ctx: &Context) -> Option<String> {
    let s = t.silenced.as_ref()?;
    let until = local(s.until, ctx.tz);
    Some(match s.reason.as_deref() {
        Some(r) => format!("silenced until {until}: {}", clean(r, 200)),
        None => format!("silenced until {until}"),
    })
}

/// A chat message lists at most this many silenced credentials of a
/// digest; the digest mail has them all.
const MAX_SILENCED_FACTS: usize = 20;

/// The facts a digest's chat message gives: the host, and which of its
/// credentials are silenced (a chat message lists no table to mark).
fn digest_facts(tokens: &[&Assessment], ctx: &Context) -> Vec<(&'static str, String)> {
    let mut facts = vec![("Sent by", clean(ctx.host, 200))];
    let silenced: Vec<&&Assessment> = tokens.iter().filter(|t| t.silenced.is_some()).collect();
    for t in silenced.iter().take(MAX_SILENCED_FACTS) {
        let name = format!(
            "{} ({})",
            clean(t.org_name.as_deref().unwrap_or("(unknown)"), 60),
            clean(t.path.rsplit('/').next().unwrap_or(&t.path), 80)
        );
        if let Some(note) = silenced_note(t, ctx) {
            facts.push(("Silenced", format!("{name}: {note}")));
        }
    }
    if silenced.len() > MAX_SILENCED_FACTS {
        let more = silenced.len() - MAX_SILENCED_FACTS;
        facts.push((
            "Silenced",
            format!("and {more} more (see `tokenwatch status`)"),
        ));
    }
    facts
}

/// The closing "Sent by" line of a summary's or digest's text; the HTML
/// has it in its footer.
fn sign_text(text: &mut String, ctx: &Context) {
    let _ = write!(text, "\nSent by: {}\n", clean(ctx.host, 200));
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
