//! `GET /metrics` and `GET /healthz`, served by axum on the daemon's
//! runtime at `[metrics] listen`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{Metrics, CONTENT_TYPE};

/// What `/healthz` judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub last_pass: Option<DateTime<Utc>>,
    /// Twice the time between two consecutive fires of `[schedule] check`.
    pub max_age: Duration,
    /// Why the state cannot be written, if it cannot.
    pub state_problem: Option<String>,
}

/// `/healthz`'s status and body at `now`.
pub fn judge(h: &Health, now: DateTime<Utc>) -> (StatusCode, String) {
    if let Some(why) = &h.state_problem {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("state not writable: {why}\n"),
        );
    }
    let Some(last) = h.last_pass else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no pass has run yet\n".to_owned(),
        );
    };
    let age = (now - last).to_std().unwrap_or(Duration::ZERO);
    if age > h.max_age {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the last pass ended {} s ago, more than {} s (twice the check schedule's interval)\n",
                age.as_secs(),
                h.max_age.as_secs()
            ),
        );
    }
    (
        StatusCode::OK,
        format!("ok: last pass {} s ago\n", age.as_secs()),
    )
}

/// Where `/healthz` gets its facts (the daemon's status).
pub type HealthSource = Arc<dyn Fn() -> Health + Send + Sync>;

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    health: HealthSource,
}

async fn serve_metrics(State(s): State<Shared>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], s.metrics.encode())
}

async fn healthz(State(s): State<Shared>) -> impl IntoResponse {
    let (status, body) = judge(&(s.health)(), Utc::now());
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
}

/// A running endpoint; stops when dropped or [`Server::stop`]ped.
pub struct Server {
    pub addr: SocketAddr,
    cancel: CancellationToken,
}

impl Server {
    /// Binds `listen` and serves on the current runtime. Not async: a
    /// bind does not wait, and the daemon's reload is synchronous.
    pub fn start(
        listen: SocketAddr,
        metrics: Arc<Metrics>,
        health: HealthSource,
    ) -> Result<Server, String> {
        let cannot = |e: std::io::Error| {
            format!("[metrics] listen = \"{listen}\": cannot listen there: {e}")
        };
        let listener = std::net::TcpListener::bind(listen).map_err(cannot)?;
        listener.set_nonblocking(true).map_err(cannot)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(cannot)?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("[metrics] listen = \"{listen}\": {e}"))?;
        let app = Router::new()
            .route("/metrics", get(serve_metrics))
            .route("/healthz", get(healthz))
            .with_state(Shared { metrics, health });
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "metrics endpoint stopped");
            }
        });
        Ok(Server { addr, cancel })
    }

    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
