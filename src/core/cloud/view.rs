//! Each VIP as `/v1/status` shows it, from the cloud side's state.

use super::*;
use crate::core::handover::Handover;
use crate::core::state_tag::Reading;
use crate::core::view::{HandoverStatus, HolderTagStatus};

impl CloudState {
    /// Each VIP as `/v1/status` shows it.
    pub fn view(&self, now: Stamp, model: &Model) -> Vec<VipView> {
        self.vips
            .iter()
            .map(|v| {
                let st = self.rules.vips.get(&v.name);
                let last = self.last.get(&v.name);
                let node = self.node_view(v, model, now.mono);
                VipView {
                    holder_tag: self.state_tags_on().then(|| {
                        let reading = st.and_then(|s| s.holder_tag.as_ref());
                        match reading {
                            Some(Reading::Master { until, node }) => HolderTagStatus {
                                says: "master",
                                writer: Some(node.clone()),
                                why: None,
                                counts_until: Some(rfc3339(now.wall_of(*until))),
                            },
                            Some(Reading::Nothing(why)) => HolderTagStatus {
                                says: "nothing",
                                writer: None,
                                why: Some(why.clone()),
                                counts_until: None,
                            },
                            None => HolderTagStatus {
                                says: "none",
                                writer: None,
                                why: None,
                                counts_until: None,
                            },
                        }
                    }),
                    address_on_host: Self::address_on_host(v, model),
                    handover: (v.handover != Handover::MakeBeforeBreak).then(|| {
                        let master = model
                            .instances
                            .get(&v.vrrp_instance)
                            .is_some_and(|i| i.state == VrrpState::Master);
                        let (why, until) = match &node.release {
                            Release::Waiting { why, until } => (Some(why.clone()), *until),
                            _ => (None, None),
                        };
                        HandoverStatus {
                            mode: v.handover.as_str(),
                            peer: if master {
                                node.release.as_str()
                            } else {
                                "not_master"
                            },
                            why: why.filter(|_| master),
                            fence_until: until.filter(|_| master).map(|u| rfc3339(now.wall_of(u))),
                        }
                    }),
                    name: v.name.clone(),
                    kind: v.target.kind(),
                    allocation_id: v.target.allocation_id().map(str::to_owned),
                    private_ip: match &v.target {
                        VipTarget::EipOnEni { private_ip, .. }
                        | VipTarget::PrivateIp { private_ip } => Some(*private_ip),
                        _ => None,
                    },
                    destination: match &v.target {
                        VipTarget::Route { destination, .. } => Some(destination.clone()),
                        _ => None,
                    },
                    routes: self.routes.get(&v.name).cloned().unwrap_or_default(),
                    vrrp_instance: v.vrrp_instance.clone(),
                    mode: v.policy.mode,
                    dry_run: v.policy.dry_run,
                    private_ip_on_host: node.os_has_private_ip,
                    peer: node.peer.clone(),
                    peer_pending: model.peer.as_ref().is_some_and(|p| {
                        let inst = model.instances.get(&v.vrrp_instance);
                        self.peer_max_age.is_some_and(|a| p.fresh(now.mono, a))
                            && p.pending_master(
                                &v.vrrp_instance,
                                inst.and_then(Instance::mastership),
                            )
                    }),
                    allocation_known: v
                        .target
                        .allocation_id()
                        .is_none_or(|id| !self.unknown.contains(id)),
                    cloud: st.and_then(|s| s.holder.clone()),
                    observed_at: st.and_then(|s| s.seen).map(|m| rfc3339(now.wall_of(m))),
                    verdict: last.map(Verdict::kind),
                    why: last.map(|l| verdict_why(l, now)),
                    claim_in_flight: st.is_some_and(|s| s.in_flight.is_some()),
                    mastership: st
                        .and_then(|s| s.mastership.as_ref())
                        .map(|m| MastershipView {
                            held: m.held,
                            moves_away: m.moves_away,
                        }),
                    counted_claims: st.map_or(0, |s| {
                        s.damping
                            .counted
                            .iter()
                            .filter(|t| now.mono.since(**t) < v.policy.claim_window)
                            .count()
                    }),
                    max_claims: v.policy.max_claims,
                    fights: st.map_or(0, |s| s.damping.fights),
                    backoff_until: st
                        .and_then(|s| s.damping.backoff_until)
                        .filter(|u| *u > now.mono)
                        .map(|u| rfc3339(now.wall_of(u))),
                    permissions: self
                        .permissions
                        .iter()
                        .filter(|((vip, _), _)| *vip == v.name)
                        .map(|(_, p)| p.clone())
                        .collect(),
                    address: v.address.as_ref().zip(self.addresses.get(&v.name)).map(
                        |(m, (st, why))| AddressStatus {
                            interface: m.interface.clone(),
                            why,
                            in_flight: st.in_flight.map(|f| f.change),
                            hold_until: st.released_at.map(|r| rfc3339(now.wall_of(r + m.hold))),
                        },
                    ),
                }
            })
            .collect()
    }
}

impl CloudState {
    /// Each break-before-make VIP, and whether claim rule 13 held this
    /// healthy MASTER's claim back at the last step.
    pub fn handovers_waiting(&self) -> impl Iterator<Item = (&str, bool)> {
        self.handover_waiting
            .iter()
            .map(|(vip, waiting)| (vip.as_str(), *waiting))
    }

    /// Each `manage_address` VIP, and whether address rule A6 keeps its
    /// private IP on this node off MASTER.
    pub fn addresses_kept(&self) -> impl Iterator<Item = (&str, bool)> {
        self.addresses
            .iter()
            .map(|(vip, (st, _))| (vip.as_str(), st.kept))
    }
}

pub fn verdict_why(v: &Verdict, now: Stamp) -> String {
    match v {
        Verdict::Claim { reason, dry_run } => format!(
            "{}the VIP is {} and this node is a healthy MASTER",
            if *dry_run { "dry run: " } else { "" },
            reason.words()
        ),
        Verdict::Wait { until, why } | Verdict::Damped { until, why } => {
            format!("{why} (until {})", rfc3339(now.wall_of(*until)))
        }
        Verdict::Refresh { why } | Verdict::Hold { why } => why.clone(),
    }
}
