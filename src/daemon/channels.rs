//! The one place config turns into delivery channels ([`channels_from`],
//! which the wiring hands to the daemon as its channel factory), and the
//! loop's side of delivery ([`Outbound`]). A new channel adds its line to
//! [`channels_from`] and its settings to [`settings_changed`].

use std::fmt;
use std::sync::Arc;

use super::deps::ChannelFactory;
use super::sender::SenderHandle;
use crate::channel::Channels;
use crate::config::Config;
use crate::mail::MailChannel;
use crate::state::StateStore;
use crate::webhook::WebhookChannel;

/// A channel whose settings cannot be used: the config section and why.
/// Nothing here passes by itself (wrong settings, an unreadable password or
/// CA file), so at start it is a setup error and on reload the previous
/// channels stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSetupError {
    /// The config section, e.g. `mail`.
    pub section: &'static str,
    pub cause: String,
}

impl fmt::Display for ChannelSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]: {}", self.section, self.cause)
    }
}

impl std::error::Error for ChannelSetupError {}

/// Every configured channel, ready to deliver.
pub fn channels_from(cfg: &Config) -> Result<Channels, ChannelSetupError> {
    let mail = MailChannel::from_settings(cfg.alerts.from.clone(), &cfg.mail).map_err(|e| {
        ChannelSetupError {
            section: "mail",
            cause: e.to_string(),
        }
    })?;
    let webhooks = WebhookChannel::from_settings(&cfg.webhooks)
        .map_err(|cause| ChannelSetupError {
            section: "webhook",
            cause,
        })?
        .with_critical_days(cfg.check.critical_days);
    let mut channels = Channels::new();
    channels.add(Arc::new(mail));
    channels.add(Arc::new(webhooks));
    Ok(channels)
}

/// Whether a reload must build the channels again. Unchanged settings keep
/// the running channels, so a reload does not re-read the SMTP password
/// file unless `[mail]` or the sender it writes as changed. A webhook's
/// URL and key files are read again only when `[[webhook]]` changes.
fn settings_changed(old: &Config, new: &Config) -> bool {
    old.mail != new.mail
        || old.alerts.from != new.alerts.from
        || old.webhooks != new.webhooks
        || old.check.critical_days != new.check.critical_days
}

/// The loop's side of delivery: the running sender, and how to build the
/// channels it delivers through when a reload changes their settings.
pub(super) struct Outbound {
    sender: SenderHandle,
    factory: ChannelFactory,
    /// The channels a pass renders its outbox rows with: the ones the
    /// sender delivers through.
    channels: Arc<Channels>,
}

impl Outbound {
    pub fn new(sender: SenderHandle, factory: ChannelFactory, channels: Arc<Channels>) -> Outbound {
        Outbound {
            sender,
            factory,
            channels,
        }
    }

    pub fn channels(&self) -> &Arc<Channels> {
        &self.channels
    }

    /// New mail is in the outbox.
    pub fn wake(&self) {
        self.sender.wake();
    }

    /// The channels `new` asks for when a reload from `old` changes their
    /// settings; None keeps the running ones.
    pub fn rebuild(
        &self,
        old: &Config,
        new: &Config,
    ) -> Result<Option<Channels>, ChannelSetupError> {
        if settings_changed(old, new) {
            (self.factory)(new).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Renders and delivers through `channels` from now on.
    pub fn use_channels(&mut self, channels: Channels) {
        self.channels = Arc::new(channels);
        self.sender.use_channels(self.channels.clone());
    }
}

/// A webhook gone from the config will never take its queued posts: they
/// park at once, visible in `status`, rather than fail three times.
pub(super) fn park_removed_webhooks(store: &mut StateStore, old: &Config, new: &Config) {
    for gone in old
        .webhooks
        .iter()
        .filter(|w| !new.webhooks.iter().any(|n| n.name == w.name))
    {
        match super::db(|| {
            store.park_rows_to(crate::webhook::CHANNEL, &gone.name, "webhook removed")
        }) {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(webhook = %gone.name, rows = n, "webhook removed: its queued posts are parked")
            }
            Err(e) => {
                tracing::error!(webhook = %gone.name, error = %e, "cannot park the posts of a removed webhook")
            }
        }
    }
}
