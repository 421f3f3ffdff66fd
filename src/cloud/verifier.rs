//! The task that asks the cloud where every VIP is.
//!
//! One batched DescribeAddresses for all Elastic IPs, one batched
//! DescribeRouteTables for all route VIPs' tables and one batched
//! DescribeNetworkInterfaces (by private IP) for all private-IP VIPs, paced:
//! - steady state: every `verify_interval` plus up to `verify_jitter`, the
//!   slow pace that keeps the API budget;
//! - after a hint (a VRRP transition, Keepalived hearing another MASTER, a
//!   failed claim): at once, then every `fast_verify_interval` for
//!   `fast_verify_for`, when late notify runs and brief MASTERs happen;
//! - on request (`Ask::Now`, e.g. a claim rule that needs a fresh view):
//!   at once.
//!
//! Whatever asks, two describes are never closer than `MIN_GAP` plus up to
//! a quarter of it (jitter): a flapping probe cannot spend the account's
//! describe bucket. One allocation ID that EC2 does not know fails the
//! whole batch; the verifier then asks one by one, reports the unknown IDs,
//! and leaves them out of the batch (re-asking them alone each round), so
//! the other VIPs stay watched. With route VIPs, it also asks whether this
//! node's ENI has its source/destination check on, at the first round and
//! then every `SOURCE_DEST_EVERY`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span};

use crate::cloud::Cloud;
use crate::cloud::call::{CallPolicy, call};
use crate::core::clock::Mono;
use crate::core::input::Event;
use crate::core::message::CloudEvent;
use crate::core::pace::{Ask, Pace, WATCH_GAP};
use crate::core::seen::{Address, CloudError, ErrorKind, RouteTable, Seen};
use crate::metrics::Metrics;

/// How often the source/destination check of this node's ENI is asked
/// (route VIPs only).
pub const SOURCE_DEST_EVERY: Duration = Duration::from_secs(3600);

/// The pace a `[cloud]` table sets.
pub fn pace_of(cloud: &crate::config::CloudConfig) -> Pace {
    Pace {
        interval: cloud.verify_interval,
        jitter: cloud.verify_jitter,
        fast_interval: cloud.fast_verify_interval,
        fast_for: cloud.fast_verify_for,
    }
}

pub struct Verifier<C: Cloud> {
    pub cloud: Arc<C>,
    pub metrics: Arc<Metrics>,
    pub policy: CallPolicy,
    pub allocation_ids: Vec<String>,
    /// Every route table of the route VIPs, each once.
    pub route_tables: Vec<String>,
    /// The private IPs of the `private_ip` VIPs.
    pub private_ips: Vec<std::net::IpAddr>,
    /// This node's ENI, whose source/destination check route VIPs need off.
    pub eni: String,
    pub pace: Pace,
    /// IDs EC2 said it does not know, asked alone each round.
    unknown: BTreeSet<String>,
}

/// Asks the cloud with `describe` (abandoned on `cancel`) and hands the
/// answer to the owner, stamped with when it was asked; returns that
/// stamp, `None` when the task is to stop (cancelled, or the owner gone).
async fn observe(
    events: &mpsc::Sender<Event>,
    cancel: &CancellationToken,
    describe: impl std::future::Future<Output = (Result<Seen, CloudError>, Vec<String>)>,
) -> Option<crate::core::clock::Stamp> {
    let sent = crate::clock::now();
    let (result, unknown) = tokio::select! {
        _ = cancel.cancelled() => return None,
        r = describe => r,
    };
    let observed = CloudEvent::Observed {
        sent,
        result,
        unknown,
    };
    events.send(observed.into()).await.ok()?;
    Some(sent)
}

impl<C: Cloud> Verifier<C> {
    pub fn new(
        cloud: Arc<C>,
        metrics: Arc<Metrics>,
        policy: CallPolicy,
        allocation_ids: Vec<String>,
        pace: Pace,
    ) -> Self {
        Self {
            cloud,
            metrics,
            policy,
            allocation_ids,
            route_tables: vec![],
            private_ips: vec![],
            eni: String::new(),
            pace,
            unknown: BTreeSet::new(),
        }
    }

    /// The verifier of `vips`: their allocation IDs, their route tables,
    /// and (with route VIPs) `eni`'s source/destination check.
    pub fn for_vips(
        cloud: Arc<C>,
        metrics: Arc<Metrics>,
        policy: CallPolicy,
        vips: &[crate::config::VipConfig],
        pace: Pace,
        eni: String,
    ) -> Self {
        let ids = vips
            .iter()
            .filter_map(|v| v.target.allocation_id().map(str::to_owned))
            .collect();
        let tables = vips
            .iter()
            .flat_map(|v| match &v.target {
                crate::core::target::VipTarget::Route { route_tables, .. } => route_tables.clone(),
                _ => vec![],
            })
            .collect();
        let mut v = Self::new(cloud, metrics, policy, ids, pace).with_routes(tables, eni);
        v.private_ips = vips
            .iter()
            .filter_map(|v| match v.target {
                crate::core::target::VipTarget::PrivateIp { private_ip } => Some(private_ip),
                _ => None,
            })
            .collect();
        v
    }

    /// Also watches `route_tables` (and `eni`'s source/destination check).
    pub fn with_routes(mut self, route_tables: Vec<String>, eni: String) -> Self {
        let mut seen = BTreeSet::new();
        self.route_tables = route_tables
            .into_iter()
            .filter(|t| seen.insert(t.clone()))
            .collect();
        self.eni = eni;
        self
    }

    /// One DescribeNetworkInterfaces for every private-IP VIP.
    pub async fn describe_private_ips(
        &self,
    ) -> Result<Vec<crate::core::seen::PrivateIpSeen>, CloudError> {
        call(
            "DescribeNetworkInterfaces",
            &self.policy,
            &self.metrics,
            || {
                self.cloud
                    .describe_private_ips(&self.eni, &self.private_ips)
            },
        )
        .await
    }

    /// One DescribeRouteTables for every table.
    pub async fn describe_routes(&self) -> Result<Vec<RouteTable>, CloudError> {
        call("DescribeRouteTables", &self.policy, &self.metrics, || {
            self.cloud.describe_route_tables(&self.route_tables)
        })
        .await
    }

    pub async fn run(
        mut self,
        mut asks: mpsc::Receiver<Ask>,
        events: mpsc::Sender<Event>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        async move {
            let mut fast_until: Option<Mono> = None;
            let mut watch_until: Option<Mono> = None;
            let mut last_confirm: Option<Mono> = None;
            let mut source_dest_due = crate::clock::now().mono;
            loop {
                let sent = crate::clock::now();
                if !self.allocation_ids.is_empty() {
                    let describe = self.describe().map(|(r, u)| (r.map(Seen::Addresses), u));
                    if observe(&events, &cancel, describe).await.is_none() {
                        return Ok(());
                    }
                }
                if !self.private_ips.is_empty() {
                    let describe = self
                        .describe_private_ips()
                        .map(|r| (r.map(Seen::PrivateIps), vec![]));
                    if observe(&events, &cancel, describe).await.is_none() {
                        return Ok(());
                    }
                }
                if !self.route_tables.is_empty() {
                    let describe = self
                        .describe_routes()
                        .map(|r| (r.map(Seen::RouteTables), vec![]));
                    let Some(sent) = observe(&events, &cancel, describe).await else {
                        return Ok(());
                    };
                    if sent.mono >= source_dest_due {
                        let on = call("DescribeNetworkInterfaces", &self.policy, &self.metrics, || {
                            self.cloud.source_dest_check(&self.eni)
                        })
                        .await;
                        match on {
                            Ok(on) => {
                                source_dest_due = sent.mono + SOURCE_DEST_EVERY;
                                let e = CloudEvent::SourceDestCheck { eni: self.eni.clone(), on };
                                if events.send(e.into()).await.is_err() {
                                    return Ok(());
                                }
                            }
                            Err(e) => {
                                tracing::warn!(event = "source_dest_check_unreadable", eni = %self.eni, error = %e, "cannot read the ENI's source/destination check; asking again next round")
                            }
                        }
                    }
                }
                let last = sent.mono;
                let mut due = self
                    .pace
                    .next_watched(last, fast_until, watch_until, fastrand::f64());
                loop {
                    let sleep = tokio::time::sleep(crate::clock::until(due));
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = sleep => break,
                        ask = asks.recv() => {
                            let Some(ask) = ask else { return Ok(()) };
                            let now = crate::clock::now().mono;
                            let when = match ask {
                                Ask::Confirm => {
                                    let when = Pace::confirm(now, Some(last), last_confirm, fastrand::f64());
                                    if when == now {
                                        last_confirm = Some(now);
                                    }
                                    when
                                }
                                Ask::Hint => {
                                    fast_until = Some(now + self.pace.fast_for);
                                    Pace::asked(now, Some(last), fastrand::f64())
                                }
                                Ask::Now => Pace::asked(now, Some(last), fastrand::f64()),
                                Ask::Watch { until } => {
                                    watch_until = Some(until);
                                    if until > now {
                                        now.max(last + WATCH_GAP)
                                    } else {
                                        due
                                    }
                                }
                            };
                            due = due.min(when);
                        }
                    }
                }
            }
        }
        .instrument(info_span!("verifier"))
        .await
    }

    /// One round: the batch of known IDs, then each unknown one alone.
    pub async fn describe(&mut self) -> (Result<Vec<Address>, CloudError>, Vec<String>) {
        let batch: Vec<String> = self
            .allocation_ids
            .iter()
            .filter(|id| !self.unknown.contains(*id))
            .cloned()
            .collect();
        let mut found = vec![];
        if !batch.is_empty() {
            match self.ask(&batch).await {
                Ok(a) => found = a,
                Err(e) if e.kind == ErrorKind::NotFound => {
                    // Which one? Ask each alone.
                    for id in &batch {
                        match self.ask(std::slice::from_ref(id)).await {
                            Ok(a) => found.extend(a),
                            Err(e) if e.kind == ErrorKind::NotFound => {
                                error!(event = "allocation_id_unknown", allocation_id = %id, error = %e, "EC2 does not know this allocation ID: its VIP cannot be watched or claimed; the other VIPs are described without it");
                                self.unknown.insert(id.clone());
                            }
                            Err(e) => return (Err(e), self.unknown()),
                        }
                    }
                }
                Err(e) => return (Err(e), self.unknown()),
            }
        }
        for id in self.unknown.clone() {
            if batch.contains(&id) {
                continue;
            }
            if let Ok(a) = self.ask(std::slice::from_ref(&id)).await {
                info!(event = "allocation_id_known", allocation_id = %id, "EC2 knows this allocation ID now");
                self.unknown.remove(&id);
                found.extend(a);
            }
        }
        (Ok(found), self.unknown())
    }

    fn unknown(&self) -> Vec<String> {
        self.unknown.iter().cloned().collect()
    }

    async fn ask(&self, ids: &[String]) -> Result<Vec<Address>, CloudError> {
        call("DescribeAddresses", &self.policy, &self.metrics, || {
            self.cloud.describe_addresses(ids)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{ClaimTarget, DryRunAnswer};
    use crate::core::seen::Action;
    use std::net::IpAddr;
    use std::sync::Mutex;

    /// EC2's DescribeAddresses: one unknown ID fails the whole call.
    struct Ec2 {
        known: Vec<&'static str>,
        asked: Mutex<Vec<Vec<String>>>,
    }

    impl Cloud for Ec2 {
        async fn describe_addresses(&self, ids: &[String]) -> Result<Vec<Address>, CloudError> {
            self.asked.lock().unwrap().push(ids.to_vec());
            if let Some(bad) = ids.iter().find(|i| !self.known.contains(&i.as_str())) {
                return Err(CloudError {
                    operation: "DescribeAddresses",
                    kind: ErrorKind::NotFound,
                    code: "InvalidAllocationID.NotFound".into(),
                    message: format!("The allocation ID '{bad}' does not exist"),
                });
            }
            Ok(ids
                .iter()
                .map(|i| Address {
                    allocation_id: i.clone(),
                    public_ip: None,
                    association_id: None,
                    network_interface_id: None,
                    ..Address::default()
                })
                .collect())
        }
        async fn private_ips(&self, _: &str) -> Result<Vec<IpAddr>, CloudError> {
            unreachable!()
        }
        async fn assign_private_ip(&self, _: &str, _: IpAddr) -> Result<(), CloudError> {
            unreachable!()
        }
        async fn associate(&self, _: &str, _: &str, _: IpAddr) -> Result<String, CloudError> {
            unreachable!()
        }
        async fn dry_run(&self, _: Action, _: &ClaimTarget) -> Result<DryRunAnswer, CloudError> {
            unreachable!()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_unknown_allocation_id_blinds_no_other_vip() {
        let ec2 = Arc::new(Ec2 {
            known: vec!["eipalloc-a", "eipalloc-c"],
            asked: Mutex::new(vec![]),
        });
        let ids = ["eipalloc-a", "eipalloc-bad", "eipalloc-c"]
            .map(String::from)
            .to_vec();
        let mut v = Verifier::new(
            ec2.clone(),
            Arc::new(Metrics::new("p", "n").unwrap()),
            CallPolicy::new(Duration::from_secs(1)),
            ids,
            pace(),
        );
        let found = |r: Result<Vec<Address>, CloudError>| {
            r.unwrap()
                .into_iter()
                .map(|a| a.allocation_id)
                .collect::<Vec<_>>()
        };
        // Round 1: the batch fails, then one by one.
        let (r, unknown) = v.describe().await;
        assert_eq!(found(r), ["eipalloc-a", "eipalloc-c"]);
        assert_eq!(unknown, ["eipalloc-bad"]);
        // Round 2: the batch without it, and it alone.
        ec2.asked.lock().unwrap().clear();
        let (r, unknown) = v.describe().await;
        assert_eq!(found(r), ["eipalloc-a", "eipalloc-c"]);
        assert_eq!(unknown, ["eipalloc-bad"]);
        assert_eq!(
            *ec2.asked.lock().unwrap(),
            [
                vec!["eipalloc-a".to_owned(), "eipalloc-c".to_owned()],
                vec!["eipalloc-bad".to_owned()]
            ]
        );
    }

    fn s(ms: u64) -> Mono {
        Mono::from_millis(ms)
    }

    fn pace() -> Pace {
        Pace {
            interval: Duration::from_secs(30),
            jitter: Duration::from_secs(3),
            fast_interval: Duration::from_secs(1),
            fast_for: Duration::from_secs(20),
        }
    }

    /// (last describe, fast pace until, spread, next due)
    #[test]
    fn the_pace_is_slow_in_steady_state_and_fast_after_a_hint() {
        let rows = [
            (s(100000), None, 0.0, s(130000)),
            (s(100000), None, 0.5, s(131500)),
            (s(100000), Some(s(120000)), 0.0, s(101000)),
            (s(100000), Some(s(120000)), 0.5, s(101050)),
            // The fast pace ends: back to the slow one.
            (s(119500), Some(s(120000)), 0.0, s(149500)),
            (s(100000), Some(s(90000)), 0.0, s(130000)),
        ];
        for (last, fast, spread, want) in rows {
            assert_eq!(pace().next(last, fast, spread), want, "{last:?} {fast:?}");
        }
    }

    /// (now, last describe, last confirm, when a confirm is sent)
    #[test]
    fn a_confirm_skips_the_gap_once_a_gap() {
        let rows = [
            (s(10000), Some(s(9800)), None, s(10000)),
            (s(10000), Some(s(9800)), Some(s(8000)), s(10000)),
            // A second confirm within the gap waits as any ask.
            (s(10000), Some(s(9800)), Some(s(9800)), s(10800)),
        ];
        for (now, last, confirm, want) in rows {
            assert_eq!(
                Pace::confirm(now, last, confirm, 0.0),
                want,
                "{now:?} {confirm:?}"
            );
        }
    }

    /// (now, last describe, spread, when an asked describe is sent)
    #[test]
    fn asked_describes_keep_the_gap_with_jitter() {
        let rows = [
            (s(10000), None, 0.9, s(10000)),
            (s(10000), Some(s(5000)), 0.9, s(10000)),
            (s(10000), Some(s(9800)), 0.0, s(10800)),
            (s(10000), Some(s(9800)), 1.0, s(11050)),
        ];
        for (now, last, spread, want) in rows {
            assert_eq!(Pace::asked(now, last, spread), want, "{now:?} {last:?}");
        }
    }
}
