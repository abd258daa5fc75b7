//! `tokenwatch run`: the long-running loop that owns the token set.
//!
//! Everything that causes work (a filesystem event, a schedule tick, a
//! config edit, SIGHUP, start-up) only marks folders dirty or sends an
//! order to this one loop; the loop rescans, evaluates, plans alerts and
//! hands mail to the outbox sender. Correctness never depends on an event
//! or tick arriving: every pass recomputes each token's state from its
//! dates, so a lost event only delays, and the scheduled full scan is the
//! safety net.
//!
//! The loop is built from parts it is handed ([`Deps`], wired in
//! `cli/run.rs`) and parts that own one concern each: the folders and
//! their watches (`FolderSet`, folders.rs), the Apple checks (`Verifier`,
//! verify.rs, and its prober task, prober.rs), the outbox sender
//! (sender.rs), the schedules (`Jobs`, job.rs). A pass (pass.rs) reads the
//! clock once and hands that `now` to everything it calls.

mod channels;
mod deps;
mod folders;
mod housekeeping;
mod job;
mod keepalive;
mod notify;
mod observe;
mod pass;
mod prober;
pub mod sender;
mod stamp;
mod timing;
mod verify;
mod warned;
pub use channels::{channels_from, ChannelSetupError};
pub use deps::{
    hostname, ChannelFactory, Clock, Deps, ProberFactory, Settings, SystemClock, Verify,
};
pub use job::Job;
pub use timing::{Timing, REARM_ENV, RETRY_BASE_ENV};

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::{self, Config};
use crate::schedule::{AlarmClock, Tick};
use crate::state::{StateError, StateStore};
use crate::token::found::FileStamp;
use crate::watch::WatchEvent;
use channels::Outbound;
use folders::{ConfigNews, FolderSet};
use job::Jobs;
use keepalive::Keepalive;
use observe::Observer;
use verify::Verifier;

/// Runs a SQLite call (or another short blocking call) on the current
/// worker thread. `block_in_place` tells the multi-threaded runtime
/// (`cli/run.rs` builds one) to move its other tasks to another worker
/// meanwhile; see `crate::state` for why calls are not sent elsewhere.
pub(crate) fn db<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

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

impl DaemonError {
    /// The state database at start-up: a restart fixes some causes, not
    /// all. `file` is the config file, which names `state_dir`.
    pub fn state(file: &Path, e: StateError) -> DaemonError {
        let restart_cannot_fix = e.restart_cannot_fix();
        let e = anyhow::anyhow!("{}: state_dir: {e}", file.display());
        if restart_cannot_fix {
            DaemonError::Setup(e)
        } else {
            DaemonError::Fatal(e)
        }
    }

    /// Settings that cannot be used (`[mail]`, `[apple]`, a password or CA
    /// file): `cause` names the section.
    pub fn setup(file: &Path, cause: impl std::fmt::Display) -> DaemonError {
        DaemonError::Setup(anyhow::anyhow!("{}: {cause}", file.display()))
    }
}

/// Runs the daemon on `settings` until `cancel`, then finishes the mail in
/// flight (for at most [`Timing::drain_limit`]).
pub async fn run(
    settings: Settings,
    deps: Deps,
    cancel: CancellationToken,
) -> Result<(), DaemonError> {
    let Deps {
        store,
        channels,
        channel_factory,
        prober,
        watcher,
        events: mut watch_rx,
        mut orders,
        clock,
        timing,
    } = deps;
    let file = settings.config.file.clone();
    let sender_store = deps::reopen(&store).map_err(|e| DaemonError::state(&file, e))?;
    let sender_cancel = CancellationToken::new();
    let channels = Arc::new(channels);
    let (sender, sender_handle) = sender::sender(
        sender_store,
        channels.clone(),
        clock.clone(),
        timing,
        sender_cancel.clone(),
    );
    let observer = Observer::new(&settings.config, clock.now());
    let sender_task = tokio::spawn(sender.counting(observer.metrics.clone()).run());
    let (tick_tx, mut tick_rx) = tokio::sync::mpsc::channel(16);
    let (verdict_tx, mut verdict_rx) = tokio::sync::mpsc::channel(1);

    let Settings {
        config: cfg,
        config_stamp,
        host,
    } = settings;
    let mut d = Daemon {
        cfg,
        host,
        due: Due::new(config_stamp, &timing),
        store,
        folders: FolderSet::new(watcher, timing),
        verifier: Verifier::new(prober, verdict_tx, clock.clone(), timing)
            .counting(observer.metrics.clone()),
        sender: Outbound::new(sender_handle, channel_factory, channels),
        jobs: Jobs::new(tick_tx, AlarmClock::start().await),
        keepalive: Keepalive::from_env(&timing),
        warned: warned::Warned::default(),
        clock,
        observer,
        stop: cancel.clone(),
    };
    d.keepalive.starting();
    d.start_prober()?;
    d.folders.watch_config_dir(&d.cfg.file);
    d.folders.configure(&d.cfg);
    d.jobs.start(&d.cfg);
    d.full_pass("start-up");
    if !cancel.is_cancelled() {
        d.folders.log_watching();
        d.keepalive.ready();
        d.listen_for_metrics();
        // After READY: the first run after an upgrade may have years to delete.
        d.housekeep();
    }

    loop {
        let deadline = d.next_deadline();
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(order) = orders.recv() => match order {
                Order::Reload => d.reload("SIGHUP"),
            },
            Some(ev) = watch_rx.recv() => {
                d.on_watch_event(ev);
                // What else has arrived goes with it: the events of one
                // rename (from, to, both) or of a burst are handled before
                // any folder is looked at, so they make one rescan.
                for _ in 0..crate::watch::QUEUE {
                    match watch_rx.try_recv() {
                        Ok(ev) => d.on_watch_event(ev),
                        Err(_) => break,
                    }
                }
            }
            Some(tick) = tick_rx.recv() => d.on_tick(tick),
            Some(()) = verdict_rx.recv() => d.pass(),
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
        d.due_work();
        d.keepalive.progress();
    }

    tracing::info!("stopping: finishing the mail in flight");
    notify::notify(&[sd_notify::NotifyState::Stopping]);
    d.jobs.shutdown().await;
    d.verifier.stop();
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

/// What the loop must do of its own accord, and when, besides rescanning
/// folders: run a pass again, re-read the config file, wake up anyway.
#[derive(Debug)]
struct Due {
    /// An unreadable file is settling, or the state could not be written;
    /// evaluate again then.
    recheck_at: Option<DateTime<Utc>>,
    /// Passes in a row whose state could not be written (backs off retries).
    state_failures: u32,
    /// How long after such a failure the pass runs again.
    state_retry: Backoff,
    /// The config file must be re-read once it has been quiet since then,
    /// and why (for the "config reloaded" log line).
    config_reread: Option<(Instant, &'static str)>,
    /// The config file as it was when last read (at start-up or a reload,
    /// valid or not).
    config_stamp: Option<FileStamp>,
    /// How long an edited config file must be quiet before it is re-read.
    config_quiet: Duration,
    /// The loop wakes at least this often.
    idle: Duration,
}

impl Due {
    fn new(config_stamp: Option<FileStamp>, timing: &Timing) -> Due {
        Due {
            recheck_at: None,
            state_failures: 0,
            state_retry: timing.state_retry,
            config_reread: None,
            config_stamp,
            config_quiet: timing.config_quiet,
            idle: timing.idle_wake,
        }
    }
}

struct Daemon {
    cfg: Config,
    /// This host's name, in mails.
    host: String,
    due: Due,
    store: StateStore,
    folders: FolderSet,
    verifier: Verifier,
    /// The outbox sender, woken when mail is queued.
    sender: Outbound,
    jobs: Jobs,
    /// systemd's watchdog and start timeout; long scans and passes report
    /// their progress to it.
    keepalive: Keepalive,
    /// Files whose warnings are logged already.
    warned: warned::Warned,
    /// Where a pass, the digest and housekeeping get `now`.
    clock: Arc<dyn Clock>,
    /// The metrics and their endpoint.
    observer: Observer,
    /// Cancelled on SIGTERM: a full pass stops between folders instead of
    /// finishing (tens of seconds with a million credentials, longer than
    /// the unit's stop timeout).
    stop: CancellationToken,
}

impl Daemon {
    /// Starts the Apple prober when `[apple] verify` is on.
    fn start_prober(&mut self) -> Result<(), DaemonError> {
        let file = &self.cfg.file;
        // Like the channels', every error here is in the settings or the
        // CA file they name.
        let probe = self
            .verifier
            .probe_for(&self.cfg)
            .map_err(|e| DaemonError::setup(file, format!("[apple]: {e}")))?;
        if let Some(probe) = probe {
            let store = deps::reopen(&self.store).map_err(|e| DaemonError::state(file, e))?;
            self.verifier.start(probe, store);
        }
        Ok(())
    }

    /// Hands tokens to the prober: every verifiable one on the schedule
    /// (`all`), else those not asked about yet and not verified within the
    /// last schedule interval.
    pub(super) fn request_verification(
        &mut self,
        now: DateTime<Utc>,
        all: bool,
        verdicts: &crate::assess::Verdicts,
    ) {
        let schedule = &self.cfg.schedule.verify;
        self.verifier
            .request(now, all, verdicts, schedule, self.folders.files());
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

    fn on_watch_event(&mut self, ev: WatchEvent) {
        let now = Instant::now();
        let file = &self.cfg.file;
        match self.folders.on_event(ev, file, now) {
            Some(ConfigNews::Changed) => {
                self.due.config_reread = Some((now, "config file changed"));
            }
            // The lost events may have named the config file. Only re-read
            // it if it changed: a reload rescans every folder again and
            // tells systemd RELOADING, for nothing.
            Some(ConfigNews::EventsLost) if stamp::changed_since(file, self.due.config_stamp) => {
                self.due.config_reread =
                    Some((now, "events were lost and the config file changed"));
            }
            Some(ConfigNews::EventsLost) | None => {}
        }
    }

    /// When the loop must wake up next even if nothing happens.
    fn next_deadline(&self) -> Instant {
        let now = Instant::now();
        let mut next = now + self.due.idle;
        if let Some(t) = self.keepalive.next_ping_at() {
            next = next.min(t);
        }
        if let Some((t, _)) = self.due.config_reread {
            next = next.min(t + self.due.config_quiet);
        }
        if let Some(t) = self.folders.next_due() {
            next = next.min(t);
        }
        if let Some(at) = self.due.recheck_at {
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
        if let Some((t, why)) = self.due.config_reread {
            if now >= t + self.due.config_quiet {
                self.due.config_reread = None;
                self.reload(why);
            }
        }
        let keepalive = &self.keepalive;
        let unpolled = self.folders.unpolled_due(now);
        let changed = self.folders.rescan_due(now, &|| keepalive.progress());
        let settle_due = self.due.recheck_at.is_some_and(|t| self.clock.now() >= t);
        if changed || settle_due {
            self.due.recheck_at = None;
            self.pass();
        } else if unpolled {
            // A full rescan builds and frees several MiB at 10,000 tokens
            // (the one after arming the watch at start-up among them); a
            // pass would trim them, and none runs.
            pass::release_freed_memory();
        }
    }

    /// Scans every folder, then runs a pass, unless the daemon is told to
    /// stop meanwhile: a pass over folders not all scanned would take the
    /// rest for removed, so it stops without one (as after a crash, the
    /// next start scans everything).
    fn full_pass(&mut self, why: &str) {
        tracing::debug!(why, "full scan");
        let keepalive = &self.keepalive;
        let stop = &self.stop;
        if !self
            .folders
            .rescan_all(&|| keepalive.progress(), &|| stop.is_cancelled())
        {
            tracing::info!(why, "stopping before the full scan finished; no pass");
            return;
        }
        self.pass();
    }

    fn housekeep(&mut self) {
        let now = self.clock.now();
        let days = self.cfg.alerts.forget_after_days;
        // The identities a report would hold, without building one (as big
        // as a pass's: 70 MiB at 100,000 tokens, right after the first).
        let present: HashSet<String> =
            crate::scan::dedup_refs(self.folders.slots().iter().flat_map(|s| &s.files))
                .into_iter()
                .map(crate::assess::identity)
                .collect();
        let keepalive = &self.keepalive;
        housekeeping::run(&mut self.store, now, days, &present, &|| {
            keepalive.progress()
        });
        // Start-up runs this right after the first pass: without a trim the
        // daemon would keep what `present` and the housekeeping freed.
        drop(present);
        pass::release_freed_memory();
    }

    fn reload(&mut self, why: &str) {
        notify::notify(&[
            sd_notify::NotifyState::Reloading,
            sd_notify::NotifyState::monotonic_usec_now()
                .unwrap_or(sd_notify::NotifyState::MonotonicUsec(0)),
        ]);
        let accepted = self.apply_reload(why);
        self.observer.metrics.config_reloaded(accepted);
        if accepted {
            self.listen_for_metrics();
        }
        notify::notify(&[sd_notify::NotifyState::Ready]);
    }

    /// Serves `[metrics] listen`. An address it cannot bind is a config
    /// problem: `status` shows it until a config that works is loaded, and
    /// the daemon runs on without the endpoint.
    fn listen_for_metrics(&mut self) {
        if let Err(e) = self.observer.listen(&self.cfg, self.clock.now()) {
            tracing::error!(error = %e, "metrics endpoint not started");
            record_rejection(&mut self.store, format!("{}: {e}", self.cfg.file.display()));
        }
    }

    /// False when the new config is rejected and the previous one stays.
    fn apply_reload(&mut self, why: &str) -> bool {
        let path = self.cfg.file.clone();
        self.due.config_stamp = stamp::stamp(&path);
        let old = &self.cfg;
        let mut cfg = match config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                let lines = e.lines();
                for l in &lines {
                    tracing::error!(problem = %l, "config rejected; still running on the previous one");
                }
                if let Err(e) = db(|| self.store.set_config_error(Some(&lines))) {
                    tracing::error!(error = %e, "cannot record the config error");
                }
                return false;
            }
        };
        if cfg.state_dir != old.state_dir {
            tracing::warn!(
                old = %old.state_dir.display(),
                new = %cfg.state_dir.display(),
                "state_dir changed: restart tokenwatch to use the new one; keeping the old one until then"
            );
            cfg.state_dir = old.state_dir.clone();
        }
        // Every part that can be refused is checked before anything is
        // applied: a refused config leaves the daemon wholly on the previous
        // one, and `status` says why.
        let channels = match self.sender.rebuild(old, &cfg) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e.cause, "new {} settings rejected; still running on the previous config", e.section);
                record_rejection(&mut self.store, format!("{}: {e}", cfg.file.display()));
                return false;
            }
        };
        let apple_changed = cfg.apple != old.apple;
        let probe = if apple_changed {
            match self.verifier.probe_for(&cfg) {
                Ok(p) => p,
                Err(e) => {
                    let e = DaemonError::setup(&cfg.file, format!("[apple]: {e}"));
                    tracing::error!(error = %e, "new Apple settings rejected; still running on the previous config");
                    record_rejection(&mut self.store, e.to_string());
                    return false;
                }
            }
        } else {
            None
        };
        if let Some(c) = channels {
            self.sender.use_channels(c);
        }
        channels::park_removed_webhooks(&mut self.store, old, &cfg);
        if let Err(e) = db(|| self.store.set_config_error(None)) {
            tracing::error!(error = %e, "cannot clear the recorded config error");
        }
        tracing::info!(why, folders = cfg.folders.len(), "config reloaded");
        let schedules_changed = Jobs::changed(old, &cfg);
        let forget_changed = cfg.alerts.forget_after_days != old.alerts.forget_after_days;
        self.cfg = cfg;
        self.folders.configure(&self.cfg);
        if schedules_changed {
            self.jobs.start(&self.cfg);
        }
        if apple_changed {
            self.verifier.stop();
            if let Some(probe) = probe {
                match deps::reopen(&self.store) {
                    Ok(store) => self.verifier.start(probe, store),
                    Err(e) => {
                        let e = DaemonError::state(&self.cfg.file, e);
                        tracing::error!(error = %e, "Apple checks stay off until the next valid config");
                    }
                }
            }
        }
        self.full_pass("reload");
        if forget_changed {
            self.housekeep();
        }
        true
    }
}

/// Shown by `status` until a config is accepted.
fn record_rejection(store: &mut StateStore, line: String) {
    if let Err(e) = db(|| store.set_config_error(Some(&[line]))) {
        tracing::error!(error = %e, "cannot record the config error");
    }
}
