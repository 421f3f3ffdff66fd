//! `/metrics`, `/healthz` and `/v1/status`. Handlers read the published
//! snapshot and the metrics; they never touch the model.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::status::Status;

/// `/healthz` fails when the owner task has not published for this long.
const STALE_AFTER: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct AppState {
    status: watch::Receiver<Status>,
    metrics: Arc<Metrics>,
}

pub fn router(status: watch::Receiver<Status>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/v1/status", get(status_handler))
        .with_state(AppState { status, metrics })
}

async fn metrics_handler(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(s): State<AppState>) -> Response {
    let heartbeat = s.status.borrow().heartbeat;
    let age = SystemTime::now()
        .duration_since(heartbeat)
        .unwrap_or_default();
    if age <= STALE_AFTER {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the state owner has not reported for {}s\n", age.as_secs()),
        )
            .into_response()
    }
}

async fn status_handler(State(s): State<AppState>) -> Json<Status> {
    Json(s.status.borrow().clone())
}

pub async fn serve(
    listener: TcpListener,
    status: watch::Receiver<Status>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(status, metrics))
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}
