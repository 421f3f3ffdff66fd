//! The accept loop both listeners share (`http.listen` and `peer.listen`):
//! what a flood from the network cannot take from the watchdog.
//!
//! 1. A cap on open connections per listener (`Limits::max_connections`).
//!    Loopback clients have a reserve of their own (`LOOPBACK_RESERVE`), so
//!    that this host's commands (the notify wrapper, `health`, the
//!    container's HEALTHCHECK) get through while the network fills the cap.
//!    A connection over the cap is closed at once, before a byte is read.
//! 2. An address filter (`Admit::Only`: the peer listener takes connections
//!    from `peer.address`'s IP only, not even from loopback), applied before
//!    a byte is read.
//! 3. A header-read timeout: the TLS handshake and each request's head must
//!    arrive within `header_read_timeout`; a kept-alive connection waiting
//!    for its next request is held no longer than that either.
//! 4. An idle timeout: a connection that moves no byte either way for
//!    `idle_timeout` (a body sent a byte a minute) is closed.
//! 5. A failed accept (EMFILE, ENFILE, ENOBUFS) is logged once a minute and
//!    paused on for `ACCEPT_PAUSE`, never a busy loop.
//!
//! Each refusal and timeout is counted (`vip_watchdog_http_connections_*`),
//! never logged per connection: a flood must not become a log flood.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

/// Connections from loopback admitted beyond the cap.
pub const LOOPBACK_RESERVE: usize = 32;
/// How long the loop stops accepting after a failed accept.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(250);
/// How long open connections may finish their request at shutdown.
const DRAIN: Duration = Duration::from_secs(1);

/// What one listener holds open, at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    /// `http.listen`: Prometheus, people, this host's commands.
    pub const HTTP: Limits = Limits {
        max_connections: 256,
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
    };
    /// `peer.listen`: one peer, a short request at a time.
    pub const PEER: Limits = Limits {
        max_connections: 16,
        header_read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
    };
}

/// Whose connections a listener takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Any,
    /// One address only.
    Only(IpAddr),
}

/// Why a connection was closed by the listener rather than the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Rule 1.
    Cap,
    /// Rule 2.
    Address,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Cap => "cap",
            Refusal::Address => "address",
        }
    }
}

/// Rule 2: whether `admit` lets a connection from `from` in.
pub fn admitted(admit: Admit, from: IpAddr) -> bool {
    let from = from.to_canonical();
    match admit {
        Admit::Any => true,
        Admit::Only(ip) => from == ip.to_canonical(),
    }
}

/// Rule 1: the open connections, as two pools (the network's and
/// loopback's reserve).
#[derive(Clone)]
pub struct Slots {
    network: Arc<Semaphore>,
    loopback: Arc<Semaphore>,
}

impl Slots {
    pub fn new(limits: Limits) -> Slots {
        Slots {
            network: Arc::new(Semaphore::new(limits.max_connections)),
            loopback: Arc::new(Semaphore::new(LOOPBACK_RESERVE)),
        }
    }

    /// A slot for a connection from `from`, or None when its pool is full.
    /// Loopback takes a network slot first, its reserve when those are
    /// gone.
    pub fn take(&self, from: IpAddr) -> Option<OwnedSemaphorePermit> {
        let network = self.network.clone().try_acquire_owned().ok();
        if network.is_some() || !from.to_canonical().is_loopback() {
            return network;
        }
        self.loopback.clone().try_acquire_owned().ok()
    }
}

/// The listeners' counters, registered with the watchdog's registry.
#[derive(Clone)]
pub struct ConnectionMetrics {
    open: IntGaugeVec,
    refused: IntCounterVec,
    timed_out: IntCounterVec,
    accept_errors: IntCounterVec,
}

impl ConnectionMetrics {
    pub fn register(r: &Registry) -> Result<ConnectionMetrics, prometheus::Error> {
        let open = IntGaugeVec::new(
            Opts::new(
                "http_connections",
                "Connections open on each listener (http, peer).",
            ),
            &["listener"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "http_connections_refused_total",
                "Connections closed before a byte was read: over the listener's cap (cap), or not from the peer's address (address).",
            ),
            &["listener", "reason"],
        )?;
        let timed_out = IntCounterVec::new(
            Opts::new(
                "http_connections_timed_out_total",
                "Connections closed for a request head (or TLS handshake) not sent in time (header), or no byte moved for the idle timeout (idle).",
            ),
            &["listener", "reason"],
        )?;
        let accept_errors = IntCounterVec::new(
            Opts::new(
                "http_accept_errors_total",
                "Failed accepts on each listener (EMFILE: out of file descriptors).",
            ),
            &["listener"],
        )?;
        r.register(Box::new(open.clone()))?;
        r.register(Box::new(refused.clone()))?;
        r.register(Box::new(timed_out.clone()))?;
        r.register(Box::new(accept_errors.clone()))?;
        let m = ConnectionMetrics {
            open,
            refused,
            timed_out,
            accept_errors,
        };
        for listener in ["http", "peer"] {
            m.open.with_label_values(&[listener]);
            m.accept_errors.with_label_values(&[listener]);
            for r in [Refusal::Cap, Refusal::Address] {
                m.refused.with_label_values(&[listener, r.label()]);
            }
            for t in ["header", "idle"] {
                m.timed_out.with_label_values(&[listener, t]);
            }
        }
        Ok(m)
    }
}

/// How a connection's bytes are carried: plain, or TLS.
pub enum Transport {
    Plain,
    Tls(tokio_rustls::TlsAcceptor),
}

/// One listener's settings.
pub struct Listener {
    /// `http` or `peer`: the metrics' label.
    pub name: &'static str,
    pub limits: Limits,
    pub admit: Admit,
    pub transport: Transport,
}

/// The instant of a connection's last byte, shared with its idle watch.
#[derive(Clone)]
struct Activity {
    origin: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Rule 4: resolves once no byte has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let due = self.last() + idle;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

/// A stream that notes each byte moved.
struct Watched<S> {
    inner: S,
    activity: Activity,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `app` on `listener` until `cancel`, under rules 1-5.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: Listener,
    metrics: ConnectionMetrics,
    cancel: CancellationToken,
) -> io::Result<()> {
    let settings = Arc::new(settings);
    let slots = Slots::new(settings.limits);
    let tracker = TaskTracker::new();
    let mut last_logged: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, from) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Rule 5.
                metrics
                    .accept_errors
                    .with_label_values(&[settings.name])
                    .inc();
                if last_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    last_logged = Some(Instant::now());
                    tracing::warn!(event = "http_accept_failed", listener = settings.name, error = %e, "accepting a connection failed; pausing (counted in vip_watchdog_http_accept_errors_total; logged once a minute)");
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_PAUSE) => continue,
                }
            }
        };
        // Rule 2.
        if !admitted(settings.admit, from.ip()) {
            metrics
                .refused
                .with_label_values(&[settings.name, Refusal::Address.label()])
                .inc();
            continue;
        }
        // Rule 1.
        let Some(permit) = slots.take(from.ip()) else {
            metrics
                .refused
                .with_label_values(&[settings.name, Refusal::Cap.label()])
                .inc();
            continue;
        };
        let (app, settings, metrics, cancel) = (
            app.clone(),
            settings.clone(),
            metrics.clone(),
            cancel.clone(),
        );
        tracker.spawn(async move {
            let open = metrics.open.with_label_values(&[settings.name]);
            open.inc();
            let outcome = connection(stream, from, app, &settings, cancel).await;
            open.dec();
            drop(permit);
            if let Some(reason) = outcome {
                metrics
                    .timed_out
                    .with_label_values(&[settings.name, reason])
                    .inc();
            }
        });
    }
    tracker.close();
    let _ = tokio::time::timeout(DRAIN * 2, tracker.wait()).await;
    Ok(())
}

/// Serves one connection; Some(reason) when it was closed for a timeout.
async fn connection(
    stream: TcpStream,
    from: SocketAddr,
    app: Router,
    settings: &Listener,
    cancel: CancellationToken,
) -> Option<&'static str> {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    let limits = settings.limits;
    match &settings.transport {
        Transport::Plain => {
            let io = Watched {
                inner: stream,
                activity: activity.clone(),
            };
            http1(io, from, app, limits, activity, cancel).await
        }
        Transport::Tls(acceptor) => {
            // Rule 3: the handshake within the header-read timeout.
            let handshake = tokio::time::timeout(
                limits.header_read_timeout,
                acceptor.accept(Watched {
                    inner: stream,
                    activity: activity.clone(),
                }),
            );
            let tls = tokio::select! {
                _ = cancel.cancelled() => return None,
                h = handshake => h,
            };
            match tls {
                Err(_) => Some("header"),
                Ok(Err(_)) => None,
                Ok(Ok(io)) => http1(io, from, app, limits, activity, cancel).await,
            }
        }
    }
}

async fn http1<S>(
    io: S,
    from: SocketAddr,
    app: Router,
    limits: Limits,
    activity: Activity,
    cancel: CancellationToken,
) -> Option<&'static str>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(from));
        let mut app = app.clone();
        async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => match r {
            Err(e) if e.is_timeout() => Some("header"),
            _ => None,
        },
        _ = activity.idle_for(limits.idle_timeout) => Some("idle"),
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, conn).await;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_2_the_peer_listener_admits_its_peer_only() {
        let peer: IpAddr = "10.0.0.12".parse().unwrap();
        let rows = [
            (Admit::Any, "203.0.113.9", true),
            (Admit::Only(peer), "10.0.0.12", true),
            (Admit::Only(peer), "::ffff:10.0.0.12", true),
            (Admit::Only(peer), "127.0.0.1", false),
            (Admit::Only(peer), "::1", false),
            (Admit::Only("127.0.0.1".parse().unwrap()), "127.0.0.1", true),
            (Admit::Only(peer), "10.0.0.13", false),
            (Admit::Only(peer), "::ffff:10.0.0.13", false),
        ];
        for (admit, from, want) in rows {
            assert_eq!(
                admitted(admit, from.parse().unwrap()),
                want,
                "{admit:?} from {from}"
            );
        }
    }

    #[test]
    fn rule_1_the_cap_holds_and_loopback_keeps_its_reserve() {
        let limits = Limits {
            max_connections: 2,
            ..Limits::HTTP
        };
        let slots = Slots::new(limits);
        let net: IpAddr = "10.0.0.9".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let a = slots.take(net).expect("first network slot");
        let _b = slots.take(net).expect("second network slot");
        assert!(slots.take(net).is_none(), "the network is over its cap");
        let reserve: Vec<_> = (0..LOOPBACK_RESERVE)
            .map(|i| slots.take(lo).unwrap_or_else(|| panic!("reserve slot {i}")))
            .collect();
        assert!(slots.take(lo).is_none(), "the reserve is bounded too");
        drop(a);
        assert!(
            slots.take(net).is_some(),
            "a closed connection frees its slot"
        );
        drop(reserve);
    }
}
