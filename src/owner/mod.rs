//! The one task that owns the core (`core::turn::Core`). Sources and cloud
//! tasks send it inputs on one queue; a turn applies them, logs and counts what changed
//! (`log.rs`, `metrics/turn.rs`), plans, hands each part of the plan to its
//! task, and publishes a snapshot for the HTTP handlers. Nothing else
//! mutates the core. A turn makes no system call: even the host's
//! addresses arrive as events.

pub mod log;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::core::clock::{Mono, Stamp};
use crate::core::cloud::Note;
use crate::core::decide::Damping;
use crate::core::input::Event;
use crate::core::message::{AddressJob, Claim, CloudEvent};
use crate::core::pace::Ask;
use crate::core::turn::{Applied, Core, Plan};
use crate::core::words::ClaimOutcome;
use crate::metrics::Metrics;
use crate::status::Status;

pub use log::log_change;
use log::log_note;

/// How often the snapshot is republished (and the verdicts re-evaluated)
/// even when nothing happens.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// The most events one owner turn applies before it decides and publishes.
pub const BATCH: usize = 256;

/// The channels a plan is handed over through, when VIPs are configured.
pub struct Links {
    pub claims: mpsc::Sender<Claim>,
    pub asks: mpsc::Sender<Ask>,
    pub generation: watch::Sender<u64>,
    /// Damping, for the task that writes it to the state directory.
    pub damping: Option<watch::Sender<BTreeMap<String, Damping>>>,
    /// The host's address task, when a VIP has `manage_address = true`.
    pub addresses: Option<mpsc::Sender<AddressJob>>,
}

pub struct Owner {
    pub core: Core,
    pub metrics: Arc<Metrics>,
    pub publish: watch::Sender<Status>,
    pub node: String,
    pub pair: String,
    pub started: SystemTime,
    /// Where the cloud side's plan goes, when VIPs are configured.
    pub links: Option<Links>,
    /// Where release orders go (`core::release`), when `release_on_crash`.
    pub release: Option<mpsc::Sender<String>>,
    /// When a verdict may change by itself (a grace or back-off ends).
    pub wake: Option<Mono>,
}

impl Owner {
    /// Logs and counts what an input changed.
    fn record(&self, applied: &Applied) {
        for change in &applied.changes {
            log_change(change);
            self.metrics.count(change);
        }
        self.notes(&applied.notes);
    }

    fn notes(&self, notes: &[Note]) {
        for note in notes {
            log_note(note);
            self.metrics.note(note);
        }
    }

    /// Applies `first` and whatever else is already queued (up to
    /// `BATCH`), then plans and publishes once: a flood of FIFO lines
    /// costs one decision and one snapshot per batch, not per line.
    fn apply(&mut self, first: Event, queued: &mut mpsc::Receiver<Event>) {
        let mut event = first;
        for n in 1..=BATCH {
            let applied = self.core.apply(event, crate::clock::now());
            self.record(&applied);
            if n == BATCH {
                break;
            }
            match queued.try_recv() {
                Ok(next) => event = next,
                Err(_) => break,
            }
        }
        self.turn(crate::clock::now());
    }

    /// Plans, logs and counts the plan, hands it over, publishes.
    fn turn(&mut self, now: Stamp) {
        let plan = self.core.plan(now);
        if let (Some(fresh), Some(link)) = (plan.peer_fresh, &self.core.peer) {
            if fresh {
                info!(event = "peer_fresh", peer = %link.address, "the peer's watchdog reports: rules 10 and 11 use what it says");
            } else {
                warn!(event = "peer_stale", peer = %link.address, max_age_ms = link.max_age.as_millis() as u64, "no fresh report from the peer's watchdog: the rules apply as without a peer (min_master_age, grace, damping)");
            }
        }
        for change in &plan.changes {
            log_change(change);
        }
        self.notes(&plan.notes);
        self.metrics.sync(&self.core.model);
        if let Some(link) = &self.core.peer {
            self.metrics
                .sync_peer(&link.address, &self.core.model, link.fresh);
        }
        if let Some(cloud) = &self.core.cloud {
            self.metrics.sync_addresses(cloud.addresses_kept());
            self.metrics.sync_handovers(cloud.handovers_waiting());
            self.metrics.sync_splits_in_cloud(cloud.splits_in_cloud());
        }
        self.wake = plan.wake;
        self.send(plan, now);
        self.publish_now(now);
    }

    /// Hands each part of a plan to its task. A part that cannot be handed
    /// over is applied back as having failed, so that the core does not
    /// wait for it.
    fn send(&mut self, plan: Plan, now: Stamp) {
        for instance in plan.releases {
            if let Some(tx) = &self.release
                && let Err(e) = tx.try_send(instance)
            {
                warn!(event = "release_order_dropped", error = %e, "a release order was dropped: the release task is busy or gone");
            }
        }
        let Some(links) = &self.links else {
            return;
        };
        links.generation.send_if_modified(|g| {
            let changed = *g != plan.generation;
            *g = plan.generation;
            changed
        });
        let mut failed = vec![];
        for order in plan.claims {
            let (vip, reason) = (order.claim.vip.clone(), order.claim.reason);
            match links.claims.try_send(order.claim) {
                Ok(()) => {
                    self.metrics.heal(&vip, reason);
                    info!(event = "claim_started", vip = %vip, reason = reason.as_str(), why = %order.why, "claiming the VIP for this node");
                }
                Err(e) => {
                    error!(event = "claim_handover_failed", vip = %vip, error = %e, "cannot hand the claim to the executor");
                    failed.push(CloudEvent::ClaimDone {
                        vip,
                        outcome: ClaimOutcome::Dropped,
                        detail: format!("cannot hand the claim to the executor: {e}"),
                    });
                }
            }
        }
        for ask in plan.asks {
            // A full queue already holds an ask: nothing is lost.
            let _ = links.asks.try_send(ask);
        }
        for order in plan.addresses {
            let Some(tx) = &links.addresses else { break };
            let job = order.job;
            let (vip, change, ip, interface) =
                (job.vip.clone(), job.change, job.ip, job.interface.clone());
            match tx.try_send(job) {
                Ok(()) => {
                    info!(event = "address_change_started", vip = %vip, change = change.as_str(), address = %ip, interface = %interface, why = order.why, "changing the private IP on this host");
                }
                Err(e) => {
                    error!(event = "address_handover_failed", vip = %vip, error = %e, "cannot hand the address change to its task");
                    failed.push(CloudEvent::AddressDone {
                        vip,
                        change,
                        error: Some(format!("cannot hand the address change to its task: {e}")),
                    });
                }
            }
        }
        if let (Some(tx), Some(c)) = (&links.damping, &self.core.cloud) {
            // Compared in place: a copy is made only when damping changed,
            // not at every turn.
            let vips = c.rules();
            tx.send_if_modified(|d| {
                let same = d.len() == vips.len()
                    && d.iter()
                        .zip(vips)
                        .all(|((a, da), (b, st))| a == b && *da == st.damping);
                if !same {
                    *d = vips
                        .iter()
                        .map(|(k, v)| (k.clone(), v.damping.clone()))
                        .collect();
                }
                !same
            });
        }
        for event in failed {
            let applied = self.core.apply(Event::Cloud(event), now);
            self.record(&applied);
        }
    }

    fn publish_now(&self, now: Stamp) {
        let status = Status::of(&self.core, &self.node, &self.pair, self.started, now);
        self.publish.send_replace(status);
    }

    /// The owner's loop: one receiver for every input, the heartbeat and
    /// the core's wake-up.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        self.metrics.sync(&self.core.model);
        self.publish_now(crate::clock::now());
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        async move {
            loop {
                let wake_in = self.wake.map(crate::clock::until);
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = heartbeat.tick() => self.turn(crate::clock::now()),
                    _ = tokio::time::sleep(wake_in.unwrap_or_default()), if wake_in.is_some() => {
                        self.turn(crate::clock::now());
                    }
                    event = events.recv() => match event {
                        Some(event) => self.apply(event, &mut events),
                        None => anyhow::bail!("every event source has ended"),
                    },
                }
            }
        }
        .instrument(info_span!("owner"))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::Model;

    /// A flood is applied in batches of `BATCH`, and no input is lost
    /// between two batches: 3 batches' worth of alternating MASTER and
    /// BACKUP lines are 3 batches' worth of transitions.
    #[test]
    fn batches_lose_no_input() {
        let metrics = Arc::new(Metrics::new("p", "n").unwrap());
        let core = Core::new(Model::new(["VI_1"]), None, None, "a", false);
        let (publish, _status) = watch::channel(Status::of(
            &core,
            "a",
            "p",
            SystemTime::UNIX_EPOCH,
            crate::clock::now(),
        ));
        let mut owner = Owner {
            core,
            metrics: metrics.clone(),
            publish,
            node: "a".into(),
            pair: "p".into(),
            started: SystemTime::UNIX_EPOCH,
            links: None,
            release: None,
            wake: None,
        };
        let lines = 3 * BATCH + 1;
        let (tx, mut rx) = mpsc::channel(lines);
        for i in 0..lines {
            let state = if i % 2 == 0 { "MASTER" } else { "BACKUP" };
            let line =
                crate::keepalived::line::parse(&format!("INSTANCE \"VI_1\" {state} 100")).unwrap();
            tx.try_send(Event::Line {
                line,
                at: crate::clock::now(),
            })
            .unwrap();
        }
        let mut turns = 0;
        while let Ok(first) = rx.try_recv() {
            owner.apply(first, &mut rx);
            turns += 1;
        }
        let transitions: f64 = ["master", "backup"]
            .iter()
            .filter_map(|s| {
                metrics.value(
                    "vip_watchdog_vrrp_transitions_total",
                    &[("vrrp_instance", "VI_1"), ("state", s)],
                )
            })
            .sum();
        assert_eq!(transitions, lines as f64, "every line is a transition");
        assert_eq!(turns, 4, "{lines} lines in batches of {BATCH}");
    }
}
