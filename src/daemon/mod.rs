//! `tokenwatch run`: the long-running loop that owns the token set.
//!
//! Everything that causes work (a filesystem event, a schedule tick, a
//! config edit, SIGHUP, start-up) only marks folders dirty or sends an
//! order to this one loop; the loop rescans, evaluates, plans alerts and
//! hands mail to the outbox sender. Correctness never depends on an event
//! or tick arriving: every pass recomputes each token's state from its
//! dates, so a lost event only delays, and the scheduled full scan is the
//! safety net.

mod channels;
mod deps;
mod folders;
mod housekeeping;
mod job;
mod keepalive;
mod pass;
mod prober;
pub mod sender;
mod stamp;
mod timing;
pub use channels::{channels_from, ChannelSetupError};
pub use deps::{Clock, SystemClock};
pub use job::Job;
pub use timing::{Timing, REARM_ENV, RETRY_BASE_ENV};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::schedule::{run_schedule, Tick};
use crate::state::StateStore;
use crate::token::found::FileStamp;
use crate::watch::{WatchEvent, Watcher};
use folders::Slot;
use keepalive::Keepalive;
use prober::{ProberHandle, Requested};
use sender::SenderHandle;

/// Orders the loop takes from outside (signals, the CLI wiring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Reload,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// A start-up error that starting again cannot fix (mail or Apple
    /// settings, password or CA file, a state directory it cannot use):
    /// someone must change something first, so systemd must not restart.
    #[error("{0:#}")]
    Setup(anyhow::Error),
    /// Anything else; it may pass (a busy or full disk), so a restart is
    /// worth it.
    #[error("{0:#}")]
    Fatal(anyhow::Error),
}

pub async fn run(
    config_path: PathBuf,
    mut orders: mpsc::Receiver<Order>,
    timing: Timing,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) -> Result<(), DaemonError> {
    // Taken before reading: a write during the read then counts as a change.
    let config_stamp = stamp::stamp(&config_path);
    let cfg = config::load(&config_path)?;
    // Every channel error is in the settings or the files they name
    // (password, CA): none passes by itself.
    let channels = channels_from(&cfg)
        .map_err(|e| DaemonError::Setup(anyhow::anyhow!("{}: {e}", cfg.file.display())))?;
    let store = open_store(&cfg)?;
    let sender_store = open_store(&cfg)?;

    let (watch_tx, mut watch_rx) = mpsc::channel(crate::watch::QUEUE);
    let watcher = match Watcher::new(watch_tx) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(error = %e, "no filesystem events; every folder is polled");
            None
        }
    };
    let sender_cancel = CancellationToken::new();
    let channels = Arc::new(channels);
    let (sender, sender_handle) = sender::sender(
        sender_store,
        channels.clone(),
        timing,
        sender_cancel.clone(),
    );
    let sender_task = tokio::spawn(sender.run());
    let (tick_tx, mut tick_rx) = mpsc::channel(16);
    let (verdict_tx, mut verdict_rx) = mpsc::channel(1);

    let mut d = Daemon {
        config_path: cfg.file.clone(),
        cfg,
        store,
        watcher,
        slots: Vec::new(),
        config_dirty: None,
        config_stamp,
        sender: sender_handle,
        channels,
        tick_tx,
        schedules: CancellationToken::new(),
        recheck_at: None,
        state_failures: 0,
        host: hostname(),
        prober: None,
        verdict_tx,
        requested: Requested::default(),
        keepalive: Keepalive::from_env(),
        timing,
        clock,
    };
    d.keepalive.starting();
    d.start_prober()?;
    d.watch_config_dir();
    d.set_folders();
    d.start_schedules();
    d.full_pass("start-up");
    d.log_watching();
    d.keepalive.ready();
    // After READY: the first run after an upgrade may have years to delete.
    d.housekeep();

    loop {
        let deadline = d.next_deadline();
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(order) = orders.recv() => match order {
                Order::Reload => d.reload("SIGHUP"),
            },
            Some(ev) = watch_rx.recv() => d.on_watch_event(ev),
            Some(tick) = tick_rx.recv() => d.on_tick(tick),
            Some(()) = verdict_rx.recv() => d.pass(),
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
        d.due_work();
        d.keepalive.progress();
    }

    tracing::info!("stopping: finishing the mail in flight");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    d.schedules.cancel();
    d.prober = None;
    sender_cancel.cancel();
    if tokio::time::timeout(timing.drain_limit, sender_task)
        .await
        .is_err()
    {
        tracing::warn!(
            "the mail in flight did not finish within {} s; it stays in the outbox",
            timing.drain_limit.as_secs()
        );
    }
    tracing::info!("stopped");
    Ok(())
}

fn open_store(cfg: &Config) -> Result<StateStore, DaemonError> {
    StateStore::open(&cfg.state_dir).map_err(|e| state_error(cfg, e))
}

fn state_error(cfg: &Config, e: crate::state::StateError) -> DaemonError {
    let restart_cannot_fix = e.restart_cannot_fix();
    let e = anyhow::anyhow!("{}: state_dir: {e}", cfg.file.display());
    if restart_cannot_fix {
        DaemonError::Setup(e)
    } else {
        DaemonError::Fatal(e)
    }
}

pub(crate) fn hostname() -> String {
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

struct Daemon {
    config_path: PathBuf,
    cfg: Config,
    store: StateStore,
    watcher: Option<Watcher>,
    slots: Vec<Slot>,
    /// The config file must be re-read once it has been quiet since then,
    /// and why (for the "config reloaded" log line).
    config_dirty: Option<(Instant, &'static str)>,
    /// The config file as it was when last read (at start-up or a reload,
    /// valid or not).
    config_stamp: Option<FileStamp>,
    sender: SenderHandle,
    /// The channels a pass renders its outbox rows with: the ones the
    /// sender delivers through.
    channels: Arc<crate::channel::Channels>,
    tick_tx: mpsc::Sender<Tick<Job>>,
    /// Cancels the running schedule tasks (replaced on reload).
    schedules: CancellationToken,
    /// An unreadable file is settling, or the state could not be written;
    /// evaluate again then.
    recheck_at: Option<chrono::DateTime<Utc>>,
    /// Passes in a row whose state could not be written (backs off retries).
    state_failures: u32,
    host: String,
    /// Orders to the Apple prober, when `[apple] verify` is on; dropping
    /// the sender stops it.
    prober: Option<ProberHandle>,
    verdict_tx: mpsc::Sender<()>,
    /// Tokens handed to the prober (or found freshly verified).
    requested: Requested,
    /// systemd's watchdog and start timeout; long scans and passes report
    /// their progress to it.
    keepalive: Keepalive,
    /// Debounces, poll intervals, retries and limits.
    timing: Timing,
    /// Where a pass, the digest and housekeeping get `now`.
    clock: Arc<dyn Clock>,
}

impl Daemon {
    fn start_schedules(&mut self) {
        self.schedules.cancel();
        self.schedules = CancellationToken::new();
        let mut list = vec![(Job::Check, self.cfg.schedule.check.clone())];
        if let Some(d) = &self.cfg.schedule.digest {
            list.push((Job::Digest, d.clone()));
        }
        if self.cfg.apple.verify {
            list.push((Job::Verify, self.cfg.schedule.verify.clone()));
        }
        if let Some(s) = self.housekeeping_schedule() {
            list.push((Job::Housekeeping, s));
        }
        for (job, s) in list {
            tokio::spawn(run_schedule(
                job,
                s,
                self.tick_tx.clone(),
                self.schedules.clone(),
            ));
        }
    }

    /// Starts the Apple prober when `[apple] verify` is on.
    fn start_prober(&mut self) -> Result<(), DaemonError> {
        match self.new_probe(&self.cfg)? {
            Some(probe) => self.start_prober_with(probe),
            None => Ok(()),
        }
    }

    /// The probe `cfg`'s `[apple]` asks for; None when `verify` is off.
    fn new_probe(&self, cfg: &Config) -> Result<Option<crate::probe::Probe>, DaemonError> {
        if !cfg.apple.verify {
            return Ok(None);
        }
        // Like the channels', every error here is in the settings or the CA
        // file they name.
        crate::probe::Probe::new(&cfg.apple.probe)
            .map(Some)
            .map_err(|e| {
                DaemonError::Setup(anyhow::anyhow!("{}: [apple]: {e}", cfg.file.display()))
            })
    }

    fn start_prober_with(&mut self, probe: crate::probe::Probe) -> Result<(), DaemonError> {
        let store = open_store(&self.cfg)?;
        let (prober, handle) = prober::prober(
            probe,
            store,
            self.verdict_tx.clone(),
            self.timing.probe_retry,
        );
        tokio::spawn(prober.run());
        self.prober = Some(handle);
        Ok(())
    }

    /// Hands tokens to the prober: every verifiable one on the schedule
    /// (`all`), else those not asked about yet and not verified within the
    /// last schedule interval.
    pub(super) fn request_verification(
        &mut self,
        now: chrono::DateTime<Utc>,
        all: bool,
        verdicts: &crate::assess::Verdicts,
    ) {
        let Some(prober) = &self.prober else {
            return;
        };
        let fresh_for = self
            .cfg
            .schedule
            .verify
            .interval_near(now)
            .unwrap_or(chrono::Duration::hours(6));
        let present = self.slots.iter().flat_map(|s| &s.files).filter_map(|f| {
            let asks_apple = crate::token::kind(f.kind).rules().apple_verification;
            let t = f
                .token()
                .filter(|t| asks_apple && t.verifiable_with_apple())?;
            Some((t.fingerprint.as_str(), f.path.as_path()))
        });
        // A failed check is never fresh: it is asked again.
        let fresh = |fp: &str| {
            verdicts
                .get(fp)
                .is_some_and(|v| v.first_failure_at.is_none() && (now - v.verified_at) < fresh_for)
        };
        let batch = self.requested.select(present, all, fresh);
        if !batch.is_empty() {
            tracing::debug!(
                tokens = batch.len(),
                known = self.requested.len(),
                "asking Apple"
            );
            prober.verify(batch);
        }
    }

    fn on_tick(&mut self, tick: Tick<Job>) {
        match tick.job {
            Job::Check => self.full_pass("schedule"),
            Job::Digest => self.send_digest(),
            Job::Housekeeping => self.housekeep(),
            Job::Verify => {
                let verdicts = self.verdicts();
                self.request_verification(self.clock.now(), true, &verdicts);
            }
        }
    }

    fn watch_config_dir(&mut self) {
        let Some(dir) = self.config_path.parent().map(Path::to_path_buf) else {
            return;
        };
        if let Some(w) = self.watcher.as_mut() {
            if let Err(e) = w.watch(&dir, false, false) {
                tracing::warn!(error = %e, "config changes are picked up on SIGHUP only");
            }
        }
    }

    fn on_watch_event(&mut self, ev: WatchEvent) {
        // Events dropped on a full queue: whatever they named, look again
        // everywhere (the flag is taken, so this happens once per burst).
        if self.watcher.as_ref().is_some_and(Watcher::take_overflow) {
            self.on_watch_event(WatchEvent::Overflow);
        }
        match ev {
            WatchEvent::Changed(paths) => {
                let now = Instant::now();
                for p in &paths {
                    if p == &self.config_path {
                        self.config_dirty = Some((now, "config file changed"));
                    }
                    for slot in &mut self.slots {
                        if p != &slot.folder.path && p.starts_with(&slot.folder.path) {
                            slot.mark_path(now, p);
                        } else if slot.folder.path.starts_with(p) || slot.follows_links() {
                            // A folder with a link into another one lists
                            // files that change with that one's events.
                            slot.mark_dirty(now);
                        }
                    }
                }
            }
            WatchEvent::Overflow => {
                tracing::warn!(
                    "filesystem events were lost (queue overflow); rescanning every folder"
                );
                let now = Instant::now();
                for slot in &mut self.slots {
                    slot.watch_lost(now);
                }
                // The lost events may have named the config file. Only
                // re-read it if it changed: a reload rescans every folder
                // again and tells systemd RELOADING, for nothing.
                if stamp::changed_since(&self.config_path, self.config_stamp) {
                    self.config_dirty = Some((now, "events were lost and the config file changed"));
                }
            }
            WatchEvent::Failed(e) => {
                tracing::error!(error = %e, "the filesystem watcher failed; polling every folder");
                for slot in &mut self.slots {
                    slot.fall_back(&e);
                }
            }
        }
    }

    /// When the loop must wake up next even if nothing happens.
    fn next_deadline(&self) -> Instant {
        let now = Instant::now();
        let mut next = now + Duration::from_secs(3600);
        if let Some(t) = self.keepalive.next_ping_at() {
            next = next.min(t);
        }
        if let Some((t, _)) = self.config_dirty {
            next = next.min(t + self.timing.config_quiet);
        }
        for slot in &self.slots {
            if let Some(t) = slot.next_due(&self.timing) {
                next = next.min(t);
            }
        }
        if let Some(at) = self.recheck_at {
            let wait = (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO);
            next = next.min(now + wait);
        }
        next
    }

    /// Does whatever has come due: a settled config edit, dirty or polled
    /// folders, missing folders to look for, settling files.
    ///
    /// A rescan that found nothing new runs no pass: a polled folder is
    /// looked at every 5 s, and a pass would rewrite the state each time
    /// for nothing. Nothing is lost by skipping it: what depends on time
    /// alone (days left, lead days, reminders) is recomputed from the
    /// dates by the next pass that runs, and the scheduled full scan
    /// always runs one; a file waiting to settle has its own `recheck_at`.
    fn due_work(&mut self) {
        let now = Instant::now();
        if let Some((t, why)) = self.config_dirty {
            if now >= t + self.timing.config_quiet {
                self.config_dirty = None;
                self.reload(why);
            }
        }
        let mut changed = false;
        for i in 0..self.slots.len() {
            if self.slots[i].is_due(now, &self.timing) {
                changed |= self.rescan_slot(i);
            }
        }
        let settle_due = self.recheck_at.is_some_and(|t| self.clock.now() >= t);
        if changed || settle_due {
            self.recheck_at = None;
            self.pass();
        }
    }

    fn full_pass(&mut self, why: &str) {
        tracing::debug!(why, "full scan");
        for i in 0..self.slots.len() {
            self.slots[i].mark_dirty(Instant::now());
            self.rescan_slot(i);
        }
        self.pass();
    }

    fn reload(&mut self, why: &str) {
        let _ = sd_notify::notify(
            false,
            &[
                sd_notify::NotifyState::Reloading,
                sd_notify::NotifyState::monotonic_usec_now()
                    .unwrap_or(sd_notify::NotifyState::MonotonicUsec(0)),
            ],
        );
        self.apply_reload(why);
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    }

    fn apply_reload(&mut self, why: &str) {
        self.config_stamp = stamp::stamp(&self.config_path);
        let mut cfg = match config::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                let lines = e.lines();
                for l in &lines {
                    tracing::error!(problem = %l, "config rejected; still running on the previous one");
                }
                if let Err(e) =
                    tokio::task::block_in_place(|| self.store.set_config_error(Some(&lines)))
                {
                    tracing::error!(error = %e, "cannot record the config error");
                }
                return;
            }
        };
        if cfg.state_dir != self.cfg.state_dir {
            tracing::warn!(
                old = %self.cfg.state_dir.display(),
                new = %cfg.state_dir.display(),
                "state_dir changed: restart tokenwatch to use the new one; keeping the old one until then"
            );
            cfg.state_dir = self.cfg.state_dir.clone();
        }
        // Every part that can be refused is checked before anything is
        // applied: a refused config leaves the daemon wholly on the previous
        // one, and `status` says why.
        let channels = if channels::settings_changed(&self.cfg, &cfg) {
            match channels_from(&cfg) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(error = %e.cause, "new {} settings rejected; still running on the previous config", e.section);
                    self.record_rejection(format!("{}: {e}", cfg.file.display()));
                    return;
                }
            }
        } else {
            None
        };
        let apple_changed = cfg.apple != self.cfg.apple;
        let probe = if apple_changed {
            match self.new_probe(&cfg) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "new Apple settings rejected; still running on the previous config");
                    self.record_rejection(e.to_string());
                    return;
                }
            }
        } else {
            None
        };
        if let Some(c) = channels {
            self.channels = Arc::new(c);
            self.sender.use_channels(self.channels.clone());
        }
        if let Err(e) = tokio::task::block_in_place(|| self.store.set_config_error(None)) {
            tracing::error!(error = %e, "cannot clear the recorded config error");
        }
        tracing::info!(why, folders = cfg.folders.len(), "config reloaded");
        let schedules_changed =
            cfg.schedule != self.cfg.schedule || cfg.apple.verify != self.cfg.apple.verify;
        let forget_changed = cfg.alerts.forget_after_days != self.cfg.alerts.forget_after_days;
        self.cfg = cfg;
        self.set_folders();
        if schedules_changed {
            self.start_schedules();
        }
        if apple_changed {
            self.prober = None;
            self.requested.clear();
            if let Some(probe) = probe {
                if let Err(e) = self.start_prober_with(probe) {
                    tracing::error!(error = %e, "Apple checks stay off until the next valid config");
                }
            }
        }
        self.full_pass("reload");
        if forget_changed {
            self.housekeep();
        }
    }

    /// Shown by `status` until a config is accepted.
    fn record_rejection(&mut self, line: String) {
        if let Err(e) = tokio::task::block_in_place(|| self.store.set_config_error(Some(&[line]))) {
            tracing::error!(error = %e, "cannot record the config error");
        }
    }

    fn log_watching(&self) {
        for slot in &self.slots {
            tracing::info!(
                folder = %slot.folder.path.display(),
                state = ?slot.scan.state,
                tokens = slot.scan.tokens,
                unreadable = slot.files.iter().filter(|f| f.content.is_err()).count(),
                mode = slot.mode_name(),
                "watching"
            );
            for f in &slot.files {
                if let Err(e) = &f.content {
                    tracing::warn!(file = %f.path.display(), error = %e, "unreadable token file");
                }
                if f.world_readable {
                    tracing::warn!(file = %f.path.display(), "token file is readable by every user of this host; restrict it (chmod o-r)");
                }
            }
        }
    }
}
