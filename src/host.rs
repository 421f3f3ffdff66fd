//! This host's addresses as an event source: the owner turn never lists
//! them itself. Listed at start-up, then every `interval`; an event only
//! when the set changed. When they cannot be listed, the owner gets an
//! empty set (no private IP is on the host: nothing is claimed) and a
//! warning is logged once.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span, warn};

use crate::core::model::Event;

pub fn list() -> Result<BTreeSet<IpAddr>, nix::Error> {
    crate::keepalived::startup::host_addresses().map(|a| a.into_iter().collect())
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
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            let now = match list() {
                Ok(a) => {
                    failing = false;
                    a
                }
                Err(e) => {
                    if !failing {
                        warn!(error = %e, "cannot list this host's addresses; treating the private IPs as absent");
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
