//! The one task that performs claims.
//!
//! A claim is re-checked at every step: before each mutating call the
//! executor checks that the owner's generation is still the claim's (the
//! owner bumps it on any change that matters: VRRP state, probe, Keepalived
//! process, host addresses), and drops the claim otherwise. A mutating call
//! that timed out, lost its connection or got a 5xx may or may not have been
//! applied: it is never sent again blind. The executor describes, and sends
//! it again only while the verdict stands and the cloud still lacks the VIP.
//! After an associate it describes at once, then with jittered back-off,
//! until the cloud shows the VIP here or `convergence_timeout` passes. Every
//! answer goes back to the owner as a `CloudEvent`; the executor keeps no
//! state of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::cloud::Cloud;
use crate::cloud::call::{CallPolicy, SUPERSEDED, call, mutate};
use crate::core::input::Event;
use crate::core::message::{Claim, CloudEvent};
use crate::core::seen::{Action, CloudError, ErrorKind, Seen, view_of};
use crate::core::target::VipTarget;
use crate::core::words::ClaimOutcome;
use crate::core::words::Holder;
use crate::core::words::RouteState;
use crate::metrics::Metrics;
use std::net::IpAddr;

/// How many times one claim may send its mutating calls after answers that
/// left it uncertain.
pub const MAX_ATTEMPTS: u32 = 3;

pub struct Executor<C: Cloud> {
    pub cloud: Arc<C>,
    pub metrics: Arc<Metrics>,
    pub policy: CallPolicy,
    pub convergence_timeout: Duration,
    /// Defence in depth: the owner sends no claims in dry-run mode, and the
    /// executor would not perform them either.
    pub dry_run: bool,
    /// The owner's generation, read before every mutating call.
    pub generation: watch::Receiver<u64>,
}

/// The next pause of the confirmation poll: doubling from 100 ms up to 2 s,
/// each spread by up to a quarter either way so that nodes do not call in
/// step.
pub fn confirm_delay(step: u32, spread: f64) -> Duration {
    let base = Duration::from_millis(100)
        .saturating_mul(1u32 << step.min(5))
        .min(Duration::from_secs(2));
    base.mul_f64(0.75 + 0.5 * spread.clamp(0.0, 1.0))
}

/// What `assign` found or did.
enum Assigned {
    /// The ENI had the private IP already: no call moved anything.
    AlreadyHere,
    /// AssignPrivateIpAddresses was answered: the private IP (and an EIP
    /// associated with it) may have moved here.
    Moved,
}

enum Step {
    Done(ClaimOutcome, String),
    /// The answer left it uncertain: describe, then maybe again.
    Uncertain(String),
}

impl<C: Cloud> Executor<C> {
    pub async fn run(
        self,
        mut claims: mpsc::Receiver<Claim>,
        events: mpsc::Sender<Event>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        async move {
            loop {
                let claim = tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    c = claims.recv() => match c {
                        Some(c) => c,
                        None => return Ok(()),
                    },
                };
                let vip = claim.vip.clone();
                let (outcome, detail) = tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    r = self.claim(&claim, &events) => r,
                };
                let done = CloudEvent::ClaimDone {
                    vip,
                    outcome,
                    detail,
                };
                if events.send(done.into()).await.is_err() {
                    return Ok(());
                }
            }
        }
        .instrument(info_span!("executor"))
        .await
    }

    fn stands(&self, c: &Claim) -> bool {
        *self.generation.borrow() == c.generation
    }

    /// Tells the owner what a real call showed about a permission.
    async fn learnt<T>(
        events: &mpsc::Sender<Event>,
        vip: &str,
        action: Action,
        r: &Result<T, CloudError>,
    ) {
        if let Some(e) = CloudEvent::from_call(vec![vip.to_owned()], action, r) {
            // A closed channel means shutting down; the claim ends by itself.
            let _ = events.send(e.into()).await;
        }
    }

    fn dropped(c: &Claim, at: &str) -> (ClaimOutcome, String) {
        info!(event = "claim_verdict_gone", vip = %c.vip, before = at, "the claim's verdict no longer stands: dropped, no further call");
        (
            ClaimOutcome::Dropped,
            format!("overtaken by events before {at}: the verdict no longer stood"),
        )
    }

    pub async fn claim(&self, c: &Claim, events: &mpsc::Sender<Event>) -> (ClaimOutcome, String) {
        if self.dry_run {
            return (
                ClaimOutcome::Dropped,
                "dry run: no mutating call made".into(),
            );
        }
        let started = Instant::now();
        for attempt in 1..=MAX_ATTEMPTS {
            let why = match self.attempt(c, events).await {
                Step::Done(outcome, detail) => return (outcome, detail),
                Step::Uncertain(why) => why,
            };
            warn!(event = "claim_outcome_unknown", vip = %c.vip, attempt, detail = %why, "a mutating call may or may not have been applied; asking the cloud before anything else");
            match self.describe(c, events).await {
                Some(true) => {
                    return (
                        ClaimOutcome::Converged,
                        format!(
                            "the cloud shows it here after {} ms ({why})",
                            started.elapsed().as_millis()
                        ),
                    );
                }
                Some(false) => {}
                None => {
                    return (
                        ClaimOutcome::Failed,
                        format!("{why}; then the cloud could not be read"),
                    );
                }
            }
            if attempt == MAX_ATTEMPTS {
                return (
                    ClaimOutcome::Failed,
                    format!("{why}; gave up after {MAX_ATTEMPTS} uncertain attempts"),
                );
            }
            if !self.stands(c) {
                return Self::dropped(c, "sending it again");
            }
            info!(event = "claim_resent", vip = %c.vip, attempt, after = %why, "the cloud still lacks the VIP and the verdict stands: sending the claim again");
        }
        (ClaimOutcome::Failed, "no attempt was made".into())
    }

    async fn attempt(&self, c: &Claim, events: &mpsc::Sender<Event>) -> Step {
        let started = Instant::now();
        let sent = match &c.target {
            VipTarget::EipOnEni {
                allocation_id,
                private_ip,
            } => match self.assign(c, *private_ip, events).await {
                // AssignPrivateIpAddresses with AllowReassignment moves an
                // EIP associated with that private IP along with it (EC2's
                // API reference): look before associating, and associate
                // only when it did not follow. The describe is sent as the
                // assign is answered: a failover's latency sample ends there.
                Ok(assigned) => {
                    if matches!(assigned, Assigned::Moved)
                        && self.describe(c, events).await == Some(true)
                    {
                        info!(event = "claim_eip_followed", vip = %c.vip, allocation_id = %allocation_id, private_ip = %private_ip, "the EIP followed its private IP to this node's ENI: no associate needed");
                        return Step::Done(
                            ClaimOutcome::Converged,
                            format!(
                                "the EIP followed its private IP: the cloud shows it here after {} ms, no associate sent",
                                started.elapsed().as_millis()
                            ),
                        );
                    }
                    self.associate(c, allocation_id, events, || {
                        self.cloud.associate(allocation_id, &c.me.eni, *private_ip)
                    })
                    .await
                }
                Err(step) => Err(step),
            },
            VipTarget::PrivateIp { private_ip } => {
                self.assign(c, *private_ip, events).await.map(|_| ())
            }
            VipTarget::EipOnInstance { allocation_id } => {
                self.associate(c, allocation_id, events, || {
                    self.cloud
                        .associate_instance(allocation_id, &c.me.instance_id)
                })
                .await
            }
            VipTarget::Route {
                destination,
                route_tables,
                ..
            } => self.routes(c, destination, route_tables, events).await,
        };
        if let Err(step) = sent {
            return step;
        }
        // Confirmation: describe at once, then with back-off.
        let deadline = Instant::now() + self.convergence_timeout;
        let mut step = 0;
        loop {
            match self.describe(c, events).await {
                Some(true) => {
                    return Step::Done(
                        ClaimOutcome::Converged,
                        format!(
                            "the cloud shows it here after {} ms",
                            started.elapsed().as_millis()
                        ),
                    );
                }
                None if events.is_closed() => {
                    return Step::Done(ClaimOutcome::Failed, "shutting down".into());
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Step::Done(
                    ClaimOutcome::Failed,
                    format!(
                        "the cloud did not show it here within {}",
                        humantime::format_duration(self.convergence_timeout)
                    ),
                );
            }
            tokio::time::sleep(confirm_delay(step, fastrand::f64())).await;
            step += 1;
        }
    }

    /// The secondary private IP on this node's ENI.
    async fn assign(
        &self,
        c: &Claim,
        private_ip: IpAddr,
        events: &mpsc::Sender<Event>,
    ) -> Result<Assigned, Step> {
        let (m, p) = (&*self.metrics, &self.policy);
        let stands = || self.stands(c);
        let eni = &c.me.eni;
        let ips = call("DescribeNetworkInterfaces", p, m, || {
            self.cloud.private_ips(eni)
        })
        .await;
        Self::learnt(events, &c.vip, Action::DescribeNetworkInterfaces, &ips).await;
        let ips = ips.map_err(|e| {
            Step::Done(
                ClaimOutcome::Failed,
                format!("cannot read {eni}'s private IPs: {e}"),
            )
        })?;
        if ips.contains(&private_ip) {
            return Ok(Assigned::AlreadyHere);
        }
        if !stands() {
            let (o, d) = Self::dropped(c, "AssignPrivateIpAddresses");
            return Err(Step::Done(o, d));
        }
        info!(event = "claim_assign_private_ip", vip = %c.vip, eni = %eni, private_ip = %private_ip, "assigning the private IP to this node's ENI");
        let assigned = mutate("AssignPrivateIpAddresses", p, m, stands, || {
            self.cloud.assign_private_ip(eni, private_ip)
        })
        .await;
        Self::learnt(events, &c.vip, Action::AssignPrivateIpAddresses, &assigned).await;
        match assigned {
            Ok(()) => Ok(Assigned::Moved),
            Err(e) if e.code == SUPERSEDED => {
                let (o, d) = Self::dropped(c, "AssignPrivateIpAddresses");
                Err(Step::Done(o, d))
            }
            Err(e) if e.kind.uncertain() => Err(Step::Uncertain(format!(
                "assign of {private_ip} to {eni}: {e}"
            ))),
            Err(e) => Err(Step::Done(
                ClaimOutcome::Failed,
                format!("cannot assign {private_ip} to {eni}: {e}"),
            )),
        }
    }

    /// The association, by `send` (on the ENI and private IP, or by
    /// instance ID).
    async fn associate<F, Fut>(
        &self,
        c: &Claim,
        allocation_id: &str,
        events: &mpsc::Sender<Event>,
        send: F,
    ) -> Result<(), Step>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<String, CloudError>>,
    {
        let (m, p) = (&*self.metrics, &self.policy);
        if !self.stands(c) {
            let (o, d) = Self::dropped(c, "AssociateAddress");
            return Err(Step::Done(o, d));
        }
        info!(event = "claim_associate", vip = %c.vip, allocation_id = %allocation_id, eni = %c.me.eni, instance_id = %c.me.instance_id, what = %c.target.describe(), reason = c.reason.as_str(), "associating the EIP with this node");
        let associated = mutate("AssociateAddress", p, m, || self.stands(c), send).await;
        Self::learnt(events, &c.vip, Action::AssociateAddress, &associated).await;
        match associated {
            Ok(id) => {
                info!(event = "claim_associate_accepted", vip = %c.vip, association_id = %id, "associate accepted");
                Ok(())
            }
            // A race with the peer: the confirmation tells what won.
            Err(e) if e.kind == ErrorKind::Conflict => {
                info!(event = "claim_associate_raced", vip = %c.vip, error = %e, "associate raced with another change; verifying");
                Ok(())
            }
            Err(e) if e.code == SUPERSEDED => {
                let (o, d) = Self::dropped(c, "AssociateAddress");
                Err(Step::Done(o, d))
            }
            Err(e) if e.kind.uncertain() => Err(Step::Uncertain(format!("associate: {e}"))),
            Err(e) => Err(Step::Done(
                ClaimOutcome::Failed,
                format!("associate failed: {e}"),
            )),
        }
    }

    /// Every table whose route does not target this node's ENI: replaced,
    /// or created where missing. Never deleted. Read fresh first: the
    /// claim's view may be older than a move of one table.
    async fn routes(
        &self,
        c: &Claim,
        destination: &str,
        route_tables: &[String],
        events: &mpsc::Sender<Event>,
    ) -> Result<(), Step> {
        let (m, p) = (&*self.metrics, &self.policy);
        let sent = crate::clock::now();
        let tables = call("DescribeRouteTables", p, m, || {
            self.cloud.describe_route_tables(route_tables)
        })
        .await;
        let seen = match tables {
            Ok(t) => Seen::RouteTables(t),
            Err(e) => {
                return Err(Step::Done(
                    ClaimOutcome::Failed,
                    format!("cannot read the route tables: {e}"),
                ));
            }
        };
        let views = view_of(&c.target, &seen, &c.me).map(|(_, v)| v);
        let _ = events
            .send(Event::Cloud(CloudEvent::Observed {
                sent,
                result: Ok(seen),
                unknown: vec![],
            }))
            .await;
        let Some(views) = views else {
            return Err(Step::Done(
                ClaimOutcome::Failed,
                "a route table is missing from DescribeRouteTables' answer".into(),
            ));
        };
        for v in views.iter().filter(|v| v.state != RouteState::Here) {
            let create = v.state == RouteState::Missing;
            let (op, action) = if create {
                ("CreateRoute", Action::CreateRoute)
            } else {
                ("ReplaceRoute", Action::ReplaceRoute)
            };
            if !self.stands(c) {
                let (o, d) = Self::dropped(c, op);
                return Err(Step::Done(o, d));
            }
            info!(event = "claim_replace_route", vip = %c.vip, route_table = %v.route_table, destination = %destination, eni = %c.me.eni, was = v.state.as_str(), route_target = ?v.target, reason = c.reason.as_str(), "pointing the route at this node");
            let r = mutate(
                op,
                p,
                m,
                || self.stands(c),
                || {
                    self.cloud
                        .set_route(&v.route_table, destination, &c.me.eni, create)
                },
            )
            .await;
            Self::learnt(events, &c.vip, action, &r).await;
            match r {
                Ok(()) => {}
                Err(e) if e.code == SUPERSEDED => {
                    let (o, d) = Self::dropped(c, op);
                    return Err(Step::Done(o, d));
                }
                Err(e) if e.kind.uncertain() => {
                    return Err(Step::Uncertain(format!("{op} in {}: {e}", v.route_table)));
                }
                Err(e) => {
                    return Err(Step::Done(
                        ClaimOutcome::Failed,
                        format!("{op} in {} failed: {e}", v.route_table),
                    ));
                }
            }
        }
        Ok(())
    }

    /// One describe of the claim's VIP, sent to the owner as an
    /// observation: whether it shows the VIP here (`None` when it failed).
    async fn describe(&self, c: &Claim, events: &mpsc::Sender<Event>) -> Option<bool> {
        let sent = crate::clock::now();
        let result = match &c.target {
            VipTarget::Route { route_tables, .. } => {
                call("DescribeRouteTables", &self.policy, &self.metrics, || {
                    self.cloud.describe_route_tables(route_tables)
                })
                .await
                .map(Seen::RouteTables)
            }
            VipTarget::PrivateIp { private_ip } => call(
                "DescribeNetworkInterfaces",
                &self.policy,
                &self.metrics,
                || {
                    self.cloud
                        .describe_private_ips(&c.me.eni, std::slice::from_ref(private_ip))
                },
            )
            .await
            .map(Seen::PrivateIps),
            t => {
                let id = t.allocation_id().unwrap_or_default().to_owned();
                call("DescribeAddresses", &self.policy, &self.metrics, || {
                    self.cloud.describe_addresses(std::slice::from_ref(&id))
                })
                .await
                .map(Seen::Addresses)
            }
        };
        let here = result
            .as_ref()
            .ok()
            .map(|seen| view_of(&c.target, seen, &c.me).is_some_and(|(h, _)| h == Holder::Here));
        let observed = CloudEvent::Observed {
            sent,
            result,
            unknown: vec![],
        };
        if events.send(observed.into()).await.is_err() {
            return None;
        }
        here
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{ClaimTarget, DryRunAnswer};
    use crate::core::seen::Address;
    use crate::core::words::HealReason;
    use std::collections::VecDeque;
    use std::net::IpAddr;
    use std::sync::Mutex;

    const IP: &str = "10.0.0.50";

    /// A cloud whose mutating calls answer from a script; an answer applied
    /// (`Ok`, or a lost answer) puts the VIP here. Every call is recorded,
    /// and the generation may be bumped while a call is in flight.
    struct Scripted {
        has_ip: bool,
        associate: Mutex<VecDeque<(bool, Result<String, CloudError>)>>,
        here: Mutex<bool>,
        calls: Mutex<Vec<&'static str>>,
        bump_on_associate: Option<watch::Sender<u64>>,
        /// The EIP moves with its private IP when that is assigned here.
        eip_follows: bool,
    }

    fn lost(kind: ErrorKind) -> CloudError {
        CloudError {
            operation: "AssociateAddress",
            kind,
            code: kind.as_str().into(),
            message: "no answer".into(),
        }
    }

    impl Cloud for Scripted {
        async fn describe_addresses(&self, ids: &[String]) -> Result<Vec<Address>, CloudError> {
            self.calls.lock().unwrap().push("DescribeAddresses");
            let here = *self.here.lock().unwrap();
            Ok(vec![Address {
                allocation_id: ids[0].clone(),
                public_ip: None,
                association_id: Some("eipassoc-1".into()),
                network_interface_id: Some(if here { "eni-me" } else { "eni-peer" }.into()),
                private_ip: Some(IP.parse().unwrap()),
                ..Address::default()
            }])
        }
        async fn private_ips(&self, _: &str) -> Result<Vec<IpAddr>, CloudError> {
            self.calls.lock().unwrap().push("DescribeNetworkInterfaces");
            Ok(if self.has_ip {
                vec![IP.parse().unwrap()]
            } else {
                vec![]
            })
        }
        async fn assign_private_ip(&self, _: &str, _: IpAddr) -> Result<(), CloudError> {
            self.calls.lock().unwrap().push("AssignPrivateIpAddresses");
            if self.eip_follows {
                *self.here.lock().unwrap() = true;
            }
            Ok(())
        }
        async fn associate(&self, _: &str, _: &str, _: IpAddr) -> Result<String, CloudError> {
            self.calls.lock().unwrap().push("AssociateAddress");
            if let Some(g) = &self.bump_on_associate {
                g.send_modify(|g| *g += 1);
            }
            let (applied, answer) = self
                .associate
                .lock()
                .unwrap()
                .pop_front()
                .expect("scripted");
            if applied {
                *self.here.lock().unwrap() = true;
            }
            answer
        }
        async fn dry_run(&self, _: Action, _: &ClaimTarget) -> Result<DryRunAnswer, CloudError> {
            unreachable!("the executor makes no DryRun call")
        }
    }

    fn executor(cloud: Arc<Scripted>, generation: watch::Receiver<u64>) -> Executor<Scripted> {
        Executor {
            cloud,
            metrics: Arc::new(Metrics::new("p", "n").unwrap()),
            policy: CallPolicy::new(Duration::from_secs(5)),
            convergence_timeout: Duration::from_secs(20),
            dry_run: false,
            generation,
        }
    }

    fn claim() -> Claim {
        Claim {
            vip: "web".into(),
            target: VipTarget::EipOnEni {
                allocation_id: "eipalloc-1".into(),
                private_ip: IP.parse().unwrap(),
            },
            me: crate::core::seen::Me {
                instance_id: "i-me".into(),
                eni: "eni-me".into(),
            },
            reason: HealReason::Elsewhere,
            generation: 0,
        }
    }

    /// (case, associate answers as (applied, result), bump the generation
    /// during the associate, outcome, calls made)
    #[tokio::test(start_paused = true)]
    async fn a_mutating_call_is_never_sent_again_blind() {
        let ok = || Ok("eipassoc-2".to_owned());
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            &str,
            Vec<(bool, Result<String, CloudError>)>,
            bool,
            ClaimOutcome,
            Vec<&str>,
        )> = vec![
            (
                "accepted: confirmed at once",
                vec![(true, ok())],
                false,
                ClaimOutcome::Converged,
                vec![
                    "DescribeNetworkInterfaces",
                    "AssociateAddress",
                    "DescribeAddresses",
                ],
            ),
            (
                "answer lost after it was applied: the describe shows it here",
                vec![(true, Err(lost(ErrorKind::Transport)))],
                false,
                ClaimOutcome::Converged,
                vec![
                    "DescribeNetworkInterfaces",
                    "AssociateAddress",
                    "DescribeAddresses",
                ],
            ),
            (
                "timed out, not applied, the verdict stands: sent again",
                vec![(false, Err(lost(ErrorKind::Timeout))), (true, ok())],
                false,
                ClaimOutcome::Converged,
                vec![
                    "DescribeNetworkInterfaces",
                    "AssociateAddress",
                    "DescribeAddresses",
                    "DescribeNetworkInterfaces",
                    "AssociateAddress",
                    "DescribeAddresses",
                ],
            ),
            (
                "timed out, not applied, the verdict fell meanwhile: dropped",
                vec![(false, Err(lost(ErrorKind::Timeout)))],
                true,
                ClaimOutcome::Dropped,
                vec![
                    "DescribeNetworkInterfaces",
                    "AssociateAddress",
                    "DescribeAddresses",
                ],
            ),
            (
                "a 5xx, not applied, three times: gives up",
                vec![
                    (false, Err(lost(ErrorKind::Server))),
                    (false, Err(lost(ErrorKind::Server))),
                    (false, Err(lost(ErrorKind::Server))),
                ],
                false,
                ClaimOutcome::Failed,
                [
                    "DescribeNetworkInterfaces",
                    "AssociateAddress",
                    "DescribeAddresses",
                ]
                .repeat(3),
            ),
        ];
        for (case, answers, bump, outcome, calls) in rows {
            let (gen_tx, gen_rx) = watch::channel(0);
            let cloud = Arc::new(Scripted {
                has_ip: true,
                associate: Mutex::new(answers.into()),
                here: Mutex::new(false),
                calls: Mutex::new(vec![]),
                bump_on_associate: bump.then_some(gen_tx),
                eip_follows: false,
            });
            let exec = executor(cloud.clone(), gen_rx);
            let (tx, _rx) = mpsc::channel(64);
            let (got, detail) = exec.claim(&claim(), &tx).await;
            assert_eq!(got, outcome, "{case}: {detail}");
            assert_eq!(*cloud.calls.lock().unwrap(), calls, "{case}");
        }
    }

    /// (case, the ENI has the private IP, the EIP follows an assign, calls
    /// made): the associate only when the EIP did not follow.
    #[tokio::test(start_paused = true)]
    async fn an_eip_that_followed_its_private_ip_is_not_associated_again() {
        let rows = [
            (
                "assigned, and the EIP came with it: no associate",
                false,
                true,
                vec![
                    "DescribeNetworkInterfaces",
                    "AssignPrivateIpAddresses",
                    "DescribeAddresses",
                ],
            ),
            (
                "assigned, the EIP stayed (on another private IP): associated",
                false,
                false,
                vec![
                    "DescribeNetworkInterfaces",
                    "AssignPrivateIpAddresses",
                    "DescribeAddresses",
                    "AssociateAddress",
                    "DescribeAddresses",
                ],
            ),
            (
                "the private IP was here already: associated, no look first",
                true,
                false,
                vec![
                    "DescribeNetworkInterfaces",
                    "AssociateAddress",
                    "DescribeAddresses",
                ],
            ),
        ];
        for (case, has_ip, eip_follows, calls) in rows {
            let (_gen_tx, gen_rx) = watch::channel(0);
            let cloud = Arc::new(Scripted {
                has_ip,
                associate: Mutex::new(vec![(true, Ok("eipassoc-2".to_owned()))].into()),
                here: Mutex::new(false),
                calls: Mutex::new(vec![]),
                bump_on_associate: None,
                eip_follows,
            });
            let exec = executor(cloud.clone(), gen_rx);
            let (tx, _rx) = mpsc::channel(64);
            let (got, detail) = exec.claim(&claim(), &tx).await;
            assert_eq!(got, ClaimOutcome::Converged, "{case}: {detail}");
            assert_eq!(*cloud.calls.lock().unwrap(), calls, "{case}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_whose_verdict_fell_before_its_first_mutating_call_sends_none() {
        let (gen_tx, gen_rx) = watch::channel(0);
        gen_tx.send_replace(1);
        let cloud = Arc::new(Scripted {
            has_ip: false,
            associate: Mutex::new(VecDeque::new()),
            here: Mutex::new(false),
            calls: Mutex::new(vec![]),
            bump_on_associate: None,
            eip_follows: false,
        });
        let exec = executor(cloud.clone(), gen_rx);
        let (tx, _rx) = mpsc::channel(64);
        let (got, _) = exec.claim(&claim(), &tx).await;
        assert_eq!(got, ClaimOutcome::Dropped);
        assert_eq!(*cloud.calls.lock().unwrap(), ["DescribeNetworkInterfaces"]);
    }

    #[test]
    fn the_confirmation_poll_doubles_with_jitter_and_is_capped() {
        // (step, spread, pause in ms)
        let rows = [
            (0, 0.5, 100),
            (1, 0.5, 200),
            (2, 0.5, 400),
            (4, 0.5, 1_600),
            (5, 0.5, 2_000),
            (30, 0.5, 2_000),
            (0, 0.0, 75),
            (0, 1.0, 125),
            (30, 1.0, 2_500),
        ];
        for (step, spread, ms) in rows {
            assert_eq!(
                confirm_delay(step, spread),
                Duration::from_millis(ms),
                "{step} {spread}"
            );
        }
    }
}
