//! The owner's cloud side: it feeds the cloud's answers and claim results
//! to the pure `Rules`, asks them for a verdict per VIP after every event,
//! hands claims to the executor, asks the verifier for describes, and keeps
//! the metrics and the VIP views. It runs inside the owner task: it never
//! awaits and makes no system call (channels only).
//!
//! The generation: every claim carries the generation its verdict was made
//! in; the owner bumps it (`bump`) on any change that matters to a verdict,
//! and the executor sends a mutating call only while it is unchanged.

mod addresses;
mod view;

use view::verdict_why;

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::config::VipConfig;
use crate::core::address::{AddressState, AddressVerdict, AddressView};
use crate::core::change::Change;
use crate::core::clock::{Mono, Stamp};
use crate::core::decide::{Damping, NodeView, Observed, Rules, Verdict};
use crate::core::message::AddressJob;
use crate::core::message::{Claim, CloudEvent, Evidence};
use crate::core::model::Model;
use crate::core::pace::Ask;
use crate::core::peer::PeerView;
use crate::core::seen::{Action, Me, Seen, view_of};
use crate::core::target::RouteView;
use crate::core::words::RouteState;
use crate::core::words::VrrpState;
use crate::core::words::{ClaimOutcome, Holder};
use crate::metrics::Metrics;
use crate::status::{MastershipView, PermissionView, VipView, rfc3339};

/// The channels the cloud side talks through.
pub struct Links {
    pub claims: mpsc::Sender<Claim>,
    pub asks: mpsc::Sender<Ask>,
    pub generation: watch::Sender<u64>,
    /// Damping, for the task that writes it to the state directory.
    pub damping: Option<watch::Sender<BTreeMap<String, Damping>>>,
    /// The host's address task, when a VIP has `manage_address = true`.
    pub addresses: Option<mpsc::Sender<AddressJob>>,
}

pub struct CloudSide {
    vips: Vec<VipConfig>,
    /// This node's instance and ENI.
    me: Me,
    rules: Rules,
    links: Links,
    metrics: std::sync::Arc<Metrics>,
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
    peer_max_age: Option<std::time::Duration>,
    /// This node's name, for rule 10's tie-break.
    node: String,
    /// The address rules' state of each `manage_address` VIP, and their
    /// last reason.
    addresses: BTreeMap<String, (AddressState, &'static str)>,
}

impl CloudSide {
    /// `damping` as loaded from the state directory.
    pub fn new(
        vips: Vec<VipConfig>,
        me: Me,
        links: Links,
        metrics: std::sync::Arc<Metrics>,
        damping: BTreeMap<String, Damping>,
    ) -> Self {
        let mut rules = Rules::new(vips.iter().map(|v| v.name.as_str()));
        for (vip, d) in damping {
            if let Some(st) = rules.vips.get_mut(&vip) {
                st.damping = d;
            }
        }
        for v in &vips {
            metrics.vip_init(&v.name);
        }
        let addresses = vips
            .iter()
            .filter(|v| v.address.is_some())
            .map(|v| {
                metrics.address_init(&v.name);
                (v.name.clone(), (AddressState::default(), ""))
            })
            .collect();
        Self {
            vips,
            me,
            rules,
            links,
            metrics,
            generation: 0,
            last: BTreeMap::new(),
            permissions: BTreeMap::new(),
            unknown: BTreeSet::new(),
            routes: BTreeMap::new(),
            source_dest_check: None,
            peer_max_age: None,
            node: String::new(),
            addresses,
        }
    }

    /// Rules 10 and 11 use the peer's reports, younger than `max_age`.
    pub fn with_peer(mut self, node: &str, max_age: std::time::Duration) -> Self {
        self.node = node.to_owned();
        self.peer_max_age = Some(max_age);
        self
    }

    /// A change that matters to verdicts: claims in flight made before it
    /// are dropped before their next mutating call.
    pub fn bump(&mut self) {
        self.generation += 1;
        self.links.generation.send_replace(self.generation);
    }

    /// Something hints that the cloud changed or is about to (a VRRP
    /// transition, another MASTER heard): describe now and faster for a while.
    pub fn hint(&self) {
        // A full queue already holds an ask: nothing is lost.
        let _ = self.links.asks.try_send(Ask::Hint);
    }

    /// The notify wrapper reported a run for `instance` (every VIP when
    /// `None`): a failure ends the grace of each VIP of it (rule 5); a
    /// success asks the cloud at once, so that the latency sample ends when
    /// the cloud changed.
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
            if outcome.failed() {
                let node = self.node_view(vip, model, at);
                self.rules.notify_failed(&vip.name, at, &node);
            } else if outcome == crate::core::words::Outcome::Succeeded {
                confirm = true;
            }
        }
        if confirm {
            let _ = self.links.asks.try_send(Ask::Confirm);
        }
    }

    fn node_view(&self, vip: &VipConfig, model: &Model, now: Mono) -> NodeView {
        let inst = model.instances.get(&vip.vrrp_instance);
        let vrrp = inst.map_or(VrrpState::Unknown, |i| i.state);
        let peer = match (&model.peer, self.peer_max_age) {
            (Some(p), Some(max_age)) => p.view(
                &vip.vrrp_instance,
                now,
                max_age,
                (inst.and_then(|i| i.priority), &self.node),
            ),
            _ => PeerView::Unknown,
        };
        NodeView {
            peer,
            vrrp,
            since: inst.and_then(|i| i.since_mono),
            seen_begin: inst.is_some_and(|i| i.announced),
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

    /// Records what the cloud said about `action` for `vips`; logs and sets
    /// the gauge when it changed.
    fn permission(
        &mut self,
        vips: &[String],
        action: Action,
        allowed: bool,
        detail: String,
        evidence: Evidence,
        at: std::time::SystemTime,
    ) {
        for vip in vips {
            let before = self
                .permissions
                .get(&(vip.clone(), action))
                .map(|p| p.allowed);
            match (before, allowed) {
                (_, false) if before != Some(false) => error!(
                    vip = %vip,
                    action = action.as_str(),
                    iam_action = %format!("ec2:{}", action.as_str()),
                    evidence = evidence.as_str(),
                    detail = %detail,
                    "the cloud refuses an action this node needs to claim the VIP: a failover to this node would leave the VIP behind; grant it in the instance role's IAM policy"
                ),
                (Some(false), true) => info!(
                    vip = %vip,
                    action = action.as_str(),
                    evidence = evidence.as_str(),
                    "the cloud allows the action again"
                ),
                _ => {}
            }
            self.metrics.permission(vip, action.as_str(), !allowed);
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
    }

    /// Applies a cloud event; returns the changes to record as decisions.
    pub fn on_cloud(&mut self, event: CloudEvent, model: &Model, now: Stamp) -> Vec<Change> {
        let mut out = vec![];
        // Every describe is evidence of its permission, for every VIP that
        // needs it.
        if let CloudEvent::Observed { sent, result, .. } = &event
            && let Some((allowed, detail)) = CloudEvent::call_evidence(result)
        {
            let action = match result {
                Ok(Seen::RouteTables(_)) => Action::DescribeRouteTables,
                Err(e) if e.operation == "DescribeRouteTables" => Action::DescribeRouteTables,
                _ => Action::DescribeAddresses,
            };
            let vips: Vec<String> = self
                .vips
                .iter()
                .filter(|v| Action::needed(&v.target).contains(&action))
                .map(|v| v.name.clone())
                .collect();
            self.permission(&vips, action, allowed, detail, Evidence::Call, sent.wall);
        }
        match event {
            CloudEvent::AddressDone { vip, change, error } => {
                if let Some((st, _)) = self.addresses.get_mut(&vip) {
                    st.finished(error.is_none(), now.mono);
                }
                self.metrics.address_changed(&vip, change, error.is_none());
                match error {
                    None => {
                        info!(vip = %vip, change = change.as_str(), "private IP changed on this host")
                    }
                    Some(e) => {
                        error!(vip = %vip, change = change.as_str(), error = %e, "cannot change the private IP on this host")
                    }
                }
            }
            CloudEvent::Observed { result: Err(e), .. } => {
                warn!(operation = e.operation, kind = e.kind.as_str(), error = %e, "cannot read the cloud's view; no action without it");
            }
            CloudEvent::Permission {
                vips,
                action,
                allowed,
                detail,
                evidence,
                at,
            } => self.permission(&vips, action, allowed, detail, evidence, at),
            CloudEvent::SourceDestCheck { eni, on } => {
                let has_routes = self
                    .vips
                    .iter()
                    .any(|v| matches!(v.target, crate::core::target::VipTarget::Route { .. }));
                self.metrics.source_dest_check(&eni, on);
                if on && has_routes && self.source_dest_check != Some(true) {
                    error!(eni = %eni, fix = "aws ec2 modify-network-interface-attribute --no-source-dest-check", "this node's ENI has its source/destination check on: the instance drops traffic for a routed VIP that is not its own address; turn it off");
                } else if !on && self.source_dest_check == Some(true) {
                    info!(eni = %eni, "this node's ENI has its source/destination check off now");
                }
                self.source_dest_check = Some(on);
            }
            CloudEvent::Observed {
                sent,
                result: Ok(seen),
                unknown,
            } => {
                if let Seen::Addresses(_) = seen {
                    self.unknown_allocations(unknown);
                }
                for vip in &self.vips {
                    let Some((h, routes)) = view_of(&vip.target, &seen, &self.me) else {
                        continue;
                    };
                    if !routes.is_empty() {
                        Self::routes_seen(&mut self.routes, &self.metrics, &vip.name, routes);
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
                        debug!(vip = %vip.name, "a cloud answer older than the view held: ignored");
                        continue;
                    }
                    for o in observed {
                        match o {
                            Observed::ArrivedHere { latency, moved_by } => {
                                self.metrics.failover(&vip.name, moved_by, latency);
                                info!(vip = %vip.name, latency_ms = latency.as_millis() as u64, moved_by = moved_by.as_str(), seen_at = %rfc3339(sent.wall), "the cloud shows the VIP on this node, the MASTER");
                            }
                            Observed::MovedAway { fight: false } => {
                                info!(vip = %vip.name, holder = %h, "the VIP was moved away from this MASTER, the first time in this mastership (a late notify run, a brief MASTER elsewhere): taking it back after min_master_age, no back-off");
                            }
                            Observed::MovedAway { fight: true } => {
                                self.metrics.claim_undone(&vip.name);
                                warn!(vip = %vip.name, holder = %h, "the VIP was moved away from this MASTER again in this mastership: a fight; backing off");
                            }
                            Observed::OutOfOrder => {}
                        }
                    }
                    self.metrics
                        .vip_seen(&vip.name, h == Holder::Here, sent.wall);
                    if before.as_ref() != Some(&h) {
                        info!(vip = %vip.name, holder = %h, "the cloud's view of the VIP changed");
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
                match outcome {
                    ClaimOutcome::Converged => {
                        info!(vip = %vip, detail = %detail, "claim converged")
                    }
                    ClaimOutcome::Failed => {
                        warn!(vip = %vip, detail = %detail, next = "asking the cloud where the VIP is before another claim", "claim did not converge");
                        self.hint();
                    }
                    ClaimOutcome::Dropped => {
                        self.metrics.claim_dropped(&vip);
                        info!(vip = %vip, detail = %detail, "claim dropped: overtaken by events");
                        self.hint();
                    }
                }
                out.push(Change::ClaimDone {
                    vip,
                    outcome,
                    detail,
                });
            }
        }
        out
    }

    fn unknown_allocations(&mut self, unknown: Vec<String>) {
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
                self.metrics.vip_allocation_unknown(&v.name, is);
                if is {
                    error!(vip = %v.name, allocation_id = %id, "EC2 does not know the VIP's allocation ID: fix vip.allocation_id; the other VIPs are watched as usual");
                } else {
                    info!(vip = %v.name, allocation_id = %id, "EC2 knows the VIP's allocation ID now");
                }
            }
        }
        self.unknown = now;
    }

    /// Keeps a route VIP's routes; a table whose state changed is logged
    /// (a blackhole or an instance target as a problem) and gauged.
    fn routes_seen(
        all: &mut BTreeMap<String, Vec<RouteView>>,
        metrics: &Metrics,
        vip: &str,
        routes: Vec<RouteView>,
    ) {
        let before = all.get(vip);
        for r in &routes {
            let was = before
                .and_then(|b| b.iter().find(|x| x.route_table == r.route_table))
                .map(|x| x.state);
            if was == Some(r.state) {
                continue;
            }
            metrics.route_state(vip, &r.route_table, r.state);
            match r.state {
                RouteState::Blackhole => {
                    error!(vip = %vip, route_table = %r.route_table, route_target = ?r.target, "the VIP's route is a blackhole: its target ENI or instance is gone and traffic is dropped; the MASTER claims it")
                }
                RouteState::Instance => {
                    warn!(vip = %vip, route_table = %r.route_table, route_target = ?r.target, "the VIP's route targets an instance, not an ENI: EC2 resolves it to the primary ENI and refuses it for instances with several; the MASTER points it at its ENI")
                }
                RouteState::Other => {
                    warn!(vip = %vip, route_table = %r.route_table, route_target = ?r.target, "the VIP's route targets neither an ENI nor an instance")
                }
                _ => {
                    debug!(vip = %vip, route_table = %r.route_table, state = r.state.as_str(), "the VIP's route changed")
                }
            }
        }
        all.insert(vip.to_owned(), routes);
    }

    /// Decides for every VIP, sends claims and asks, updates metrics.
    /// Returns the changes to record and the next time a verdict may
    /// change by itself.
    pub fn step(&mut self, now: Stamp, model: &Model) -> (Vec<Change>, Option<Mono>) {
        let mut out = vec![];
        let mut wake: Option<Mono> = None;
        let mut refresh: Option<Ask> = None;
        for vip in &self.vips {
            let node = self.node_view(vip, model, now.mono);
            let verdict = self.rules.decide(&vip.name, now.mono, &node, &vip.policy);
            let changed = self
                .last
                .get(&vip.name)
                .is_none_or(|l| !l.same_as(&verdict));
            let why = verdict_why(&verdict, now);
            match &verdict {
                Verdict::Claim {
                    reason,
                    dry_run: false,
                } => {
                    let claim = Claim {
                        vip: vip.name.clone(),
                        target: vip.target.clone(),
                        me: self.me.clone(),
                        reason: *reason,
                        generation: self.generation,
                    };
                    match self.links.claims.try_send(claim) {
                        Ok(()) => {
                            self.rules.claim_sent(&vip.name, now.mono);
                            self.metrics.heal(&vip.name, *reason);
                            info!(vip = %vip.name, reason = reason.as_str(), why = %why, "claiming the VIP for this node");
                        }
                        Err(e) => {
                            error!(vip = %vip.name, error = %e, "cannot hand the claim to the executor")
                        }
                    }
                }
                Verdict::Claim { reason, .. } if changed => {
                    info!(vip = %vip.name, reason = reason.as_str(), "dry run: would claim the VIP for this node");
                }
                Verdict::Refresh { .. } => {
                    // Rule 11's claim waits only for this describe: asked
                    // at once, past the gap (the verifier allows one such
                    // a gap), when the verdict is new.
                    let fast = changed && node.peer == PeerView::NotMaster;
                    if fast || refresh.is_none() {
                        refresh = Some(if fast { Ask::Confirm } else { Ask::Now });
                    }
                    if changed {
                        info!(vip = %vip.name, why = %why, "asking the cloud before acting");
                    }
                }
                Verdict::Damped { until, .. } => {
                    if changed {
                        self.metrics.claim_damped(&vip.name);
                        warn!(vip = %vip.name, why = %why, "claim damped");
                    }
                    wake = Some(wake.map_or(*until, |w| w.min(*until)));
                }
                Verdict::Wait { until, .. } => {
                    if changed {
                        info!(vip = %vip.name, why = %why, "waiting before acting");
                    }
                    wake = Some(wake.map_or(*until, |w| w.min(*until)));
                }
                _ => {
                    if changed {
                        info!(vip = %vip.name, verdict = verdict.kind(), why = %why, "vip decision");
                    }
                }
            }
            if changed {
                out.push(Change::VipVerdict {
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
                let here = *h == Holder::Here;
                self.metrics.vip_converged(&vip.name, master == here);
            }
            self.last.insert(vip.name.clone(), verdict);
        }
        self.step_addresses(now, model, &mut refresh, &mut wake);
        if let Some(ask) = refresh {
            let _ = self.links.asks.try_send(ask);
        }
        if let Some(tx) = &self.links.damping {
            // Compared in place: a copy is made only when damping changed,
            // not at every turn.
            let vips = &self.rules.vips;
            tx.send_if_modified(|d| {
                let same = d.len() == vips.len()
                    && d.iter()
                        .zip(vips)
                        .all(|((a, da), (b, st))| a == b && *da == st.damping);
                if !same {
                    *d = vips
                        .iter()
                        .map(|(k, v)| (k.clone(), v.damping.clone()))
                        .collect();
                }
                !same
            });
        }
        (out, wake)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::Mono;
    use crate::core::decide::VipPolicy;
    use crate::core::input::Event;
    use crate::core::seen::{Address, CloudError, ErrorKind};
    use crate::core::words::Mode;
    use crate::keepalived::line::parse;
    use std::time::{Duration, SystemTime};

    fn stamp(ms: u64) -> Stamp {
        Stamp {
            mono: Mono::from_millis(ms),
            wall: SystemTime::UNIX_EPOCH
                + Duration::from_secs(1_800_000_000)
                + Duration::from_millis(ms),
        }
    }

    struct Rig {
        side: CloudSide,
        claims: mpsc::Receiver<Claim>,
        asks: mpsc::Receiver<Ask>,
        generation: watch::Receiver<u64>,
        model: Model,
    }

    fn rig() -> Rig {
        let policy = VipPolicy {
            mode: Mode::Own,
            grace: Duration::from_secs(10),
            min_master_age: Duration::from_secs(3),
            max_claims: 3,
            claim_window: Duration::from_secs(600),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            dry_run: false,
        };
        let vips = ["web", "db"]
            .map(|name| VipConfig {
                name: name.into(),
                target: crate::core::target::VipTarget::EipOnEni {
                    allocation_id: format!("eipalloc-{name}"),
                    private_ip: "10.0.0.50".parse().unwrap(),
                },
                vrrp_instance: "VI_1".into(),
                policy: policy.clone(),
                address: None,
            })
            .to_vec();
        let (claims_tx, claims) = mpsc::channel(4);
        let (asks_tx, asks) = mpsc::channel(4);
        let (gen_tx, generation) = watch::channel(0);
        let links = Links {
            claims: claims_tx,
            asks: asks_tx,
            generation: gen_tx,
            damping: None,
            addresses: None,
        };
        let metrics = std::sync::Arc::new(Metrics::new("p", "n").unwrap());
        let side = CloudSide::new(
            vips,
            Me {
                instance_id: "i-me".into(),
                eni: "eni-me".into(),
            },
            links,
            metrics,
            BTreeMap::new(),
        );
        let mut model = Model::new(["VI_1"]);
        for e in [
            Event::KeepalivedRunning {
                pid: 1,
                vrrp_pid: None,
                started: SystemTime::UNIX_EPOCH,
            },
            Event::Probe {
                health: crate::core::words::Health::Up,
                detail: "ok".into(),
            },
            Event::HostAddresses(["10.0.0.50".parse().unwrap()].into()),
            Event::Line {
                line: parse("INSTANCE \"VI_1\" MASTER 150").unwrap(),
                at: stamp(0),
            },
        ] {
            model.observe(e, stamp(0));
        }
        Rig {
            side,
            claims,
            asks,
            generation,
            model,
        }
    }

    fn observed(sent: u64, eni: &str, unknown: &[&str]) -> CloudEvent {
        let addr = |alloc: &str| Address {
            allocation_id: alloc.into(),
            public_ip: None,
            association_id: Some("eipassoc-1".into()),
            network_interface_id: Some(eni.into()),
            private_ip: Some("10.0.0.50".parse().unwrap()),
            instance_id: None,
        };
        CloudEvent::Observed {
            sent: stamp(sent),
            result: Ok(Seen::Addresses(
                ["eipalloc-web", "eipalloc-db"]
                    .into_iter()
                    .filter(|a| !unknown.iter().any(|u| u.ends_with(&a[9..])))
                    .map(addr)
                    .collect(),
            )),
            unknown: unknown.iter().map(|u| u.to_string()).collect(),
        }
    }

    /// A view from before the MASTER line asks for a fresh one; a fresh
    /// view claims, stamped with the generation; a change bumps it.
    #[test]
    fn claims_carry_the_generation_and_stale_views_ask_for_fresh_ones() {
        let mut r = rig();
        r.side
            .on_cloud(observed(0, "eni-peer", &[]), &r.model, stamp(0));
        // MASTER line at 0, the view was sent at 0 too: fresh enough.
        r.side.step(stamp(3_000), &r.model);
        for vip in ["web", "db"] {
            let c = r.claims.try_recv().expect("a claim after min_master_age");
            assert_eq!((c.vip.as_str(), c.generation), (vip, 0));
        }
        r.side.bump();
        assert_eq!(*r.generation.borrow(), 1);
        r.side.on_cloud(
            CloudEvent::ClaimDone {
                vip: "web".into(),
                outcome: ClaimOutcome::Dropped,
                detail: "overtaken".into(),
            },
            &r.model,
            stamp(3_100),
        );
        assert_eq!(r.asks.try_recv(), Ok(Ask::Hint), "a dropped claim hints");
        r.side.step(stamp(3_200), &r.model);
        assert_eq!(r.asks.try_recv(), Ok(Ask::Now), "a fresh view is asked for");
        assert!(r.claims.try_recv().is_err(), "no claim on the old view");
        r.side
            .on_cloud(observed(3_300, "eni-peer", &[]), &r.model, stamp(3_310));
        r.side.step(stamp(3_320), &r.model);
        let c = r.claims.try_recv().expect("a claim on the fresh view");
        assert_eq!((c.vip.as_str(), c.generation), ("web", 1));
    }

    #[test]
    fn an_unknown_allocation_id_shows_in_the_gauge_and_the_view_and_blinds_no_other() {
        let mut r = rig();
        r.side.on_cloud(
            observed(10, "eni-me", &["eipalloc-db"]),
            &r.model,
            stamp(10),
        );
        let view = r.side.view(stamp(20), &r.model);
        assert_eq!(
            view.iter()
                .map(|v| (v.name.as_str(), v.allocation_known, v.cloud.clone()))
                .collect::<Vec<_>>(),
            [("web", true, Some(Holder::Here)), ("db", false, None)]
        );
        let unknown = |vip| {
            r.side
                .metrics
                .value("vip_watchdog_vip_allocation_unknown", &[("vip", vip)])
        };
        assert_eq!((unknown("web"), unknown("db")), (Some(0.0), Some(1.0)));
    }

    /// (event, then: the gauge for (vip, action), and the status's `allowed`)
    #[test]
    fn permissions_set_the_gauge_and_the_status_per_vip() {
        let mut r = rig();
        let permission = |vips: &[&str], action, allowed, evidence| CloudEvent::Permission {
            vips: vips.iter().map(|v| v.to_string()).collect(),
            action,
            allowed,
            detail: if allowed {
                "DryRunOperation"
            } else {
                "UnauthorizedOperation: no"
            }
            .into(),
            evidence,
            at: SystemTime::UNIX_EPOCH,
        };
        let denied = CloudError {
            operation: "DescribeAddresses",
            kind: ErrorKind::Auth,
            code: "UnauthorizedOperation".into(),
            message: "no".into(),
        };
        let throttled = CloudError {
            kind: ErrorKind::Throttled,
            code: "RequestLimitExceeded".into(),
            ..denied.clone()
        };
        let failed = |e| CloudEvent::Observed {
            sent: stamp(0),
            result: Err(e),
            unknown: vec![],
        };
        use Action::*;
        type Row = (CloudEvent, &'static str, Action, Option<i64>, Option<bool>);
        let table: Vec<Row> = vec![
            (
                permission(&["web"], AssociateAddress, false, Evidence::DryRun),
                "web",
                AssociateAddress,
                Some(1),
                Some(false),
            ),
            (
                permission(&["web"], AssociateAddress, false, Evidence::DryRun),
                "db",
                AssociateAddress,
                None,
                None,
            ),
            (
                permission(&["web"], AssociateAddress, true, Evidence::Call),
                "web",
                AssociateAddress,
                Some(0),
                Some(true),
            ),
            (
                permission(
                    &["web", "db"],
                    DescribeNetworkInterfaces,
                    true,
                    Evidence::DryRun,
                ),
                "db",
                DescribeNetworkInterfaces,
                Some(0),
                Some(true),
            ),
            // The verifier's describe is evidence too, for every VIP.
            (
                failed(denied),
                "db",
                DescribeAddresses,
                Some(1),
                Some(false),
            ),
            (
                failed(throttled),
                "db",
                DescribeAddresses,
                Some(1),
                Some(false),
            ),
            (
                observed(1, "eni-me", &[]),
                "db",
                DescribeAddresses,
                Some(0),
                Some(true),
            ),
        ];
        for (i, (event, vip, action, gauge, allowed)) in table.into_iter().enumerate() {
            r.side.on_cloud(event, &r.model, stamp(1));
            let key = (vip.to_owned(), action);
            let seen = r.side.permissions.get(&key).map(|p| p.allowed);
            assert_eq!(seen, allowed, "row {i}: status of {key:?}");
            let g = seen.map(|_| r.side.metrics.permission_denied(vip, action.as_str()));
            assert_eq!(g, gauge, "row {i}: gauge of {key:?}");
        }
    }

    /// `/v1/status` is an interface: its JSON is golden-tested (set
    /// VIP_WATCHDOG_UPDATE_GOLDEN=1 to rewrite tests/golden/status.json after
    /// a deliberate change).
    #[test]
    fn the_status_json_is_as_the_golden_file() {
        let mut r = rig();
        r.side.on_cloud(
            observed(10, "eni-peer", &["eipalloc-db"]),
            &r.model,
            stamp(10),
        );
        let (changes, _) = r.side.step(stamp(1_000), &r.model);
        for c in changes {
            r.model.record(c, stamp(1_000).wall);
        }
        let now = stamp(1_000);
        let mut status =
            crate::status::Status::build(&r.model, "lb-a", "edge", stamp(0).wall, now.wall);
        status.vips = r.side.view(now, &r.model);
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

    /// Ages, windows and back-off are on the monotonic clock: a wall clock
    /// stepped an hour forward or back (NTP at boot) changes no verdict.
    /// (now on the monotonic clock in ms, wall clock offset in s, the
    /// verdict for "web")
    #[test]
    fn a_wall_clock_step_changes_no_verdict() {
        let at = |mono: u64, wall_offset: i64| Stamp {
            mono: Mono::from_millis(mono),
            wall: if wall_offset >= 0 {
                stamp(mono).wall + Duration::from_secs(wall_offset as u64)
            } else {
                stamp(mono).wall - Duration::from_secs((-wall_offset) as u64)
            },
        };
        let rows = [
            (500, 3_600, "wait"),
            (500, -3_600, "wait"),
            (2_999, 86_400, "wait"),
            (3_000, -86_400, "claim"),
        ];
        for (mono, offset, want) in rows {
            let mut r = rig();
            r.side
                .on_cloud(observed(10, "eni-peer", &[]), &r.model, stamp(10));
            r.side.step(at(mono, offset), &r.model);
            let view = r.side.view(at(mono, offset), &r.model);
            assert_eq!(
                view[0].verdict,
                Some(want),
                "mono {mono} ms, wall {offset:+} s: {:?}",
                view[0].why
            );
        }
        // Damping: three failed claims fill the window; a wall clock
        // stepped a day forward does not empty it.
        let mut r = rig();
        for i in 0..3u64 {
            let t = 3_000 + i * 1_000;
            r.side
                .on_cloud(observed(t, "eni-peer", &[]), &r.model, stamp(t));
            r.side.step(stamp(t), &r.model);
            while r.claims.try_recv().is_ok() {}
            for vip in ["web", "db"] {
                let done = CloudEvent::ClaimDone {
                    vip: vip.into(),
                    outcome: ClaimOutcome::Failed,
                    detail: "refused".into(),
                };
                r.side.on_cloud(done, &r.model, stamp(t + 100));
            }
        }
        r.side
            .on_cloud(observed(6_500, "eni-peer", &[]), &r.model, stamp(6_500));
        r.side.step(at(7_000, 86_400), &r.model);
        let view = r.side.view(at(7_000, 86_400), &r.model);
        assert_eq!(view[0].verdict, Some("damped"), "{:?}", view[0].why);
    }
}
