//! `/` (a page for a person), `/metrics`, `/healthz`, `/v1/status` and
//! `POST /v1/switchover` (switchover.rs) on `http.listen`; `POST
//! /v1/notify` and `GET /v1/notify/gate` on `http.local_socket` only
//! (local.rs: the notify wrapper runs on this host). Handlers read the
//! published snapshot and the metrics; they never touch the model. A
//! notify report becomes an event for the owner, like a FIFO line.
//!
//! ```text
//! mod.rs         routes, handlers, serve (plain or TLS)
//! local.rs       the notify wrapper's Unix socket
//! listener.rs    the accept loop both listeners share: caps, timeouts
//! tls.rs         rustls: the server's config, this host's own client
//! auth.rs        basic auth (bcrypt) and extra response headers
//! switchover.rs  a planned switchover: its rules, the drain file, the CLI
//! ```

pub mod auth;
pub mod listener;
pub mod local;
pub mod switchover;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::core::input::Event;
use crate::notify::report::Report;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::status::Status;

/// The URL of `path` on a watchdog listening on `listen`, asked from this
/// host: a wildcard address is asked on loopback.
pub fn local_url(listen: SocketAddr, tls: bool, path: &str) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match listen.ip() {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}{path}", SocketAddr::new(ip, listen.port()))
}

/// Sends `request`; Ok for a 2xx answer, otherwise why, in words: the
/// error's chain, or the status and the answer's body.
pub async fn expect_success(request: reqwest::RequestBuilder) -> Result<(), String> {
    let resp = request.send().await.map_err(|e| crate::error_chain(&e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    Err(format!("{status}: {}", body.trim()))
}

/// `vip-watchdog health`: whether the watchdog of `http` answers
/// `/healthz` with 200 (a container's HEALTHCHECK).
pub async fn check_health(http: &crate::config::HttpConfig) -> Result<(), String> {
    let url = local_url(http.listen, http.web.tls.is_some(), "/healthz");
    let client =
        tls::local_client(&http.web, Duration::from_secs(2)).map_err(|e| crate::error_chain(&e))?;
    expect_success(client.get(&url))
        .await
        .map_err(|e| format!("{url}: {e}"))
}

#[derive(Clone)]
struct AppState {
    status: watch::Receiver<Status>,
    metrics: Arc<Metrics>,
    events: mpsc::Sender<Event>,
    /// `keepalived.drain_file`, and whether basic auth guards the routes.
    drain_file: Arc<std::path::PathBuf>,
    authenticated: bool,
}

pub fn router(
    status: watch::Receiver<Status>,
    metrics: Arc<Metrics>,
    events: mpsc::Sender<Event>,
    web: &crate::config::web::WebConfig,
    drain_file: std::path::PathBuf,
) -> Router {
    let users = Arc::new(auth::Users::new(web.users.clone()));
    Router::new()
        .route("/", get(landing_handler))
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/v1/status", get(status_handler))
        .route("/v1/switchover", post(switchover_handler))
        .with_state(AppState {
            status,
            metrics,
            events,
            drain_file: Arc::new(drain_file),
            authenticated: !web.users.is_empty(),
        })
        .layer(axum::middleware::from_fn_with_state(
            users,
            auth::basic_auth,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(web.clone()),
            auth::add_headers,
        ))
}

async fn notify_handler(State(s): State<AppState>, body: Bytes) -> Response {
    let report = match Report::parse(&body) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(event = "notify_report_unreadable", error = %e, "a notify report that cannot be read: ignored");
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    match s.events.try_send(Event::NotifyRun(report)) {
        Ok(()) => (StatusCode::ACCEPTED, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the state owner cannot take it now: {e}\n"),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct GateQuery {
    instance: Option<String>,
    /// The wrapper's timeout for the run, in milliseconds.
    timeout_ms: Option<u64>,
}

/// How long the gate waits for a peer report newer than this node's MASTER
/// line when the last one says the peer is MASTER (the wrapper gives it
/// `notify::wrapper::GATE_TIMEOUT`).
const GATE_WAIT: std::time::Duration = std::time::Duration::from_millis(400);

/// The run's timeout when the wrapper does not say (an earlier release).
const GATE_DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Whether the notify wrapper should run its script now (notify/gate.rs).
async fn gate_handler(
    State(s): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<GateQuery>,
) -> Response {
    // A "healthy MASTER" report from before this node's MASTER line is no
    // evidence either way: wait a moment for the peer's answer to this
    // node's change (it answers at once), then decide on what came.
    let mut watch = s.status.clone();
    let deadline = tokio::time::Instant::now() + GATE_WAIT;
    let gate = loop {
        let status = watch.borrow_and_update().clone();
        let gate = crate::notify::gate::decide(&status, q.instance.as_deref());
        let pending = status
            .vips
            .iter()
            .any(|v| v.peer_pending && q.instance.as_deref().is_none_or(|i| v.vrrp_instance == i));
        if !(gate.run && pending) {
            break gate;
        }
        match tokio::time::timeout_at(deadline, watch.changed()).await {
            Ok(Ok(())) => continue,
            _ => break gate,
        }
    };
    if gate.run {
        // The run starts now: the owner watches the cloud until it ends.
        // A full queue only loses the watch, never the answer.
        let _ = s.events.try_send(Event::NotifyStarted {
            instance: q.instance,
            timeout: q
                .timeout_ms
                .map_or(GATE_DEFAULT_TIMEOUT, std::time::Duration::from_millis),
        });
    }
    Json(gate).into_response()
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

async fn landing_handler(State(s): State<AppState>) -> Response {
    let status = s.status.borrow().clone();
    let page = crate::landing::render(&status, &s.metrics.failover_series());
    axum::response::Html(page).into_response()
}

async fn healthz(State(s): State<AppState>) -> Response {
    let heartbeat = s.status.borrow().heartbeat;
    let age = SystemTime::now()
        .duration_since(heartbeat)
        .unwrap_or_default();
    if age <= crate::status::STALE_AFTER {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the state owner has not reported for {}s\n", age.as_secs()),
        )
            .into_response()
    }
}

#[derive(serde::Deserialize)]
struct SwitchoverQuery {
    #[serde(default)]
    undo: bool,
}

/// Drains this node (or gives it back): switchover.rs's rules 1-3, then the
/// drain file. From loopback, or from anywhere once basic auth guards it.
async fn switchover_handler(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::extract::Query(q): axum::extract::Query<SwitchoverQuery>,
) -> Response {
    if !peer.ip().is_loopback() && !s.authenticated {
        tracing::warn!(event = "switchover_refused", peer = %peer, reason = "not loopback, and no basic-auth users", "a switchover request refused");
        return (
            StatusCode::FORBIDDEN,
            "a switchover is taken from loopback, or from anywhere once the web config has basic_auth_users\n",
        )
            .into_response();
    }
    let status = serde_json::to_value(&*s.status.borrow()).unwrap_or_default();
    let note = match switchover::refusal(&status, q.undo) {
        Ok(note) => note,
        Err(why) => {
            tracing::warn!(event = "switchover_refused", peer = %peer, reason = %why, "a switchover request refused");
            return (StatusCode::CONFLICT, format!("{why}\n")).into_response();
        }
    };
    let file = s.drain_file.display().to_string();
    if let Err(e) = switchover::write_drain(&s.drain_file, !q.undo) {
        tracing::error!(event = "switchover_failed", file = %file, error = %e, "cannot write the drain file");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write {file}: {e}\n"),
        )
            .into_response();
    }
    tracing::warn!(event = "switchover_requested", drain = !q.undo, file = %file, peer = %peer, note = note.as_deref().unwrap_or(""), "switchover: the drain file written; keepalived hands over (or takes back) through its vrrp_track_file");
    Json(switchover::Answer {
        drained: !q.undo,
        file,
        note,
    })
    .into_response()
}

async fn status_handler(State(s): State<AppState>) -> Json<Status> {
    Json(s.status.borrow().clone())
}

/// Serves until `cancel`: plain HTTP, or TLS when the web config has
/// `tls_server_config`, under the listener's limits (listener.rs).
/// The two listeners: `http.listen` (TCP) and the notify wrapper's
/// socket (`local`, at `local_path`).
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: TcpListener,
    local: tokio::net::UnixListener,
    local_path: std::path::PathBuf,
    status: watch::Receiver<Status>,
    metrics: Arc<Metrics>,
    events: mpsc::Sender<Event>,
    web: crate::config::web::WebConfig,
    drain_file: std::path::PathBuf,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let transport = match tls::server(&web).map_err(anyhow::Error::msg)? {
        Some(tls) => listener::Transport::Tls(tokio_rustls::TlsAcceptor::from(tls)),
        None => listener::Transport::Plain,
    };
    let connections = metrics.connections.clone();
    let local_app = local::router(AppState {
        status: status.clone(),
        metrics: metrics.clone(),
        events: events.clone(),
        drain_file: Arc::new(drain_file.clone()),
        authenticated: false,
    });
    let app = router(status, metrics, events, &web, drain_file);
    let settings = listener::Listener {
        name: "http",
        limits: listener::Limits::HTTP,
        admit: listener::Admit::Any,
        transport,
    };
    tokio::try_join!(
        async {
            listener::serve(listener, app, settings, connections, cancel.clone())
                .await
                .map_err(anyhow::Error::from)
        },
        local::serve(local, local_path, local_app, cancel.clone()),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_urls_ask_loopback_over_the_listeners_scheme() {
        let rows = [
            ("0.0.0.0:9842", false, "http://127.0.0.1:9842/healthz"),
            ("0.0.0.0:9842", true, "https://127.0.0.1:9842/healthz"),
            ("[::]:9842", true, "https://[::1]:9842/healthz"),
            ("10.0.0.5:80", false, "http://10.0.0.5:80/healthz"),
        ];
        for (listen, tls, want) in rows {
            assert_eq!(local_url(listen.parse().unwrap(), tls, "/healthz"), want);
        }
    }
}
