//! `POST /v1/peer` on `peer.listen`: each message checked by the guard
//! (`message.rs`), counted by result, and an accepted report handed to the
//! owner. A refusal is logged at most once per result per minute.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::message::{self, Guard, Refused, Signed};
use crate::core::input::Event;
use crate::metrics::Metrics;

#[derive(Clone)]
struct Receiver {
    guard: Arc<Mutex<Guard>>,
    metrics: Arc<Metrics>,
    events: mpsc::Sender<Event>,
    pair: String,
    node: String,
    logged: Arc<Mutex<HashMap<&'static str, Instant>>>,
}

/// How often one kind of refusal is logged.
const LOG_EVERY: Duration = Duration::from_secs(60);

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Receiver {
    fn check(&self, headers: &HeaderMap, body: &[u8]) -> Result<message::Report, Refused> {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let signed = Signed {
            timestamp: h(message::TIMESTAMP),
            nonce: h(message::NONCE),
            signature: h(message::SIGNATURE),
            body,
        };
        let report = self
            .guard
            .lock()
            .map_err(|_| Refused::Malformed("the guard is poisoned".into()))?
            .accept(&signed, unix_ms(SystemTime::now()))?;
        if report.pair != self.pair {
            return Err(Refused::Foreign(format!(
                "pair {:?}, not {:?}",
                report.pair, self.pair
            )));
        }
        if report.node == self.node {
            return Err(Refused::Foreign(format!(
                "node {:?} is this node: peer.address points back here",
                report.node
            )));
        }
        Ok(report)
    }

    fn log_refusal(&self, from: SocketAddr, e: &Refused) {
        let mut logged = match self.logged.lock() {
            Ok(l) => l,
            Err(_) => return,
        };
        let now = Instant::now();
        let due = logged
            .get(e.label())
            .is_none_or(|t| now.duration_since(*t) >= LOG_EVERY);
        if due {
            logged.insert(e.label(), now);
            tracing::warn!(event = "peer_message_refused", from = %from, result = e.label(), error = %e, "a peer message refused (counted in vip_watchdog_peer_messages_total; logged once a minute per result)");
        }
    }
}

async fn take(
    State(r): State<Receiver>,
    axum::extract::ConnectInfo(from): axum::extract::ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match r.check(&headers, &body) {
        Ok(report) => {
            r.metrics.peer_message("accepted");
            match r.events.try_send(Event::Peer(report)) {
                Ok(()) => (StatusCode::ACCEPTED, "ok\n").into_response(),
                Err(e) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the state owner cannot take it now: {e}\n"),
                )
                    .into_response(),
            }
        }
        Err(e) => {
            r.metrics.peer_message(e.label());
            r.log_refusal(from, &e);
            let status = match e {
                Refused::Unauthenticated => StatusCode::UNAUTHORIZED,
                Refused::Malformed(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::CONFLICT,
            };
            // The refusal's kind only: nothing that helps a forger.
            (status, format!("refused: {}\n", e.label())).into_response()
        }
    }
}

/// The receiver's settings.
pub struct Options {
    pub secret: Vec<u8>,
    pub replay_window: Duration,
    pub pair: String,
    pub node: String,
    /// `peer.address`'s IP: connections from any other are closed before
    /// a byte is read.
    pub peer: std::net::IpAddr,
}

pub async fn serve(
    listener: TcpListener,
    o: Options,
    metrics: Arc<Metrics>,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let state = Receiver {
        guard: Arc::new(Mutex::new(Guard::new(o.secret, o.replay_window))),
        metrics,
        events,
        pair: o.pair,
        node: o.node,
        logged: Default::default(),
    };
    let connections = state.metrics.connections.clone();
    let app = Router::new()
        .route(message::PATH, post(take))
        .layer(DefaultBodyLimit::max(message::MAX_BODY))
        .with_state(state);
    let settings = crate::http::listener::Listener {
        name: "peer",
        limits: crate::http::listener::Limits::PEER,
        admit: crate::http::listener::Admit::Only(o.peer),
        transport: crate::http::listener::Transport::Plain,
    };
    crate::http::listener::serve(listener, app, settings, connections, cancel).await
}
