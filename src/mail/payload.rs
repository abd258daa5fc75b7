//! What the outbox keeps of a mail: the sender and the rendered subject and
//! bodies, as the JSON payload of a row of channel [`CHANNEL`]. The row
//! itself holds the Message-ID, the recipients and the date, so the mail
//! rebuilt from it for every attempt is the one first rendered, header for
//! header and byte for byte.
//!
//! Public facts only, like the mail itself: the payload is stored in the
//! state database.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::transport::{CalendarAttachment, OutgoingMail};

/// The name outbox rows of mail carry in their `channel` column.
pub const CHANNEL: &str = "mail";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailPayload {
    /// The `From` mailbox as configured, e.g. `tokenwatch <tw@example.com>`.
    pub from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The invite the first mail about an expiring credential carries.
    /// Absent in rows queued before invites existed, and left out of the
    /// JSON when there is none, so those rows read and write as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<CalendarAttachment>,
}

impl MailPayload {
    pub fn to_json(&self) -> String {
        // A struct of strings always serialises.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The mail to send. An unreadable payload or address is an error
    /// naming it, for the outbox row's `last_error`.
    pub fn outgoing(
        payload: &str,
        message_id: &str,
        recipients: &[String],
        date: DateTime<Utc>,
    ) -> Result<OutgoingMail, String> {
        let p: MailPayload = serde_json::from_str(payload)
            .map_err(|e| format!("the stored mail is unreadable: {e}"))?;
        let from = p
            .from
            .parse()
            .map_err(|e| format!("bad sender {:?}: {e}", p.from))?;
        let to = recipients
            .iter()
            .map(|t| t.parse().map_err(|e| format!("bad recipient {t:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OutgoingMail {
            message_id: message_id.to_owned(),
            from,
            to,
            subject: p.subject,
            text: p.text,
            html: p.html,
            date,
            calendar: p.calendar,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_round_trips_into_the_mail_it_was_rendered_from() {
        let p = MailPayload {
            from: "tokenwatch <tw@example.com>".into(),
            subject: "[tokenwatch] Content token for \"Ünï\" expires in 3 days".into(),
            text: "line 1\r\nline 2\ttab \u{1f512}\n".into(),
            html: "<p>a &amp; b</p>\n".into(),
            calendar: Some(CalendarAttachment {
                file_name: "renew-3f2a9c1b7d4e.ics".into(),
                text: "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n".into(),
            }),
        };
        let date = Utc::now();
        let to = vec![
            "Ops Team <ops@example.com>".to_owned(),
            "x@example.com".to_owned(),
        ];
        let m = MailPayload::outgoing(&p.to_json(), "<id@tokenwatch>", &to, date).unwrap();
        assert_eq!(m.message_id, "<id@tokenwatch>");
        assert_eq!(m.from.to_string(), p.from);
        assert_eq!(m.to.iter().map(ToString::to_string).collect::<Vec<_>>(), to);
        assert_eq!(
            (m.subject, m.text, m.html, m.calendar),
            (p.subject, p.text, p.html, p.calendar)
        );
        assert_eq!(m.date, date);
    }

    #[test]
    fn a_payload_stored_before_invites_reads_and_writes_as_before() {
        let old = r#"{"from":"tw@example.com","subject":"s","text":"t","html":"h"}"#;
        let p: MailPayload = serde_json::from_str(old).unwrap();
        assert_eq!(p.calendar, None);
        assert_eq!(p.to_json(), old);
    }

    #[test]
    fn an_unreadable_payload_is_an_error_not_an_empty_mail() {
        let err = MailPayload::outgoing("{}", "<id@tokenwatch>", &[], Utc::now()).unwrap_err();
        assert!(err.starts_with("the stored mail is unreadable: "), "{err}");
    }
}
