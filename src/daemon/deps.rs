//! What the daemon is handed from outside rather than reaching for itself.
//! For now the wall clock: a pass, the digest and housekeeping ask it for
//! `now`, so a test can run them at any date.

use chrono::{DateTime, Utc};

/// The wall clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock: what production runs with.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
