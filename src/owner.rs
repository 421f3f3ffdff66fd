//! The one task that owns the model (and the reconciler's state). Sources
//! send it events; it applies them, logs every change in one line, updates
//! the metrics, decides for each VIP, and publishes a snapshot for the HTTP
//! handlers. Nothing else mutates the model.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::core::model::{Change, Event, Model};
use crate::executor::CloudEvent;
use crate::metrics::Metrics;
use crate::reconcile::Reconcile;
use crate::status::Status;

/// How often the snapshot is republished (and the verdicts re-evaluated)
/// even when nothing happens.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

pub struct Owner {
    pub model: Model,
    pub metrics: Arc<Metrics>,
    pub publish: watch::Sender<Status>,
    pub node: String,
    pub pair: String,
    pub started: SystemTime,
    /// The cloud side, when VIPs are configured.
    pub reconcile: Option<Reconcile>,
    /// When a verdict may change by itself (a grace or back-off ends).
    pub wake: Option<SystemTime>,
}

impl Owner {
    fn apply(&mut self, event: Event) {
        let now = SystemTime::now();
        let changes = self.model.observe(event, now);
        for change in &changes {
            log_change(change);
            self.metrics.count(change);
        }
        let relevant = changes.iter().any(|c| {
            matches!(
                c,
                Change::Vrrp { .. }
                    | Change::Learned { .. }
                    | Change::Probe { .. }
                    | Change::Keepalived { .. }
            )
        });
        if let (true, Some(r)) = (relevant, &self.reconcile) {
            r.something_changed();
        }
        self.metrics.sync(&self.model);
        self.reconcile_step(now);
        self.publish_now(now);
    }

    fn apply_cloud(&mut self, event: CloudEvent) {
        let now = SystemTime::now();
        if self.reconcile.is_some() {
            let host = Reconcile::host_addresses();
            if let Some(r) = &mut self.reconcile {
                for change in r.on_cloud(event, &self.model, &host) {
                    self.model.record(change, now);
                }
            }
            self.step_with(now, &host);
        }
        self.publish_now(now);
    }

    fn reconcile_step(&mut self, now: SystemTime) {
        if self.reconcile.is_some() {
            self.step_with(now, &Reconcile::host_addresses());
        }
    }

    /// Decides for every VIP with the host's addresses as read this turn.
    fn step_with(&mut self, now: SystemTime, host: &std::collections::HashSet<std::net::IpAddr>) {
        if let Some(r) = &mut self.reconcile {
            let (changes, wake) = r.step(now, &self.model, host);
            for change in changes {
                self.model.record(change, now);
            }
            self.wake = wake;
        }
    }

    fn publish_now(&self, now: SystemTime) {
        let mut status = Status::build(&self.model, &self.node, &self.pair, self.started, now);
        if let Some(r) = &self.reconcile {
            status.vips = r.view();
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
        self.publish_now(SystemTime::now());
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        async move {
            loop {
                let wake_in = self
                    .wake
                    .map(|w| w.duration_since(SystemTime::now()).unwrap_or_default());
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = heartbeat.tick() => {
                        let now = SystemTime::now();
                        self.reconcile_step(now);
                        self.publish_now(now);
                    }
                    _ = tokio::time::sleep(wake_in.unwrap_or_default()), if wake_in.is_some() => {
                        let now = SystemTime::now();
                        self.reconcile_step(now);
                        self.publish_now(now);
                    }
                    event = events.recv() => match event {
                        Some(event) => self.apply(event),
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
        Change::Probe { from, to, detail } => info!(
            from = from.as_str(),
            to = to.as_str(),
            detail = %detail,
            "probe health changed"
        ),
        // Logged by the reconciler where they happen.
        Change::VipSeen { .. } | Change::VipVerdict { .. } | Change::ClaimDone { .. } => {}
    }
}
