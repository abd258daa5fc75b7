//! The body a webhook receives, in its configured [`Format`]: the words
//! [`render`](crate::render) gives every channel, wrapped the way the
//! receiver reads them. Public facts only, like a mail.

use serde_json::json;

use super::Format;
use crate::render::Rendered;

pub fn body(format: Format, r: &Rendered) -> String {
    let value = match format {
        Format::Json => json!({ "title": r.subject, "text": r.text }),
        // Slack's incoming webhooks (and Mattermost's, Rocket.Chat's) show
        // `text`, with `*bold*` as their markup.
        Format::Slack => json!({ "text": format!("*{}*\n{}", r.subject, r.text) }),
        // Teams Workflows take a message with one Adaptive Card.
        Format::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        { "type": "TextBlock", "text": r.subject, "weight": "Bolder", "wrap": true },
                        { "type": "TextBlock", "text": r.text, "wrap": true },
                    ],
                },
            }],
        }),
    };
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> Rendered {
        Rendered {
            subject: "[tokenwatch] Content token for \"Acme\" has EXPIRED".into(),
            text: "Organisation: Acme\n".into(),
            html: "<p>unused</p>".into(),
        }
    }

    #[test]
    fn each_format_carries_the_subject_and_the_text() {
        for format in Format::ALL {
            let b = body(format, &rendered());
            let v: serde_json::Value = serde_json::from_str(&b).unwrap();
            let all = v.to_string();
            assert!(
                all.contains("Content token for \\\"Acme\\\" has EXPIRED"),
                "{format:?}: {b}"
            );
            assert!(all.contains("Organisation: Acme"), "{format:?}: {b}");
            assert!(!all.contains("unused"), "{format:?}: {b}");
        }
        let slack: serde_json::Value =
            serde_json::from_str(&body(Format::Slack, &rendered())).unwrap();
        assert!(slack["text"].as_str().unwrap().starts_with("*[tokenwatch]"));
    }
}
