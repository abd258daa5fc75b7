//! The channel seam: how an alert becomes a queued message and how that
//! message reaches its recipients.
//!
//! When a pass queues an alert, each channel its audience uses
//! [`render`](Channel::render)s [`Draft`]s for its own members, purely,
//! from the words [`crate::render`] gives every channel. An outbox row
//! names its channel and carries a payload that only that channel reads.
//! The sender looks the channel up in [`Channels`] by that
//! name and asks it to [`deliver`](Channel::deliver) one message; the
//! channel answers with the receiver's words or a [`DeliveryError`] that
//! says whether trying again can help. Everything around one attempt
//! (the one-transaction ledger and outbox, retries with backoff, parking,
//! `outbox retry|drop`) belongs to the outbox and the sender and is the
//! same for every channel.
//!
//! This module knows no implementation: mail (SMTP or files) lives in
//! [`crate::mail`], webhooks in [`crate::webhook`], and the daemon registers the configured channels in
//! one place.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use crate::alerts::Member;
use crate::render;

/// Whether another attempt with the same settings can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The receiver or the network may recover (a 4xx answer, a refused
    /// connection, a timeout): retried with backoff, never parked.
    Transient,
    /// The same attempt will fail again (a 5xx answer, wrong credentials, a
    /// channel that is not configured): parked after a few attempts until
    /// ops fix the cause and run `outbox retry`.
    Permanent,
}

/// One failed attempt. `message` names the receiver or the setting and the
/// cause; it is stored as the row's `last_error`, so it must never carry a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    pub class: FailureClass,
    pub message: String,
    /// How long the receiver asked us to wait (an HTTP `Retry-After`):
    /// the next attempt comes no sooner, whatever the backoff says.
    pub retry_after: Option<std::time::Duration>,
}

impl DeliveryError {
    pub fn transient(message: impl Into<String>) -> Self {
        DeliveryError {
            class: FailureClass::Transient,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        DeliveryError {
            class: FailureClass::Permanent,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same failure, with the wait the receiver asked for.
    pub fn wait_at_least(mut self, wait: Option<std::time::Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    pub fn is_permanent(&self) -> bool {
        self.class == FailureClass::Permanent
    }
}

/// One message to deliver, as the outbox row holds it. Every attempt of a
/// row carries the same `message_id`, so a receiver that deduplicates (or a
/// human reading the headers) sees one message however often it is tried.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The outbox row's id, for the channel's own logs.
    pub id: i64,
    pub message_id: &'a str,
    /// The channel's own addresses, as it wrote them when the row was queued.
    pub recipients: &'a [String],
    /// The channel's own JSON, as it wrote it when the row was queued.
    pub payload: &'a str,
    /// When the message was first queued; a retry keeps this date.
    pub date: DateTime<Utc>,
}

/// One message a channel made for some of its members, ready for the
/// outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Stable for the same message, unique in the outbox (see
    /// [`message_id`]).
    pub message_id: String,
    /// The members' addresses as this channel writes them: the row's
    /// recipients, handed back to [`Channel::deliver`].
    pub recipients: Vec<String>,
    /// What `status` shows of it (a mail's subject).
    pub title: String,
    /// The channel's own JSON, read back by its `deliver`. Public facts
    /// only: it is stored in the state database.
    pub payload: String,
}

/// The Message-ID of a channel's message about these alert keys to these
/// recipients. The outbox refuses a second row with one id, so it differs
/// between channels and between the messages of one channel; mail keeps
/// the plain [`render::message_id`] it had before there were channels.
pub fn message_id(channel: &str, keys: &[String], recipients: &[String]) -> String {
    let mut keys = keys.to_vec();
    keys.push(format!("channel:{channel}"));
    keys.extend(recipients.iter().map(|r| format!("to:{r}")));
    render::message_id(&keys)
}

/// A way to reach people. Implementations are thin: render the payload
/// from the words [`render`] gives, build the message from the row, make
/// one attempt, classify the failure.
pub trait Channel: Send + Sync + fmt::Debug {
    /// The name stored in an outbox row's `channel` column ("mail"). It
    /// never changes once rows carry it.
    fn name(&self) -> &'static str;

    /// This channel's messages to `to` (its own members): one for all of
    /// them (a mail), or one each (a webhook posts to one URL), each with
    /// its Message-ID. Pure: the same input renders the same drafts.
    fn render(
        &self,
        input: &render::Input<'_>,
        to: &[&Member],
        ctx: &render::Context<'_>,
    ) -> Vec<Draft>;

    /// One attempt. `Ok` is the receiver's answer (an SMTP server's
    /// `250 …`, the file written), kept with the sent row. The caller
    /// bounds the attempt with its own timeout.
    fn deliver<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Result<String, DeliveryError>>;
}

/// The configured channels, by name. Built once at start and again on a
/// reload that changes a channel's settings; the sender reads the latest.
#[derive(Debug, Clone, Default)]
pub struct Channels {
    by_name: BTreeMap<&'static str, Arc<dyn Channel>>,
}

impl Channels {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `channel` under its name, replacing one of the same name.
    pub fn add(&mut self, channel: Arc<dyn Channel>) -> &mut Self {
        self.by_name.insert(channel.name(), channel);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Channel>> {
        self.by_name.get(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_name.keys().copied()
    }
}

impl FromIterator<Arc<dyn Channel>> for Channels {
    fn from_iter<I: IntoIterator<Item = Arc<dyn Channel>>>(iter: I) -> Self {
        let mut channels = Channels::new();
        for c in iter {
            channels.add(c);
        }
        channels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Named(&'static str);

    impl Channel for Named {
        fn name(&self) -> &'static str {
            self.0
        }

        fn render(
            &self,
            _: &render::Input<'_>,
            to: &[&Member],
            _: &render::Context<'_>,
        ) -> Vec<Draft> {
            to.iter()
                .map(|m| Draft {
                    message_id: message_id(self.0, &[], std::slice::from_ref(&m.address)),
                    recipients: vec![m.address.clone()],
                    title: self.0.to_owned(),
                    payload: "{}".to_owned(),
                })
                .collect()
        }

        fn deliver<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Result<String, DeliveryError>> {
            Box::pin(async move { Ok(format!("{} took {}", self.0, d.message_id)) })
        }
    }

    #[tokio::test]
    async fn channels_are_found_by_the_name_rows_carry() {
        let channels: Channels = [
            Arc::new(Named("mail")) as Arc<dyn Channel>,
            Arc::new(Named("chat")),
        ]
        .into_iter()
        .collect();
        assert_eq!(channels.names().collect::<Vec<_>>(), ["chat", "mail"]);
        assert!(channels.get("webhook").is_none());
        let answer = channels
            .get("mail")
            .unwrap()
            .deliver(Delivery {
                id: 1,
                message_id: "<m@tokenwatch>",
                recipients: &[],
                payload: "{}",
                date: Utc::now(),
            })
            .await;
        assert_eq!(answer, Ok("mail took <m@tokenwatch>".to_owned()));
    }

    #[test]
    fn message_ids_differ_between_channels_and_between_one_channel_s_messages() {
        let keys = ["expiring:abc:30".to_owned()];
        let to = |r: &str| vec![r.to_owned()];
        let chat = message_id("chat", &keys, &to("ops"));
        assert_ne!(chat, message_id("webhook", &keys, &to("ops")));
        assert_ne!(chat, message_id("chat", &keys, &to("dev")));
        assert_ne!(chat, render::message_id(&keys));
        assert_eq!(chat, message_id("chat", &keys, &to("ops")));
    }

    #[test]
    fn delivery_errors_show_only_their_message() {
        let e = DeliveryError::permanent("SMTP server x rejected the mail: 550 no");
        assert!(e.is_permanent());
        assert_eq!(e.to_string(), "SMTP server x rejected the mail: 550 no");
        assert!(!DeliveryError::transient("later").is_permanent());
    }
}
