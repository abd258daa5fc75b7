//! What `[[webhook]]` says, before its files are read.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::secret::{read_secret_file, Secret};

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// tokenwatch's own JSON, for scripts and automation.
    #[default]
    Json,
    /// Slack incoming webhooks (also Mattermost and Rocket.Chat).
    Slack,
    /// Microsoft Teams Workflows (an Adaptive Card).
    Teams,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Json, Format::Slack, Format::Teams];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
            Format::Teams => "teams",
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not one of \"json\", \"slack\", \"teams\""))
    }
}

/// Where the URL comes from. Either way it is a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    /// `url = "..."` in the config file (which must then be kept private).
    Inline(Secret),
    /// `url_file = PATH`, read when the channel is built.
    File(PathBuf),
}

impl UrlSource {
    pub fn read(&self) -> Result<Secret, String> {
        match self {
            UrlSource::Inline(url) => Ok(url.clone()),
            UrlSource::File(path) => read_secret_file(path, "URL")
                .map_err(|e| format!("url_file {}: {e}", path.display())),
        }
    }
}

/// One `[[webhook]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// How `[alerts] webhooks` and `[[folder]] webhooks` name it.
    pub name: String,
    pub format: Format,
    pub url: UrlSource,
    /// HMAC-SHA256 signing key (json format).
    pub secret_file: Option<PathBuf>,
    pub timeout: Duration,
}

/// Default `timeout_secs`.
pub const DEFAULT_TIMEOUT_SECS: i64 = 10;
