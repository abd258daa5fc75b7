//! systemd's watchdog and start timeout, kept honest while the loop is busy.
//!
//! The loop pings `WATCHDOG=1` when it comes round and a ping is due (a
//! burst of 100,000 file events is one ping, not 100,000). A scan or pass
//! keeps it busy for as long as the work takes (a few million files, a
//! slow network share), longer than any sensible `WatchdogSec`, so the work
//! calls [`Keepalive::progress`] as it advances (each entry a scan looks
//! at, each row a scan writes, each stage of a pass), and a ping goes out
//! from there once one is due. Pings come only from the thread doing the
//! work and only when it advanced: a scan stuck in one `read` sends none,
//! and systemd restarts the daemon as it should.
//!
//! Until the first pass is done, the same progress also renews
//! `EXTEND_TIMEOUT_USEC`, so a first scan longer than the unit's start
//! timeout (`TimeoutStartSec`, 90 s by default) is not killed either.

use std::cell::Cell;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use super::Timing;

/// Debug builds only, for `.ci/systemd-e2e.sh`: while the file this
/// variable names exists, [`Keepalive::progress`] blocks the thread doing
/// the work, as a wedged loop or scan would, so no ping goes out and
/// systemd's watchdog must kill and restart the daemon. Release builds
/// (the package) have neither the variable nor the check.
#[cfg(debug_assertions)]
pub const STALL_FILE_ENV: &str = "TOKENWATCH_TEST_STALL_FILE";

/// Interior mutability: scans take `&dyn Fn()` hooks, and the daemon's
/// other fields are borrowed mutably while they run.
pub(super) struct Keepalive {
    /// Half of systemd's `WATCHDOG_USEC`: ping at least this often. None
    /// when the watchdog is off.
    every: Option<Duration>,
    /// While starting: how much more time each extension asks for, and
    /// how often it is renewed ([`Timing::start_extend_by`], `_every`).
    extend_by: Duration,
    extend_every: Duration,
    starting: Cell<bool>,
    last_ping: Cell<Instant>,
    last_extend: Cell<Instant>,
    /// The last `STATUS=` sent: a pass that changes nothing sends none.
    last_status: std::cell::RefCell<String>,
    #[cfg(debug_assertions)]
    stall_file: Option<std::path::PathBuf>,
}

impl Keepalive {
    /// Reads the watchdog interval systemd set for this process (systemd's
    /// protocol, not a test knob); debug builds also read [`STALL_FILE_ENV`].
    pub fn from_env(timing: &Timing) -> Keepalive {
        let mut usec = 0u64;
        let every =
            sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2));
        let now = Instant::now();
        Keepalive {
            every,
            extend_by: timing.start_extend_by,
            extend_every: timing.start_extend_every,
            starting: Cell::new(false),
            last_ping: Cell::new(now),
            last_extend: Cell::new(now),
            last_status: std::cell::RefCell::new(String::new()),
            #[cfg(debug_assertions)]
            stall_file: std::env::var_os(STALL_FILE_ENV).map(Into::into),
        }
    }

    /// When the next ping is due, for the loop's deadline.
    pub fn next_ping_at(&self) -> Option<Instant> {
        self.every.map(|every| self.last_ping.get() + every)
    }

    /// The first scan is about to start: ask for more time than the start
    /// timeout may allow, renewed by [`Keepalive::progress`] until ready.
    pub fn starting(&self) {
        self.starting.set(true);
        self.extend(Instant::now());
    }

    /// The line `systemctl status` shows, when it changed.
    pub fn status(&self, line: &str) {
        if *self.last_status.borrow() != line {
            super::notify::notify(&[NotifyState::Status(line)]);
            line.clone_into(&mut self.last_status.borrow_mut());
        }
    }

    /// The first pass is done.
    pub fn ready(&self) {
        self.starting.set(false);
        super::notify::notify(&[NotifyState::Ready]);
    }

    /// The loop came round, or long work advanced: ping (and extend the
    /// start timeout) if one is due. Cheap enough to call for every file.
    pub fn progress(&self) {
        #[cfg(debug_assertions)]
        self.stall_while_asked();
        let now = Instant::now();
        if self
            .every
            .is_some_and(|every| now.duration_since(self.last_ping.get()) >= every)
        {
            self.last_ping.set(now);
            super::notify::notify(&[NotifyState::Watchdog]);
        }
        if self.starting.get() && now.duration_since(self.last_extend.get()) >= self.extend_every {
            self.extend(now);
        }
    }

    #[cfg(debug_assertions)]
    fn stall_while_asked(&self) {
        let Some(file) = &self.stall_file else { return };
        if file.exists() {
            tracing::warn!(file = %file.display(), "stalling on purpose until the file is gone ({STALL_FILE_ENV})");
            while file.exists() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn extend(&self, now: Instant) {
        self.last_extend.set(now);
        let usec = u32::try_from(self.extend_by.as_micros()).unwrap_or(u32::MAX);
        super::notify::notify(&[NotifyState::ExtendTimeoutUsec(usec)]);
    }
}
