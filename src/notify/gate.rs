//! Whether the notify wrapper should run the script now: asked of the local
//! watchdog (`GET /v1/notify/gate?instance=NAME`, its Unix socket) before each
//! run. Pure: the published status in, a yes or no with its reason out.
//!
//! The run is skipped only when running it would steal the VIP from a
//! healthy peer that holds it: a fresh peer report says the peer is MASTER
//! of the instance, with Keepalived running and its probe up, and this
//! node's view of the cloud shows every VIP of the instance on the peer's
//! ENI (a split brain, or this node MASTER for a moment at boot). In every
//! other case the script runs, as Keepalived meant; and a watchdog that
//! does not answer in time lets it run too (the wrapper's side).

use serde::{Deserialize, Serialize};

use crate::core::peer::PeerView;
use crate::core::words::Holder;
use crate::status::Status;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    pub run: bool,
    pub why: String,
}

fn run(why: impl Into<String>) -> Gate {
    Gate {
        run: true,
        why: why.into(),
    }
}

/// The gate for a run for `instance` (`None`: every VIP), from the
/// snapshot: the peer's view of each VIP's instance is the one the core
/// computed for the rules this turn (`VipView::peer`).
pub fn decide(status: &Status, instance: Option<&str>) -> Gate {
    let Some(peer) = &status.peer else {
        return run("no peer channel");
    };
    let vips: Vec<_> = status
        .vips
        .iter()
        .filter(|v| instance.is_none_or(|i| v.vrrp_instance == i))
        .collect();
    if vips.is_empty() {
        return run("no VIP follows this instance");
    }
    for v in &vips {
        let eni = match &v.peer {
            PeerView::Unknown => return run("no fresh report from the peer"),
            PeerView::NotMaster => {
                return run(format!("the peer is not MASTER of {}", v.vrrp_instance));
            }
            PeerView::Master { healthy: false, .. } => return run("the peer is not healthy"),
            PeerView::Master { eni, .. } => eni,
        };
        let on_peer = matches!(
            &v.cloud,
            Some(Holder::Elsewhere { network_interface_id: Some(e), .. }) if Some(e) == eni.as_ref()
        );
        if !on_peer {
            return run(format!(
                "the cloud does not show VIP {} on the peer",
                v.name
            ));
        }
    }
    Gate {
        run: false,
        why: format!(
            "the peer {} is a healthy MASTER and the cloud shows the VIP on it: running the script would steal it",
            peer.report
                .as_ref()
                .map_or("(unknown)", |r| r.node.as_str())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::Mono;
    use crate::core::model::Model;
    use crate::core::peer::{InstanceReport, Report};
    use crate::core::words::{Health, Mode, VrrpState};
    use crate::status::{PeerStatus, VipView};
    use std::time::{Duration, SystemTime};

    fn vip(cloud: Option<Holder>, peer: PeerView) -> VipView {
        VipView {
            name: "web".into(),
            kind: "eip",
            allocation_id: None,
            private_ip: None,
            destination: None,
            routes: vec![],
            vrrp_instance: "VI_1".into(),
            mode: Mode::Heal,
            dry_run: false,
            private_ip_on_host: true,
            peer,
            allocation_known: true,
            cloud,
            observed_at: None,
            verdict: None,
            why: None,
            claim_in_flight: false,
            mastership: None,
            counted_claims: 0,
            max_claims: 3,
            fights: 0,
            backoff_until: None,
            permissions: vec![],
            address: None,
            peer_pending: false,
            address_on_host: None,
            handover: None,
            holder_tag: None,
        }
    }

    fn on(eni: &str) -> Option<Holder> {
        Some(Holder::Elsewhere {
            network_interface_id: Some(eni.into()),
            private_ip: None,
        })
    }

    fn peer(fresh: bool, running: bool, probe: Health, state: VrrpState) -> Option<PeerStatus> {
        Some(PeerStatus {
            address: "10.0.0.2:9843".into(),
            fresh,
            last_report_at: None,
            report: Some(Report {
                node: "a".into(),
                pair: "edge".into(),
                boot_id: "x".into(),
                seq: 1,
                keepalived_running: Some(running),
                keepalived_exit_seen: false,
                probe,
                instances: vec![InstanceReport {
                    name: "VI_1".into(),
                    state,
                    priority: Some(150),
                    since: None,
                    source: Some(crate::core::words::Source::Fifo),
                }],
                vips: vec![],
                eni: Some("eni-a".into()),
            }),
        })
    }

    /// (case, peer, this node's view of the cloud, instance asked, runs)
    #[test]
    fn the_script_is_skipped_only_when_it_would_steal_from_a_healthy_holder() {
        use Health::*;
        use VrrpState::*;
        let rows = [
            ("no peer channel", None, on("eni-a"), Some("VI_1"), true),
            (
                "a stale report",
                peer(false, true, Up, Master),
                on("eni-a"),
                Some("VI_1"),
                true,
            ),
            (
                "the peer is BACKUP",
                peer(true, true, Up, Backup),
                on("eni-a"),
                Some("VI_1"),
                true,
            ),
            (
                "the peer's probe is down",
                peer(true, true, Down, Master),
                on("eni-a"),
                Some("VI_1"),
                true,
            ),
            (
                "the peer's Keepalived is down",
                peer(true, false, Up, Master),
                on("eni-a"),
                Some("VI_1"),
                true,
            ),
            (
                "the cloud shows it nowhere",
                peer(true, true, Up, Master),
                Some(Holder::Nowhere),
                Some("VI_1"),
                true,
            ),
            (
                "on a third ENI",
                peer(true, true, Up, Master),
                on("eni-c"),
                Some("VI_1"),
                true,
            ),
            (
                "the cloud not known yet",
                peer(true, true, Up, Master),
                None,
                Some("VI_1"),
                true,
            ),
            (
                "another instance",
                peer(true, true, Up, Master),
                on("eni-a"),
                Some("VI_2"),
                true,
            ),
            (
                "a healthy MASTER peer holding it: skip",
                peer(true, true, Up, Master),
                on("eni-a"),
                Some("VI_1"),
                false,
            ),
            (
                "the same, for every VIP",
                peer(true, true, Up, Master),
                on("eni-a"),
                None,
                false,
            ),
        ];
        for (case, p, cloud, instance, want) in rows {
            // The view the core computes from the report: fresh is younger
            // than max_age (3 s), stale is 10 s old.
            let view =
                p.as_ref()
                    .and_then(|p| p.report.clone())
                    .map_or(PeerView::Unknown, |report| {
                        let known = crate::core::peer::PeerKnown {
                            report,
                            at: Mono::from_millis(0),
                            at_wall: SystemTime::UNIX_EPOCH,
                        };
                        let now = Mono::from_millis(if p.as_ref().is_some_and(|p| p.fresh) {
                            0
                        } else {
                            10_000
                        });
                        known.view("VI_1", now, Duration::from_secs(3), (Some(100), "b"))
                    });
            let mut status = Status::build(
                &Model::new(["VI_1"]),
                "b",
                "edge",
                SystemTime::now(),
                SystemTime::now(),
            );
            status.vips = vec![vip(cloud, view)];
            status.peer = p;
            let g = decide(&status, instance);
            assert_eq!(g.run, want, "{case}: {g:?}");
        }
    }
}
