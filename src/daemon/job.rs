//! The daemon's scheduled jobs: what a schedule tick asks the loop to do,
//! and the schedules that send them.

use std::fmt;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::housekeeping;
use crate::config::Config;
use crate::schedule::{run_schedule, AlarmClock, Tick};

/// One kind of scheduled work. Each has its own cron schedule
/// (`[schedule]` in the config; housekeeping's is fixed) and one handler in
/// the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// A full rescan and evaluation pass.
    Check,
    /// The digest mail.
    Digest,
    /// Ask Apple about every verifiable token.
    Verify,
    /// Forget old sent mail and token history.
    Housekeeping,
}

impl Job {
    /// The schedule's name in log lines (unchanged from when ticks carried
    /// names).
    pub fn name(self) -> &'static str {
        match self {
            Job::Check => "check",
            Job::Digest => "digest",
            Job::Verify => "verify",
            Job::Housekeeping => "housekeeping",
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The running schedules, each sending its job to the loop when it fires.
pub(super) struct Jobs {
    tx: mpsc::Sender<Tick<Job>>,
    /// One for every schedule, kept across reloads.
    alarm: AlarmClock,
    /// Cancels the running schedule tasks (replaced at each start).
    cancel: CancellationToken,
}

impl Jobs {
    pub fn new(tx: mpsc::Sender<Tick<Job>>, alarm: AlarmClock) -> Jobs {
        Jobs {
            tx,
            alarm,
            cancel: CancellationToken::new(),
        }
    }

    /// Replaces the running schedules with those `cfg` asks for.
    pub fn start(&mut self, cfg: &Config) {
        self.stop();
        self.cancel = CancellationToken::new();
        let mut list = vec![(Job::Check, cfg.schedule.check.clone())];
        if let Some(d) = &cfg.schedule.digest {
            list.push((Job::Digest, d.clone()));
        }
        if cfg.apple.verify {
            list.push((Job::Verify, cfg.schedule.verify.clone()));
        }
        if let Some(s) = housekeeping::schedule(cfg.timezone) {
            list.push((Job::Housekeeping, s));
        }
        for (job, s) in list {
            tokio::spawn(run_schedule(
                job,
                s,
                self.alarm.clone(),
                self.tx.clone(),
                self.cancel.clone(),
            ));
        }
    }

    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Stops the schedules and their alarm clock, for good.
    pub async fn shutdown(self) {
        self.stop();
        self.alarm.shutdown().await;
    }

    /// Whether a reload from `old` to `new` must start the schedules again.
    pub fn changed(old: &Config, new: &Config) -> bool {
        new.schedule != old.schedule || new.apple.verify != old.apple.verify
    }
}
