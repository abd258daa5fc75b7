//! The config turned into the small policy values the pure modules take, so
//! none of them has to know the config's shape.

use chrono::Duration;

use super::AlertPolicy;
use crate::evaluate;

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
