//! What the daemon is handed rather than reaching for itself: the settings
//! it runs on, the state store, how to build channels and the Apple probe
//! (at start and on a reload), the filesystem watcher, the wall clock and
//! its timings. `cli/run.rs` builds them; a test can build others.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::{stamp, ChannelSetupError, Order, Timing};
use crate::channel::Channels;
use crate::config::{self, Config, ConfigError};
use crate::probe::{Probe, ProbeOutcome, ProbeSettings};
use crate::secret::Secret;
use crate::state::{Access, StateError, StateStore};
use crate::token::found::FileStamp;
use crate::watch::{WatchEvent, Watcher};

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

/// One read-only check of a token with Apple (see [`crate::probe`]).
/// Boxed so the prober can hold any implementation.
pub trait Verify: Send + Sync {
    fn verify<'a>(&'a self, bearer: &'a Secret) -> BoxFuture<'a, ProbeOutcome>;
}

impl Verify for Probe {
    fn verify<'a>(&'a self, bearer: &'a Secret) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(Probe::verify(self, bearer))
    }
}

/// Builds every configured channel from a config: at start and whenever a
/// reload changes the channels' settings.
pub type ChannelFactory = Box<dyn Fn(&Config) -> Result<Channels, ChannelSetupError> + Send + Sync>;

/// Builds the Apple probe from `[apple]` when `verify` is on: at start and
/// whenever a reload changes `[apple]`. The error names the cause.
pub type ProberFactory =
    Box<dyn Fn(&ProbeSettings) -> Result<Arc<dyn Verify>, String> + Send + Sync>;

/// What the daemon runs on: the config, the config file as it was when
/// that was read, and the host name mails carry.
pub struct Settings {
    pub config: Config,
    /// Taken before the file was read, so a write during the read counts
    /// as a change. None when the file could not be looked at.
    pub config_stamp: Option<FileStamp>,
    pub host: String,
}

impl Settings {
    /// Reads the config file at `path`.
    pub fn load(path: &Path, host: String) -> Result<Settings, ConfigError> {
        let config_stamp = stamp::stamp(path);
        let config = config::load(path)?;
        Ok(Settings {
            config,
            config_stamp,
            host,
        })
    }
}

/// Everything `daemon::run` uses that it does not build itself.
pub struct Deps {
    /// Opened and migrated; the sender and the prober get connections of
    /// their own to the same database (`reopen`).
    pub store: StateStore,
    /// The channels built from the start-up config, before the state was
    /// touched, so a config that cannot start leaves no database behind.
    pub channels: Channels,
    /// Builds them again on a reload.
    pub channel_factory: ChannelFactory,
    pub prober: ProberFactory,
    /// None: inotify could not be set up, and every folder is polled.
    pub watcher: Option<Watcher>,
    /// What the watcher reports.
    pub events: mpsc::Receiver<WatchEvent>,
    /// Orders from outside (SIGHUP).
    pub orders: mpsc::Receiver<Order>,
    pub clock: Arc<dyn Clock>,
    pub timing: Timing,
}

/// Another connection to `store`'s database, for a task of its own (the
/// sender, the prober). The database is already there and migrated.
pub(super) fn reopen(store: &StateStore) -> Result<StateStore, StateError> {
    let dir = store.path().parent().unwrap_or(Path::new("."));
    StateStore::open_existing(dir, Access::ReadWrite)
}

/// This host's name, for mails and Message-IDs.
pub fn hostname() -> String {
    // gethostname(2) rather than /proc/sys, which the hardened unit hides.
    let mut buf = [0u8; 256];
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// A clock a test sets by hand.
#[cfg(test)]
pub(super) struct FakeClock(std::sync::Mutex<DateTime<Utc>>);

#[cfg(test)]
impl FakeClock {
    pub fn at(t: DateTime<Utc>) -> Arc<FakeClock> {
        Arc::new(FakeClock(std::sync::Mutex::new(t)))
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().unwrap();
        *t += by;
    }
}

#[cfg(test)]
impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}
