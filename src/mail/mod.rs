//! Mail: rendering alerts, the outbox payload of a mail, and delivering
//! them (SMTP or file) as the [`MailChannel`].

pub mod payload;
pub mod render;
pub mod transport;

use futures_util::future::BoxFuture;

use crate::channel::{Channel, Delivery, DeliveryError};
use payload::MailPayload;
use transport::{MailError, Mailer, TransportSettings};

/// The mail channel: outbox rows of channel `"mail"` rebuilt into the mail
/// first rendered (see [`payload`]) and sent through today's transport.
#[derive(Debug)]
pub struct MailChannel {
    mailer: Mailer,
}

impl MailChannel {
    pub fn new(mailer: Mailer) -> Self {
        MailChannel { mailer }
    }

    /// Builds the transport: validates the settings and reads the password
    /// (see [`Mailer::new`]).
    pub fn from_settings(settings: &TransportSettings) -> Result<Self, MailError> {
        Mailer::new(settings).map(Self::new)
    }
}

impl Channel for MailChannel {
    fn name(&self) -> &'static str {
        payload::CHANNEL
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

    fn payload() -> String {
        MailPayload {
            from: "tokenwatch <tw@example.com>".into(),
            subject: "[tokenwatch] s".into(),
            text: "t".into(),
            html: "<p>h</p>".into(),
        }
        .to_json()
    }

    #[tokio::test]
    async fn the_mail_channel_writes_the_stored_mail_through_the_transport() {
        let dir = tempfile::tempdir().unwrap();
        let channel = MailChannel::from_settings(&TransportSettings::File {
            dir: dir.path().to_path_buf(),
        })
        .unwrap();
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
        let channel = MailChannel::from_settings(&TransportSettings::File {
            dir: dir.path().to_path_buf(),
        })
        .unwrap();
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
