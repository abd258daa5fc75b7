//! `tokenwatch run`: the daemon in the foreground, wired to signals.

use std::path::Path;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{EXIT_OK, EXIT_UNKNOWN};
use crate::config;
use crate::daemon::{self, DaemonError, Order};

pub fn run(flag: Option<&Path>) -> anyhow::Result<i32> {
    let path = config::resolve_path(flag);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
        match daemon::run(
            path,
            orders_rx,
            daemon::Timing::with_test_env(),
            std::sync::Arc::new(daemon::SystemClock),
            cancel,
        ).await {
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
