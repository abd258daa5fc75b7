//! Turning an [`OutgoingMail`] into a MIME message, and the test mail.

use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::Message;

use super::{MailError, OutgoingMail};

/// `Auto-Submitted: auto-generated` (RFC 3834) keeps vacation responders
/// and ticket systems from answering alerts.
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

pub(crate) fn build_message(mail: &OutgoingMail) -> Result<Message, MailError> {
    let fail = |reason: String| MailError::Message {
        message_id: mail.message_id.clone(),
        reason,
    };
    let id = &mail.message_id;
    let well_formed = id.len() > 4
        && id.starts_with('<')
        && id.ends_with('>')
        && id.contains('@')
        && id.bytes().all(|b| b.is_ascii_graphic());
    if !well_formed {
        return Err(fail(
            "Message-ID must look like <local@domain>, printable ASCII without spaces".to_owned(),
        ));
    }
    if mail.to.is_empty() {
        return Err(fail("no recipients".to_owned()));
    }
    let mut builder = Message::builder()
        .message_id(Some(id.clone()))
        .date(mail.date.into())
        .from(mail.from.clone())
        .subject(mail.subject.clone())
        .header(AutoSubmitted);
    for to in &mail.to {
        builder = builder.to(to.clone());
    }
    let bodies = MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone());
    let body = match &mail.calendar {
        None => bodies,
        // The bodies stay one alternative; the invite is an attachment
        // beside them, so clients that do not import it still show it.
        Some(cal) => {
            let kind = ContentType::parse(crate::render::calendar::CONTENT_TYPE)
                .map_err(|e| fail(format!("calendar content type: {e}")))?;
            MultiPart::mixed()
                .multipart(bodies)
                .singlepart(Attachment::new(cal.file_name.clone()).body(cal.text.clone(), kind))
        }
    };
    builder.multipart(body).map_err(|e| fail(e.to_string()))
}

/// The mail `tokenwatch test-mail` sends. `sender_host` is this host's name,
/// shown so ops know which installation sent it.
pub fn test_mail(
    from: Mailbox,
    to: Vec<Mailbox>,
    sender_host: &str,
    now: DateTime<Utc>,
) -> OutgoingMail {
    let stamp = now.format("%Y-%m-%d %H:%M:%S UTC");
    let text = format!(
        "This is a test mail from tokenwatch on {sender_host}, sent at {stamp}.\n\
         If you can read it, alert mail reaches you.\n"
    );
    let html = format!(
        "<!DOCTYPE html>\n<html><body><p>This is a test mail from tokenwatch on \
         <b>{}</b>, sent at {stamp}.</p><p>If you can read it, alert mail reaches you.</p>\
         </body></html>\n",
        crate::show::html_escape(sender_host)
    );
    OutgoingMail {
        message_id: format!(
            "<test-{}-{:08x}@tokenwatch>",
            now.format("%Y%m%dT%H%M%SZ"),
            rand::random::<u32>()
        ),
        from,
        to,
        subject: format!("[tokenwatch] Test mail from {sender_host}"),
        text,
        html,
        date: now,
        calendar: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> OutgoingMail {
        OutgoingMail {
            message_id: "<alert-3f2a@tokenwatch>".to_owned(),
            from: "tokenwatch <tw@example.com>".parse().unwrap(),
            to: vec!["ops@example.com".parse().unwrap()],
            subject: "[tokenwatch] Content token for Acme expires in 14 days".to_owned(),
            text: "plain body".to_owned(),
            html: "<p>html body</p>".to_owned(),
            date: DateTime::parse_from_rfc3339("2027-01-10T09:30:00Z")
                .unwrap()
                .with_timezone(&Utc),
            calendar: None,
        }
    }

    #[test]
    fn message_carries_headers_and_both_parts() {
        let raw = String::from_utf8(build_message(&mail()).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("Message-ID: <alert-3f2a@tokenwatch>\r\n"),
            "{raw}"
        );
        assert!(raw.contains("Auto-Submitted: auto-generated\r\n"), "{raw}");
        assert!(raw.contains("Date: Sun, 10 Jan 2027 09:30:00 "), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(
            raw.contains("text/plain") && raw.contains("plain body"),
            "{raw}"
        );
        assert!(
            raw.contains("text/html") && raw.contains("<p>html body</p>"),
            "{raw}"
        );
    }

    #[test]
    fn an_invite_is_one_calendar_attachment_beside_both_parts() {
        let m = OutgoingMail {
            calendar: Some(super::super::CalendarAttachment {
                file_name: "renew-3f2a9c1b7d4e.ics".to_owned(),
                text: "BEGIN:VCALENDAR\r\nMETHOD:PUBLISH\r\nEND:VCALENDAR\r\n".to_owned(),
            }),
            ..mail()
        };
        let raw = String::from_utf8(build_message(&m).unwrap().formatted()).unwrap();
        assert!(raw.contains("multipart/mixed"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert_eq!(
            // lettre spells the charset in lower case; it is case-blind.
            raw.to_ascii_lowercase()
                .matches("content-type: text/calendar; method=publish; charset=utf-8")
                .count(),
            1,
            "{raw}"
        );
        assert!(
            raw.contains("Content-Disposition: attachment; filename=\"renew-3f2a9c1b7d4e.ics\""),
            "{raw}"
        );
        assert!(!build_message(&mail())
            .unwrap()
            .formatted()
            .windows(13)
            .any(|w| w == b"text/calendar"));
    }

    #[test]
    fn message_refuses_bad_ids_and_missing_recipients() {
        for bad in ["alert@x", "<alert x@y>", "<no-at>", "<a@b>\r\nBcc: x@y"] {
            let m = OutgoingMail {
                message_id: bad.to_owned(),
                ..mail()
            };
            assert!(
                matches!(build_message(&m), Err(MailError::Message { .. })),
                "{bad}"
            );
        }
        let m = OutgoingMail {
            to: vec![],
            ..mail()
        };
        let err = build_message(&m).unwrap_err();
        assert!(err.to_string().contains("no recipients"), "{err}");
    }

    // lettre encodes control characters in header values; this guards
    // that property of our output should the builder change.
    #[test]
    fn subject_with_line_breaks_cannot_inject_a_header() {
        let m = OutgoingMail {
            subject: "hi\r\nBcc: evil@example.com".to_owned(),
            ..mail()
        };
        let raw = String::from_utf8(build_message(&m).unwrap().formatted()).unwrap();
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
    }

    #[test]
    fn test_mail_names_the_host_and_escapes_html() {
        let m = test_mail(
            "tw@example.com".parse().unwrap(),
            vec!["ops@example.com".parse().unwrap()],
            "host<1>",
            mail().date,
        );
        assert!(m.subject.starts_with("[tokenwatch] Test mail from host<1>"));
        assert!(m.html.contains("host&lt;1&gt;"));
        assert!(build_message(&m).is_ok());
    }
}
