//! The snapshot `/v1/status` serves, built by the owner task from the model
//! and the cloud side's VIP views. It imports only the core: every other
//! module may use it, it uses none of them.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::Serialize;

use crate::core::change::Change;
use crate::core::model::Model;
use crate::core::words::{Health, Source, VrrpState};
use crate::core::words::{Holder, Mode};

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

/// One VIP: the cloud's view, the verdict and why, damping.
#[derive(Debug, Clone, Serialize)]
pub struct VipView {
    pub name: String,
    /// `eip`, `eip_instance` or `route`.
    pub kind: &'static str,
    pub allocation_id: Option<String>,
    pub private_ip: Option<IpAddr>,
    /// A route VIP's destination.
    pub destination: Option<String>,
    /// A route VIP's route in each of its tables.
    pub routes: Vec<crate::core::target::RouteView>,
    pub vrrp_instance: String,
    pub mode: Mode,
    pub dry_run: bool,
    /// Whether this host carries the address a claim needs on an interface
    /// (the private IP, or a single-address route destination; true when
    /// none is needed): without it, traffic would be black-holed.
    pub private_ip_on_host: bool,
    /// false when EC2 says the allocation ID does not exist.
    pub allocation_known: bool,
    pub cloud: Option<Holder>,
    /// When the request of the cloud's last answer was sent.
    pub observed_at: Option<String>,
    pub verdict: Option<&'static str>,
    pub why: Option<String>,
    pub claim_in_flight: bool,
    /// The present mastership: whether the VIP was here, moves away seen.
    pub mastership: Option<MastershipView>,
    /// Failed or undone claims in the claim window, against `max_claims`.
    pub counted_claims: usize,
    pub max_claims: u32,
    pub fights: u32,
    pub backoff_until: Option<String>,
    /// The actions a claim needs, as far as the cloud has answered.
    pub permissions: Vec<PermissionView>,
    /// With `manage_address = true`: what the address rules last said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<AddressStatus>,
}

/// `/v1/status` for a `manage_address` VIP's private IP.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddressStatus {
    pub interface: String,
    /// The address rules' last reason (`core::address`).
    pub why: &'static str,
    /// A change handed to the address task and not yet seen through.
    pub in_flight: Option<crate::core::address::Change>,
    /// While this node is not MASTER and still carries it: when
    /// `address_hold` ends.
    pub hold_until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MastershipView {
    pub held: bool,
    pub moves_away: u32,
}

/// `/v1/status` for one permission of one VIP.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PermissionView {
    /// The EC2 action, e.g. `AssociateAddress`.
    pub action: &'static str,
    pub allowed: bool,
    /// What showed it: `dry_run` or `call`.
    pub evidence: &'static str,
    pub at: String,
    pub detail: String,
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
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
