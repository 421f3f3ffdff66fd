//! The one task that owns the model (and the cloud side's state). Sources
//! send it events; it applies them, logs every change in one line, updates
//! the metrics, decides for each VIP, and publishes a snapshot for the HTTP
//! handlers. Nothing else mutates the model. A turn makes no system call:
//! even the host's addresses arrive as events.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::cloud::side::CloudSide;
use crate::core::change::Change;
use crate::core::clock::{Mono, Stamp};
use crate::core::input::Event;
use crate::core::message::CloudEvent;
use crate::core::model::Model;
use crate::metrics::Metrics;
use crate::status::Status;

/// How often the snapshot is republished (and the verdicts re-evaluated)
/// even when nothing happens.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// The most events one owner turn applies before it decides and publishes.
pub const BATCH: usize = 256;

pub struct Owner {
    pub model: Model,
    pub metrics: Arc<Metrics>,
    pub publish: watch::Sender<Status>,
    pub node: String,
    pub pair: String,
    pub started: SystemTime,
    /// The cloud side, when VIPs are configured.
    pub cloud: Option<CloudSide>,
    /// When a verdict may change by itself (a grace or back-off ends).
    pub wake: Option<Mono>,
    /// The peer channel, when configured.
    pub peer: Option<PeerLink>,
    /// Where release orders go (`core::release`), when `release_on_crash`.
    pub release: Option<mpsc::Sender<String>>,
}

/// What the owner needs of the peer channel.
pub struct PeerLink {
    /// The peer's address, the metrics' `peer` label.
    pub address: String,
    pub max_age: Duration,
    /// Whether the last report was fresh at the last turn.
    pub fresh: bool,
}

/// Whether a change may change a verdict: claims made before it are
/// re-checked (the generation is bumped).
fn matters(c: &Change) -> bool {
    matches!(
        c,
        Change::Vrrp { .. }
            | Change::Learned { .. }
            | Change::Probe { .. }
            | Change::Keepalived { .. }
            | Change::HostAddresses { .. }
            | Change::Peer { .. }
            | Change::SplitBrain { .. }
    )
}

/// Whether a change hints that the cloud is about to change: a VRRP
/// transition here (and so, often, on the peer), or another MASTER heard.
fn hints(c: &Change) -> bool {
    matches!(
        c,
        Change::Vrrp { .. } | Change::Learned { .. } | Change::OtherMasterSeen { .. }
    )
}

impl Owner {
    /// Applies `first` and whatever else is already queued (up to
    /// `BATCH`), then decides and publishes once: a flood of FIFO lines
    /// costs one decision and one snapshot per batch, not per line.
    fn apply(&mut self, first: Event, queued: &mut mpsc::Receiver<Event>) {
        let mut changes = self.observe(first);
        for _ in 1..BATCH {
            match queued.try_recv() {
                Ok(event) => changes.extend(self.observe(event)),
                Err(_) => break,
            }
        }
        let now = crate::clock::now();
        for change in &changes {
            log_change(change);
            self.metrics.count(change);
        }
        if let Some(c) = &mut self.cloud {
            if changes.iter().any(matters) {
                c.bump();
            }
            if changes.iter().any(hints) {
                c.hint();
            }
            for change in &changes {
                if let Change::NotifyRun {
                    instance, outcome, ..
                } = change
                {
                    c.notify_ran(instance.as_deref(), *outcome, &self.model, now.mono);
                }
            }
        }
        self.metrics.sync(&self.model);
        self.step(now);
        self.publish_now(now);
    }

    /// Applies one event; a crashed MASTER's release is decided on the
    /// model before it (`core::release`) and handed to the release task.
    fn observe(&mut self, event: Event) -> Vec<Change> {
        let release = crate::core::release::to_release(&event, &self.model, self.release.is_some());
        let changes = self.model.observe(event, crate::clock::now());
        if let Some(tx) = &self.release {
            for instance in release {
                if let Err(e) = tx.try_send(instance) {
                    warn!(error = %e, "a release order was dropped: the release task is busy or gone");
                }
            }
        }
        changes
    }

    fn apply_cloud(&mut self, event: CloudEvent) {
        let now = crate::clock::now();
        if let Some(c) = &mut self.cloud {
            for change in c.on_cloud(event, &self.model, now) {
                self.model.record(change, now.wall);
            }
        }
        self.step(now);
        self.publish_now(now);
    }

    /// The peer's freshness and split brain, before the verdicts.
    fn follow_peer(&mut self, now: Stamp) {
        let Some(link) = &mut self.peer else {
            return;
        };
        let fresh = self
            .model
            .peer
            .as_ref()
            .is_some_and(|p| now.mono.since(p.at) < link.max_age);
        if fresh != link.fresh {
            link.fresh = fresh;
            if fresh {
                info!(peer = %link.address, "the peer's watchdog reports: rules 10 and 11 use what it says");
            } else {
                warn!(peer = %link.address, max_age_ms = link.max_age.as_millis() as u64, "no fresh report from the peer's watchdog: the rules apply as without a peer (min_master_age, grace, damping)");
            }
        }
        let changes = self
            .model
            .follow_split_brain(now.mono, link.max_age, &self.node);
        if let Some(c) = &mut self.cloud
            && !changes.is_empty()
        {
            c.bump();
        }
        for change in changes {
            log_change(&change);
            self.model.record(change, now.wall);
        }
        self.metrics.sync_peer(&link.address, &self.model, fresh);
    }

    /// Decides for every VIP.
    fn step(&mut self, now: Stamp) {
        self.follow_peer(now);
        if let Some(c) = &mut self.cloud {
            let (changes, wake) = c.step(now, &self.model);
            for change in changes {
                self.model.record(change, now.wall);
            }
            self.wake = wake;
        }
    }

    fn publish_now(&self, now: Stamp) {
        let mut status = Status::build(&self.model, &self.node, &self.pair, self.started, now.wall);
        if let Some(c) = &self.cloud {
            status.vips = c.view(now, &self.model);
        }
        if let Some(link) = &self.peer {
            let known = self.model.peer.as_ref();
            status.peer = Some(crate::status::PeerStatus {
                address: link.address.clone(),
                fresh: known.is_some_and(|p| now.mono.since(p.at) < link.max_age),
                last_report_at: known.map(|p| crate::status::rfc3339(p.at_wall)),
                report: known.map(|p| p.report.clone()),
            });
        }
        self.publish.send_replace(status);
    }

    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut cloud: Option<mpsc::Receiver<CloudEvent>>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        self.metrics.sync(&self.model);
        self.publish_now(crate::clock::now());
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        async move {
            loop {
                let wake_in = self.wake.map(crate::clock::until);
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = heartbeat.tick() => {
                        let now = crate::clock::now();
                        self.step(now);
                        self.publish_now(now);
                    }
                    _ = tokio::time::sleep(wake_in.unwrap_or_default()), if wake_in.is_some() => {
                        let now = crate::clock::now();
                        self.step(now);
                        self.publish_now(now);
                    }
                    event = events.recv() => match event {
                        Some(event) => self.apply(event, &mut events),
                        None => anyhow::bail!("every event source has ended"),
                    },
                    event = async { cloud.as_mut()?.recv().await }, if cloud.is_some() => match event {
                        Some(event) => self.apply_cloud(event),
                        None => anyhow::bail!("the executor and verifier have ended"),
                    },
                }
            }
        }
        .instrument(info_span!("owner"))
        .await
    }
}

/// One line per change, constant message, values in fields.
pub fn log_change(change: &Change) {
    match change {
        Change::Learned {
            instance,
            state,
            priority,
            source,
            reason,
        } => info!(
            vrrp_instance = %instance,
            state = state.as_str(),
            priority = priority.map(i64::from),
            source = source.as_str(),
            reason = %reason,
            "vrrp state learned at start-up"
        ),
        Change::Vrrp {
            instance,
            from,
            to,
            priority,
            source,
            reason,
        } => info!(
            vrrp_instance = %instance,
            from = from.as_str(),
            to = to.as_str(),
            priority = priority.map(i64::from),
            source = source.as_str(),
            reason = %reason,
            "vrrp state changed"
        ),
        Change::Priority { instance, from, to } => info!(
            vrrp_instance = %instance,
            from = from.map(i64::from),
            to = *to,
            "vrrp priority changed"
        ),
        Change::OtherMasterSeen { instance } => warn!(
            vrrp_instance = %instance,
            "keepalived heard another MASTER with a lower priority (MASTER_RX_LOWER_PRI): possible split brain"
        ),
        Change::Group { group, from, to } => info!(
            group = %group,
            from = from.as_str(),
            to = to.as_str(),
            "vrrp group state changed"
        ),
        Change::Lvs { kind, service, up } => {
            info!(kind, service = %service, up, "lvs server changed")
        }
        Change::Keepalived {
            running: true,
            detail,
        } => info!(detail = %detail, "keepalived is running"),
        Change::Keepalived {
            running: false,
            detail,
        } => warn!(detail = %detail, "keepalived is gone"),
        Change::ProcessCheckFailed {
            reason,
            first: true,
        } => {
            warn!(reason = %reason, "cannot look at keepalived's processes: its state is kept as it was until a look succeeds")
        }
        Change::ProcessCheckFailed { first: false, .. } => {}
        Change::Probe { from, to, detail } => info!(
            from = from.as_str(),
            to = to.as_str(),
            detail = %detail,
            "probe health changed"
        ),
        Change::NameDropped {
            kind,
            name,
            dropped,
        } => {
            // The first, then at every power of two: a flood logs little.
            if dropped.is_power_of_two() {
                warn!(kind, name = %name, dropped, limit = crate::core::model::MAX_NEW_NAMES, "a FIFO line names one name too many of its kind; dropped (counted in vip_watchdog_fifo_names_dropped_total)")
            }
        }
        Change::HostAddresses { added, removed } => info!(
            added = ?added,
            removed = ?removed,
            "this host's addresses changed"
        ),
        Change::InstanceMismatch {
            instance,
            known_to: "keepalived",
        } => {
            warn!(vrrp_instance = %instance, "keepalived reports a VRRP instance that the config does not name: add it to [[keepalived.instance]] (and a [[vip]] if it should move one)")
        }
        Change::InstanceMismatch { instance, .. } => {
            warn!(vrrp_instance = %instance, "the config names a VRRP instance that keepalived's JSON dump does not list: check the name against keepalived.conf (vip-watchdog check-config)")
        }
        Change::NotifyRun {
            instance,
            outcome,
            exit_code,
            duration_ms,
            output,
        } => {
            let instance = instance.as_deref().unwrap_or("(every instance)");
            if outcome.failed() {
                warn!(vrrp_instance = %instance, outcome = outcome.as_str(), exit_code = *exit_code, duration_ms = *duration_ms, output = %output, "a notify script run failed: the watchdog heals without waiting for the rest of grace")
            } else if *outcome == crate::core::words::Outcome::Skipped {
                info!(vrrp_instance = %instance, outcome = outcome.as_str(), why = %output, "a notify script run was skipped: the peer is a healthy MASTER holding the VIP")
            } else {
                info!(vrrp_instance = %instance, outcome = outcome.as_str(), exit_code = *exit_code, duration_ms = *duration_ms, output = %output, "a notify script run succeeded: asking the cloud at once")
            }
        }
        Change::Peer { node, summary } => info!(
            peer = %node,
            summary = %summary,
            "the peer's watchdog reports a change"
        ),
        Change::SplitBrain {
            instance,
            on: true,
            mine,
            peers,
        } => warn!(
            vrrp_instance = %instance,
            this_node = %mine,
            peer = %peers,
            "split brain: this node and its peer are both MASTER; the incumbent keeps the VIP (rule 10), see the runbook"
        ),
        Change::SplitBrain {
            instance,
            on: false,
            mine,
            peers,
        } => info!(
            vrrp_instance = %instance,
            this_node = %mine,
            peer = %peers,
            "split brain over: one MASTER again"
        ),
        Change::Released {
            instance,
            sent: Some(sent),
            ..
        } => info!(
            vrrp_instance = %instance,
            advert = %sent,
            "keepalived crashed while MASTER: sent its priority-0 advert on its behalf, so the peer takes over after its skew time as at a graceful stop"
        ),
        Change::Released {
            instance, error, ..
        } => warn!(
            vrrp_instance = %instance,
            error = error.as_deref().unwrap_or_default(),
            "keepalived crashed while MASTER: its priority-0 advert was not sent; the peer takes over once Keepalived's detection ends"
        ),
        // Logged by the cloud side where they happen.
        Change::VipSeen { .. } | Change::VipVerdict { .. } | Change::ClaimDone { .. } => {}
    }
}
