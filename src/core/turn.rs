//! The owner's whole turn, pure: `Core::apply` takes every input the owner
//! receives (`Event`: a source's event, a cloud task's answer) and returns what it
//! changed; `Core::plan` decides for every VIP and says what to hand to
//! whom (claims, asks, address changes, releases) and when to decide
//! again. The owner task only receives, applies, logs and counts, plans,
//! sends and publishes.

use std::time::Duration;

use crate::core::change::Change;
use crate::core::clock::{Mono, Stamp};
use crate::core::cloud::{AddressOrder, ClaimOrder, CloudState, Note};
use crate::core::input::Event;
use crate::core::model::Model;
use crate::core::pace::Ask;

/// What the core knows of the peer channel.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerLink {
    /// The peer's address, the metrics' `peer` label.
    pub address: String,
    pub max_age: Duration,
    /// Whether the last report was fresh at the last plan.
    pub fresh: bool,
}

/// What `apply` changed.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    pub changes: Vec<Change>,
    pub notes: Vec<Note>,
}

/// What `plan` decided.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Split brain entered or left (rule 10), and the verdicts that changed.
    pub changes: Vec<Change>,
    pub notes: Vec<Note>,
    /// The peer's reports became fresh (`Some(true)`) or stale.
    pub peer_fresh: Option<bool>,
    pub claims: Vec<ClaimOrder>,
    pub asks: Vec<Ask>,
    pub addresses: Vec<AddressOrder>,
    /// Instances whose crashed MASTER's priority-0 advert to send.
    pub releases: Vec<String>,
    /// The generation claims in flight must still carry.
    pub generation: u64,
    /// When to plan again although nothing happens (a grace or back-off ends).
    pub wake: Option<Mono>,
}

pub struct Core {
    pub model: Model,
    /// The cloud side, when VIPs are configured.
    pub cloud: Option<CloudState>,
    /// The peer channel, when configured.
    pub peer: Option<PeerLink>,
    /// This node's name, for rule 10's tie-break.
    node: String,
    /// Whether crashed MASTERs are released (`release_on_crash` and a
    /// release task to hand them to).
    pub release: bool,
    releases: Vec<String>,
}

/// Whether a change may change a verdict: claims made before it are
/// re-checked (the generation is bumped).
fn matters(c: &Change) -> bool {
    matches!(
        c,
        Change::Vrrp { .. }
            | Change::Learned { .. }
            | Change::Probe { .. }
            | Change::Keepalived { .. }
            | Change::HostAddresses { .. }
            | Change::Peer { .. }
            | Change::SplitBrain { .. }
    )
}

/// Whether a change hints that the cloud is about to change: a VRRP
/// transition here (and so, often, on the peer), or another MASTER heard.
fn hints(c: &Change) -> bool {
    matches!(
        c,
        Change::Vrrp { .. } | Change::Learned { .. } | Change::OtherMasterSeen { .. }
    )
}

impl Core {
    pub fn new(
        model: Model,
        cloud: Option<CloudState>,
        peer: Option<PeerLink>,
        node: &str,
        release: bool,
    ) -> Self {
        Core {
            model,
            cloud,
            peer,
            node: node.to_owned(),
            release,
            releases: vec![],
        }
    }

    /// Applies one input.
    pub fn apply(&mut self, input: Event, now: Stamp) -> Applied {
        let event = match input {
            Event::Cloud(event) => {
                let Some(c) = &mut self.cloud else {
                    return Applied::default();
                };
                let (changes, notes) = c.on_cloud(event, &self.model, now);
                for change in &changes {
                    self.model.record(change.clone(), now.wall);
                }
                return Applied { changes, notes };
            }
            event => event,
        };
        // A crashed MASTER's release is decided on the model before the
        // event (`core::release`).
        let release = crate::core::release::to_release(&event, &self.model, self.release);
        self.releases.extend(release);
        let changes = self.model.observe(event, now);
        if let Some(c) = &mut self.cloud {
            if changes.iter().any(matters) {
                c.bump();
            }
            if changes.iter().any(hints) {
                c.hint();
            }
            for change in &changes {
                match change {
                    Change::NotifyStarted { instance, timeout } => {
                        c.notify_started(instance.as_deref(), *timeout, now.mono);
                    }
                    Change::NotifyRun {
                        instance, outcome, ..
                    } => c.notify_ran(instance.as_deref(), *outcome, &self.model, now.mono),
                    _ => {}
                }
            }
        }
        Applied {
            changes,
            notes: vec![],
        }
    }

    /// Decides: the peer's freshness and split brain first, then every VIP.
    pub fn plan(&mut self, now: Stamp) -> Plan {
        let mut plan = Plan::default();
        if let Some(link) = &mut self.peer {
            let fresh = self
                .model
                .peer
                .as_ref()
                .is_some_and(|p| p.fresh(now.mono, link.max_age));
            if fresh != link.fresh {
                link.fresh = fresh;
                plan.peer_fresh = Some(fresh);
            }
            let changes = self
                .model
                .follow_split_brain(now.mono, link.max_age, &self.node);
            if let Some(c) = &mut self.cloud
                && !changes.is_empty()
            {
                c.bump();
            }
            for change in &changes {
                self.model.record(change.clone(), now.wall);
            }
            plan.changes = changes;
        }
        if let Some(c) = &mut self.cloud {
            let step = c.step(now, &self.model);
            for change in &step.changes {
                self.model.record(change.clone(), now.wall);
            }
            plan.changes.extend(step.changes);
            plan.notes = step.notes;
            plan.claims = step.claims;
            plan.asks = step.asks;
            plan.addresses = step.addresses;
            plan.wake = step.wake;
            plan.generation = c.generation();
        }
        plan.releases = std::mem::take(&mut self.releases);
        plan
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::core::cloud::{CloudState, Note};
    use crate::core::decide::VipPolicy;
    use crate::core::message::CloudEvent;
    use crate::core::message::Evidence;
    use crate::core::seen::{Action, Address, CloudError, ErrorKind, Me, Seen};
    use crate::core::target::VipTarget;
    use crate::core::vip::VipConfig;
    use crate::core::words::{ClaimOutcome, Health, Holder, Mode, Outcome};

    pub(crate) fn stamp(ms: u64) -> Stamp {
        Stamp {
            mono: Mono::from_millis(ms),
            wall: SystemTime::UNIX_EPOCH
                + Duration::from_secs(1_800_000_000)
                + Duration::from_millis(ms),
        }
    }

    /// The wrapper's report of a run for VI_1 that ended with `outcome`.
    fn notify(outcome: Outcome) -> Event {
        Event::NotifyRun(crate::core::input::NotifyReport {
            instance: Some("VI_1".into()),
            outcome,
            exit_code: Some(0),
            duration_ms: 900,
            output: String::new(),
        })
    }

    /// Each VIP's verdict in a plan's notes: (vip, kind).
    fn verdicts(plan: &Plan) -> Vec<(&str, &str)> {
        plan.notes
            .iter()
            .filter_map(|n| match n {
                Note::Verdict { vip, verdict, .. } => Some((vip.as_str(), verdict.kind())),
                _ => None,
            })
            .collect()
    }

    fn line(text: &str, at: u64) -> Event {
        Event::Line {
            line: crate::keepalived::line::parse(text).unwrap(),
            at: stamp(at),
        }
    }

    /// Two EIP VIPs, `web` and `db`, on VI_1, in `own` mode
    /// (min_master_age 3 s); this node a healthy MASTER since 0 ms.
    pub(crate) fn rig() -> Core {
        rig_in(Mode::Own)
    }

    /// The rig in `mode` (`heal`: grace 10 s).
    pub(crate) fn rig_in(mode: Mode) -> Core {
        let policy = VipPolicy {
            mode,
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
                target: VipTarget::EipOnEni {
                    allocation_id: format!("eipalloc-{name}"),
                    private_ip: "10.0.0.50".parse().unwrap(),
                },
                vrrp_instance: "VI_1".into(),
                policy: policy.clone(),
                address: None,
                handover: Default::default(),
            })
            .to_vec();
        let me = Me {
            instance_id: "i-me".into(),
            eni: "eni-me".into(),
        };
        let cloud = CloudState::new(vips, me, BTreeMap::new());
        let mut core = Core::new(Model::new(["VI_1"]), Some(cloud), None, "lb-a", false);
        for e in [
            Event::KeepalivedRunning {
                pid: 1,
                vrrp_pid: None,
                started: SystemTime::UNIX_EPOCH,
            },
            Event::Probe {
                health: Health::Up,
                detail: "ok".into(),
            },
            Event::HostAddresses(["10.0.0.50".parse().unwrap()].into()),
            line("INSTANCE \"VI_1\" MASTER 150", 0),
        ] {
            core.apply(e, stamp(0));
        }
        core
    }

    /// The cloud's answer, asked at `sent`: both EIPs on `eni`, but for the
    /// allocation IDs in `unknown`.
    pub(crate) fn observed(sent: u64, eni: &str, unknown: &[&str]) -> Event {
        let addr = |alloc: &str| Address {
            allocation_id: alloc.into(),
            public_ip: None,
            association_id: Some("eipassoc-1".into()),
            network_interface_id: Some(eni.into()),
            private_ip: Some("10.0.0.50".parse().unwrap()),
            ..Address::default()
        };
        Event::Cloud(CloudEvent::Observed {
            sent: stamp(sent),
            result: Ok(Seen::Addresses(
                ["eipalloc-web", "eipalloc-db"]
                    .into_iter()
                    .filter(|a| !unknown.iter().any(|u| u.ends_with(&a[9..])))
                    .map(addr)
                    .collect(),
            )),
            unknown: unknown.iter().map(|u| u.to_string()).collect(),
        })
    }

    fn done(vip: &str, outcome: ClaimOutcome) -> Event {
        Event::Cloud(CloudEvent::ClaimDone {
            vip: vip.into(),
            outcome,
            detail: "test".into(),
        })
    }

    fn claims(plan: &Plan) -> Vec<(&str, u64)> {
        plan.claims
            .iter()
            .map(|o| (o.claim.vip.as_str(), o.claim.generation))
            .collect()
    }

    /// A whole turn per row: after `rig()` (whose MASTER line hinted), the
    /// inputs, each applied at its time, then a plan at `plan_at`: the
    /// claims handed over (VIP, generation), the asks, and each VIP's
    /// verdict. Each row names the rule it shows.
    #[test]
    fn whole_turn_table() {
        type Row = (
            &'static str,
            Vec<(u64, Event)>,
            u64,
            Vec<(&'static str, u64)>,
            Vec<Ask>,
            [&'static str; 2],
        );
        let throttled = Event::Cloud(CloudEvent::Observed {
            sent: stamp(10),
            result: Err(CloudError {
                operation: "DescribeAddresses",
                kind: ErrorKind::Throttled,
                code: "RequestLimitExceeded".into(),
                message: "slow down".into(),
            }),
            unknown: vec![],
        });
        // The rig's four inputs each bumped the generation: claims carry 4.
        let rows: Vec<Row> = vec![
            (
                "rule 1: no view of the cloud yet: hold, no claim",
                vec![],
                3_000,
                vec![],
                vec![Ask::Hint],
                ["hold", "hold"],
            ),
            (
                "rule 3: the cloud shows the VIP here: hold",
                vec![(10, observed(10, "eni-me", &[]))],
                3_000,
                vec![],
                vec![Ask::Hint],
                ["hold", "hold"],
            ),
            (
                "rule 4: elsewhere, but the MASTER is younger than min_master_age: wait",
                vec![(10, observed(10, "eni-peer", &[]))],
                2_999,
                vec![],
                vec![Ask::Hint],
                ["wait", "wait"],
            ),
            (
                "rules 4, 7: elsewhere on a view asked after the MASTER line: claim both",
                vec![(10, observed(10, "eni-peer", &[]))],
                3_000,
                vec![("web", 4), ("db", 4)],
                vec![Ask::Hint],
                ["claim", "claim"],
            ),
            (
                "rule 7: a new mastership after the view: each transition hints, the view is asked again",
                vec![
                    (10, observed(10, "eni-peer", &[])),
                    (20, line("INSTANCE \"VI_1\" BACKUP 150", 20)),
                    (30, line("INSTANCE \"VI_1\" MASTER 150", 30)),
                ],
                3_030,
                vec![],
                vec![Ask::Hint, Ask::Hint, Ask::Hint, Ask::Now],
                ["refresh", "refresh"],
            ),
            (
                "rule 5: a notify run that succeeded asks the cloud at once (Confirm)",
                vec![(10, notify(Outcome::Succeeded))],
                20,
                vec![],
                vec![Ask::Hint, Ask::Confirm],
                ["hold", "hold"],
            ),
            (
                "an unknown allocation ID blinds no other VIP: web is claimed, db holds",
                vec![(10, observed(10, "eni-peer", &["eipalloc-db"]))],
                3_000,
                vec![("web", 4)],
                vec![Ask::Hint],
                ["claim", "hold"],
            ),
            (
                "rule 1: a describe that failed is no view: hold",
                vec![(10, throttled)],
                3_000,
                vec![],
                vec![Ask::Hint],
                ["hold", "hold"],
            ),
        ];
        for (name, inputs, plan_at, want_claims, want_asks, want_verdicts) in rows {
            let mut core = rig();
            for (at, input) in inputs {
                core.apply(input, stamp(at));
            }
            let plan = core.plan(stamp(plan_at));
            assert_eq!(claims(&plan), want_claims, "{name}: claims");
            assert_eq!(plan.asks, want_asks, "{name}: asks");
            assert_eq!(
                verdicts(&plan),
                [("web", want_verdicts[0]), ("db", want_verdicts[1])],
                "{name}: verdicts"
            );
        }
    }

    /// A split brain is a peer report of MASTER that arrived after this
    /// node's MASTER line: one from before it (the peer's last state before
    /// the failover) is none, so no split brain flickers at a failover.
    #[test]
    fn a_split_brain_needs_a_report_from_this_mastership() {
        use crate::core::peer::{InstanceReport, Report};
        use crate::core::words::{Source, VrrpState};
        let report = |seq| {
            Event::Peer(Report {
                seq,
                instances: vec![InstanceReport {
                    name: "VI_1".into(),
                    state: VrrpState::Master,
                    priority: Some(100),
                    since: None,
                    source: Some(Source::Fifo),
                }],
                eni: Some("eni-peer".into()),
                ..Report::sample("lb-b", "edge")
            })
        };
        let split = |plan: &Plan| {
            plan.changes
                .iter()
                .filter_map(|c| match c {
                    Change::SplitBrain { on, .. } => Some(*on),
                    _ => None,
                })
                .collect::<Vec<bool>>()
        };
        let mut core = rig();
        core.peer = Some(PeerLink {
            address: "10.0.0.2:9843".into(),
            max_age: Duration::from_secs(3),
            fresh: false,
        });
        core.apply(line("INSTANCE \"VI_1\" BACKUP 150", 100), stamp(100));
        core.apply(report(1), stamp(1_000));
        core.apply(line("INSTANCE \"VI_1\" MASTER 150", 2_000), stamp(2_000));
        assert_eq!(
            split(&core.plan(stamp(2_100))),
            [] as [bool; 0],
            "the report came before"
        );
        core.apply(report(2), stamp(2_200));
        assert_eq!(split(&core.plan(stamp(2_300))), [true], "the peer's answer");
    }

    /// Claim rule 14 over whole turns: the VIPs were here, then a view
    /// shows them on the peer's ENI, which carries the peer's fresh tag
    /// "master healthy": no claim, the gauge's source says so; the next
    /// view's tag says "backup": both taken back.
    #[test]
    fn a_split_brain_seen_in_the_cloud_is_held_then_ended_by_the_tag() {
        let mut core = rig();
        core.cloud = core
            .cloud
            .take()
            .map(|c| c.with_state_tags(Duration::from_secs(120)));
        let tagged = |sent: u64, state: &str| {
            let Event::Cloud(CloudEvent::Observed {
                sent: at,
                result: Ok(Seen::Addresses(mut addrs)),
                unknown,
            }) = observed(sent, "eni-peer", &[])
            else {
                unreachable!()
            };
            let written = humantime::format_rfc3339_seconds(at.wall);
            for a in &mut addrs {
                a.state_tags.insert(
                    "eni-peer/VI_1".into(),
                    format!("{state} healthy {written} lb-b"),
                );
                a.state_tags.insert(
                    "eni-me/VI_1".into(),
                    format!("master healthy {written} lb-a"),
                );
            }
            Event::Cloud(CloudEvent::Observed {
                sent: at,
                result: Ok(Seen::Addresses(addrs)),
                unknown,
            })
        };
        core.apply(observed(3_000, "eni-me", &[]), stamp(3_000));
        core.plan(stamp(3_010));
        let applied = core.apply(tagged(20_000, "master"), stamp(20_000));
        let plan = core.plan(stamp(20_010));
        assert_eq!(claims(&plan), []);
        assert_eq!(verdicts(&plan), [("web", "wait"), ("db", "wait")]);
        let split_notes = |plan: &Plan| {
            plan.notes
                .iter()
                .filter_map(|n| match n {
                    Note::SplitInCloud { vip, on } => Some((vip.clone(), *on)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            split_notes(&plan),
            [("web".to_owned(), true), ("db".to_owned(), true)]
        );
        let tags: Vec<_> = applied
            .notes
            .iter()
            .filter_map(|n| match n {
                Note::HolderTag { vip, reading, .. } => Some((vip.as_str(), reading.clone())),
                _ => None,
            })
            .collect();
        assert!(
            matches!(&tags[..], [("web", Some(crate::core::state_tag::Reading::Master { node, .. })), ..] if node == "lb-b"),
            "{tags:?}"
        );
        let splits = |core: &Core| {
            core.cloud
                .as_ref()
                .unwrap()
                .splits_in_cloud()
                .map(|(v, s)| (v.to_owned(), s))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            splits(&core),
            [("web".to_owned(), true), ("db".to_owned(), true)]
        );
        let view = core
            .cloud
            .as_ref()
            .unwrap()
            .view(stamp(20_010), &core.model);
        let tag = view[0].holder_tag.clone().expect("state tags on");
        assert_eq!((tag.says, tag.writer.as_deref()), ("master", Some("lb-b")));
        assert!(tag.counts_until.is_some());
        core.apply(tagged(50_000, "backup"), stamp(50_000));
        let plan = core.plan(stamp(50_010));
        assert_eq!(claims(&plan).len(), 2, "{:?}", verdicts(&plan));
        assert_eq!(
            split_notes(&plan),
            [("web".to_owned(), false), ("db".to_owned(), false)]
        );
        assert!(splits(&core).iter().all(|(_, s)| !s));
    }

    /// Break before make, a whole failover: MASTER since 0 ms, the VIP on
    /// the peer's ENI. While the peer reports its address on and its probe
    /// up, nothing is added or claimed, whatever min_master_age; once it
    /// reports both gone, the address is added, and once it shows on the
    /// host, claimed. A peer that never reports is taken as down
    /// fence_wait after the MASTER line, not before.
    #[test]
    fn break_before_make_waits_for_the_old_holder() {
        use crate::core::address::Change as AddressChange;
        use crate::core::handover::Handover;
        use crate::core::peer::{Report, VipReport};
        use crate::core::vip::ManagedAddress;
        let fence_wait = Duration::from_secs(30);
        let rig_bbm = || {
            let mut core = rig();
            let cloud = core.cloud.take().expect("the rig has a cloud side");
            let mut vip = cloud.vips()[1].clone();
            assert_eq!(vip.name, "db");
            vip.address = Some(ManagedAddress {
                ip: "10.0.0.50".parse().unwrap(),
                interface: "eth0".into(),
                hold: Duration::from_secs(30),
            });
            vip.handover = Handover::BreakBeforeMake { fence_wait };
            let me = Me {
                instance_id: "i-me".into(),
                eni: "eni-me".into(),
            };
            core.cloud = Some(
                CloudState::new(vec![vip], me, BTreeMap::new())
                    .with_peer("lb-a", Duration::from_secs(3)),
            );
            core.peer = Some(PeerLink {
                address: "10.0.0.2:9843".into(),
                max_age: Duration::from_secs(3),
                fresh: false,
            });
            core.apply(Event::HostAddresses(BTreeSet::new()), stamp(0));
            core.apply(observed(10, "eni-peer", &["eipalloc-web"]), stamp(20));
            core
        };
        let report = |seq, probe, address| {
            Event::Peer(Report {
                seq,
                probe,
                vips: vec![VipReport {
                    name: "db".into(),
                    cloud: Some("here".into()),
                    claim_in_flight: false,
                    address_on_host: Some(address),
                }],
                eni: Some("eni-peer".into()),
                ..Report::sample("lb-b", "db")
            })
        };
        let adds = |plan: &Plan| {
            plan.addresses
                .iter()
                .filter(|o| o.job.change == AddressChange::Add)
                .count()
        };
        let handover = |core: &Core, at| {
            let view = core.cloud.as_ref().unwrap().view(stamp(at), &core.model);
            let h = view[0]
                .handover
                .clone()
                .expect("a break-before-make VIP shows it");
            (h.peer, h.why.unwrap_or_default())
        };

        // The old holder reports: still primary, still with the address.
        let mut core = rig_bbm();
        core.apply(report(1, Health::Up, true), stamp(1_000));
        let plan = core.plan(stamp(3_500));
        assert_eq!((adds(&plan), claims(&plan).len()), (0, 0));
        assert_eq!(verdicts(&plan), [("db", "hold")]);
        let waiting = |core: &Core| {
            core.cloud
                .as_ref()
                .unwrap()
                .handovers_waiting()
                .map(|(v, w)| (v.to_owned(), w))
                .collect::<Vec<_>>()
        };
        assert_eq!(waiting(&core), [("db".to_owned(), true)], "the gauge");
        let (peer, why) = handover(&core, 3_500);
        assert_eq!(peer, "waiting");
        assert!(why.contains("still carries the address"), "{why}");
        // Still reporting at 40 s: fence_wait does not run while it does.
        core.apply(report(2, Health::Up, true), stamp(40_000));
        let plan = core.plan(stamp(40_100));
        assert_eq!((adds(&plan), claims(&plan).len()), (0, 0));
        // It lets go: the address first, then the claim.
        core.apply(report(3, Health::Down, false), stamp(40_200));
        let plan = core.plan(stamp(40_300));
        assert_eq!((adds(&plan), claims(&plan).len()), (1, 0));
        assert_eq!(handover(&core, 40_300).0, "reported");
        core.apply(
            Event::HostAddresses(["10.0.0.50".parse().unwrap()].into()),
            stamp(40_400),
        );
        let plan = core.plan(stamp(40_500));
        assert_eq!(claims(&plan).len(), 1, "{:?}", verdicts(&plan));
        assert_eq!(waiting(&core), [("db".to_owned(), false)], "the gauge");

        // A peer that never reports: fenced by silence after fence_wait.
        let mut core = rig_bbm();
        let plan = core.plan(stamp(29_999));
        assert_eq!((adds(&plan), claims(&plan).len()), (0, 0));
        assert_eq!(verdicts(&plan), [("db", "wait")]);
        assert_eq!(plan.wake, Some(Mono::from_millis(30_000)));
        let plan = core.plan(stamp(30_000));
        assert_eq!(adds(&plan), 1);
        assert_eq!(handover(&core, 30_000).0, "fenced");
    }

    /// A wrapped run's start watches the cloud until its timeout (at most
    /// WATCH_AT_MOST); its report ends the watch, and asks at once
    /// (Confirm) when it succeeded.
    #[test]
    fn a_wrapped_run_is_watched_until_it_ends() {
        let mut core = rig_in(Mode::Heal);
        let start = |timeout| Event::NotifyStarted {
            instance: Some("VI_1".into()),
            timeout,
        };
        core.apply(start(Duration::from_secs(20)), stamp(1_000));
        let plan = core.plan(stamp(1_001));
        assert_eq!(
            plan.asks,
            [
                Ask::Hint,
                Ask::Watch {
                    until: stamp(21_000).mono
                }
            ]
        );
        core.apply(notify(Outcome::Succeeded), stamp(1_900));
        let plan = core.plan(stamp(1_901));
        assert_eq!(
            plan.asks,
            [
                Ask::Confirm,
                Ask::Watch {
                    until: stamp(1_900).mono
                }
            ]
        );
        // A longer timeout is watched for WATCH_AT_MOST; another
        // instance's run is not watched.
        core.apply(start(Duration::from_secs(600)), stamp(3_000));
        let plan = core.plan(stamp(3_001));
        assert_eq!(
            plan.asks,
            [Ask::Watch {
                until: stamp(63_000).mono
            }]
        );
        core.apply(
            Event::NotifyStarted {
                instance: Some("VI_9".into()),
                timeout: Duration::from_secs(20),
            },
            stamp(4_000),
        );
        assert!(core.plan(stamp(4_001)).asks.is_empty());
    }

    /// Rule 5 in `heal` mode (grace 10 s), at 3.5 s: a run whose end the
    /// wrapper reported, succeeded or not, ends grace, and the view asked
    /// for after the report decides (rule 7); a skipped run ends nothing.
    #[test]
    fn rule_5_any_ended_run_ends_grace() {
        let rows: [(&str, Option<Outcome>, u64, [&str; 2]); 6] = [
            (
                "rule 5: no report: grace holds",
                None,
                1_300,
                ["wait", "wait"],
            ),
            (
                "rule 5: a run that exited 0 without moving the VIP: healed at once",
                Some(Outcome::Succeeded),
                1_300,
                ["claim", "claim"],
            ),
            (
                "rule 7: a view asked for before that report asks again",
                Some(Outcome::Succeeded),
                1_100,
                ["refresh", "refresh"],
            ),
            (
                "rule 5: a failed run: healed at once",
                Some(Outcome::Failed),
                1_300,
                ["claim", "claim"],
            ),
            (
                "rule 5: a run that timed out: healed at once",
                Some(Outcome::TimedOut),
                1_300,
                ["claim", "claim"],
            ),
            (
                "rule 5: a skipped run (the peer holds the VIP) ends nothing",
                Some(Outcome::Skipped),
                1_300,
                ["wait", "wait"],
            ),
        ];
        for (name, outcome, seen, want) in rows {
            let mut core = rig_in(Mode::Heal);
            if let Some(o) = outcome {
                core.apply(notify(o), stamp(1_200));
            }
            core.apply(observed(seen, "eni-peer", &[]), stamp(seen + 10));
            let plan = core.plan(stamp(3_500));
            let kinds: Vec<&str> = verdicts(&plan).into_iter().map(|(_, k)| k).collect();
            assert_eq!(kinds, want, "{name}");
        }
    }

    /// A claim that failed or was dropped hints, and the next claim waits
    /// for a view asked after it (rule 7), carrying the bumped generation.
    #[test]
    fn after_a_dropped_claim_the_next_waits_for_a_fresh_view() {
        let mut core = rig();
        core.apply(observed(0, "eni-peer", &[]), stamp(0));
        let plan = core.plan(stamp(3_000));
        assert_eq!(claims(&plan), [("web", 4), ("db", 4)]);
        core.cloud.as_mut().unwrap().bump();
        let applied = core.apply(done("web", ClaimOutcome::Dropped), stamp(3_100));
        assert!(
            applied.notes.iter().any(|n| matches!(
                n,
                Note::ClaimDone {
                    outcome: ClaimOutcome::Dropped,
                    ..
                }
            )),
            "{applied:?}"
        );
        let plan = core.plan(stamp(3_200));
        assert_eq!(
            plan.asks,
            [Ask::Hint, Ask::Now],
            "a hint, then a fresh view"
        );
        assert!(plan.claims.is_empty(), "no claim on the old view");
        core.apply(observed(3_300, "eni-peer", &[]), stamp(3_310));
        let plan = core.plan(stamp(3_320));
        assert_eq!(claims(&plan), [("web", 5)]);
        assert_eq!(plan.generation, 5);
    }

    #[test]
    fn an_unknown_allocation_id_is_a_note_and_shows_in_the_view() {
        let mut core = rig();
        let applied = core.apply(observed(10, "eni-me", &["eipalloc-db"]), stamp(10));
        assert!(
            applied.notes.contains(&Note::AllocationUnknown {
                vip: "db".into(),
                allocation_id: "eipalloc-db".into(),
                unknown: true
            }),
            "{:?}",
            applied.notes
        );
        let view = core.cloud.as_ref().unwrap().view(stamp(20), &core.model);
        assert_eq!(
            view.iter()
                .map(|v| (v.name.as_str(), v.allocation_known, v.cloud.clone()))
                .collect::<Vec<_>>(),
            [("web", true, Some(Holder::Here)), ("db", false, None)]
        );
    }

    /// (input, then for (vip, action): the note's `allowed` and `before`,
    /// and the status's `allowed`)
    #[test]
    fn permissions_are_notes_and_status_per_vip() {
        let mut core = rig();
        let permission = |vips: &[&str], action, allowed, evidence| {
            Event::Cloud(CloudEvent::Permission {
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
            })
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
        let failed = |e| {
            Event::Cloud(CloudEvent::Observed {
                sent: stamp(0),
                result: Err(e),
                unknown: vec![],
            })
        };
        use Action::*;
        type Row = (
            Event,
            &'static str,
            Action,
            Option<(bool, Option<bool>)>,
            Option<bool>,
        );
        let table: Vec<Row> = vec![
            (
                permission(&["web"], AssociateAddress, false, Evidence::DryRun),
                "web",
                AssociateAddress,
                Some((false, None)),
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
                Some((true, Some(false))),
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
                Some((true, None)),
                Some(true),
            ),
            // The verifier's describe is evidence too, for every VIP.
            (
                failed(denied),
                "db",
                DescribeAddresses,
                Some((false, None)),
                Some(false),
            ),
            // A throttled describe says nothing about the permission.
            (
                failed(throttled),
                "db",
                DescribeAddresses,
                None,
                Some(false),
            ),
            (
                observed(1, "eni-me", &[]),
                "db",
                DescribeAddresses,
                Some((true, Some(false))),
                Some(true),
            ),
        ];
        for (i, (input, vip, action, note, allowed)) in table.into_iter().enumerate() {
            let applied = core.apply(input, stamp(1));
            let noted = applied.notes.iter().find_map(|n| match n {
                Note::Permission {
                    vip: v,
                    action: a,
                    allowed,
                    before,
                    ..
                } if v == vip && *a == action => Some((*allowed, *before)),
                _ => None,
            });
            assert_eq!(noted, note, "row {i}: the note for ({vip}, {action:?})");
            let view = core.cloud.as_ref().unwrap().view(stamp(1), &core.model);
            let shown = view
                .iter()
                .find(|v| v.name == vip)
                .and_then(|v| v.permissions.iter().find(|p| p.action == action.as_str()))
                .map(|p| p.allowed);
            assert_eq!(shown, allowed, "row {i}: the status of ({vip}, {action:?})");
        }
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
        let verdict = |core: &Core, now: Stamp| {
            let view = core.cloud.as_ref().unwrap().view(now, &core.model);
            (view[0].verdict, view[0].why.clone())
        };
        let rows = [
            (500, 3_600, "wait"),
            (500, -3_600, "wait"),
            (2_999, 86_400, "wait"),
            (3_000, -86_400, "claim"),
        ];
        for (mono, offset, want) in rows {
            let mut core = rig();
            core.apply(observed(10, "eni-peer", &[]), stamp(10));
            core.plan(at(mono, offset));
            let (got, why) = verdict(&core, at(mono, offset));
            assert_eq!(
                got,
                Some(want),
                "mono {mono} ms, wall {offset:+} s: {why:?}"
            );
        }
        // Damping: three failed claims fill the window; a wall clock
        // stepped a day forward does not empty it.
        let mut core = rig();
        for i in 0..3u64 {
            let t = 3_000 + i * 1_000;
            core.apply(observed(t, "eni-peer", &[]), stamp(t));
            core.plan(stamp(t));
            for vip in ["web", "db"] {
                core.apply(done(vip, ClaimOutcome::Failed), stamp(t + 100));
            }
        }
        core.apply(observed(6_500, "eni-peer", &[]), stamp(6_500));
        let plan = core.plan(at(7_000, 86_400));
        assert!(
            plan.notes.iter().any(|n| matches!(n, Note::Verdict { vip, verdict: crate::core::decide::Verdict::Damped { .. }, .. } if vip == "web")),
            "{:?}",
            plan.notes
        );
        let (got, why) = verdict(&core, at(7_000, 86_400));
        assert_eq!(got, Some("damped"), "{why:?}");
    }
}
