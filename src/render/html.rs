//! The HTML part of every mail, laid out for mail clients rather than
//! browsers: tables for layout, CSS only in `style` attributes (Gmail and
//! Outlook drop `<style>` and `<link>`), no scripts, no images. The output
//! is also well-formed XML (closed elements, quoted attributes, numeric
//! character references only), so a test can check it with an XML parser.
//!
//! Every text put into it goes through [`html_escape`] first.

use std::fmt::Write;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};

use super::Context;
use crate::alerts::AlertKind;
use crate::assess::Assessment;
use crate::evaluate::Status;
use crate::show::{clean, html_escape};

/// How loud a badge or a timeline mark is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tone {
    Critical,
    Warning,
    Info,
    Fine,
}

impl Tone {
    /// Background colour; white text reads on each.
    fn colour(self) -> &'static str {
        match self {
            Tone::Critical => "#b91c1c",
            Tone::Warning => "#b45309",
            Tone::Info => "#1d4ed8",
            Tone::Fine => "#15803d",
        }
    }
}

pub(super) fn status_tone(s: Status) -> Tone {
    match s {
        Status::Expired | Status::Invalidated | Status::Unreadable => Tone::Critical,
        Status::Expiring => Tone::Warning,
        Status::Superseded => Tone::Info,
        Status::Ok => Tone::Fine,
    }
}

/// The badge of an alert: its tone and a word or two.
pub(super) fn alert_badge(kind: &AlertKind) -> (Tone, &'static str) {
    match kind {
        AlertKind::Expiring { .. } => (Tone::Warning, "EXPIRING"),
        AlertKind::Expired { .. } => (Tone::Critical, "EXPIRED"),
        AlertKind::Invalidated { .. } => (Tone::Critical, "INVALID"),
        AlertKind::Unreadable { .. } => (Tone::Critical, "UNREADABLE"),
        AlertKind::FolderProblem { .. } => (Tone::Critical, "FOLDER PROBLEM"),
        AlertKind::FolderRecovered => (Tone::Fine, "FOLDER BACK"),
        AlertKind::Superseded => (Tone::Info, "REPLACED"),
        AlertKind::NoAccount => (Tone::Warning, "NO ACCOUNT"),
        AlertKind::CannotVerify { .. } => (Tone::Warning, "NOT VERIFIED"),
        AlertKind::AppleExpiryMismatch => (Tone::Warning, "DATE MISMATCH"),
        AlertKind::AppleUnreachable { .. } => (Tone::Critical, "APPLE UNREACHABLE"),
        AlertKind::MdmConflict { .. } => (Tone::Warning, "MDM CONFLICT"),
        AlertKind::TopicChanged { .. } => (Tone::Critical, "TOPIC CHANGED"),
    }
}

const FONT: &str = "font-family:Arial,Helvetica,sans-serif;";
const RULE: &str = "border-bottom:1px solid #e5e7eb;";

/// A mail's HTML, built top to bottom: [`Page::new`] (badge and
/// headline), sections, then [`Page::finish`] (the footer).
pub(super) struct Page {
    out: String,
}

impl Page {
    /// `width`: the card's width in pixels; it shrinks on narrow screens.
    pub(super) fn new(title: &str, badge: (Tone, &str), headline: &str, width: u32) -> Page {
        let mut out = String::with_capacity(8 * 1024);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\
             <title>{}</title></head>\n\
             <body style=\"margin:0;padding:0;background-color:#f3f4f6;\">\n\
             <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"background-color:#f3f4f6;\"><tr><td align=\"center\" style=\"padding:24px 8px;\">\n\
             <table role=\"presentation\" width=\"{width}\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"width:100%;max-width:{width}px;background-color:#ffffff;border:1px solid #e5e7eb;border-radius:6px;{FONT}color:#111827;\">\n\
             <tr><td style=\"padding:20px 24px 4px 24px;\">{}</td></tr>\n\
             <tr><td style=\"padding:8px 24px 16px 24px;\"><h1 style=\"margin:0;font-size:20px;line-height:27px;font-weight:bold;{FONT}\">{}</h1></td></tr>\n",
            html_escape(title),
            badge_html(badge.0, badge.1, 13),
            html_escape(headline)
        );
        Page { out }
    }

    /// A section: a heading (may be empty) and HTML already escaped.
    pub(super) fn section(&mut self, heading: &str, inner: &str) {
        self.out
            .push_str("<tr><td style=\"padding:0 24px 20px 24px;\">");
        if !heading.is_empty() {
            let _ = write!(
                self.out,
                "<h2 style=\"margin:0 0 8px 0;font-size:16px;line-height:22px;{FONT}\">{}</h2>",
                html_escape(heading)
            );
        }
        self.out.push_str(inner);
        self.out.push_str("</td></tr>\n");
    }

    /// A paragraph of text.
    pub(super) fn paragraph(&mut self, text: &str) {
        self.section("", &paragraph(text));
    }

    pub(super) fn finish(mut self, host: &str) -> String {
        let _ = write!(
            self.out,
            "<tr><td style=\"padding:12px 24px;border-top:1px solid #e5e7eb;font-size:12px;line-height:18px;color:#6b7280;\">Sent by tokenwatch on {}</td></tr>\n\
             </table>\n</td></tr></table>\n</body></html>\n",
            html_escape(&clean(host, 200))
        );
        self.out
    }
}

pub(super) fn paragraph(text: &str) -> String {
    format!(
        "<p style=\"margin:0;font-size:14px;line-height:21px;\">{}</p>",
        html_escape(text)
    )
}

pub(super) fn badge_html(tone: Tone, label: &str, size: u32) -> String {
    format!(
        "<span style=\"display:inline-block;padding:3px 10px;border-radius:11px;background-color:{};color:#ffffff;font-size:{size}px;line-height:18px;font-weight:bold;letter-spacing:0.5px;{FONT}\">{}</span>",
        tone.colour(),
        html_escape(label)
    )
}

/// Label and value rows as a two-column table. "Sent by" is left to the
/// footer.
pub(super) fn facts_table(rows: &[(&str, String)]) -> String {
    let mut out = String::from(
        "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"border-collapse:collapse;font-size:14px;line-height:20px;\">\n",
    );
    for (k, v) in rows.iter().filter(|(k, _)| *k != "Sent by") {
        let _ = writeln!(
            out,
            "<tr><td style=\"padding:6px 16px 6px 0;{RULE}color:#6b7280;vertical-align:top;white-space:nowrap;\">{}</td><td style=\"padding:6px 0;{RULE}vertical-align:top;word-break:break-word;\">{}</td></tr>",
            html_escape(k),
            html_escape(v)
        );
    }
    out.push_str("</table>");
    out
}

/// What to do, as numbered steps.
pub(super) fn steps(advice: &[&str]) -> String {
    let mut out =
        String::from("<ol style=\"margin:0;padding:0 0 0 22px;font-size:14px;line-height:21px;\">");
    for a in advice {
        let _ = write!(
            out,
            "<li style=\"margin:0 0 8px 0;\">{}</li>",
            html_escape(a)
        );
    }
    out.push_str("</ol>");
    out
}

/// One item of a summary's list: its headline and the file or folder.
pub(super) fn summary_item(headline: &str, path: &str) -> String {
    format!(
        "<tr><td style=\"padding:6px 0;{RULE}font-size:14px;line-height:20px;\">{}<br/><span style=\"font-family:Menlo,Consolas,monospace;font-size:12px;color:#4b5563;word-break:break-all;\">{}</span></td></tr>\n",
        html_escape(headline),
        html_escape(path)
    )
}

pub(super) const LIST_START: &str = "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"border-collapse:collapse;\">\n";
pub(super) const LIST_END: &str = "</table>";

const HEAD_CELL: &str =
    "padding:6px 8px 6px 0;border-bottom:2px solid #d1d5db;text-align:left;font-size:12px;color:#6b7280;white-space:nowrap;";
const CELL: &str = "padding:6px 8px 6px 0;border-bottom:1px solid #e5e7eb;font-size:13px;line-height:18px;vertical-align:top;";

pub(super) const DIGEST_COLUMNS: usize = 6;

pub(super) fn digest_table_start() -> String {
    let mut out = String::from(
        "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"border-collapse:collapse;\">\n<tr>",
    );
    for h in [
        "Status",
        "Days left",
        "Expires",
        "Organisation",
        "Account",
        "File",
    ] {
        let _ = write!(out, "<th style=\"{HEAD_CELL}\">{h}</th>");
    }
    out.push_str("</tr>\n");
    out
}

/// One credential's row of the digest table; `silenced` is the note under
/// its status badge.
pub(super) fn digest_row(t: &Assessment, cells: [&str; 5], silenced: Option<&str>) -> String {
    let [days, expires, org, account, path] = cells.map(html_escape);
    let note = silenced
        .map(|n| {
            format!(
                "<br/><span style=\"font-size:11px;color:#6b7280;\">{}</span>",
                html_escape(n)
            )
        })
        .unwrap_or_default();
    format!(
        "<tr><td style=\"{CELL}\">{}{note}</td><td style=\"{CELL}text-align:right;\">{days}</td><td style=\"{CELL}white-space:nowrap;\">{expires}</td><td style=\"{CELL}\">{org}</td><td style=\"{CELL}\">{account}</td><td style=\"{CELL}font-family:Menlo,Consolas,monospace;font-size:12px;word-break:break-all;\">{path}</td></tr>\n",
        badge_html(status_tone(t.status), t.status.as_str(), 11)
    )
}

/// The timeline shows at most this many credentials, the soonest to
/// expire: it is for seeing what comes when, and keeps the mail small.
pub const TIMELINE_ROWS: usize = 50;

/// Twelve months from the current one, a row per credential, its expiry
/// month marked with the day of the month in the colour of its status.
/// Expiry before the first month is marked in the first cell, after the
/// last in the last one (with an arrow).
pub(super) fn timeline(tokens: &[&Assessment], ctx: &Context) -> String {
    let today = ctx.now.with_timezone(&ctx.tz).date_naive();
    let first = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
    let months: Vec<NaiveDate> = (0..12)
        .filter_map(|i| first.checked_add_months(Months::new(i)))
        .collect();
    let mut out = String::from(
        "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"border-collapse:collapse;table-layout:fixed;\">\n<tr><th style=\"",
    );
    let _ = write!(out, "{HEAD_CELL}width:30%;\">Credential</th>");
    for (i, m) in months.iter().enumerate() {
        let label = if i == 0 || m.month() == 1 {
            format!("{}<br/>{}", m.format("%b"), m.year())
        } else {
            format!("{}<br/>&#160;", m.format("%b"))
        };
        let _ = write!(
            out,
            "<th style=\"padding:4px 0;border-bottom:2px solid #d1d5db;text-align:center;font-size:11px;line-height:14px;color:#6b7280;\">{label}</th>"
        );
    }
    out.push_str("</tr>\n");
    for t in tokens.iter().take(TIMELINE_ROWS) {
        let Some(expires) = t.expires_at else {
            continue;
        };
        let mark = mark_column(expires, ctx, &months);
        let name = format!(
            "{} ({})",
            clean(t.org_name.as_deref().unwrap_or("unknown organisation"), 40),
            clean(super::parts::file_stem(&t.path), 40)
        );
        let _ = write!(
            out,
            "<tr><td style=\"{CELL}font-size:12px;overflow:hidden;\">{}</td>",
            html_escape(&name)
        );
        for i in 0..months.len() {
            let cell = "padding:4px 0;border-bottom:1px solid #e5e7eb;border-left:1px solid #f3f4f6;text-align:center;font-size:11px;line-height:16px;";
            match mark {
                Some((col, ref text)) if col == i => {
                    let _ = write!(
                        out,
                        "<td style=\"{cell}background-color:{};color:#ffffff;font-weight:bold;\">{}</td>",
                        status_tone(t.status).colour(),
                        text
                    );
                }
                _ => {
                    let _ = write!(out, "<td style=\"{cell}\">&#160;</td>");
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>");
    let shown = tokens.len().min(TIMELINE_ROWS);
    let mut note = String::from(
        "A coloured cell is the month the credential expires, with the day of the month",
    );
    if tokens.len() > shown {
        let _ = write!(note, "; the {shown} soonest of {} are shown", tokens.len());
    }
    note.push('.');
    let _ = write!(
        out,
        "<p style=\"margin:6px 0 0 0;font-size:12px;line-height:18px;color:#6b7280;\">{}</p>",
        html_escape(&note)
    );
    out
}

/// Which month column marks `expires`, and the text in it (already HTML).
fn mark_column(
    expires: DateTime<Utc>,
    ctx: &Context,
    months: &[NaiveDate],
) -> Option<(usize, String)> {
    let day = expires.with_timezone(&ctx.tz).date_naive();
    let (first, last) = (months.first()?, months.last()?);
    let key = |d: &NaiveDate| d.year() * 12 + d.month0() as i32;
    if key(&day) < key(first) {
        Some((0, format!("&#8592;{}", day.day())))
    } else if key(&day) > key(last) {
        Some((months.len() - 1, format!("{}&#8594;", day.day())))
    } else {
        Some(((key(&day) - key(first)) as usize, day.day().to_string()))
    }
}
