//! Sending a crashed MASTER's priority-0 advert (`core::release` decides
//! which instances; `keepalived/vrrp.rs` builds the packet).
//!
//! One task, one order at a time. Before it sends it looks again: when a
//! Keepalived process runs by then (restarted, or resumed), it sends
//! nothing. keepalived.conf is read at every order, so an edit that
//! Keepalived was reloaded with is followed. It reports each outcome to the
//! owner (`Event::Released`), which logs and counts it.
//!
//! At start-up it says once, per instance the config names, whether a
//! release could be sent (keepalived.conf readable, the instance's advert
//! reproducible, a raw socket allowed: CAP_NET_RAW).

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::config::KeepalivedConfig;
use crate::core::model::Event;
use crate::keepalived::process::{Observation, observe};
use crate::keepalived::vrrp::{Advert, PROTOCOL, TTL};

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("a Keepalived process may run ({0}): it speaks VRRP itself; nothing sent")]
    Running(String),
    #[error("keepalived.conf: {0}")]
    Conf(#[from] crate::keepalived::conf::ConfError),
    #[error(transparent)]
    Advert(#[from] crate::keepalived::vrrp::AdvertError),
    #[error("interface {0} has no IPv4 address to send from (set unicast_src_ip)")]
    NoSource(String),
    #[error(
        "cannot open a raw VRRP socket: {0} (needs CAP_NET_RAW: the packaged unit grants it; a container needs --cap-add NET_RAW)"
    )]
    Socket(std::io::Error),
    #[error("cannot send on {interface} from {from} to {to}: {error}")]
    Send {
        interface: String,
        from: Ipv4Addr,
        to: Ipv4Addr,
        error: std::io::Error,
    },
}

/// Builds `instance`'s advert from keepalived.conf at `conf`.
pub fn advert(conf: &std::path::Path, instance: &str) -> Result<Advert, ReleaseError> {
    let items = crate::keepalived::conf::read(conf)?;
    Ok(Advert::from_items(&items, instance)?)
}

/// The interface's first IPv4 address, as Keepalived picks its source.
fn interface_v4(interface: &str) -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        if ifa.interface_name != interface {
            return None;
        }
        let addr = ifa.address?;
        addr.as_sockaddr_in().map(|sin| sin.ip())
    })
}

fn raw_socket() -> Result<Socket, ReleaseError> {
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(PROTOCOL)))
        .map_err(ReleaseError::Socket)
}

/// Sends `advert` to each destination; returns where it went.
pub fn send(advert: &Advert) -> Result<String, ReleaseError> {
    let source = advert
        .source
        .or_else(|| interface_v4(&advert.interface))
        .ok_or_else(|| ReleaseError::NoSource(advert.interface.clone()))?;
    let socket = raw_socket()?;
    let send_err = |to: Ipv4Addr| {
        let interface = advert.interface.clone();
        move |error| ReleaseError::Send {
            interface,
            from: source,
            to,
            error,
        }
    };
    let first = advert.destinations.first().copied().unwrap_or(source);
    socket
        .bind_device(Some(OsStr::new(&advert.interface).as_encoded_bytes()))
        .map_err(send_err(first))?;
    socket
        .bind(&SockAddr::from(SocketAddr::V4(SocketAddrV4::new(
            source, 0,
        ))))
        .map_err(send_err(first))?;
    socket.set_ttl_v4(TTL).map_err(send_err(first))?;
    socket.set_multicast_ttl_v4(TTL).map_err(send_err(first))?;
    socket
        .set_multicast_loop_v4(false)
        .map_err(send_err(first))?;
    for &to in &advert.destinations {
        let packet = advert.encode(source, to);
        socket
            .send_to(
                &packet,
                &SockAddr::from(SocketAddr::V4(SocketAddrV4::new(to, 0))),
            )
            .map_err(send_err(to))?;
    }
    Ok(format!("{} from {source}", advert.describe()))
}

/// Whether a look shows no Keepalived process at all.
fn none_left(keepalived: &KeepalivedConfig) -> Result<(), ReleaseError> {
    match observe(keepalived, None) {
        Observation::Gone { exited: true, .. } => Ok(()),
        Observation::Gone { reason, .. } | Observation::Unknown { reason } => {
            Err(ReleaseError::Running(reason))
        }
        Observation::Running { main, .. } => {
            Err(ReleaseError::Running(format!("pid {}", main.pid)))
        }
    }
}

/// One order: two looks a process check apart that both show no Keepalived
/// left, then build and send.
async fn release(
    keepalived: &KeepalivedConfig,
    conf: &std::path::Path,
    instance: &str,
) -> Result<String, ReleaseError> {
    none_left(keepalived)?;
    tokio::time::sleep(keepalived.process_check_interval).await;
    none_left(keepalived)?;
    send(&advert(conf, instance)?)
}

/// Says once whether each named instance could be released.
fn announce(conf: &std::path::Path, instances: &[String]) {
    if let Err(e) = raw_socket() {
        warn!(error = %e, "release_on_crash is on but cannot work: a crashed MASTER's peer will wait out Keepalived's detection");
        return;
    }
    let items = match crate::keepalived::conf::read(conf) {
        Ok(items) => items,
        Err(e) => {
            warn!(error = %e, "release_on_crash cannot read keepalived.conf: a crashed MASTER's peer will wait out Keepalived's detection");
            return;
        }
    };
    for name in instances {
        match Advert::from_items(&items, name) {
            Ok(a) => {
                info!(vrrp_instance = %name, advert = %a.describe(), "release_on_crash: if Keepalived crashes while MASTER, its priority-0 advert is sent on its behalf")
            }
            Err(e) => {
                warn!(vrrp_instance = %name, error = %e, "release_on_crash cannot release this instance: a crashed MASTER's peer will wait out Keepalived's detection")
            }
        }
    }
}

/// Serves release orders (instance names) until cancelled.
pub async fn run(
    keepalived: KeepalivedConfig,
    conf: PathBuf,
    instances: Vec<String>,
    mut orders: mpsc::Receiver<String>,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    async move {
        announce(&conf, &instances);
        loop {
            let instance = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                order = orders.recv() => match order {
                    Some(i) => i,
                    None => return Ok(()),
                },
            };
            let outcome = release(&keepalived, &conf, &instance)
                .await
                .map_err(|e| e.to_string());
            if events
                .send(Event::Released { instance, outcome })
                .await
                .is_err()
            {
                return Ok(());
            }
        }
    }
    .instrument(info_span!("release"))
    .await
}
