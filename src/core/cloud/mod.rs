//! The cloud side of a turn: what the cloud showed of each VIP, the claim
//! rules' state (`decide.rs`), the address rules' state (`address.rs`), the
//! permissions, routes and allocation IDs the cloud answered about, and the
//! last verdict. Pure: `on_cloud` applies an answer, `step` decides for
//! every VIP and says what to hand over; both return `Note`s for the logs
//! and the metrics instead of writing them.
//!
//! The generation: every claim carries the generation its verdict was made
//! in; the core bumps it on any change that matters to a verdict, and the
//! executor sends a mutating call only while it is unchanged.

mod address;
mod handover;
mod note;
mod tags;
mod view;

pub use note::{AddressOrder, ClaimOrder, Note, Step};
pub use view::verdict_why;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use crate::core::address::{AddressState, AddressVerdict, AddressView};
use crate::core::change::Change;
use crate::core::clock::{Mono, Stamp};
use crate::core::decide::{Damping, NodeView, Observed, Rules, Verdict, VipState};
use crate::core::handover::{Handover, Release};
use crate::core::message::{AddressJob, Claim, CloudEvent, Evidence};
use crate::core::model::{Instance, Model};
use crate::core::pace::Ask;
use crate::core::peer::PeerView;
use crate::core::seen::{Action, Me, Seen, view_of};
use crate::core::target::{RouteView, VipTarget};
use crate::core::view::{AddressStatus, MastershipView, PermissionView, VipView, rfc3339};
use crate::core::vip::VipConfig;
use crate::core::words::{ClaimOutcome, Holder, VrrpState};

/// The longest a wrapped notify run is watched, whatever its timeout.
pub const WATCH_AT_MOST: Duration = Duration::from_secs(60);

pub struct CloudState {
    vips: Vec<VipConfig>,
    /// This node's instance and ENI.
    me: Me,
    rules: Rules,
    generation: u64,
    last: BTreeMap<String, Verdict>,
    /// What the cloud last said about each (VIP, action) this node needs.
    permissions: BTreeMap<(String, Action), PermissionView>,
    /// Allocation IDs EC2 says do not exist.
    unknown: BTreeSet<String>,
    /// Each route VIP's routes, table by table, as last seen.
    routes: BTreeMap<String, Vec<RouteView>>,
    /// Whether this node's ENI has its source/destination check on.
    source_dest_check: Option<bool>,
    /// With a peer channel: how long a peer report is knowledge
    /// (rules 10 and 11); `None` without one.
    peer_max_age: Option<Duration>,
    /// This node's name, for rule 10's tie-break.
    node: String,
    /// The address rules' state of each `manage_address` VIP, and their
    /// last reason.
    addresses: BTreeMap<String, (AddressState, &'static str)>,
    /// Asks made while applying inputs, handed over at the next step.
    asks: Vec<Ask>,
    /// Until when a wrapped notify run is watched (`Ask::Watch`).
    watching: Option<Mono>,
    /// Each break-before-make VIP: whether claim rule 13 holds back this
    /// healthy MASTER's claim (the old holder has not let go).
    handover_waiting: BTreeMap<String, bool>,
    /// With state tags on: how long a tag counts from when it was written
    /// (rule 14).
    state_tag_for: Option<Duration>,
}

fn earliest(wake: &mut Option<Mono>, at: Mono) {
    *wake = Some(wake.map_or(at, |w| w.min(at)));
}

impl CloudState {
    /// `damping` as loaded from the state directory.
    pub fn new(vips: Vec<VipConfig>, me: Me, damping: BTreeMap<String, Damping>) -> Self {
        let mut rules = Rules::new(vips.iter().map(|v| v.name.as_str()));
        for (vip, d) in damping {
            if let Some(st) = rules.vips.get_mut(&vip) {
                st.damping = d;
            }
        }
        let addresses = vips
            .iter()
            .filter(|v| v.address.is_some())
            .map(|v| (v.name.clone(), (AddressState::default(), "")))
            .collect();
        Self {
            vips,
            me,
            rules,
            generation: 0,
            last: BTreeMap::new(),
            permissions: BTreeMap::new(),
            unknown: BTreeSet::new(),
            routes: BTreeMap::new(),
            source_dest_check: None,
            peer_max_age: None,
            node: String::new(),
            addresses,
            asks: vec![],
            watching: None,
            handover_waiting: BTreeMap::new(),
            state_tag_for: None,
        }
    }

    /// Rules 10 and 11 use the peer's reports, younger than `max_age`.
    pub fn with_peer(mut self, node: &str, max_age: Duration) -> Self {
        self.node = node.to_owned();
        self.peer_max_age = Some(max_age);
        self
    }

    pub fn vips(&self) -> &[VipConfig] {
        &self.vips
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Each VIP's rule state (its damping is what the state directory keeps).
    pub fn rules(&self) -> &BTreeMap<String, VipState> {
        &self.rules.vips
    }

    /// A change that matters to verdicts: claims in flight made before it
    /// are dropped before their next mutating call.
    pub fn bump(&mut self) {
        self.generation += 1;
    }

    /// Something hints that the cloud changed or is about to (a VRRP
    /// transition, another MASTER heard): describe now and faster for a while.
    pub fn hint(&mut self) {
        self.asks.push(Ask::Hint);
    }

    /// A wrapped notify run for `instance` began at `at` and may last
    /// `timeout`: when a VIP follows the instance, the cloud is watched
    /// (`Ask::Watch`) until the run ends, so that the script's move is seen
    /// when it happens.
    pub fn notify_started(&mut self, instance: Option<&str>, timeout: Duration, at: Mono) {
        if self
            .vips
            .iter()
            .any(|v| instance.is_none_or(|i| i == v.vrrp_instance))
        {
            let until = at + timeout.min(WATCH_AT_MOST);
            self.watching = Some(until);
            self.asks.push(Ask::Watch { until });
        }
    }

    /// The notify wrapper reported a run for `instance` (every VIP when
    /// `None`): its end, success or failure, ends the grace of each VIP of
    /// it (rule 5); a success asks the cloud at once, so that the latency
    /// sample ends when the cloud changed (and a failure's claim asks for
    /// its own fresh view, rule 7).
    pub fn notify_ran(
        &mut self,
        instance: Option<&str>,
        outcome: crate::core::words::Outcome,
        model: &Model,
        at: Mono,
    ) {
        let mut confirm = false;
        for vip in &self.vips {
            if instance.is_some_and(|i| i != vip.vrrp_instance) {
                continue;
            }
            if outcome.failed() || outcome == crate::core::words::Outcome::Succeeded {
                let node = self.node_view(vip, model, at);
                self.rules.notify_ended(&vip.name, at, &node);
                confirm |= !outcome.failed();
            }
        }
        if confirm {
            self.asks.push(Ask::Confirm);
        }
        // The run is over: so is its watch.
        if self.watching.take().is_some() {
            self.asks.push(Ask::Watch { until: at });
        }
    }

    fn node_view(&self, vip: &VipConfig, model: &Model, now: Mono) -> NodeView {
        let inst = model.instances.get(&vip.vrrp_instance);
        let vrrp = inst.map_or(VrrpState::Unknown, |i| i.state);
        let peer = match (&model.peer, self.peer_max_age) {
            (Some(p), Some(max_age)) => p.view_since(
                &vip.vrrp_instance,
                now,
                max_age,
                (inst.and_then(|i| i.priority), &self.node),
                inst.and_then(Instance::mastership),
            ),
            _ => PeerView::Unknown,
        };
        NodeView {
            release: self.release(vip, model, now),
            peer,
            vrrp,
            since: inst.and_then(|i| i.since_mono),
            seen_begin: inst.is_some_and(|i| i.announced),
            other_master: inst.and_then(|i| i.other_master_at),
            keepalived_running: model.keepalived.running == Some(true),
            probe: model.probe.health,
            os_has_private_ip: vip.target.host_address().is_none_or(|ip| {
                model
                    .host_addresses
                    .as_ref()
                    .is_some_and(|a| a.contains(&ip))
            }),
        }
    }

    /// Records what the cloud said about `action` for `vips`.
    fn permission(
        &mut self,
        vips: &[String],
        action: Action,
        allowed: bool,
        detail: String,
        evidence: Evidence,
        at: SystemTime,
    ) -> Vec<Note> {
        let mut notes = vec![];
        for vip in vips {
            let before = self
                .permissions
                .get(&(vip.clone(), action))
                .map(|p| p.allowed);
            notes.push(Note::Permission {
                vip: vip.clone(),
                action,
                allowed,
                before,
                evidence,
                detail: detail.clone(),
            });
            self.permissions.insert(
                (vip.clone(), action),
                PermissionView {
                    action: action.as_str(),
                    allowed,
                    evidence: evidence.as_str(),
                    at: rfc3339(at),
                    detail: detail.clone(),
                },
            );
        }
        notes
    }

    /// Applies a cloud event: the changes to record as decisions, and the
    /// notes.
    pub fn on_cloud(
        &mut self,
        event: CloudEvent,
        model: &Model,
        now: Stamp,
    ) -> (Vec<Change>, Vec<Note>) {
        let mut out = vec![];
        let mut notes = vec![];
        // Every describe is evidence of its permission, for every VIP that
        // needs it.
        if let CloudEvent::Observed { sent, result, .. } = &event
            && let Some((allowed, detail)) = CloudEvent::call_evidence(result)
        {
            let action = match result {
                Ok(Seen::RouteTables(_)) => Action::DescribeRouteTables,
                Err(e) if e.operation == "DescribeRouteTables" => Action::DescribeRouteTables,
                Ok(Seen::PrivateIps(_)) => Action::DescribeNetworkInterfaces,
                Err(e) if e.operation == "DescribeNetworkInterfaces" => {
                    Action::DescribeNetworkInterfaces
                }
                _ => Action::DescribeAddresses,
            };
            let vips: Vec<String> = self
                .vips
                .iter()
                .filter(|v| Action::needed(&v.target).contains(&action))
                .map(|v| v.name.clone())
                .collect();
            notes.extend(self.permission(
                &vips,
                action,
                allowed,
                detail,
                Evidence::Call,
                sent.wall,
            ));
        }
        match event {
            CloudEvent::AddressDone { vip, change, error } => {
                if let Some((st, _)) = self.addresses.get_mut(&vip) {
                    st.finished(error.is_none(), now.mono);
                }
                notes.push(Note::AddressDone { vip, change, error });
            }
            CloudEvent::Observed {
                result: Err(error), ..
            } => {
                notes.push(Note::DescribeFailed { error });
            }
            CloudEvent::Permission {
                vips,
                action,
                allowed,
                detail,
                evidence,
                at,
            } => notes.extend(self.permission(&vips, action, allowed, detail, evidence, at)),
            CloudEvent::SourceDestCheck { eni, on } => {
                let has_routes = self
                    .vips
                    .iter()
                    .any(|v| matches!(v.target, VipTarget::Route { .. }));
                notes.push(Note::SourceDestCheck {
                    eni,
                    on,
                    before: self.source_dest_check,
                    has_routes,
                });
                self.source_dest_check = Some(on);
            }
            CloudEvent::Observed {
                sent,
                result: Ok(seen),
                unknown,
            } => {
                if let Seen::Addresses(_) = seen {
                    self.unknown_allocations(unknown, &mut notes);
                }
                for vip in &self.vips {
                    let Some((h, routes)) = view_of(&vip.target, &seen, &self.me) else {
                        continue;
                    };
                    if !routes.is_empty() {
                        Self::routes_seen(&mut self.routes, &vip.name, routes, &mut notes);
                    }
                    let before = self
                        .rules
                        .vips
                        .get(&vip.name)
                        .and_then(|s| s.holder.clone());
                    let node = self.node_view(vip, model, now.mono);
                    let observed = self.rules.observe_cloud(
                        &vip.name,
                        h.clone(),
                        sent.mono,
                        &node,
                        &vip.policy,
                    );
                    if observed.contains(&Observed::OutOfOrder) {
                        notes.push(Note::OutOfOrder {
                            vip: vip.name.clone(),
                        });
                        continue;
                    }
                    if let Some(counts_for) = self.state_tag_for {
                        notes.extend(tags::read(
                            &mut self.rules,
                            vip,
                            &seen,
                            &h,
                            sent,
                            counts_for,
                        ));
                    }
                    for o in observed {
                        notes.push(match o {
                            Observed::ArrivedHere { latency, moved_by } => Note::ArrivedHere {
                                vip: vip.name.clone(),
                                latency,
                                moved_by,
                                seen_at: sent.wall,
                            },
                            Observed::MovedAway { fight } => Note::MovedAway {
                                vip: vip.name.clone(),
                                holder: h.clone(),
                                fight,
                            },
                            Observed::OutOfOrder => continue,
                        });
                    }
                    let changed = before.as_ref() != Some(&h);
                    notes.push(Note::Seen {
                        vip: vip.name.clone(),
                        holder: h.clone(),
                        here: h == Holder::Here,
                        at: sent.wall,
                        changed,
                    });
                    if changed {
                        out.push(Change::VipSeen {
                            vip: vip.name.clone(),
                            holder: h,
                        });
                    }
                }
            }
            CloudEvent::ClaimDone {
                vip,
                outcome,
                detail,
            } => {
                self.rules.claim_finished(&vip, outcome, now.mono);
                if outcome != ClaimOutcome::Converged {
                    self.hint();
                }
                notes.push(Note::ClaimDone {
                    vip: vip.clone(),
                    outcome,
                    detail: detail.clone(),
                });
                out.push(Change::ClaimDone {
                    vip,
                    outcome,
                    detail,
                });
            }
        }
        (out, notes)
    }

    fn unknown_allocations(&mut self, unknown: Vec<String>, notes: &mut Vec<Note>) {
        let now: BTreeSet<String> = unknown.into_iter().collect();
        if now == self.unknown {
            return;
        }
        for v in &self.vips {
            let Some(id) = v.target.allocation_id() else {
                continue;
            };
            let is = now.contains(id);
            if is != self.unknown.contains(id) {
                notes.push(Note::AllocationUnknown {
                    vip: v.name.clone(),
                    allocation_id: id.to_owned(),
                    unknown: is,
                });
            }
        }
        self.unknown = now;
    }

    /// Keeps a route VIP's routes; a table whose state changed is a note.
    fn routes_seen(
        all: &mut BTreeMap<String, Vec<RouteView>>,
        vip: &str,
        routes: Vec<RouteView>,
        notes: &mut Vec<Note>,
    ) {
        let before = all.get(vip);
        for r in &routes {
            let was = before
                .and_then(|b| b.iter().find(|x| x.route_table == r.route_table))
                .map(|x| x.state);
            if was != Some(r.state) {
                notes.push(Note::Route {
                    vip: vip.to_owned(),
                    route: r.clone(),
                });
            }
        }
        all.insert(vip.to_owned(), routes);
    }

    /// Decides for every VIP: the claims and address changes to hand over,
    /// the asks, the verdicts that changed, and when to decide again.
    pub fn step(&mut self, now: Stamp, model: &Model) -> Step {
        let mut out = Step {
            asks: std::mem::take(&mut self.asks),
            ..Step::default()
        };
        let mut refresh: Option<Ask> = None;
        for vip in &self.vips {
            let node = self.node_view(vip, model, now.mono);
            let split_before = self.split_in_cloud(&vip.name);
            let verdict = self.rules.decide(&vip.name, now.mono, &node, &vip.policy);
            if self.split_in_cloud(&vip.name) != split_before {
                out.notes.push(Note::SplitInCloud {
                    vip: vip.name.clone(),
                    on: !split_before,
                });
            }
            let changed = self
                .last
                .get(&vip.name)
                .is_none_or(|l| !l.same_as(&verdict));
            if vip.handover != Handover::MakeBeforeBreak {
                let holder = self
                    .rules
                    .vips
                    .get(&vip.name)
                    .and_then(|s| s.holder.as_ref());
                self.handover_waiting
                    .insert(vip.name.clone(), handover::held_back(&node, holder));
            }
            let mut why = verdict_why(&verdict, now);
            if matches!(verdict, Verdict::Claim { .. }) {
                why.push_str(handover::how_let_go(&node.release));
            }
            match &verdict {
                Verdict::Claim {
                    reason,
                    dry_run: false,
                } => {
                    self.rules.claim_sent(&vip.name, now.mono);
                    out.claims.push(ClaimOrder {
                        claim: Claim {
                            vip: vip.name.clone(),
                            target: vip.target.clone(),
                            me: self.me.clone(),
                            reason: *reason,
                            generation: self.generation,
                        },
                        why: why.clone(),
                    });
                }
                Verdict::Refresh { .. } => {
                    // Rule 11's claim waits only for this describe: asked
                    // at once, past the gap (the verifier allows one such
                    // a gap), when the verdict is new.
                    let fast = changed && node.peer == PeerView::NotMaster;
                    if fast || refresh.is_none() {
                        refresh = Some(if fast { Ask::Confirm } else { Ask::Now });
                    }
                }
                Verdict::Damped { until, .. } | Verdict::Wait { until, .. } => {
                    earliest(&mut out.wake, *until);
                }
                _ => {}
            }
            if changed {
                out.notes.push(Note::Verdict {
                    vip: vip.name.clone(),
                    verdict: verdict.clone(),
                    why: why.clone(),
                });
                out.changes.push(Change::VipVerdict {
                    vip: vip.name.clone(),
                    verdict: verdict.kind(),
                    why,
                });
            }
            if let Some(h) = self
                .rules
                .vips
                .get(&vip.name)
                .and_then(|s| s.holder.as_ref())
            {
                let master = node.vrrp == VrrpState::Master;
                out.notes.push(Note::Converged {
                    vip: vip.name.clone(),
                    converged: master == (*h == Holder::Here),
                });
            }
            self.last.insert(vip.name.clone(), verdict);
        }
        self.step_addresses(now, model, &mut refresh, &mut out);
        out.asks.extend(refresh);
        out
    }
}
