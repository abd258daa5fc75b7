//! `[apple]`: whether and how tokens are verified against Apple.

use std::time::Duration;

use super::Builder;
use crate::config::doc::Section;
use crate::config::{AppleSettings, DEFAULT_APPLE_MAX_RPS, DEFAULT_APPLE_TIMEOUT_SECS};
use crate::probe::{validate_base_url, ProbeSettings, DEFAULT_BASE_URL};

impl Builder<'_, '_> {
    pub(super) fn apple_default(&mut self) -> Option<AppleSettings> {
        Some(AppleSettings {
            verify: false,
            probe: ProbeSettings {
                base_url: validate_base_url(DEFAULT_BASE_URL).ok()?,
                timeout: Duration::from_secs(DEFAULT_APPLE_TIMEOUT_SECS as u64),
                ca_file: None,
                max_requests_per_sec: DEFAULT_APPLE_MAX_RPS as u32,
            },
        })
    }

    pub(super) fn apple(&mut self, mut s: Section) -> Option<AppleSettings> {
        let mut apple = self.apple_default()?;
        apple.verify = s.boolean(self.d, "verify").unwrap_or(false);
        let base = match s.string(self.d, "base_url") {
            Some((u, span)) => match validate_base_url(&u) {
                Ok(url) => Some(url),
                Err(e) => {
                    self.d.report(span, "apple.base_url", e);
                    None
                }
            },
            None => Some(apple.probe.base_url.clone()),
        };
        let timeout = self.bounded(&mut s, "timeout_secs", 1, 600, DEFAULT_APPLE_TIMEOUT_SECS);
        let rps = self.bounded(&mut s, "max_requests_per_sec", 1, 15, DEFAULT_APPLE_MAX_RPS);
        let ca_file = s.string(self.d, "ca_file");
        let ca_file = self.optional_path(ca_file, "apple.ca_file");
        s.finish(self.d);
        apple.probe.base_url = base?;
        apple.probe.timeout = Duration::from_secs(timeout? as u64);
        apple.probe.max_requests_per_sec = rps? as u32;
        apple.probe.ca_file = ca_file?;
        Some(apple)
    }
}
