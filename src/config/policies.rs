//! The config turned into the small policy values the pure modules take, so
//! none of them has to know the config's shape.

use chrono::Duration;

use super::{AlertPolicy, Config};
use crate::assess::{self, AccountBook};
use crate::evaluate;
use crate::scan::FolderSpec;

impl From<&super::Folder> for FolderSpec {
    fn from(f: &super::Folder) -> FolderSpec {
        FolderSpec {
            path: f.path.clone(),
            allow_empty: f.allow_empty,
            follow_links: f.follow_links,
            kinds: f.kinds.clone(),
        }
    }
}

impl AlertPolicy {
    /// What the status rules need: the largest lead day marks "expiring",
    /// and the grace after a password change.
    pub fn rules(&self) -> evaluate::Policy {
        evaluate::Policy {
            expiring_days: self.lead_days.first().copied().unwrap_or(0) as i64,
            grace: Duration::hours(self.password_change_grace_hours as i64),
        }
    }
}

impl Config {
    /// The folders as the scan takes them, in config order (the scan's
    /// folder indices are indices into `folders`).
    pub fn folder_specs(&self) -> Vec<FolderSpec> {
        self.folders.iter().map(FolderSpec::from).collect()
    }

    /// Each token's account as the config links it.
    pub fn account_book(&self) -> AccountBook {
        AccountBook::new(
            self.tokens
                .iter()
                .map(|t| (t.path.clone(), t.account.clone())),
            self.folders.iter().map(|f| f.account.clone()).collect(),
            self.accounts.iter().cloned(),
        )
    }

    /// What assessing a token needs from the config.
    pub fn assess_policy(&self) -> assess::Policy {
        assess::Policy {
            rules: self.alerts.rules(),
            accounts: self.account_book(),
            apple_verify: self.apple.verify,
        }
    }
}
