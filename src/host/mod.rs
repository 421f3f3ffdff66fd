//! This host's addresses as an event source: the owner turn never lists
//! them itself. Listed at start-up, again as soon as the kernel says an
//! address changed (a netlink socket subscribed to the address groups: a
//! MASTER's claim waits for Keepalived to add the private IP, rule 6, so
//! this is on the failover path), and every `interval` in case a
//! notification was lost; an event only when the set changed. When they
//! cannot be listed, the owner gets an empty set (no private IP is on the
//! host: nothing is claimed) and a warning is logged once.

pub mod address;
pub mod file;
pub mod forwarding;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use std::os::fd::{AsRawFd, OwnedFd};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span, warn};

use crate::core::input::Event;

pub fn list() -> Result<BTreeSet<IpAddr>, nix::Error> {
    crate::keepalived::startup::host_addresses().map(|a| a.into_iter().collect())
}

/// A netlink socket that becomes readable when an IPv4 or IPv6 address of
/// this host is added or removed. Its messages are only a wake-up: the
/// addresses are listed again, whole.
fn subscribe() -> nix::Result<OwnedFd> {
    use nix::sys::socket::{
        AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, socket,
    };
    const RTMGRP_IPV4_IFADDR: u32 = 0x10;
    const RTMGRP_IPV6_IFADDR: u32 = 0x100;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    // A blocking socket, read on a thread of its own; the timeout lets the
    // thread see that its task ended.
    nix::sys::socket::setsockopt(
        &fd,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(1, 0),
    )?;
    bind(
        fd.as_raw_fd(),
        &NetlinkAddr::new(0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR),
    )?;
    Ok(fd)
}

/// Wakes `tx` at every notification of `fd`, until `tx`'s receiver is
/// gone (checked at least every second).
fn watch(fd: OwnedFd, tx: mpsc::Sender<()>) {
    let mut buf = [0u8; 8192];
    while !tx.is_closed() {
        match nix::sys::socket::recv(
            fd.as_raw_fd(),
            &mut buf,
            nix::sys::socket::MsgFlags::empty(),
        ) {
            // A full queue already holds a wake-up.
            Ok(n) if n > 0 => {
                let _ = tx.try_send(());
            }
            Ok(_) | Err(nix::Error::EAGAIN | nix::Error::EINTR) => {}
            Err(e) => {
                warn!(event = "host_netlink_ended", error = %e, "address change notifications ended; listing every interval only");
                return;
            }
        }
    }
}

pub async fn run(
    interval: Duration,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    async move {
        let mut last: Option<BTreeSet<IpAddr>> = None;
        let mut failing = false;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changed = match subscribe() {
            Ok(fd) => {
                let (tx, rx) = mpsc::channel(1);
                std::thread::Builder::new()
                    .name("address changes".into())
                    .spawn(move || watch(fd, tx))?;
                Some(rx)
            }
            Err(e) => {
                warn!(event = "host_netlink_unavailable", error = %e, interval_ms = interval.as_millis() as u64, "cannot subscribe to address changes (netlink); listing them every interval only");
                None
            }
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tick.tick() => {}
                woke = async { changed.as_mut()?.recv().await }, if changed.is_some() => {
                    if woke.is_none() {
                        changed = None;
                    }
                }
            }
            let now = match list() {
                Ok(a) => {
                    failing = false;
                    a
                }
                Err(e) => {
                    if !failing {
                        warn!(event = "host_addresses_unreadable", error = %e, "cannot list this host's addresses; treating the private IPs as absent");
                    }
                    failing = true;
                    BTreeSet::new()
                }
            };
            if last.as_ref() != Some(&now) {
                last = Some(now.clone());
                if events.send(Event::HostAddresses(now)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    .instrument(info_span!("host addresses"))
    .await
}
