//! The one place the daemon turns config into delivery channels, at start
//! and on a reload. A new channel adds its line to [`channels_from`] and
//! its settings to [`settings_changed`].

use std::fmt;
use std::sync::Arc;

use crate::channel::Channels;
use crate::config::Config;
use crate::mail::MailChannel;

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
    let mut channels = Channels::new();
    channels.add(Arc::new(mail));
    Ok(channels)
}

/// Whether a reload must build the channels again. Unchanged settings keep
/// the running channels, so a reload does not re-read the SMTP password
/// file unless `[mail]` or the sender it writes as changed.
pub fn settings_changed(old: &Config, new: &Config) -> bool {
    old.mail != new.mail || old.alerts.from != new.alerts.from
}
