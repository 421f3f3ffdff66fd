//! Acting on the cloud: the one executor task that performs claims, and the
//! verifier task that asks the cloud where the VIPs are.
//!
//! Every call is bounded by `call_timeout` and counted by operation and
//! outcome. Throttling, 5xx, timeouts and transport errors are retried with
//! exponential back-off and jitter (backon); other 4xx are not. After an
//! associate, the executor polls DescribeAddresses until the cloud shows the
//! VIP here or `convergence_timeout` passes. Results go back to the owner as
//! `CloudEvent`s; the executor keeps no state of its own.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::cloud::{Action, Address, Cloud, CloudError, ErrorKind};
use crate::core::decide::HealReason;
use crate::metrics::Metrics;

/// What the executor and verifier tell the owner.
#[derive(Debug, Clone, PartialEq)]
pub enum CloudEvent {
    /// The cloud's answer for some (or all) of the VIPs.
    Observed {
        at: SystemTime,
        result: Result<Vec<Address>, CloudError>,
    },
    /// A claim finished; `converged` when the cloud showed the VIP here.
    ClaimDone {
        vip: String,
        converged: bool,
        detail: String,
    },
    /// Whether this node may make `action` for these VIPs, as a `DryRun`
    /// call or a real call showed. (DescribeAddresses is learnt from
    /// `Observed`.)
    Permission {
        vips: Vec<String>,
        action: Action,
        allowed: bool,
        /// The answer: `DryRunOperation`, or the refusal's code and message.
        detail: String,
        evidence: Evidence,
        at: SystemTime,
    },
}

/// What showed a permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    DryRun,
    Call,
}

impl Evidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DryRun => "dry_run",
            Self::Call => "call",
        }
    }
}

impl CloudEvent {
    /// The permission a real call's result shows: a success allows, an auth
    /// error refuses, anything else says nothing.
    pub fn call_evidence<T>(r: &Result<T, CloudError>) -> Option<(bool, String)> {
        match r {
            Ok(_) => Some((true, "the call succeeded".to_owned())),
            Err(e) => e.refusal().map(|detail| (false, detail)),
        }
    }

    /// That permission as an event for `vips`.
    pub fn from_call<T>(
        vips: Vec<String>,
        action: Action,
        r: &Result<T, CloudError>,
    ) -> Option<Self> {
        let (allowed, detail) = Self::call_evidence(r)?;
        Some(CloudEvent::Permission {
            vips,
            action,
            allowed,
            detail,
            evidence: Evidence::Call,
            at: SystemTime::now(),
        })
    }
}

/// A claim, as the owner hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub vip: String,
    pub allocation_id: String,
    pub eni: String,
    pub private_ip: IpAddr,
    pub reason: HealReason,
}

#[derive(Debug, Clone)]
pub struct CallPolicy {
    pub timeout: Duration,
    /// Retries after the first attempt, for retryable errors only.
    pub retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl CallPolicy {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            retries: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// One cloud call with timeout, metrics and retries.
pub async fn call<T, F, Fut>(
    operation: &'static str,
    policy: &CallPolicy,
    metrics: &Metrics,
    mut f: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    let attempt = || {
        let fut = f();
        async move {
            let started = Instant::now();
            let result = match tokio::time::timeout(policy.timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err(CloudError {
                    operation,
                    kind: ErrorKind::Timeout,
                    code: "Timeout".into(),
                    message: format!(
                        "no answer within {}",
                        humantime::format_duration(policy.timeout)
                    ),
                }),
            };
            metrics
                .cloud_call_duration
                .with_label_values(&[operation])
                .observe(started.elapsed().as_secs_f64());
            let outcome = match &result {
                Ok(_) => "success",
                Err(e) => e.kind.as_str(),
            };
            metrics
                .cloud_calls
                .with_label_values(&[operation, outcome])
                .inc();
            result
        }
    };
    attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(policy.min_delay)
                .with_max_delay(policy.max_delay)
                .with_max_times(policy.retries)
                .with_jitter(),
        )
        .when(|e: &CloudError| e.kind.retryable())
        .notify(|e: &CloudError, after: Duration| {
            warn!(operation, kind = e.kind.as_str(), error = %e, retry_in_ms = after.as_millis() as u64, "cloud call failed; retrying");
        })
        .await
}

pub struct Executor<C: Cloud> {
    pub cloud: Arc<C>,
    pub metrics: Arc<Metrics>,
    pub policy: CallPolicy,
    pub convergence_timeout: Duration,
    /// Defence in depth: the owner sends no claims in dry-run mode, and the
    /// executor would not perform them either.
    pub dry_run: bool,
}

impl<C: Cloud> Executor<C> {
    pub async fn run(
        self,
        mut claims: mpsc::Receiver<Claim>,
        events: mpsc::Sender<CloudEvent>,
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
                let (converged, detail) = tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    r = self.claim(&claim, &events) => r,
                };
                let done = CloudEvent::ClaimDone {
                    vip,
                    converged,
                    detail,
                };
                if events.send(done).await.is_err() {
                    return Ok(());
                }
            }
        }
        .instrument(info_span!("executor"))
        .await
    }

    /// Tells the owner what a real call showed about a permission.
    async fn learnt<T>(
        events: &mpsc::Sender<CloudEvent>,
        vip: &str,
        action: Action,
        r: &Result<T, CloudError>,
    ) {
        if let Some(e) = CloudEvent::from_call(vec![vip.to_owned()], action, r) {
            // A closed channel means shutting down; the claim ends by itself.
            let _ = events.send(e).await;
        }
    }

    async fn claim(&self, c: &Claim, events: &mpsc::Sender<CloudEvent>) -> (bool, String) {
        let (m, p) = (&*self.metrics, &self.policy);
        if self.dry_run {
            return (false, "dry run: no mutating call made".into());
        }
        let started = Instant::now();
        // 1. The secondary private IP on this node's ENI.
        let ips = call("DescribeNetworkInterfaces", p, m, || {
            self.cloud.private_ips(&c.eni)
        })
        .await;
        Self::learnt(events, &c.vip, Action::DescribeNetworkInterfaces, &ips).await;
        let ips = match ips {
            Ok(ips) => ips,
            Err(e) => return (false, format!("cannot read {}'s private IPs: {e}", c.eni)),
        };
        if !ips.contains(&c.private_ip) {
            info!(vip = %c.vip, eni = %c.eni, private_ip = %c.private_ip, "assigning the private IP to this node's ENI");
            let assigned = call("AssignPrivateIpAddresses", p, m, || {
                self.cloud.assign_private_ip(&c.eni, c.private_ip)
            })
            .await;
            Self::learnt(events, &c.vip, Action::AssignPrivateIpAddresses, &assigned).await;
            if let Err(e) = assigned {
                return (
                    false,
                    format!("cannot assign {} to {}: {e}", c.private_ip, c.eni),
                );
            }
        }
        // 2. The association.
        info!(vip = %c.vip, allocation_id = %c.allocation_id, eni = %c.eni, private_ip = %c.private_ip, reason = c.reason.as_str(), "associating the EIP with this node");
        let associated = call("AssociateAddress", p, m, || {
            self.cloud.associate(&c.allocation_id, &c.eni, c.private_ip)
        })
        .await;
        Self::learnt(events, &c.vip, Action::AssociateAddress, &associated).await;
        match associated {
            Ok(id) => info!(vip = %c.vip, association_id = %id, "associate accepted"),
            // A race with the peer: the verification below tells what won.
            Err(e) if e.kind == ErrorKind::Conflict => {
                info!(vip = %c.vip, error = %e, "associate raced with another change; verifying")
            }
            Err(e) => return (false, format!("associate failed: {e}")),
        }
        // 3. Confirmation: describe until the cloud shows it here.
        let deadline = Instant::now() + self.convergence_timeout;
        let mut delay = Duration::from_millis(100);
        loop {
            let result = call("DescribeAddresses", p, m, || {
                self.cloud
                    .describe_addresses(std::slice::from_ref(&c.allocation_id))
            })
            .await;
            let here = result.as_ref().is_ok_and(|addrs| {
                addrs.iter().any(|a| {
                    a.allocation_id == c.allocation_id
                        && a.network_interface_id.as_deref() == Some(c.eni.as_str())
                        && a.private_ip == Some(c.private_ip)
                })
            });
            let observed = CloudEvent::Observed {
                at: SystemTime::now(),
                result,
            };
            if events.send(observed).await.is_err() {
                return (false, "shutting down".into());
            }
            if here {
                return (
                    true,
                    format!(
                        "the cloud shows it here after {} ms",
                        started.elapsed().as_millis()
                    ),
                );
            }
            if Instant::now() >= deadline {
                return (
                    false,
                    format!(
                        "the cloud did not show it here within {}",
                        humantime::format_duration(self.convergence_timeout)
                    ),
                );
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

/// Asks the cloud where every VIP is: every `interval` plus up to `jitter`,
/// and at once when `now` is notified (a VRRP or probe change).
#[allow(clippy::too_many_arguments)]
pub async fn verify<C: Cloud>(
    cloud: Arc<C>,
    metrics: Arc<Metrics>,
    policy: CallPolicy,
    allocation_ids: Vec<String>,
    interval: Duration,
    jitter: Duration,
    now: Arc<Notify>,
    events: mpsc::Sender<CloudEvent>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    async move {
        loop {
            let result = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = call("DescribeAddresses", &policy, &metrics, || cloud.describe_addresses(&allocation_ids)) => r,
            };
            let at = SystemTime::now();
            if events.send(CloudEvent::Observed { at, result }).await.is_err() {
                return Ok(());
            }
            let spread = jitter.mul_f64(fastrand::f64());
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(interval + spread) => {}
                _ = now.notified() => {}
            }
        }
    }
    .instrument(info_span!("verifier"))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn err(kind: ErrorKind) -> CloudError {
        CloudError {
            operation: "Test",
            kind,
            code: kind.as_str().into(),
            message: String::new(),
        }
    }

    fn policy() -> CallPolicy {
        CallPolicy {
            timeout: Duration::from_secs(1),
            retries: 3,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_real_call_is_evidence_of_a_permission_only_when_it_succeeds_or_is_refused() {
        let allowed = |e: Option<CloudEvent>| match e {
            Some(CloudEvent::Permission {
                allowed,
                evidence: Evidence::Call,
                ..
            }) => Some(allowed),
            None => None,
            other => panic!("{other:?}"),
        };
        let ok: Result<(), CloudError> = Ok(());
        let a = Action::AssociateAddress;
        assert_eq!(
            allowed(CloudEvent::from_call(vec!["web".into()], a, &ok)),
            Some(true)
        );
        for kind in ErrorKind::ALL {
            let r: Result<(), CloudError> = Err(err(kind));
            let expected = (kind == ErrorKind::Auth).then_some(false);
            assert_eq!(
                allowed(CloudEvent::from_call(vec!["web".into()], a, &r)),
                expected,
                "{kind:?}"
            );
        }
    }

    /// (error the fake returns every time, attempts made, outcome label)
    #[tokio::test(start_paused = true)]
    async fn retries_only_what_is_retryable() {
        for (kind, attempts) in [
            (ErrorKind::Throttled, 4),
            (ErrorKind::Server, 4),
            (ErrorKind::Transport, 4),
            (ErrorKind::Auth, 1),
            (ErrorKind::NotFound, 1),
            (ErrorKind::Conflict, 1),
            (ErrorKind::Client, 1),
        ] {
            let metrics = Metrics::new("p", "n").unwrap();
            let n = AtomicUsize::new(0);
            let r: Result<(), _> = call("Test", &policy(), &metrics, || {
                n.fetch_add(1, Ordering::SeqCst);
                async move { Err(err(kind)) }
            })
            .await;
            assert_eq!(r.unwrap_err().kind, kind);
            assert_eq!(n.load(Ordering::SeqCst), attempts, "{kind:?}");
            assert_eq!(
                metrics
                    .cloud_calls
                    .with_label_values(&["Test", kind.as_str()])
                    .get(),
                attempts as u64
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_times_out_and_is_retried_then_succeeds() {
        let metrics = Metrics::new("p", "n").unwrap();
        let n = AtomicUsize::new(0);
        let r = call("Test", &policy(), &metrics, || {
            let i = n.fetch_add(1, Ordering::SeqCst);
            async move {
                if i == 0 {
                    std::future::pending::<()>().await;
                }
                Ok(7)
            }
        })
        .await;
        assert_eq!(r, Ok(7));
        assert_eq!(
            metrics
                .cloud_calls
                .with_label_values(&["Test", "timeout"])
                .get(),
            1
        );
        assert_eq!(
            metrics
                .cloud_calls
                .with_label_values(&["Test", "success"])
                .get(),
            1
        );
    }
}
