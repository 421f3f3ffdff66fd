//! The address rules' part of a step (`core::address`), for each
//! `manage_address` VIP.

use super::*;

impl CloudState {
    /// The address rules (`core::address`) for each `manage_address` VIP.
    pub(super) fn step_addresses(
        &mut self,
        now: Stamp,
        model: &Model,
        refresh: &mut Option<Ask>,
        out: &mut Step,
    ) {
        for vip in &self.vips {
            let (Some(managed), Some((st, last_why))) =
                (&vip.address, self.addresses.get_mut(&vip.name))
            else {
                continue;
            };
            let inst = model.instances.get(&vip.vrrp_instance);
            let rules = self.rules.vips.get(&vip.name);
            let holder = rules.and_then(|s| s.holder.as_ref());
            let view = AddressView {
                keepalived: model.keepalived.running,
                vrrp: inst.map_or(VrrpState::Unknown, |i| i.state),
                probe: model.probe.health,
                on_host: model
                    .host_addresses
                    .as_ref()
                    .is_some_and(|a| a.contains(&managed.ip)),
                holder,
                seen: rules.and_then(|s| s.seen),
                break_first: vip.handover != Handover::MakeBeforeBreak,
                release: &Self::release_of(vip, model, self.peer_max_age, now.mono),
            };
            let verdict = st.decide(now.mono, &view, managed.hold);
            *last_why = match &verdict {
                AddressVerdict::Act { why, .. } | AddressVerdict::Keep { why, .. } => *why,
            };
            match verdict {
                AddressVerdict::Act { change, why } => {
                    st.sent(change, now.mono);
                    out.addresses.push(AddressOrder {
                        job: AddressJob {
                            vip: vip.name.clone(),
                            change,
                            ip: managed.ip,
                            interface: managed.interface.clone(),
                        },
                        why,
                    });
                }
                AddressVerdict::Keep { refresh: r, .. } => {
                    if r && refresh.is_none() {
                        *refresh = Some(Ask::Now);
                    }
                }
            }
            if let Some(w) = st.wake(managed.hold) {
                earliest(&mut out.wake, w);
            }
        }
    }
}
