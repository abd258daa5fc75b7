//! Mail: the outbox payload of a mail, and delivering it (SMTP or file),
//! as the [`MailChannel`].

pub mod payload;
pub mod transport;

use futures_util::future::BoxFuture;
use lettre::message::Mailbox;

use crate::alerts::{AlertKind, Member};
use crate::channel::{Channel, Delivery, DeliveryError, Draft};
use crate::render;
use payload::MailPayload;
use transport::{CalendarAttachment, MailError, Mailer, TransportSettings};

/// The mail channel: alerts rendered into mails from the configured sender,
/// outbox rows of channel `"mail"` rebuilt into the mail first rendered
/// (see [`payload`]) and sent through the configured transport.
#[derive(Debug)]
pub struct MailChannel {
    /// The `From` of every mail (`[alerts] from`).
    from: Mailbox,
    mailer: Mailer,
}

impl MailChannel {
    pub fn new(from: Mailbox, mailer: Mailer) -> Self {
        MailChannel { from, mailer }
    }

    /// Builds the transport: validates the settings and reads the password
    /// (see [`Mailer::new`]).
    pub fn from_settings(from: Mailbox, settings: &TransportSettings) -> Result<Self, MailError> {
        Mailer::new(settings).map(|m| Self::new(from, m))
    }
}

impl Channel for MailChannel {
    fn name(&self) -> &'static str {
        payload::CHANNEL
    }

    /// One mail to every member; the recipients are the row's, the payload
    /// holds the rest of the mail.
    fn render(
        &self,
        input: &render::Input<'_>,
        to: &[&Member],
        ctx: &render::Context<'_>,
    ) -> Vec<Draft> {
        let r = render::render(input, ctx);
        let calendar = invite(input, ctx);
        vec![Draft {
            // Mail had its Message-IDs before there were other channels:
            // they stay what they were, so a mail queued by an older
            // release is recognised.
            message_id: render::message_id(&input.keys()),
            recipients: to.iter().map(|m| m.address.clone()).collect(),
            title: r.subject.clone(),
            payload: MailPayload {
                from: self.from.to_string(),
                subject: r.subject,
                text: r.text,
                html: r.html,
                calendar,
            }
            .to_json(),
        }]
    }

    fn deliver<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Result<String, DeliveryError>> {
        Box::pin(async move {
            // A payload or address that does not read back is retried, not
            // parked, as it always was: a newer tokenwatch may read it.
            let mail = MailPayload::outgoing(d.payload, d.message_id, d.recipients, d.date)
                .map_err(DeliveryError::transient)?;
            self.mailer.send(&mail).await.map_err(|e| classify(&e))
        })
    }
}

/// The invite the first mail saying a credential expires carries (see
/// [`AlertKind::Expiring`]'s `first`); later reminders, summaries and
/// digests carry none, so a calendar gets one event per credential.
fn invite(input: &render::Input<'_>, ctx: &render::Context<'_>) -> Option<CalendarAttachment> {
    let render::Input::Alert { alert, tokens, .. } = *input else {
        return None;
    };
    if !matches!(alert.kind, AlertKind::Expiring { first: true, .. }) {
        return None;
    }
    let token = alert.subject.and_then(|i| tokens.get(i))?;
    Some(CalendarAttachment {
        file_name: render::calendar::file_name(token),
        text: render::calendar::invite(token, ctx)?,
    })
}

/// A transport error as the outbox sees it; the classes are
/// [`MailError::is_permanent`]'s.
pub fn classify(e: &MailError) -> DeliveryError {
    if e.is_permanent() {
        DeliveryError::permanent(e.to_string())
    } else {
        DeliveryError::transient(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::channel::FailureClass;

    fn from() -> Mailbox {
        "tokenwatch <tw@example.com>".parse().unwrap()
    }

    /// A mail channel writing into `dir`.
    fn file_channel(dir: std::path::PathBuf) -> MailChannel {
        MailChannel::from_settings(from(), &TransportSettings::File { dir }).unwrap()
    }

    fn payload() -> String {
        MailPayload {
            from: "tokenwatch <tw@example.com>".into(),
            subject: "[tokenwatch] s".into(),
            text: "t".into(),
            html: "<p>h</p>".into(),
            calendar: None,
        }
        .to_json()
    }

    #[tokio::test]
    async fn the_mail_channel_writes_the_stored_mail_through_the_transport() {
        let dir = tempfile::tempdir().unwrap();
        let channel = file_channel(dir.path().to_path_buf());
        assert_eq!(channel.name(), "mail");
        let date = Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap();
        let answer = channel
            .deliver(Delivery {
                id: 7,
                message_id: "<alert-1@tokenwatch>",
                recipients: &["Ops <ops@example.com>".to_owned()],
                payload: &payload(),
                date,
            })
            .await
            .unwrap();
        let path = dir.path().join("alert-1@tokenwatch.eml");
        assert_eq!(answer, path.display().to_string());
        let raw = std::fs::read_to_string(&path).unwrap();
        for header in [
            "Message-ID: <alert-1@tokenwatch>",
            "From: tokenwatch <tw@example.com>",
            "To: Ops <ops@example.com>",
            "Subject: [tokenwatch] s",
            "Date: Sun, 01 Mar 2026 08:00:00 +0000",
        ] {
            assert!(raw.contains(header), "{header:?} missing in {raw}");
        }
    }

    #[tokio::test]
    async fn an_unreadable_stored_mail_is_transient_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let channel = file_channel(dir.path().to_path_buf());
        let err = channel
            .deliver(Delivery {
                id: 7,
                message_id: "<alert-1@tokenwatch>",
                recipients: &["not an address".to_owned()],
                payload: &payload(),
                date: Utc::now(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.class, FailureClass::Transient);
        assert!(err.message.starts_with("bad recipient"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// The whole message as a relay receives it: headers and both parts,
    /// encoded, rendered by the mail channel.
    fn message_bytes(input: &render::Input<'_>) -> usize {
        let channel = file_channel(std::env::temp_dir());
        let [draft] = &channel.render(input, &[], &render::testing::ctx())[..] else {
            panic!("one mail")
        };
        let to = ["ops@example.com".to_owned()];
        let date = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let mail = MailPayload::outgoing(&draft.payload, "<size@tokenwatch>", &to, date).unwrap();
        transport::build_message(&mail).unwrap().formatted().len()
    }

    /// Regression: a summary of every broken file in a storm became one mail
    /// bigger than relays accept; it was refused (5xx), parked, and ops heard
    /// nothing.
    #[test]
    fn a_storm_summary_lists_200_items_counts_the_rest_and_stays_under_1_mib() {
        let (tokens, alerts) =
            render::testing::storm(10_000, |i| format!("/t/broken-{i:05}.vpptoken"));
        let input = render::Input::Summary {
            alerts: &alerts,
            tokens: &tokens,
            folders: &[],
        };
        assert!(message_bytes(&input) < 1 << 20);
    }

    #[test]
    fn a_storm_summary_of_long_hostile_paths_stays_under_1_mib() {
        // 4096 bytes a path, every character escaped in HTML and multi-byte
        // in UTF-8: the size bound, not the item count, has to hold here.
        let (tokens, alerts) =
            render::testing::storm(1_000, |i| format!("/t/{i}/{}", "<\"€&'".repeat(4096 / 12)));
        let input = render::Input::Summary {
            alerts: &alerts,
            tokens: &tokens,
            folders: &[],
        };
        let n = message_bytes(&input);
        assert!(n < 1 << 20, "{n} bytes");
    }

    #[test]
    fn a_digest_of_10000_tokens_lists_the_200_soonest_and_stays_under_1_mib() {
        let tokens: Vec<_> = (0..10_000)
            .rev()
            .map(|i| render::testing::token_report(i, format!("/t/tok-{i:05}.vpptoken")))
            .collect();
        let refs: Vec<_> = tokens.iter().collect();
        let input = render::Input::Digest {
            key: "digest:2027-01-01:ops@example.com",
            tokens: &refs,
            folders: 3,
        };
        assert!(message_bytes(&input) < 1 << 20);

        let long: Vec<_> = (0..1_000)
            .map(|i| render::testing::token_report(i, format!("/t/{i}/{}", "<€&".repeat(4096 / 8))))
            .collect();
        let refs: Vec<_> = long.iter().collect();
        let input = render::Input::Digest {
            key: "digest:2027-01-01:ops@example.com",
            tokens: &refs,
            folders: 1,
        };
        let n = message_bytes(&input);
        assert!(n < 1 << 20, "{n} bytes");
    }

    #[test]
    fn the_mail_channel_renders_today_s_payload_and_message_id() {
        let subject = render::testing::subject();
        let alert = render::testing::alert(crate::alerts::AlertKind::Expired { reminder: 0 });
        let input = render::Input::Alert {
            alert: &alert,
            tokens: std::slice::from_ref(&subject),
            folders: &[],
        };
        let channel = file_channel(std::env::temp_dir());
        let ctx = render::testing::ctx();
        let ops = Member {
            channel: "mail",
            address: "Ops <ops@example.com>".into(),
            key: "ops@example.com".into(),
        };
        let dev = Member {
            address: "dev@example.com".into(),
            key: "dev@example.com".into(),
            ..ops.clone()
        };
        let drafts = channel.render(&input, &[&ops, &dev], &ctx);
        let [draft] = &drafts[..] else {
            panic!("one mail to both: {drafts:?}")
        };
        assert_eq!(
            draft.recipients,
            ["Ops <ops@example.com>", "dev@example.com"]
        );
        let r = render::render(&input, &ctx);
        assert_eq!(draft.title, r.subject);
        let p: MailPayload = serde_json::from_str(&draft.payload).unwrap();
        assert_eq!(
            p,
            MailPayload {
                from: "tokenwatch <tw@example.com>".into(),
                subject: r.subject,
                text: r.text,
                html: r.html,
                calendar: None,
            }
        );
        assert_eq!(
            draft.message_id,
            render::message_id(std::slice::from_ref(&alert.key))
        );
        let a = |key: &str| crate::alerts::Alert {
            key: key.into(),
            ..alert.clone()
        };
        let alerts = [a("invalidated:abc"), a("expiring:abc:30")];
        let summary = render::Input::Summary {
            alerts: &alerts,
            tokens: std::slice::from_ref(&subject),
            folders: &[],
        };
        assert_eq!(
            channel.render(&summary, &[&ops], &ctx)[0].message_id,
            "<37d3eae9dc1dddd3a0ef5581198bbe0e@tokenwatch>"
        );
    }

    #[test]
    fn only_the_first_mail_saying_a_credential_expires_carries_the_invite() {
        let subject = render::testing::subject();
        let channel = file_channel(std::env::temp_dir());
        let ctx = render::testing::ctx();
        let payload_of = |kind| {
            let alert = render::testing::alert(kind);
            let input = render::Input::Alert {
                alert: &alert,
                tokens: std::slice::from_ref(&subject),
                folders: &[],
            };
            let draft = channel.render(&input, &[], &ctx).remove(0);
            serde_json::from_str::<MailPayload>(&draft.payload).unwrap()
        };
        let first = payload_of(AlertKind::Expiring {
            days: 30,
            first: true,
        });
        let cal = first.calendar.expect("an invite");
        assert_eq!(cal.file_name, "renew-3f2a9c1b7d4e.ics");
        assert_eq!(
            Some(cal.text),
            render::calendar::invite(&subject, &ctx),
            "the stored invite is the rendered one"
        );
        let later = payload_of(AlertKind::Expiring {
            days: 14,
            first: false,
        });
        assert_eq!(later.calendar, None);
        assert_eq!(
            payload_of(AlertKind::Expired { reminder: 0 }).calendar,
            None
        );
    }

    #[test]
    fn transport_errors_keep_their_class_and_words() {
        let rejected = |code| MailError::Rejected {
            server: "relay:25".into(),
            code,
            answer: format!("{code} no"),
        };
        let e = classify(&rejected(550));
        assert_eq!(e.class, FailureClass::Permanent);
        assert_eq!(e.message, rejected(550).to_string());
        assert_eq!(classify(&rejected(451)).class, FailureClass::Transient);
        let refused = MailError::ConnectionRefused {
            server: "relay:25".into(),
        };
        assert_eq!(classify(&refused).class, FailureClass::Transient);
    }
}
