//! The bodies a webhook posts, one per format, from one [`Message`].
//! Pure: the message is rendered when the row is queued and the body
//! stored, so every attempt posts (and signs) the same bytes.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::Format;
use crate::show::rfc3339;

/// Version of the `json` format's shape; keys are added, never renamed.
pub const JSON_VERSION: u32 = 1;

/// Ordered by urgency: a summary takes its most urgent alert's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What one webhook message says, whatever the format.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// Stable across attempts: also the `Idempotency-Key`.
    pub id: &'a str,
    /// `expiring`, `expired`, … `summary`, `digest`, `test`.
    pub event: &'a str,
    pub severity: Severity,
    /// The mail subject without its `[tokenwatch]` prefix.
    pub summary: &'a str,
    /// The credential as `check --json` shows it, when there is one.
    pub token: Option<Value>,
    pub folder: Option<&'a str>,
    pub sent_at: DateTime<Utc>,
    /// Label and value pairs a chat message lists (org, file, expiry).
    pub facts: Vec<(&'static str, String)>,
    /// What to do, one paragraph each.
    pub advice: Vec<String>,
}

/// The body for `format`, as JSON text.
pub fn render(format: Format, m: &Message) -> String {
    let value = match format {
        Format::Json => json_body(m),
        Format::Slack => slack_body(m),
        Format::Teams => teams_body(m),
    };
    value.to_string()
}

fn json_body(m: &Message) -> Value {
    json!({
        "version": JSON_VERSION,
        "id": m.id,
        "event": m.event,
        "severity": m.severity.as_str(),
        "summary": m.summary,
        "token": m.token,
        "folder": m.folder,
        "sent_at": rfc3339(&m.sent_at),
    })
}

/// Slack's `mrkdwn` treats these three as control characters.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Slack refuses a whole message (`invalid_blocks`, HTTP 400, which parks
/// it) whose section has more than 10 fields, a field text longer than
/// 2000 characters or a text longer than 3000.
pub const SLACK_MAX_FIELDS: usize = 10;
pub const SLACK_MAX_FIELD_CHARS: usize = 2000;
pub const SLACK_MAX_TEXT_CHARS: usize = 3000;

/// `s` cut to at most `max` characters, with an ellipsis when cut.
fn capped(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn slack_body(m: &Message) -> Value {
    let icon = match m.severity {
        Severity::Critical => ":red_circle:",
        Severity::Warning => ":large_orange_circle:",
        Severity::Info => ":information_source:",
    };
    let head = format!("{icon} *{}*", slack_escape(m.summary));
    let mut blocks = vec![json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": capped(head, SLACK_MAX_TEXT_CHARS)},
    })];
    let fields: Vec<Value> = m
        .facts
        .iter()
        .map(|(label, value)| {
            let text = format!("*{label}*\n{}", slack_escape(value));
            json!({"type": "mrkdwn", "text": capped(text, SLACK_MAX_FIELD_CHARS)})
        })
        .collect();
    // A credential has more facts than one section may hold: one section
    // per ten, which Slack shows as one two-column table.
    for chunk in fields.chunks(SLACK_MAX_FIELDS) {
        blocks.push(json!({"type": "section", "fields": chunk}));
    }
    if !m.advice.is_empty() {
        let text = m
            .advice
            .iter()
            .map(|a| slack_escape(a))
            .collect::<Vec<_>>()
            .join("\n\n");
        let text = capped(text, SLACK_MAX_TEXT_CHARS);
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}));
    }
    json!({
        // The fallback for notifications and clients without blocks.
        "text": format!("[tokenwatch] {}", m.summary),
        "blocks": blocks,
    })
}

fn teams_body(m: &Message) -> Value {
    let color = match m.severity {
        Severity::Critical => "attention",
        Severity::Warning => "warning",
        Severity::Info => "default",
    };
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": m.summary,
        "weight": "bolder",
        "size": "medium",
        "color": color,
        "wrap": true,
    })];
    if !m.facts.is_empty() {
        let facts: Vec<Value> = m
            .facts
            .iter()
            .map(|(label, value)| json!({"title": label, "value": value}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    for a in &m.advice {
        body.push(json!({"type": "TextBlock", "text": a, "wrap": true, "isSubtle": true}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn message() -> Message<'static> {
        Message {
            id: "alert-1.abc@tokenwatch",
            event: "expiring",
            severity: Severity::Warning,
            summary:
                "Content token for Acme <Berlin> & Co (a.vpptoken) expires in 14 days (2027-01-15)",
            token: Some(json!({"path": "/t/a.vpptoken", "kind": "vpp"})),
            folder: Some("/t"),
            sent_at: Utc.with_ymd_and_hms(2027, 1, 1, 8, 0, 0).unwrap(),
            facts: vec![
                ("Organisation", "Acme <Berlin> & Co".into()),
                ("File", "a.vpptoken".into()),
                ("Expires", "2027-01-15".into()),
            ],
            advice: vec!["Download a new token.".into()],
        }
    }

    fn parsed(format: Format) -> Value {
        serde_json::from_str(&render(format, &message())).unwrap()
    }

    #[test]
    fn the_json_body_has_every_documented_key() {
        assert_eq!(
            parsed(Format::Json),
            json!({
                "version": 1,
                "id": "alert-1.abc@tokenwatch",
                "event": "expiring",
                "severity": "warning",
                "summary": "Content token for Acme <Berlin> & Co (a.vpptoken) expires in 14 days (2027-01-15)",
                "token": {"path": "/t/a.vpptoken", "kind": "vpp"},
                "folder": "/t",
                "sent_at": "2027-01-01T08:00:00Z",
            })
        );
    }

    #[test]
    fn a_slack_message_names_org_file_and_expiry_with_its_control_characters_escaped() {
        let v = parsed(Format::Slack);
        assert!(v["text"]
            .as_str()
            .unwrap()
            .starts_with("[tokenwatch] Content token for Acme"));
        let head = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            head.contains("Acme &lt;Berlin&gt; &amp; Co (a.vpptoken)"),
            "{head}"
        );
        let fields = v["blocks"][1]["fields"].to_string();
        for fact in ["Organisation", "a.vpptoken", "2027-01-15"] {
            assert!(fields.contains(fact), "{fields}");
        }
    }

    #[test]
    fn a_slack_message_keeps_within_slack_s_block_limits_and_loses_no_fact() {
        let mut m = message();
        m.facts = (0..23).map(|i| ("Fact", format!("value-{i}"))).collect();
        m.facts.push(("Long", "x".repeat(5000)));
        m.advice = vec!["y".repeat(5000)];
        let v: Value = serde_json::from_str(&render(Format::Slack, &m)).unwrap();
        let blocks = v["blocks"].as_array().unwrap();
        let sections: Vec<&Vec<Value>> = blocks
            .iter()
            .filter_map(|b| b["fields"].as_array())
            .collect();
        assert_eq!(
            sections.iter().map(|f| f.len()).collect::<Vec<_>>(),
            [10, 10, 4]
        );
        let texts: Vec<&str> = sections
            .iter()
            .flat_map(|f| f.iter())
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        for i in 0..23 {
            assert!(texts.contains(&format!("*Fact*\nvalue-{i}").as_str()));
        }
        assert!(texts
            .iter()
            .all(|t| t.chars().count() <= SLACK_MAX_FIELD_CHARS));
        let advice = blocks.last().unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap();
        assert_eq!(advice.chars().count(), SLACK_MAX_TEXT_CHARS);
        assert!(advice.ends_with('…'));
    }

    #[test]
    fn a_teams_message_is_an_adaptive_card_in_a_message_envelope() {
        let v = parsed(Format::Teams);
        assert_eq!(v["type"], "message");
        let a = &v["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        let body = &a["content"]["body"];
        assert_eq!(body[0]["color"], "warning");
        assert_eq!(body[1]["type"], "FactSet");
        assert_eq!(body[1]["facts"][1]["value"], "a.vpptoken");
    }
}
