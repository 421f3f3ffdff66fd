//! The break-before-make part of the cloud side (`core::handover`): whether
//! the old holder let go of each VIP, whether claim rule 13 holds a
//! healthy MASTER back, and what a claim says of it.

use super::*;
use crate::core::words::Health;

impl CloudState {
    /// Break before make: whether the peer let go of `vip` (`core::handover`).
    pub(super) fn release(&self, vip: &VipConfig, model: &Model, now: Mono) -> Release {
        Self::release_of(vip, model, self.peer_max_age, now)
    }

    pub(super) fn release_of(
        vip: &VipConfig,
        model: &Model,
        peer_max_age: Option<Duration>,
        now: Mono,
    ) -> Release {
        let inst = model.instances.get(&vip.vrrp_instance);
        crate::core::handover::release(
            vip.handover,
            &vip.name,
            model.peer.as_ref(),
            peer_max_age.unwrap_or_default(),
            inst.and_then(Instance::mastership),
            now,
        )
    }

    /// Whether this host carries `vip`'s private IP; `None` when it has
    /// none or the host's addresses are not known yet.
    pub(super) fn address_on_host(vip: &VipConfig, model: &Model) -> Option<bool> {
        let ip = vip.target.host_address()?;
        model.host_addresses.as_ref().map(|a| a.contains(&ip))
    }
}

/// Claim rule 13 is what holds this node back: a healthy MASTER (rule 2)
/// that the cloud shows without the VIP (rules 1 and 3) and whose old
/// holder has not let go.
pub(super) fn held_back(node: &NodeView, holder: Option<&Holder>) -> bool {
    !node.release.may_make()
        && node.vrrp == VrrpState::Master
        && node.keepalived_running
        && node.probe == Health::Up
        && holder.is_some_and(|h| *h != Holder::Here)
}

/// What a claim's reason adds: how the old holder let go.
pub(super) fn how_let_go(release: &Release) -> &'static str {
    match release {
        Release::LetGo { fenced: true } => {
            "; break before make: the old holder has been silent for fence_wait and is taken as down"
        }
        Release::LetGo { fenced: false } => {
            "; break before make: the old holder reported the address removed and its probe down"
        }
        _ => "",
    }
}
