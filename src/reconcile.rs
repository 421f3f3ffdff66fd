//! The cloud side of the owner task: it feeds the cloud's answers and claim
//! results to the pure `Reconciler`, asks it for a verdict per VIP after
//! every event, hands claims to the executor, and keeps the metrics and the
//! status view. It runs inside the owner task and never awaits.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tracing::{error, info, warn};

use crate::cloud::{Action, Address};
use crate::config::VipConfig;
use crate::core::decide::{Holder, Mode, NodeView, Observed, Reconciler, Verdict};
use crate::core::model::{Change, Model, VrrpState};
use crate::executor::{Claim, CloudEvent, Evidence};
use crate::metrics::Metrics;
use crate::status::rfc3339;

pub struct Reconcile {
    pub vips: Vec<VipConfig>,
    /// This node's ENI.
    pub eni: String,
    pub core: Reconciler,
    pub claims: mpsc::Sender<Claim>,
    /// Wakes the verifier for an immediate describe.
    pub verify_now: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    last: BTreeMap<String, Verdict>,
    /// What the cloud last said about each (VIP, action) this node needs.
    permissions: BTreeMap<(String, Action), PermissionView>,
}

/// `/v1/status` for one permission of one VIP.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PermissionView {
    pub action: Action,
    pub allowed: bool,
    pub evidence: Evidence,
    pub at: String,
    pub detail: String,
}

/// Where the cloud says `a` is, from this node's point of view.
pub fn holder(a: &Address, eni: &str, private_ip: IpAddr) -> Holder {
    match (&a.network_interface_id, &a.association_id) {
        (None, None) => Holder::Nowhere,
        (Some(e), _) if e == eni && a.private_ip == Some(private_ip) => Holder::Here,
        (Some(e), _) if e == eni => Holder::HereOtherIp {
            private_ip: a.private_ip,
        },
        (e, _) => Holder::Elsewhere {
            network_interface_id: e.clone(),
            private_ip: a.private_ip,
        },
    }
}

fn verdict_kind(v: &Verdict) -> &'static str {
    match v {
        Verdict::Claim { dry_run: true, .. } => "would_claim",
        Verdict::Claim { .. } => "claim",
        Verdict::Wait { .. } => "wait",
        Verdict::Damped { .. } => "damped",
        Verdict::Hold { .. } => "hold",
    }
}

fn verdict_why(v: &Verdict) -> String {
    match v {
        Verdict::Claim { reason, dry_run } => format!(
            "{}the VIP is {} and this node is a healthy MASTER",
            if *dry_run { "dry run: " } else { "" },
            match reason {
                crate::core::decide::HealReason::Missed =>
                    "not associated (notify missed or failed)",
                crate::core::decide::HealReason::Elsewhere =>
                    "on another ENI (notify failed or raced)",
                crate::core::decide::HealReason::Stolen => "taken away during this mastership",
                crate::core::decide::HealReason::Drifted => "on this ENI but another private IP",
            }
        ),
        Verdict::Wait { until, why } | Verdict::Damped { until, why } => {
            format!("{why} (until {})", rfc3339(*until))
        }
        Verdict::Hold { why } => why.clone(),
    }
}

/// `/v1/status` for one VIP.
#[derive(Debug, Clone, Serialize)]
pub struct VipView {
    pub name: String,
    pub allocation_id: String,
    pub private_ip: IpAddr,
    pub vrrp_instance: String,
    pub mode: Mode,
    pub dry_run: bool,
    pub cloud: Option<Holder>,
    pub observed_at: Option<String>,
    pub verdict: Option<&'static str>,
    pub why: Option<String>,
    pub claim_in_flight: bool,
    pub undone_in_a_row: u32,
    pub backoff_until: Option<String>,
    /// The actions a claim needs, as far as the cloud has answered.
    pub permissions: Vec<PermissionView>,
}

impl Reconcile {
    pub fn new(
        vips: Vec<VipConfig>,
        eni: String,
        claims: mpsc::Sender<Claim>,
        verify_now: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let core = Reconciler::new(vips.iter().map(|v| v.name.as_str()));
        for v in &vips {
            for r in crate::core::decide::HealReason::ALL {
                metrics
                    .heals
                    .with_label_values(&[v.name.as_str(), r.as_str()]);
            }
            metrics.claims_damped.with_label_values(&[v.name.as_str()]);
            metrics.claims_undone.with_label_values(&[v.name.as_str()]);
        }
        Self {
            vips,
            eni,
            core,
            claims,
            verify_now,
            metrics,
            last: BTreeMap::new(),
            permissions: BTreeMap::new(),
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
        at: SystemTime,
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
            self.metrics
                .cloud_permission_denied
                .with_label_values(&[vip.as_str(), action.as_str()])
                .set(i64::from(!allowed));
            self.permissions.insert(
                (vip.clone(), action),
                PermissionView {
                    action,
                    allowed,
                    evidence,
                    at: rfc3339(at),
                    detail: detail.clone(),
                },
            );
        }
    }

    fn node_view(vip: &VipConfig, model: &Model, host: &HashSet<IpAddr>) -> NodeView {
        let inst = model.instances.get(&vip.vrrp_instance);
        NodeView {
            vrrp: inst.map_or(VrrpState::Unknown, |i| i.state),
            since: inst.and_then(|i| i.since),
            evidence_at: inst.and_then(|i| i.evidence_at),
            keepalived_running: model.keepalived.running == Some(true),
            probe: model.probe.health,
            os_has_private_ip: host.contains(&vip.private_ip),
        }
    }

    /// This host's addresses, read once per owner turn and passed to
    /// `on_cloud` and `step`.
    pub fn host_addresses() -> HashSet<IpAddr> {
        crate::keepalived::startup::host_addresses().unwrap_or_else(|e| {
            warn!(error = %e, "cannot list this host's addresses; treating the private IPs as absent");
            HashSet::new()
        })
    }

    /// A VRRP, probe or Keepalived change: ask the cloud now.
    pub fn something_changed(&self) {
        self.verify_now.notify_one();
    }

    /// Applies a cloud event; returns the changes to record as decisions.
    pub fn on_cloud(
        &mut self,
        event: CloudEvent,
        model: &Model,
        host: &HashSet<IpAddr>,
    ) -> Vec<Change> {
        let mut out = vec![];
        // Every describe is evidence of its permission, for every VIP.
        if let CloudEvent::Observed { at, result } = &event
            && let Some((allowed, detail)) = CloudEvent::call_evidence(result)
        {
            let vips: Vec<String> = self.vips.iter().map(|v| v.name.clone()).collect();
            let action = Action::DescribeAddresses;
            self.permission(&vips, action, allowed, detail, Evidence::Call, *at);
        }
        match event {
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
            CloudEvent::Observed {
                at,
                result: Ok(addresses),
            } => {
                for vip in &self.vips {
                    let Some(a) = addresses
                        .iter()
                        .find(|a| a.allocation_id == vip.allocation_id)
                    else {
                        continue;
                    };
                    let h = holder(a, &self.eni, vip.private_ip);
                    let before = self.core.vips.get(&vip.name).and_then(|s| s.holder.clone());
                    let node = Self::node_view(vip, model, host);
                    for o in self
                        .core
                        .observe_cloud(&vip.name, h.clone(), at, &node, &vip.policy)
                    {
                        match o {
                            Observed::ArrivedHere { latency } => {
                                if let Some(l) = latency {
                                    self.metrics
                                        .failover_latency
                                        .with_label_values(&[vip.name.as_str()])
                                        .observe(l.as_secs_f64());
                                }
                                info!(vip = %vip.name, latency_ms = latency.map(|l| l.as_millis() as u64), "the cloud shows the VIP on this node, the MASTER");
                            }
                            Observed::Undone => {
                                self.metrics
                                    .claims_undone
                                    .with_label_values(&[vip.name.as_str()])
                                    .inc();
                                warn!(vip = %vip.name, holder = ?h, "a claim of ours was undone while MASTER; backing off");
                            }
                        }
                    }
                    let here = h == Holder::Here;
                    self.metrics
                        .vip_here
                        .with_label_values(&[vip.name.as_str()])
                        .set(i64::from(here));
                    self.metrics
                        .vip_last_verified
                        .with_label_values(&[vip.name.as_str()])
                        .set(
                            at.duration_since(SystemTime::UNIX_EPOCH)
                                .map_or(0.0, |d| d.as_secs_f64()),
                        );
                    if before.as_ref() != Some(&h) {
                        info!(vip = %vip.name, holder = ?h, "the cloud's view of the VIP changed");
                        out.push(Change::VipSeen {
                            vip: vip.name.clone(),
                            holder: h,
                        });
                    }
                }
            }
            CloudEvent::ClaimDone {
                vip,
                converged,
                detail,
            } => {
                self.core.claim_finished(&vip, converged, SystemTime::now());
                if converged {
                    info!(vip = %vip, detail = %detail, "claim converged");
                } else {
                    warn!(vip = %vip, detail = %detail, next = "asking the cloud where the VIP is before another claim", "claim did not converge");
                    self.verify_now.notify_one();
                }
                out.push(Change::ClaimDone {
                    vip,
                    converged,
                    detail,
                });
            }
        }
        out
    }

    /// Decides for every VIP, sends claims, updates metrics. Returns the
    /// changes to record and the next time a verdict may change by itself.
    pub fn step(
        &mut self,
        now: SystemTime,
        model: &Model,
        host: &HashSet<IpAddr>,
    ) -> (Vec<Change>, Option<SystemTime>) {
        let mut out = vec![];
        let mut wake: Option<SystemTime> = None;
        for vip in &self.vips {
            let node = Self::node_view(vip, model, host);
            let verdict = self.core.decide(&vip.name, now, &node, &vip.policy);
            let changed = self
                .last
                .get(&vip.name)
                .is_none_or(|l| !l.same_as(&verdict));
            match &verdict {
                Verdict::Claim {
                    reason,
                    dry_run: false,
                } => {
                    let claim = Claim {
                        vip: vip.name.clone(),
                        allocation_id: vip.allocation_id.clone(),
                        eni: self.eni.clone(),
                        private_ip: vip.private_ip,
                        reason: *reason,
                    };
                    match self.claims.try_send(claim) {
                        Ok(()) => {
                            self.core.claim_sent(&vip.name, now);
                            self.metrics
                                .heals
                                .with_label_values(&[vip.name.as_str(), reason.as_str()])
                                .inc();
                            info!(vip = %vip.name, reason = reason.as_str(), why = %verdict_why(&verdict), "claiming the VIP for this node");
                        }
                        Err(e) => {
                            error!(vip = %vip.name, error = %e, "cannot hand the claim to the executor")
                        }
                    }
                }
                Verdict::Claim {
                    reason,
                    dry_run: true,
                } if changed => {
                    info!(vip = %vip.name, reason = reason.as_str(), "dry run: would claim the VIP for this node");
                }
                Verdict::Damped { until, .. } => {
                    if changed {
                        self.metrics
                            .claims_damped
                            .with_label_values(&[vip.name.as_str()])
                            .inc();
                        warn!(vip = %vip.name, why = %verdict_why(&verdict), "claim damped");
                    }
                    wake = Some(wake.map_or(*until, |w| w.min(*until)));
                }
                Verdict::Wait { until, .. } => {
                    if changed {
                        info!(vip = %vip.name, why = %verdict_why(&verdict), "waiting before acting");
                    }
                    wake = Some(wake.map_or(*until, |w| w.min(*until)));
                }
                _ => {
                    if changed {
                        info!(vip = %vip.name, verdict = verdict_kind(&verdict), why = %verdict_why(&verdict), "vip decision");
                    }
                }
            }
            if changed {
                out.push(Change::VipVerdict {
                    vip: vip.name.clone(),
                    verdict: verdict_kind(&verdict),
                    why: verdict_why(&verdict),
                });
            }
            if let Some(h) = self
                .core
                .vips
                .get(&vip.name)
                .and_then(|s| s.holder.as_ref())
            {
                let master = node.vrrp == VrrpState::Master;
                let here = *h == Holder::Here;
                self.metrics
                    .vip_converged
                    .with_label_values(&[vip.name.as_str()])
                    .set(i64::from(master == here));
            }
            self.last.insert(vip.name.clone(), verdict);
        }
        (out, wake)
    }

    pub fn view(&self) -> Vec<VipView> {
        self.vips
            .iter()
            .map(|v| {
                let st = self.core.vips.get(&v.name);
                let last = self.last.get(&v.name);
                VipView {
                    name: v.name.clone(),
                    allocation_id: v.allocation_id.clone(),
                    private_ip: v.private_ip,
                    vrrp_instance: v.vrrp_instance.clone(),
                    mode: v.policy.mode,
                    dry_run: v.policy.dry_run,
                    cloud: st.and_then(|s| s.holder.clone()),
                    observed_at: st.and_then(|s| s.observed_at).map(rfc3339),
                    verdict: last.map(verdict_kind),
                    why: last.map(verdict_why),
                    claim_in_flight: st.is_some_and(|s| s.in_flight),
                    undone_in_a_row: st.map_or(0, |s| s.undone_in_a_row),
                    backoff_until: st.and_then(|s| s.backoff_until).map(rfc3339),
                    permissions: self
                        .permissions
                        .iter()
                        .filter(|((vip, _), _)| *vip == v.name)
                        .map(|(_, p)| p.clone())
                        .collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{CloudError, ErrorKind};

    fn addr(eni: Option<&str>, ip: Option<&str>) -> Address {
        Address {
            allocation_id: "eipalloc-1".into(),
            public_ip: Some("127.0.0.9".into()),
            association_id: eni.map(|_| "eipassoc-1".into()),
            network_interface_id: eni.map(str::to_owned),
            private_ip: ip.map(|i| i.parse().unwrap()),
        }
    }

    #[test]
    fn holder_compares_eni_and_private_ip_never_instance() {
        let me = "eni-me";
        let vip: IpAddr = "10.0.0.50".parse().unwrap();
        assert_eq!(holder(&addr(None, None), me, vip), Holder::Nowhere);
        assert_eq!(
            holder(&addr(Some("eni-me"), Some("10.0.0.50")), me, vip),
            Holder::Here
        );
        assert_eq!(
            holder(&addr(Some("eni-me"), Some("10.0.0.10")), me, vip),
            Holder::HereOtherIp {
                private_ip: Some("10.0.0.10".parse().unwrap())
            }
        );
        assert_eq!(
            holder(&addr(Some("eni-peer"), Some("10.0.0.50")), me, vip),
            Holder::Elsewhere {
                network_interface_id: Some("eni-peer".into()),
                private_ip: Some("10.0.0.50".parse().unwrap())
            }
        );
    }

    fn reconcile() -> Reconcile {
        let policy = crate::core::decide::VipPolicy {
            mode: Mode::Own,
            grace: std::time::Duration::from_secs(10),
            min_master_age: std::time::Duration::from_secs(3),
            max_claims: 3,
            claim_window: std::time::Duration::from_secs(600),
            backoff_base: std::time::Duration::from_secs(10),
            backoff_max: std::time::Duration::from_secs(300),
            dry_run: false,
        };
        let vips = ["web", "db"]
            .map(|name| VipConfig {
                name: name.into(),
                allocation_id: format!("eipalloc-{name}"),
                private_ip: "10.0.0.50".parse().unwrap(),
                vrrp_instance: "VI_1".into(),
                policy: policy.clone(),
            })
            .to_vec();
        let (tx, _rx) = mpsc::channel(1);
        Reconcile::new(
            vips,
            "eni-me".into(),
            tx,
            Arc::new(Notify::new()),
            Arc::new(Metrics::new("p", "n").unwrap()),
        )
    }

    fn permission(vips: &[&str], action: Action, allowed: bool, evidence: Evidence) -> CloudEvent {
        CloudEvent::Permission {
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
        }
    }

    /// (event, then: the gauge for (vip, action), and the status's `allowed`)
    #[test]
    fn permissions_set_the_gauge_and_the_status_per_vip() {
        let mut r = reconcile();
        let model = Model::new(["VI_1"]);
        let host = HashSet::new();
        let denied_err = CloudError {
            operation: "DescribeAddresses",
            kind: ErrorKind::Auth,
            code: "UnauthorizedOperation".into(),
            message: "no".into(),
        };
        let throttled = CloudError {
            kind: ErrorKind::Throttled,
            code: "RequestLimitExceeded".into(),
            ..denied_err.clone()
        };
        let observed = |result| CloudEvent::Observed {
            at: SystemTime::UNIX_EPOCH,
            result,
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
                observed(Err(denied_err)),
                "db",
                DescribeAddresses,
                Some(1),
                Some(false),
            ),
            (
                observed(Err(throttled)),
                "db",
                DescribeAddresses,
                Some(1),
                Some(false),
            ),
            (
                observed(Ok(vec![])),
                "db",
                DescribeAddresses,
                Some(0),
                Some(true),
            ),
        ];
        for (i, (event, vip, action, gauge, allowed)) in table.into_iter().enumerate() {
            r.on_cloud(event, &model, &host);
            let key = (vip.to_owned(), action);
            let seen = r.permissions.get(&key).map(|p| p.allowed);
            assert_eq!(seen, allowed, "row {i}: status of {key:?}");
            let g = seen.map(|_| {
                r.metrics
                    .cloud_permission_denied
                    .with_label_values(&[vip, action.as_str()])
                    .get()
            });
            assert_eq!(g, gauge, "row {i}: gauge of {key:?}");
        }
        let view = r.view();
        let db: Vec<_> = view[1]
            .permissions
            .iter()
            .map(|p| (p.action, p.allowed, p.evidence))
            .collect();
        assert_eq!(
            db,
            [
                (DescribeAddresses, true, Evidence::Call),
                (DescribeNetworkInterfaces, true, Evidence::DryRun),
            ]
        );
    }
}
