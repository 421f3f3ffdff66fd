//! The snapshot `/v1/status` serves, built by the owner task from the model
//! and the cloud side's VIP views. It imports only the core: every other
//! module may use it, it uses none of them.

use std::time::SystemTime;

use serde::Serialize;

use crate::core::change::Change;
use crate::core::model::Model;
pub use crate::core::view::{AddressStatus, MastershipView, PermissionView, VipView, rfc3339};
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
    /// This watchdog saw Keepalived exit after it ran (the peer report's
    /// `keepalived_exit_seen`).
    #[serde(skip)]
    pub exit_seen: bool,
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
    /// The snapshot of `core` at `now`, as `/v1/status` shows it.
    pub fn of(
        core: &crate::core::turn::Core,
        node: &str,
        pair: &str,
        started: SystemTime,
        now: crate::core::clock::Stamp,
    ) -> Self {
        let mut status = Status::build(&core.model, node, pair, started, now.wall);
        if let Some(c) = &core.cloud {
            status.vips = c.view(now, &core.model);
        }
        if let Some(link) = &core.peer {
            let known = core.model.peer.as_ref();
            status.peer = Some(PeerStatus {
                address: link.address.clone(),
                fresh: known.is_some_and(|p| p.fresh(now.mono, link.max_age)),
                last_report_at: known.map(|p| rfc3339(p.at_wall)),
                report: known.map(|p| p.report.clone()),
            });
        }
        status
    }

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
                exit_seen: model.keepalived.exit_seen,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `/v1/status` is an interface: its JSON is golden-tested (set
    /// VIP_WATCHDOG_UPDATE_GOLDEN=1 to rewrite tests/golden/status.json after
    /// a deliberate change).
    #[test]
    fn the_status_json_is_as_the_golden_file() {
        use crate::core::input::Event;
        use crate::core::turn::tests::{observed, rig, stamp};
        let mut core = rig();
        let Event::Cloud(event) = observed(10, "eni-peer", &["eipalloc-db"]) else {
            unreachable!("observed() is a cloud answer")
        };
        // The answer applied to the cloud side alone, as the file was made.
        let model = core.model.clone();
        let _ = core
            .cloud
            .as_mut()
            .unwrap()
            .on_cloud(event, &model, stamp(10));
        core.plan(stamp(1_000));
        let status = Status::of(&core, "lb-a", "edge", stamp(0).wall, stamp(1_000));
        let text = serde_json::to_string_pretty(&status).unwrap() + "\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/status.json");
        if std::env::var_os("VIP_WATCHDOG_UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let golden = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            text, golden,
            "update tests/golden/status.json (VIP_WATCHDOG_UPDATE_GOLDEN=1)"
        );
    }
}
