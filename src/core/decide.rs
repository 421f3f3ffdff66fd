//! The reconciler's rules: whether to claim each VIP for this node, and why.
//!
//! Pure: `Reconciler::decide(now, inputs)` returns a verdict per VIP; the
//! owner task sends claims to the executor and feeds results back with
//! `observe_cloud` and `claim_finished`. The rules, in order:
//!
//! 1. Never act without knowing the cloud's view of the VIP.
//! 2. Never act unless the VRRP instance is MASTER by evidence, Keepalived
//!    runs, and the local probe is up.
//! 3. Nothing to do when the cloud shows the VIP on this node's
//!    (ENI, private IP).
//! 4. Never act on a MASTER younger than `min_master_age` (a node that is
//!    MASTER for under a second at boot never claims).
//! 5. In `heal` mode, leave the notify script `grace` to move it first.
//! 6. Never claim when the OS does not carry the private IP (traffic would
//!    be dropped), while a claim is in flight, or after a claim that failed
//!    until the cloud has been asked again (a failed claim may have changed
//!    something: an assign moves the EIP along with the private IP).
//! 7. Damping: at most `max_claims` per `claim_window`, and after a claim
//!    that the cloud undid, back off exponentially.
//!
//! There is no rule that releases, disassociates or pushes a VIP to the
//! peer: this node only ever claims for itself.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::core::model::{Health, VrrpState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A notify script moves the VIP; the watchdog heals after `grace`.
    Heal,
    /// The watchdog moves the VIP at once; no notify script needed.
    Own,
}

/// What one VIP's rules are configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct VipPolicy {
    pub mode: Mode,
    pub grace: Duration,
    pub min_master_age: Duration,
    pub max_claims: u32,
    pub claim_window: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub dry_run: bool,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = |ip: &Option<IpAddr>| ip.map_or("none".to_owned(), |i| i.to_string());
        match self {
            Holder::Here => write!(f, "here, on this node's ENI and private IP"),
            Holder::HereOtherIp { private_ip } => {
                write!(f, "on this node's ENI but private IP {}", ip(private_ip))
            }
            Holder::Elsewhere {
                network_interface_id,
                private_ip,
            } => write!(
                f,
                "on another ENI, {} (private IP {})",
                network_interface_id.as_deref().unwrap_or("unknown"),
                ip(private_ip)
            ),
            Holder::Nowhere => write!(f, "nowhere (not associated)"),
        }
    }
}

/// Where the cloud says an address is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "where", rename_all = "snake_case")]
pub enum Holder {
    /// Associated with this node's ENI on the configured private IP.
    Here,
    /// Associated with this node's ENI, but on another private IP.
    HereOtherIp { private_ip: Option<IpAddr> },
    /// Associated with another ENI.
    Elsewhere {
        network_interface_id: Option<String>,
        private_ip: Option<IpAddr>,
    },
    /// Not associated.
    Nowhere,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealReason {
    /// Not associated anywhere: the notify script did not run or failed.
    Missed,
    /// On another ENI and never here during this mastership: the notify
    /// script failed, ran on the wrong node, or raced.
    Elsewhere,
    /// It was here during this mastership and something moved it away.
    Stolen,
    /// On this ENI but on another private IP.
    Drifted,
}

impl HealReason {
    pub const ALL: [HealReason; 4] = [Self::Missed, Self::Elsewhere, Self::Stolen, Self::Drifted];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missed => "missed",
            Self::Elsewhere => "elsewhere",
            Self::Stolen => "stolen",
            Self::Drifted => "drifted",
        }
    }
}

/// The verdict for one VIP, with the reason in words.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Claim the VIP for this node now.
    Claim { reason: HealReason, dry_run: bool },
    /// Nothing to do until `until` (or until something changes).
    Wait { until: SystemTime, why: String },
    /// A claim would be due but damping holds it back until `until`.
    Damped { until: SystemTime, why: String },
    /// Nothing to do: converged, or acting is not this node's business.
    Hold { why: String },
}

impl Verdict {
    /// The same decision, for logging and the status: a wait or a damping
    /// is the same one while its end is (its text counts the time passed).
    pub fn same_as(&self, other: &Verdict) -> bool {
        match (self, other) {
            (Verdict::Wait { until: a, .. }, Verdict::Wait { until: b, .. })
            | (Verdict::Damped { until: a, .. }, Verdict::Damped { until: b, .. }) => a == b,
            _ => self == other,
        }
    }
}

/// What the owner knows about the VIP's VRRP instance and the node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub vrrp: VrrpState,
    /// When the instance became MASTER, as reported; `None` when the source
    /// gave no time (then `evidence_at` bounds the age from below).
    pub since: Option<SystemTime>,
    pub evidence_at: Option<SystemTime>,
    pub keepalived_running: bool,
    pub probe: Health,
    /// The private IP is configured on an interface of this host.
    pub os_has_private_ip: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct VipState {
    /// The cloud's last answer and when it was seen.
    pub holder: Option<Holder>,
    pub observed_at: Option<SystemTime>,
    /// A claim was sent to the executor and has not finished.
    pub in_flight: bool,
    /// When each claim in the current window was sent.
    #[serde(skip)]
    pub claims: VecDeque<SystemTime>,
    /// Claims that converged and were then undone, in a row.
    pub undone_in_a_row: u32,
    pub backoff_until: Option<SystemTime>,
    /// The VIP was seen here during the present mastership.
    pub held_this_mastership: bool,
    /// The mastership (its `since`) for which the failover latency was
    /// already recorded.
    #[serde(skip)]
    latency_recorded_for: Option<SystemTime>,
    /// The last claim converged (so a later move away means it was undone).
    #[serde(skip)]
    last_claim_converged: bool,
    /// When the last claim failed, until the cloud is observed after it.
    #[serde(skip)]
    pub failed_claim_at: Option<SystemTime>,
}

/// Something the owner should record when the cloud view changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// The VIP is now here; `latency` is from entering MASTER, when known.
    ArrivedHere { latency: Option<Duration> },
    /// The VIP left this node while MASTER, after a claim of ours converged.
    Undone,
}

#[derive(Debug, Default)]
pub struct Reconciler {
    pub vips: BTreeMap<String, VipState>,
}

impl Reconciler {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            vips: names
                .into_iter()
                .map(|n| (n.to_owned(), VipState::default()))
                .collect(),
        }
    }

    /// Records the cloud's answer for `vip`. `node` is the present view of
    /// the node, used to attribute failover latency and undone claims.
    pub fn observe_cloud(
        &mut self,
        vip: &str,
        holder: Holder,
        at: SystemTime,
        node: &NodeView,
        policy: &VipPolicy,
    ) -> Vec<Observed> {
        let Some(st) = self.vips.get_mut(vip) else {
            return vec![];
        };
        let mut out = vec![];
        let master = node.vrrp == VrrpState::Master;
        if !master {
            // A mastership ended: the next one starts without back-off.
            st.held_this_mastership = false;
            st.undone_in_a_row = 0;
            st.backoff_until = None;
            st.last_claim_converged = false;
        }
        let was_here = st.holder == Some(Holder::Here);
        if holder == Holder::Here {
            if master {
                st.held_this_mastership = true;
                let mastership = node.since.or(node.evidence_at);
                if !was_here && st.latency_recorded_for != mastership {
                    st.latency_recorded_for = mastership;
                    let latency = node.since.and_then(|s| at.duration_since(s).ok());
                    out.push(Observed::ArrivedHere { latency });
                }
            }
        } else if was_here && master && st.last_claim_converged {
            st.undone_in_a_row += 1;
            let factor = 1u32 << st.undone_in_a_row.saturating_sub(1).min(16);
            let backoff = policy
                .backoff_base
                .saturating_mul(factor)
                .min(policy.backoff_max);
            st.backoff_until = Some(at + backoff);
            st.last_claim_converged = false;
            out.push(Observed::Undone);
        }
        st.holder = Some(holder);
        st.observed_at = Some(at);
        if st.failed_claim_at.is_some_and(|f| at >= f) {
            st.failed_claim_at = None;
        }
        out
    }

    /// The executor finished a claim at `at`; `converged` when the cloud
    /// confirmed it. Where the VIP is comes only from `observe_cloud`; after
    /// a failure the next claim waits for a view observed at or after `at`.
    pub fn claim_finished(&mut self, vip: &str, converged: bool, at: SystemTime) {
        if let Some(st) = self.vips.get_mut(vip) {
            st.in_flight = false;
            st.last_claim_converged = converged;
            st.failed_claim_at = (!converged).then_some(at);
        }
    }

    /// A claim was handed to the executor.
    pub fn claim_sent(&mut self, vip: &str, at: SystemTime) {
        if let Some(st) = self.vips.get_mut(vip) {
            st.in_flight = true;
            st.claims.push_back(at);
        }
    }

    /// The verdict for one VIP.
    pub fn decide(
        &mut self,
        vip: &str,
        now: SystemTime,
        node: &NodeView,
        policy: &VipPolicy,
    ) -> Verdict {
        let hold = |why: &str| Verdict::Hold {
            why: why.to_owned(),
        };
        let Some(st) = self.vips.get_mut(vip) else {
            return hold("unknown VIP");
        };
        // Rule 1.
        let Some(holder) = st.holder.clone() else {
            return hold("the cloud's view is not known yet");
        };
        // Rule 2.
        if node.vrrp != VrrpState::Master {
            return Verdict::Hold {
                why: format!("VRRP state is {}: only a MASTER claims", node.vrrp),
            };
        }
        if !node.keepalived_running {
            return hold("keepalived is not running");
        }
        if node.probe != Health::Up {
            return Verdict::Hold {
                why: format!(
                    "the local probe is {}: never claim for an unhealthy node",
                    node.probe.as_str()
                ),
            };
        }
        // Rule 3.
        let reason = match holder {
            Holder::Here => return hold("converged: the cloud shows the VIP on this node"),
            Holder::HereOtherIp { .. } => HealReason::Drifted,
            Holder::Nowhere => HealReason::Missed,
            Holder::Elsewhere { .. } if st.held_this_mastership => HealReason::Stolen,
            Holder::Elsewhere { .. } => HealReason::Elsewhere,
        };
        // Rule 4: age from the reported transition, or at least since the
        // evidence arrived.
        let Some(master_from) = node.since.or(node.evidence_at) else {
            return hold("no time for this mastership");
        };
        let age = now.duration_since(master_from).unwrap_or_default();
        if age < policy.min_master_age {
            return Verdict::Wait {
                until: master_from + policy.min_master_age,
                why: format!(
                    "MASTER for {} ms, less than min_master_age",
                    age.as_millis()
                ),
            };
        }
        // Rule 5.
        if policy.mode == Mode::Heal && age < policy.grace {
            return Verdict::Wait {
                until: master_from + policy.grace,
                why: "heal mode: the notify script has its grace to move the VIP".into(),
            };
        }
        // Rule 6.
        if !node.os_has_private_ip {
            return hold(
                "the private IP is not on this host's interfaces: claiming would black-hole traffic",
            );
        }
        if st.in_flight {
            return hold("a claim is in flight");
        }
        if st.failed_claim_at.is_some() {
            return hold("the last claim failed: asking the cloud again before another");
        }
        // Rule 7.
        while st
            .claims
            .front()
            .is_some_and(|t| now.duration_since(*t).unwrap_or_default() >= policy.claim_window)
        {
            st.claims.pop_front();
        }
        if st.claims.len() as u32 >= policy.max_claims {
            let until = st.claims.front().map_or(now, |t| *t + policy.claim_window);
            return Verdict::Damped {
                until,
                why: format!(
                    "{} claims in the last {}: max_claims reached",
                    st.claims.len(),
                    humantime::format_duration(policy.claim_window)
                ),
            };
        }
        if let Some(until) = st.backoff_until.filter(|u| *u > now) {
            return Verdict::Damped {
                until,
                why: format!("backing off after {} undone claim(s)", st.undone_in_a_row),
            };
        }
        Verdict::Claim {
            reason,
            dry_run: policy.dry_run,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_read_as_words() {
        let ip = Some("10.0.0.5".parse().unwrap());
        let table = [
            (Holder::Here, "here, on this node's ENI and private IP"),
            (
                Holder::HereOtherIp { private_ip: ip },
                "on this node's ENI but private IP 10.0.0.5",
            ),
            (
                Holder::Elsewhere {
                    network_interface_id: Some("eni-peer".into()),
                    private_ip: ip,
                },
                "on another ENI, eni-peer (private IP 10.0.0.5)",
            ),
            (
                Holder::Elsewhere {
                    network_interface_id: None,
                    private_ip: None,
                },
                "on another ENI, unknown (private IP none)",
            ),
            (Holder::Nowhere, "nowhere (not associated)"),
        ];
        for (h, words) in table {
            assert_eq!(h.to_string(), words);
        }
    }

    fn t(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_millis(ms)
    }

    fn policy(mode: Mode) -> VipPolicy {
        VipPolicy {
            mode,
            grace: Duration::from_secs(5),
            min_master_age: Duration::from_secs(3),
            max_claims: 3,
            claim_window: Duration::from_secs(600),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            dry_run: false,
        }
    }

    /// MASTER since t(0), everything healthy.
    fn master() -> NodeView {
        NodeView {
            vrrp: VrrpState::Master,
            since: Some(t(0)),
            evidence_at: Some(t(0)),
            keepalived_running: true,
            probe: Health::Up,
            os_has_private_ip: true,
        }
    }

    fn elsewhere() -> Holder {
        Holder::Elsewhere {
            network_interface_id: Some("eni-peer".into()),
            private_ip: Some("10.0.0.50".parse().unwrap()),
        }
    }

    fn kind(v: &Verdict) -> String {
        match v {
            Verdict::Claim { reason, dry_run } => format!(
                "claim {}{}",
                reason.as_str(),
                if *dry_run { " (dry run)" } else { "" }
            ),
            Verdict::Wait { .. } => "wait".into(),
            Verdict::Damped { .. } => "damped".into(),
            Verdict::Hold { .. } => "hold".into(),
        }
    }

    /// (rule, mode, node, cloud holder, now in ms, expected verdict)
    #[test]
    fn rules_table() {
        use Mode::*;
        let with = |f: fn(&mut NodeView)| {
            let mut n = master();
            f(&mut n);
            n
        };
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Mode, NodeView, Option<Holder>, u64, &str)> = vec![
            ("cloud view unknown", Own, master(), None, 10_000, "hold"),
            (
                "backup never claims",
                Own,
                with(|n| n.vrrp = VrrpState::Backup),
                Some(Holder::Nowhere),
                10_000,
                "hold",
            ),
            (
                "fault never claims",
                Own,
                with(|n| n.vrrp = VrrpState::Fault),
                Some(Holder::Nowhere),
                10_000,
                "hold",
            ),
            (
                "stop never claims",
                Own,
                with(|n| n.vrrp = VrrpState::Stop),
                Some(Holder::Nowhere),
                10_000,
                "hold",
            ),
            (
                "unknown never claims",
                Own,
                with(|n| n.vrrp = VrrpState::Unknown),
                Some(Holder::Nowhere),
                10_000,
                "hold",
            ),
            (
                "keepalived gone",
                Own,
                with(|n| n.keepalived_running = false),
                Some(Holder::Nowhere),
                10_000,
                "hold",
            ),
            (
                "probe down",
                Own,
                with(|n| n.probe = Health::Down),
                Some(Holder::Nowhere),
                10_000,
                "hold",
            ),
            (
                "probe unknown",
                Own,
                with(|n| n.probe = Health::Unknown),
                Some(Holder::Nowhere),
                10_000,
                "hold",
            ),
            (
                "converged",
                Own,
                master(),
                Some(Holder::Here),
                10_000,
                "hold",
            ),
            (
                "a MASTER of 0.5 s (boot) never claims",
                Own,
                master(),
                Some(elsewhere()),
                500,
                "wait",
            ),
            (
                "min_master_age boundary reached",
                Own,
                master(),
                Some(elsewhere()),
                3_000,
                "claim elsewhere",
            ),
            (
                "own mode acts after min_master_age",
                Own,
                master(),
                Some(Holder::Nowhere),
                3_000,
                "claim missed",
            ),
            (
                "heal mode waits for grace",
                Heal,
                master(),
                Some(Holder::Nowhere),
                3_000,
                "wait",
            ),
            (
                "heal mode heals after grace",
                Heal,
                master(),
                Some(Holder::Nowhere),
                5_000,
                "claim missed",
            ),
            (
                "drifted to another private IP",
                Own,
                master(),
                Some(Holder::HereOtherIp { private_ip: None }),
                10_000,
                "claim drifted",
            ),
            (
                "private IP not on the host",
                Own,
                with(|n| n.os_has_private_ip = false),
                Some(Holder::Nowhere),
                10_000,
                "hold",
            ),
            (
                "no since: age counts from the evidence",
                Own,
                with(|n| {
                    n.since = None;
                    n.evidence_at = Some(t(8_000));
                }),
                Some(Holder::Nowhere),
                10_000,
                "wait",
            ),
            (
                "no time at all",
                Own,
                with(|n| {
                    n.since = None;
                    n.evidence_at = None;
                }),
                Some(Holder::Nowhere),
                10_000,
                "hold",
            ),
        ];
        for (rule, mode, node, holder, now, want) in cases {
            let mut r = Reconciler::new(["vip"]);
            if let Some(h) = holder {
                r.observe_cloud("vip", h, t(now), &node, &policy(mode));
            }
            let got = r.decide("vip", t(now), &node, &policy(mode));
            assert_eq!(kind(&got), want, "rule: {rule}: {got:?}");
        }
    }

    #[test]
    fn wait_says_until_when() {
        let mut r = Reconciler::new(["vip"]);
        r.observe_cloud(
            "vip",
            Holder::Nowhere,
            t(1_000),
            &master(),
            &policy(Mode::Heal),
        );
        let Verdict::Wait { until, .. } = r.decide("vip", t(1_000), &master(), &policy(Mode::Heal))
        else {
            panic!("a young MASTER waits");
        };
        assert_eq!(until, t(3_000), "min_master_age first");
        let Verdict::Wait { until, .. } = r.decide("vip", t(3_500), &master(), &policy(Mode::Heal))
        else {
            panic!("then the grace");
        };
        assert_eq!(until, t(5_000));
    }

    #[test]
    fn dry_run_claims_are_marked() {
        let mut r = Reconciler::new(["vip"]);
        let p = VipPolicy {
            dry_run: true,
            ..policy(Mode::Own)
        };
        r.observe_cloud("vip", Holder::Nowhere, t(5_000), &master(), &p);
        assert_eq!(
            kind(&r.decide("vip", t(5_000), &master(), &p)),
            "claim missed (dry run)"
        );
    }

    /// A failed claim may have changed the cloud (an assign moves the EIP
    /// with the private IP): the next claim waits for a view taken after it;
    /// an answer from before the failure does not count.
    #[test]
    fn after_a_failed_claim_the_next_waits_for_a_fresh_view() {
        let p = policy(Mode::Own);
        let mut r = Reconciler::new(["vip"]);
        let node = master();
        r.observe_cloud("vip", elsewhere(), t(5_000), &node, &p);
        assert_eq!(
            kind(&r.decide("vip", t(5_000), &node, &p)),
            "claim elsewhere"
        );
        r.claim_sent("vip", t(5_000));
        r.claim_finished("vip", false, t(5_300));
        let rows = [
            // (observed at, holder, then the verdict at 6 s)
            (None, "hold"),
            (Some((t(5_200), elsewhere())), "hold"),
            (Some((t(5_400), elsewhere())), "claim elsewhere"),
        ];
        for (seen, want) in rows {
            if let Some((at, holder)) = seen {
                r.observe_cloud("vip", holder, at, &node, &p);
            }
            let v = r.decide("vip", t(6_000), &node, &p);
            assert_eq!(kind(&v), want, "{v:?}");
        }
        // The fresh view may show the failed claim landed after all.
        r.claim_sent("vip", t(6_000));
        r.claim_finished("vip", false, t(6_300));
        r.observe_cloud("vip", Holder::Here, t(6_400), &node, &p);
        assert_eq!(
            r.decide("vip", t(6_500), &node, &p),
            Verdict::Hold {
                why: "converged: the cloud shows the VIP on this node".into()
            }
        );
    }

    #[test]
    fn one_claim_at_a_time_and_at_most_max_claims_per_window() {
        let p = policy(Mode::Own);
        let mut r = Reconciler::new(["vip"]);
        let node = master();
        r.observe_cloud("vip", Holder::Nowhere, t(5_000), &node, &p);
        assert_eq!(kind(&r.decide("vip", t(5_000), &node, &p)), "claim missed");
        r.claim_sent("vip", t(5_000));
        assert_eq!(
            kind(&r.decide("vip", t(5_100), &node, &p)),
            "hold",
            "in flight"
        );
        // Two more claims that do not converge, each after a new view.
        r.claim_finished("vip", false, t(5_500));
        r.observe_cloud("vip", Holder::Nowhere, t(5_600), &node, &p);
        r.claim_sent("vip", t(6_000));
        r.claim_finished("vip", false, t(6_500));
        r.observe_cloud("vip", Holder::Nowhere, t(6_600), &node, &p);
        r.claim_sent("vip", t(7_000));
        r.claim_finished("vip", false, t(7_500));
        r.observe_cloud("vip", Holder::Nowhere, t(7_600), &node, &p);
        let v = r.decide("vip", t(8_000), &node, &p);
        assert_eq!(
            v,
            Verdict::Damped {
                until: t(605_000),
                why: "3 claims in the last 10m: max_claims reached".into()
            }
        );
        // The window slides: the first claim ages out.
        assert_eq!(
            kind(&r.decide("vip", t(605_000), &node, &p)),
            "claim missed"
        );
    }

    #[test]
    fn an_undone_claim_backs_off_exponentially_and_is_stolen() {
        let p = VipPolicy {
            max_claims: 100,
            ..policy(Mode::Own)
        };
        let mut r = Reconciler::new(["vip"]);
        let node = master();
        let mut now = 10_000;
        for round in 1..=4u32 {
            r.observe_cloud("vip", elsewhere(), t(now), &node, &p);
            let v = r.decide("vip", t(now), &node, &p);
            let want = if round == 1 {
                "claim elsewhere"
            } else {
                "claim stolen"
            };
            assert_eq!(kind(&v), want, "round {round}");
            r.claim_sent("vip", t(now));
            r.claim_finished("vip", true, t(now + 50));
            // The cloud confirms, then the VIP is taken away again.
            r.observe_cloud("vip", Holder::Here, t(now + 100), &node, &p);
            let obs = r.observe_cloud("vip", elsewhere(), t(now + 200), &node, &p);
            assert_eq!(obs, vec![Observed::Undone]);
            let backoff = Duration::from_secs(10 * 2u64.pow(round - 1));
            let Verdict::Damped { until, .. } = r.decide("vip", t(now + 300), &node, &p) else {
                panic!("round {round}: damped after an undone claim");
            };
            assert_eq!(until, t(now + 200) + backoff, "round {round}");
            now = now + 200 + backoff.as_millis() as u64;
        }
        assert_eq!(r.vips["vip"].undone_in_a_row, 4);
    }

    #[test]
    fn a_wait_or_damping_is_the_same_while_its_end_is() {
        let wait = |ms, why: &str| Verdict::Wait {
            until: t(ms),
            why: why.into(),
        };
        let damped = |ms, why: &str| Verdict::Damped {
            until: t(ms),
            why: why.into(),
        };
        let hold = |why: &str| Verdict::Hold { why: why.into() };
        let claim = |dry_run| Verdict::Claim {
            reason: HealReason::Missed,
            dry_run,
        };
        let rows = [
            (
                wait(3000, "MASTER for 0 ms"),
                wait(3000, "MASTER for 931 ms"),
                true,
            ),
            (wait(3000, "min_master_age"), wait(5000, "grace"), false),
            (damped(9000, "3 claims"), damped(9000, "3 claims"), true),
            (
                damped(9000, "3 claims"),
                damped(19000, "backing off"),
                false,
            ),
            (wait(9000, "x"), damped(9000, "x"), false),
            (hold("converged"), hold("converged"), true),
            (hold("converged"), hold("VRRP state is backup"), false),
            (claim(false), claim(false), true),
            (claim(false), claim(true), false),
        ];
        for (a, b, same) in rows {
            assert_eq!(a.same_as(&b), same, "{a:?} vs {b:?}");
            assert_eq!(b.same_as(&a), same, "{b:?} vs {a:?}");
        }
    }

    #[test]
    fn backoff_is_capped() {
        let p = VipPolicy {
            max_claims: 100,
            backoff_max: Duration::from_secs(30),
            ..policy(Mode::Own)
        };
        let mut r = Reconciler::new(["vip"]);
        let node = master();
        r.vips.get_mut("vip").unwrap().undone_in_a_row = 20;
        r.observe_cloud("vip", Holder::Here, t(10_000), &node, &p);
        r.claim_finished("vip", true, t(10_500));
        r.observe_cloud("vip", elsewhere(), t(11_000), &node, &p);
        assert_eq!(r.vips["vip"].backoff_until, Some(t(41_000)));
    }

    #[test]
    fn failover_latency_is_recorded_once_per_mastership() {
        let p = policy(Mode::Own);
        let mut r = Reconciler::new(["vip"]);
        let node = master();
        r.observe_cloud("vip", elsewhere(), t(100), &node, &p);
        let obs = r.observe_cloud("vip", Holder::Here, t(4_250), &node, &p);
        assert_eq!(
            obs,
            vec![Observed::ArrivedHere {
                latency: Some(Duration::from_millis(4_250))
            }]
        );
        assert_eq!(
            r.observe_cloud("vip", Holder::Here, t(5_000), &node, &p),
            vec![]
        );
        // Not MASTER: the VIP being here is not a failover of ours.
        let backup = NodeView {
            vrrp: VrrpState::Backup,
            ..master()
        };
        r.observe_cloud("vip", elsewhere(), t(6_000), &backup, &p);
        assert_eq!(
            r.observe_cloud("vip", Holder::Here, t(7_000), &backup, &p),
            vec![]
        );
        // A new mastership records again.
        let again = NodeView {
            since: Some(t(20_000)),
            ..master()
        };
        r.observe_cloud("vip", elsewhere(), t(20_100), &again, &p);
        let obs = r.observe_cloud("vip", Holder::Here, t(21_000), &again, &p);
        assert_eq!(
            obs,
            vec![Observed::ArrivedHere {
                latency: Some(Duration::from_millis(1_000))
            }]
        );
    }

    #[test]
    fn a_move_away_that_was_not_our_claim_is_not_undone() {
        let p = policy(Mode::Own);
        let mut r = Reconciler::new(["vip"]);
        let node = master();
        r.observe_cloud("vip", Holder::Here, t(100), &node, &p);
        assert_eq!(
            r.observe_cloud("vip", elsewhere(), t(200), &node, &p),
            vec![]
        );
        assert_eq!(r.vips["vip"].backoff_until, None);
        // But it was here during this mastership: a claim now says stolen.
        assert_eq!(kind(&r.decide("vip", t(5_000), &node, &p)), "claim stolen");
    }
}
