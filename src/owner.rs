//! The one task that owns the model. Sources send it events; it applies
//! them, logs every change in one line, updates the metrics, and publishes a
//! snapshot for the HTTP handlers. Nothing else mutates the model.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::core::model::{Change, Event, Model};
use crate::metrics::Metrics;
use crate::status::Status;

/// How often the snapshot is republished even when nothing happens.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

pub struct Owner {
    pub model: Model,
    pub metrics: Arc<Metrics>,
    pub publish: watch::Sender<Status>,
    pub node: String,
    pub pair: String,
    pub started: SystemTime,
}

impl Owner {
    fn apply(&mut self, event: Event) {
        let now = SystemTime::now();
        for change in self.model.observe(event, now) {
            log_change(&change);
            self.metrics.count(&change);
        }
        self.metrics.sync(&self.model);
        self.publish_now(now);
    }

    fn publish_now(&self, now: SystemTime) {
        let status = Status::build(&self.model, &self.node, &self.pair, self.started, now);
        self.publish.send_replace(status);
    }

    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        self.metrics.sync(&self.model);
        self.publish_now(SystemTime::now());
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = heartbeat.tick() => self.publish_now(SystemTime::now()),
                    event = events.recv() => match event {
                        Some(event) => self.apply(event),
                        None => anyhow::bail!("every event source has ended"),
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
    }
}
