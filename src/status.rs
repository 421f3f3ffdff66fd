//! The snapshot `/v1/status` serves, built by the owner task from the model
//! and the cloud side's VIP views. It imports only the core: every other
//! module may use it, it uses none of them.

use std::time::SystemTime;

use serde::Serialize;

use crate::core::change::Change;
pub use crate::core::view::{AddressStatus, MastershipView, PermissionView, VipView, rfc3339};
use crate::core::model::Model;
use crate::core::words::{Health, Source, VrrpState};

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub node: String,
    pub pair: String,
    pub version: &'static str,
    pub started_at: String,
    /// When the owner task last published; `/healthz` checks it is recent.
    #[serde(skip)]
    pub heartbeat: SystemTime,
    pub keepalived: KeepalivedView,
    pub instances: Vec<InstanceView>,
    pub groups: Vec<GroupView>,
    pub lvs: Vec<LvsView>,
    pub probe: ProbeView,
    /// The VIPs this node reconciles: the cloud's view and the verdict.
    pub vips: Vec<VipView>,
    /// The peer's watchdog, with a `[peer]`.
    pub peer: Option<PeerStatus>,
    /// The latest first.
    pub decisions: Vec<DecisionView>,
}

/// What this node knows of its peer's watchdog.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    pub address: String,
    /// The last report is younger than `peer.max_age`.
    pub fresh: bool,
    pub last_report_at: Option<String>,
    /// The last report, when one came.
    pub report: Option<crate::core::peer::Report>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeepalivedView {
    pub running: Option<bool>,
    pub pid: Option<i32>,
    pub vrrp_pid: Option<i32>,
    pub started: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    pub name: String,
    pub state: VrrpState,
    pub priority: Option<u8>,
    pub since: Option<String>,
    pub source: Source,
    pub reason: String,
    pub lower_priority_master_seen_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub name: String,
    pub state: VrrpState,
}

#[derive(Debug, Clone, Serialize)]
pub struct LvsView {
    pub kind: &'static str,
    pub service: String,
    pub up: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeView {
    pub health: Health,
    pub detail: String,
    pub since: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecisionView {
    pub at: String,
    #[serde(flatten)]
    pub change: Change,
}

impl Status {
    pub fn build(
        model: &Model,
        node: &str,
        pair: &str,
        started: SystemTime,
        now: SystemTime,
    ) -> Self {
        Status {
            node: node.into(),
            pair: pair.into(),
            version: env!("CARGO_PKG_VERSION"),
            started_at: rfc3339(started),
            heartbeat: now,
            keepalived: KeepalivedView {
                running: model.keepalived.running,
                pid: model.keepalived.pid,
                vrrp_pid: model.keepalived.vrrp_pid,
                started: model.keepalived.started.map(rfc3339),
                detail: model.keepalived.detail.clone(),
            },
            instances: model
                .instances
                .iter()
                .map(|(name, i)| InstanceView {
                    name: name.clone(),
                    state: i.state,
                    priority: i.priority,
                    since: i.since.map(rfc3339),
                    source: i.source,
                    reason: i.reason.clone(),
                    lower_priority_master_seen_at: i.lower_priority_master_seen_at.map(rfc3339),
                })
                .collect(),
            groups: model
                .groups
                .iter()
                .map(|(name, state)| GroupView {
                    name: name.clone(),
                    state: *state,
                })
                .collect(),
            lvs: model
                .lvs
                .iter()
                .map(|((kind, service), up)| LvsView {
                    kind,
                    service: service.clone(),
                    up: *up,
                })
                .collect(),
            probe: ProbeView {
                health: model.probe.health,
                detail: model.probe.detail.clone(),
                since: model.probe.since.map(rfc3339),
            },
            vips: vec![],
            peer: None,
            decisions: model
                .decisions
                .iter()
                .rev()
                .map(|d| DecisionView {
                    at: rfc3339(d.at),
                    change: d.change.clone(),
                })
                .collect(),
        }
    }
}

/// `/healthz` fails when the owner task has not published for this long.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(5);
