//! `tokenwatch run`: the daemon in the foreground, wired to signals. The
//! one place the daemon's parts are built: the config, the state store,
//! the channels and the Apple probe (and how to build them again on a
//! reload), the filesystem watcher, the clock and the timings.

use std::path::Path;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{EXIT_OK, EXIT_UNKNOWN};
use crate::config;
use crate::daemon::{self, DaemonError, Deps, Order, Settings};
use crate::probe::Probe;
use crate::state::StateStore;
use crate::watch::Watcher;

pub fn run(flag: Option<&Path>) -> anyhow::Result<i32> {
    let path = config::resolve_path(flag);
    // Multi-threaded: the daemon's SQLite calls block their worker thread
    // (see `crate::state`), so there must be another.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Each SQLite call hands its worker's tasks to a pooled thread
        // (`daemon::db`). The default 10 s keep-alive is shorter than the
        // outbox's 15 s poll, so an idle daemon created and ended a thread
        // for every poll; a minute keeps one waiting instead.
        .thread_keep_alive(std::time::Duration::from_secs(60))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let cancel = CancellationToken::new();
        let (orders_tx, orders_rx) = mpsc::channel(8);
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let stop = cancel.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => { tracing::info!("SIGTERM received"); stop.cancel(); }
                    _ = int.recv() => { tracing::info!("SIGINT received"); stop.cancel(); }
                    _ = hup.recv() => { let _ = orders_tx.send(Order::Reload).await; }
                }
            }
        });
        match start(&path, orders_rx, cancel).await {
            Ok(()) => Ok(EXIT_OK),
            Err(DaemonError::Config(e)) => {
                for line in e.lines() {
                    tracing::error!(problem = %line, "invalid config");
                }
                eprintln!("tokenwatch: {e}");
                Ok(EXIT_UNKNOWN)
            }
            Err(DaemonError::Setup(e)) => {
                tracing::error!(error = %format!("{e:#}"), "cannot start; fix this, then start again");
                eprintln!("tokenwatch: {e:#}");
                Ok(EXIT_UNKNOWN)
            }
            Err(DaemonError::Fatal(e)) => {
                tracing::error!(error = %format!("{e:#}"), "cannot start");
                eprintln!("tokenwatch: {e:#}");
                Ok(1)
            }
        }
    })
}

/// Builds the daemon's parts from the config at `path` and runs it.
async fn start(
    path: &Path,
    orders: mpsc::Receiver<Order>,
    cancel: CancellationToken,
) -> Result<(), DaemonError> {
    let settings = Settings::load(path, daemon::hostname())?;
    let cfg = &settings.config;
    let channel_factory: daemon::ChannelFactory = Box::new(daemon::channels_from);
    // Every channel error is in the settings or the files they name
    // (password, CA): none passes by itself. Checked before the state is
    // touched.
    let channels = channel_factory(cfg).map_err(|e| DaemonError::setup(&cfg.file, e))?;
    let store = StateStore::open(&cfg.state_dir).map_err(|e| DaemonError::state(&cfg.file, e))?;
    let (watch_tx, events) = mpsc::channel(crate::watch::QUEUE);
    let watcher = match Watcher::new(watch_tx) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(error = %e, "no filesystem events; every folder is polled");
            None
        }
    };
    let prober: daemon::ProberFactory = Box::new(|settings| {
        Probe::new(settings)
            .map(|p| Arc::new(p) as Arc<dyn daemon::Verify>)
            .map_err(|e| e.to_string())
    });
    let deps = Deps {
        store,
        channels,
        channel_factory,
        prober,
        watcher,
        events,
        orders,
        clock: Arc::new(daemon::SystemClock),
        timing: daemon::Timing::default().with_test_env(),
    };
    daemon::run(settings, deps, cancel).await
}
