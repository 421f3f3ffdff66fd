//! The permission check: before any failover needs them, ask EC2 with
//! `DryRun` whether this node may make the calls a claim makes, on the
//! resources of a real claim (so an IAM policy scoped to one Elastic IP or
//! ENI is checked as it applies). `DryRunOperation` means allowed,
//! `UnauthorizedOperation` or `AuthFailure` means denied; the owner turns the
//! answers into the `vip_watchdog_cloud_permission_denied` gauge, the status
//! and the logs. Runs at start-up and every `permission_check_interval`; an
//! action that got no answer (throttled, unreachable) is asked again within a
//! minute.
//!
//! AssignPrivateIpAddresses has no `DryRun` in EC2's API: its permission is
//! learnt from the first real call (the executor reports it). So are a
//! route VIP's (DescribeRouteTables from the verifier's describes,
//! ReplaceRoute and CreateRoute from claims): a route `DryRun` that an
//! endpoint ignored would move the route.
//!
//! Safety: a `DryRun` call mutates nothing where `DryRun` is honoured, and
//! EC2 honours it. An endpoint that does not (some emulators, some proxies)
//! would perform the call: DescribeAddresses is asked first, and if the
//! endpoint answers it as a real call, the check stops before any call that
//! could mutate, and says so.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::cloud::call::{CallPolicy, call};
use crate::cloud::{ClaimTarget, Cloud, DryRunAnswer};
use crate::core::input::Event;
use crate::core::message::{CloudEvent, Evidence};
use crate::core::seen::{Action, Me, Seen, view_of};
use crate::core::target::VipTarget;
use crate::core::words::RouteState;
use crate::metrics::Metrics;

/// How soon an action that got no answer is asked again.
pub const RETRY_UNANSWERED: Duration = Duration::from_secs(60);

pub struct Checker<C: Cloud> {
    pub cloud: Arc<C>,
    pub metrics: Arc<Metrics>,
    pub policy: CallPolicy,
    /// Each VIP's name and the parameters its claim uses.
    pub targets: Vec<(String, ClaimTarget)>,
    pub interval: Duration,
}

/// Each Elastic IP or private-IP VIP's name and what its claim acts on
/// for `me` (a route VIP's permissions are learnt from real calls).
pub fn targets(vips: &[crate::config::VipConfig], me: &Me) -> Vec<(String, ClaimTarget)> {
    vips.iter()
        .filter(|v| !matches!(v.target, VipTarget::Route { .. }))
        .map(|v| {
            let t = ClaimTarget {
                allocation_id: v.target.allocation_id().unwrap_or_default().to_owned(),
                eni: me.eni.clone(),
                instance: matches!(v.target, VipTarget::EipOnInstance { .. })
                    .then(|| me.instance_id.clone()),
                actions: Action::needed(&v.target),
            };
            (v.name.clone(), t)
        })
        .collect()
}

/// What one round of checks found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub allowed: usize,
    pub denied: usize,
    pub unanswered: usize,
    /// The endpoint performed a `DryRun` call: checking stopped.
    pub dry_run_ignored: bool,
}

impl<C: Cloud> Checker<C> {
    pub async fn run(
        self,
        events: mpsc::Sender<Event>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        async move {
            loop {
                let round = tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    r = self.round(&events) => r,
                };
                let Some(round) = round else { return Ok(()) };
                if round.dry_run_ignored {
                    cancel.cancelled().await;
                    return Ok(());
                }
                let next = if round.unanswered > 0 {
                    self.interval.min(RETRY_UNANSWERED)
                } else {
                    self.interval
                };
                info!(event = "permission_check_done",
                    allowed = round.allowed,
                    denied = round.denied,
                    unanswered = round.unanswered,
                    next_in = %humantime::format_duration(next),
                    "cloud permission check done"
                );
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(next) => {}
                }
            }
        }
        .instrument(info_span!("permission check"))
        .await
    }

    /// One `DryRun` call per action (per VIP for the per-VIP ones), describes
    /// first. `None` when the owner is gone.
    pub async fn round(&self, events: &mpsc::Sender<Event>) -> Option<Round> {
        let mut round = Round::default();
        // Whether the endpoint really answered `DryRunOperation` this round:
        // only then may a DryRun of a mutating action be sent.
        let mut dry_run_honoured = false;
        for action in Action::ALL.into_iter().filter(|a| a.has_dry_run()) {
            let needing: Vec<&(String, ClaimTarget)> = self
                .targets
                .iter()
                .filter(|(_, t)| t.actions.contains(&action))
                .collect();
            if needing.is_empty() {
                continue;
            }
            if action.per_vip() && !dry_run_honoured {
                info!(
                    event = "permission_dry_run_waits",
                    operation = action.as_str(),
                    "no describe was answered DryRunOperation this round: the DryRun of a mutating action waits for one (an endpoint that ignores DryRun would perform it)"
                );
                round.unanswered += needing.len();
                continue;
            }
            let asks: Vec<(Vec<String>, &ClaimTarget)> = if action.per_vip() {
                needing.iter().map(|(v, t)| (vec![v.clone()], t)).collect()
            } else {
                let all = needing.iter().map(|(v, _)| v.clone()).collect();
                vec![(all, &needing[0].1)]
            };
            for (vips, target) in asks {
                let answer = call(
                    action.dry_run_operation(),
                    &self.policy,
                    &self.metrics,
                    || self.cloud.dry_run(action, target),
                )
                .await;
                let (allowed, detail) = match answer {
                    Ok(DryRunAnswer::Allowed) => {
                        dry_run_honoured = true;
                        (true, "DryRunOperation".to_owned())
                    }
                    Err(e) if let Some(refusal) = e.refusal() => (false, refusal),
                    Ok(DryRunAnswer::Ignored) => {
                        error!(
                            event = "permission_dry_run_ignored",
                            operation = action.as_str(),
                            fix = "set cloud.permission_check = false for this endpoint",
                            "the EC2 endpoint performed a DryRun call as a real one: it does not honour DryRun; permission checks stop here, before any call that could mutate"
                        );
                        round.dry_run_ignored = true;
                        return Some(round);
                    }
                    Err(e) => {
                        warn!(event = "permission_check_failed", operation = action.as_str(), error = %e, "cannot check the permission; asking again later");
                        round.unanswered += 1;
                        continue;
                    }
                };
                if allowed {
                    round.allowed += 1;
                } else {
                    round.denied += 1;
                }
                let event = CloudEvent::Permission {
                    vips,
                    action,
                    allowed,
                    detail,
                    evidence: Evidence::DryRun,
                    at: SystemTime::now(),
                };
                if events.send(event.into()).await.is_err() {
                    return None;
                }
            }
        }
        Some(round)
    }
}

/// `vip-watchdog check-cloud`: this node's identity, where each VIP is, and
/// one round of permission checks, once, mutating nothing.
#[derive(Debug)]
pub struct Report {
    pub identity: crate::cloud::imds::Identity,
    /// Each VIP: name, what it is, where the cloud shows it (or why not).
    pub vips: Vec<(String, String, String)>,
    /// Route VIPs' problems: a blackhole, an instance target, the ENI's
    /// source/destination check on, route tables that cannot be read.
    pub route_problems: Vec<String>,
    /// Allocation IDs EC2 says do not exist.
    pub unknown_allocations: usize,
    /// Each answer: VIP names, action, allowed, EC2's answer.
    pub answers: Vec<(Vec<String>, Action, bool, String)>,
    pub round: Round,
}

impl Report {
    /// Everything a claim needs was answered, and allowed.
    pub fn ok(&self) -> bool {
        self.round.denied == 0
            && self.round.unanswered == 0
            && !self.round.dry_run_ignored
            && self.unknown_allocations == 0
            && self.route_problems.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = &self.identity;
        writeln!(
            f,
            "node: instance {}, region {}, ENI {}",
            id.instance_id, id.region, id.interface_id
        )?;
        for (name, what, holder) in &self.vips {
            writeln!(f, "vip {name} ({what}): {holder}")?;
        }
        for p in &self.route_problems {
            writeln!(f, "  PROBLEM: {p}")?;
        }
        for (vips, action, allowed, detail) in &self.answers {
            writeln!(
                f,
                "  ec2:{:<27} {:<8} for {}: {detail}",
                action.as_str(),
                if *allowed { "allowed" } else { "REFUSED" },
                vips.join(", ")
            )?;
        }
        writeln!(
            f,
            "  ec2:{:<27} {:<8} EC2 has no DryRun for it: learnt at the first claim",
            Action::AssignPrivateIpAddresses.as_str(),
            "unknown"
        )?;
        let r = &self.round;
        write!(
            f,
            "{} allowed, {} refused, {} unanswered{}: {}",
            r.allowed,
            r.denied,
            r.unanswered,
            if r.dry_run_ignored {
                ", the endpoint ignores DryRun (check stopped)"
            } else {
                ""
            },
            if self.ok() { "OK" } else { "NOT OK" }
        )
    }
}

/// Runs `check-cloud` for a parsed config. An error is one the check could
/// not get past (no identity); refusals are in the report.
pub async fn check_cloud(
    cloud: &crate::config::CloudConfig,
    vips: &[crate::config::VipConfig],
) -> anyhow::Result<Report> {
    let identity = crate::cloud::imds::identity(cloud).await?;
    let aws = Arc::new(
        crate::cloud::aws::Aws::connect(
            &identity.region,
            cloud.endpoint.as_deref(),
            cloud.call_timeout,
        )
        .await,
    );
    let metrics = Arc::new(Metrics::new("check", "check")?);
    let policy = CallPolicy::new(cloud.call_timeout);
    let me = identity.me();
    // The verifier's own describe: one wrong allocation ID blinds no other.
    let pace = crate::cloud::verifier::pace_of(cloud);
    let mut verifier = crate::cloud::verifier::Verifier::for_vips(
        aws.clone(),
        metrics.clone(),
        policy.clone(),
        vips,
        pace,
        me.eni.clone(),
    );
    let (addresses, unknown) = verifier.describe().await;
    let addresses = addresses.map(Seen::Addresses);
    let routes = if verifier.route_tables.is_empty() {
        None
    } else {
        Some(verifier.describe_routes().await.map(Seen::RouteTables))
    };
    let private_ips = if verifier.private_ips.is_empty() {
        None
    } else {
        Some(verifier.describe_private_ips().await.map(Seen::PrivateIps))
    };
    let mut route_problems = vec![];
    let vips_seen = vips
        .iter()
        .map(|v| {
            let seen = match &v.target {
                VipTarget::Route { .. } => routes.as_ref().expect("asked when there are routes"),
                VipTarget::PrivateIp { .. } => private_ips
                    .as_ref()
                    .expect("asked when there are private-IP VIPs"),
                _ => &addresses,
            };
            let holder = match seen {
                _ if v
                    .target
                    .allocation_id()
                    .is_some_and(|id| unknown.iter().any(|u| u == id)) =>
                {
                    "UNKNOWN: EC2 does not know this allocation ID (fix vip.allocation_id)".into()
                }
                Err(e) => {
                    if matches!(v.target, VipTarget::Route { .. }) {
                        route_problems
                            .push(format!("vip {}: cannot read its route tables: {e}", v.name));
                    }
                    format!("cannot tell: {e}")
                }
                Ok(seen) => match view_of(&v.target, seen, &me) {
                    None => "not in the answer".into(),
                    Some((h, routes)) => {
                        let mut text = h.to_string();
                        for r in &routes {
                            text.push_str(&format!(
                                "\n  {}: {} {}",
                                r.route_table,
                                r.state.as_str(),
                                r.target.as_deref().unwrap_or("")
                            ));
                            match r.state {
                                RouteState::Blackhole
                                | RouteState::Instance
                                | RouteState::Other => route_problems.push(format!(
                                    "vip {}: the route in {} is {} ({})",
                                    v.name,
                                    r.route_table,
                                    r.state.as_str(),
                                    r.target.as_deref().unwrap_or("no target")
                                )),
                                _ => {}
                            }
                        }
                        text
                    }
                },
            };
            (v.name.clone(), v.target.describe(), holder)
        })
        .collect();
    if routes.is_some() {
        match aws.source_dest_check(&me.eni).await {
            Ok(true) => route_problems.push(format!(
                "ENI {}: source/destination check is on: the instance would drop traffic for a routed VIP (aws ec2 modify-network-interface-attribute --no-source-dest-check)",
                me.eni
            )),
            Ok(false) => {}
            Err(e) => route_problems.push(format!(
                "ENI {}: cannot read the source/destination check: {e}",
                me.eni
            )),
        }
    }
    let targets = targets(vips, &me);
    let capacity = 2 + targets.len();
    let checker = Checker {
        cloud: aws,
        metrics,
        policy,
        targets,
        interval: Duration::MAX,
    };
    let (tx, mut rx) = mpsc::channel(capacity);
    let round = checker
        .round(&tx)
        .await
        .ok_or_else(|| anyhow::anyhow!("the answers' channel closed"))?;
    drop(tx);
    let mut answers = vec![];
    while let Some(e) = rx.recv().await {
        if let Event::Cloud(CloudEvent::Permission {
            vips,
            action,
            allowed,
            detail,
            ..
        }) = e
        {
            answers.push((vips, action, allowed, detail));
        }
    }
    Ok(Report {
        identity,
        vips: vips_seen,
        route_problems,
        unknown_allocations: unknown.len(),
        answers,
        round,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::seen::{Address, CloudError, ErrorKind};
    use std::collections::VecDeque;
    use std::net::IpAddr;
    use std::sync::Mutex;

    /// A cloud that answers `DryRun` calls from a script and records them.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<VecDeque<Result<DryRunAnswer, CloudError>>>,
        asked: Mutex<Vec<(Action, String)>>,
    }

    impl Cloud for Scripted {
        async fn describe_addresses(&self, _: &[String]) -> Result<Vec<Address>, CloudError> {
            unreachable!("the checker only makes DryRun calls")
        }
        async fn private_ips(&self, _: &str) -> Result<Vec<IpAddr>, CloudError> {
            unreachable!("the checker only makes DryRun calls")
        }
        async fn assign_private_ip(&self, _: &str, _: IpAddr) -> Result<(), CloudError> {
            unreachable!("the checker only makes DryRun calls")
        }
        async fn associate(&self, _: &str, _: &str, _: IpAddr) -> Result<String, CloudError> {
            unreachable!("the checker only makes DryRun calls")
        }
        async fn dry_run(
            &self,
            action: Action,
            t: &ClaimTarget,
        ) -> Result<DryRunAnswer, CloudError> {
            self.asked
                .lock()
                .unwrap()
                .push((action, t.allocation_id.clone()));
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Ok(DryRunAnswer::Allowed))
        }
    }

    fn target(alloc: &str) -> ClaimTarget {
        ClaimTarget {
            allocation_id: alloc.into(),
            eni: "eni-me".into(),
            instance: None,
            actions: &Action::ALL,
        }
    }

    fn checker(answers: Vec<Result<DryRunAnswer, CloudError>>) -> Checker<Scripted> {
        let cloud = Scripted {
            answers: Mutex::new(answers.into()),
            ..Default::default()
        };
        Checker {
            cloud: Arc::new(cloud),
            metrics: Arc::new(Metrics::new("p", "n").unwrap()),
            policy: CallPolicy {
                timeout: Duration::from_secs(1),
                retries: 1,
                min_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(10),
                throttle: Default::default(),
            },
            targets: vec![
                ("web".into(), target("eipalloc-web")),
                ("db".into(), target("eipalloc-db")),
            ],
            interval: Duration::from_secs(3600),
        }
    }

    fn denied() -> CloudError {
        CloudError {
            operation: "DryRun:AssociateAddress",
            kind: ErrorKind::Auth,
            code: "UnauthorizedOperation".into(),
            message: "You are not authorized to perform this operation.".into(),
        }
    }

    fn throttled() -> CloudError {
        CloudError {
            operation: "DryRun:AssociateAddress",
            kind: ErrorKind::Throttled,
            code: "RequestLimitExceeded".into(),
            message: String::new(),
        }
    }

    /// (vips, action, allowed, detail) of each event.
    fn drain(rx: &mut mpsc::Receiver<Event>) -> Vec<(Vec<String>, Action, bool, String)> {
        let mut out = vec![];
        while let Ok(e) = rx.try_recv() {
            match e {
                Event::Cloud(CloudEvent::Permission {
                    vips,
                    action,
                    allowed,
                    detail,
                    evidence: Evidence::DryRun,
                    ..
                }) => out.push((vips, action, allowed, detail)),
                other => panic!("unexpected event {other:?}"),
            }
        }
        out
    }

    fn both() -> Vec<String> {
        vec!["web".into(), "db".into()]
    }

    #[tokio::test(start_paused = true)]
    async fn describes_once_for_all_vips_associate_per_vip_and_never_assign() {
        // Answers in order: DescribeAddresses, DescribeNetworkInterfaces,
        // AssociateAddress web, AssociateAddress db.
        let c = checker(vec![
            Ok(DryRunAnswer::Allowed),
            Ok(DryRunAnswer::Allowed),
            Ok(DryRunAnswer::Allowed),
            Err(denied()),
        ]);
        let (tx, mut rx) = mpsc::channel(16);
        let round = c.round(&tx).await.unwrap();
        assert_eq!(
            round,
            Round {
                allowed: 3,
                denied: 1,
                ..Round::default()
            }
        );
        let refused = "UnauthorizedOperation: You are not authorized to perform this operation.";
        assert_eq!(
            drain(&mut rx),
            vec![
                (
                    both(),
                    Action::DescribeAddresses,
                    true,
                    "DryRunOperation".into()
                ),
                (
                    both(),
                    Action::DescribeNetworkInterfaces,
                    true,
                    "DryRunOperation".into()
                ),
                (
                    vec!["web".into()],
                    Action::AssociateAddress,
                    true,
                    "DryRunOperation".into()
                ),
                (
                    vec!["db".into()],
                    Action::AssociateAddress,
                    false,
                    refused.into()
                ),
            ]
        );
        let asked = c.cloud.asked.lock().unwrap().clone();
        assert!(
            asked
                .iter()
                .all(|(a, _)| *a != Action::AssignPrivateIpAddresses),
            "AssignPrivateIpAddresses has no DryRun: {asked:?}"
        );
        // DryRun calls are counted apart from real ones.
        let calls = |op: &str, outcome: &str| c.metrics.cloud_calls_count(op, outcome);
        assert_eq!(calls("DryRun:AssociateAddress", "success"), 1);
        assert_eq!(
            calls("DryRun:AssociateAddress", "auth"),
            1,
            "a refusal, not retried"
        );
        assert_eq!(calls("AssociateAddress", "success"), 0);
    }

    /// Only a describe answered `DryRunOperation` shows the endpoint honours
    /// DryRun: with no such answer (unanswered, or refused) in the round, no
    /// DryRun of a mutating action is sent, and they count as unanswered.
    #[tokio::test(start_paused = true)]
    async fn no_dry_run_of_a_mutating_call_unless_a_describe_was_answered_dry_run_operation() {
        // (answers to the two describes, AssociateAddress asked)
        let rows = [
            (
                vec![
                    Err(throttled()),
                    Err(throttled()),
                    Err(throttled()),
                    Err(throttled()),
                ],
                false,
            ),
            (vec![Err(denied()), Err(denied())], false),
            (
                vec![
                    Err(throttled()),
                    Err(throttled()),
                    Ok(DryRunAnswer::Allowed),
                ],
                true,
            ),
        ];
        for (i, (answers, associate)) in rows.into_iter().enumerate() {
            let c = checker(answers);
            let (tx, _rx) = mpsc::channel(16);
            let round = c.round(&tx).await.unwrap();
            let asked = c.cloud.asked.lock().unwrap().clone();
            assert_eq!(
                asked.iter().any(|(a, _)| *a == Action::AssociateAddress),
                associate,
                "row {i}: {asked:?}"
            );
            if !associate {
                assert!(round.unanswered >= 2, "row {i}: {round:?}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_that_ignores_dry_run_stops_the_check_before_any_mutating_call() {
        let c = checker(vec![Ok(DryRunAnswer::Ignored)]);
        let (tx, mut rx) = mpsc::channel(16);
        let round = c.round(&tx).await.unwrap();
        assert!(round.dry_run_ignored);
        assert_eq!(
            *c.cloud.asked.lock().unwrap(),
            vec![(Action::DescribeAddresses, "eipalloc-web".to_owned())],
            "nothing after the describe"
        );
        assert!(drain(&mut rx).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_action_is_asked_again_within_a_minute_and_a_fixed_policy_shows() {
        // Round 1: AssociateAddress for web is throttled twice (both
        // attempts), db is denied. Round 2 (a minute later): all allowed.
        let c = checker(vec![
            Ok(DryRunAnswer::Allowed),
            Ok(DryRunAnswer::Allowed),
            Err(throttled()),
            Err(throttled()),
            Err(denied()),
        ]);
        let (tx, mut rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let started = tokio::time::Instant::now();
        let task = tokio::spawn(c.run(tx, cancel.clone()));
        let mut seen = vec![];
        while seen.len() < 7 {
            let Some(Event::Cloud(CloudEvent::Permission {
                vips,
                action,
                allowed,
                ..
            })) = rx.recv().await
            else {
                panic!("the checker ended");
            };
            seen.push((vips, action, allowed, started.elapsed() >= RETRY_UNANSWERED));
        }
        cancel.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(
            seen,
            vec![
                (both(), Action::DescribeAddresses, true, false),
                (both(), Action::DescribeNetworkInterfaces, true, false),
                (vec!["db".into()], Action::AssociateAddress, false, false),
                (both(), Action::DescribeAddresses, true, true),
                (both(), Action::DescribeNetworkInterfaces, true, true),
                (vec!["web".into()], Action::AssociateAddress, true, true),
                (vec!["db".into()], Action::AssociateAddress, true, true),
            ]
        );
    }
}
