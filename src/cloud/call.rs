//! One cloud call: bounded by a timeout, counted by operation and outcome,
//! retried with exponential back-off and jitter (backon) when its
//! `ErrorKind` says so. Reads retry throttling, 5xx, timeouts and transport
//! errors; mutating calls retry throttling only (the API refused before
//! acting), and only while their `guard` still holds. Before every attempt
//! each call waits out the process-wide back-off (`throttle.rs`), which a
//! throttled answer of any call starts.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use tracing::warn;

use crate::cloud::throttle::Throttle;
use crate::core::seen::{CloudError, ErrorKind};
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct CallPolicy {
    pub timeout: Duration,
    /// Retries after the first attempt, for retryable errors only.
    pub retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// The process-wide back-off: clones of a policy share it.
    pub throttle: Arc<Throttle>,
}

impl CallPolicy {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            retries: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            throttle: Arc::default(),
        }
    }
}

/// The code of the error a guarded call returns when its guard no longer
/// holds: no request was sent.
pub const SUPERSEDED: &str = "Superseded";

/// A read: retried on throttling, 5xx, timeouts and transport errors.
pub async fn call<T, F, Fut>(
    operation: &'static str,
    policy: &CallPolicy,
    metrics: &Metrics,
    f: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    run(
        operation,
        policy,
        metrics,
        (false, ErrorKind::retryable),
        || true,
        f,
    )
    .await
}

/// A mutating call: sent only while `guard()` holds (checked before every
/// attempt), retried on throttling only. When the guard fails, the error's
/// code is `SUPERSEDED` and nothing was sent.
pub async fn mutate<T, F, Fut>(
    operation: &'static str,
    policy: &CallPolicy,
    metrics: &Metrics,
    guard: impl Fn() -> bool,
    f: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    run(
        operation,
        policy,
        metrics,
        (true, ErrorKind::retryable_mutating),
        guard,
        f,
    )
    .await
}

async fn run<T, F, Fut>(
    operation: &'static str,
    policy: &CallPolicy,
    metrics: &Metrics,
    (mutating, retry): (bool, fn(ErrorKind) -> bool),
    guard: impl Fn() -> bool,
    f: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    let throttle = &policy.throttle;
    // Shared by the attempts, each of which calls it after its pause.
    let f = std::sync::Mutex::new(f);
    let attempt = || {
        let (throttle, guard, f) = (throttle.clone(), &guard, &f);
        async move {
            throttle.wait(mutating).await;
            let fut = guard().then(|| (f.lock().unwrap_or_else(|e| e.into_inner()))());
            let Some(fut) = fut else {
                return Err(CloudError {
                    operation,
                    kind: ErrorKind::Client,
                    code: SUPERSEDED.into(),
                    message: "the verdict no longer stands: not sent".into(),
                });
            };
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
            metrics.cloud_call(operation, &result, started.elapsed());
            match &result {
                Err(e) if e.kind == ErrorKind::Throttled => {
                    metrics.cloud_backoff(throttle.throttled());
                }
                // An answer: EC2 takes requests again.
                Ok(_)
                | Err(CloudError {
                    kind:
                        ErrorKind::Auth | ErrorKind::NotFound | ErrorKind::Conflict | ErrorKind::Client,
                    ..
                }) => {
                    if throttle.answered() > 0 {
                        metrics.cloud_backoff(0);
                    }
                }
                Err(_) => {}
            }
            result
        }
    };
    let result = attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(policy.min_delay)
                .with_max_delay(policy.max_delay)
                .with_max_times(policy.retries)
                .with_jitter(),
        )
        .when(|e: &CloudError| retry(e.kind) && e.code != SUPERSEDED)
        .notify(|e: &CloudError, after: Duration| {
            warn!(event = "cloud_call_retry", operation, kind = e.kind.as_str(), error = %e, retry_in_ms = after.as_millis() as u64, "cloud call failed; retrying");
        })
        .await;
    if let Err(e) = &result
        && e.code != SUPERSEDED
    {
        metrics.summary.call_failed(operation, e.kind);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::throttle::CAP;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
            throttle: Default::default(),
        }
    }

    /// Back off together: 20 s of EC2 throttling every request, met by a
    /// describe loop (the verifier: one describe a second) and a claim
    /// retried until it lands (the executor), sharing one policy. Attempts
    /// per 5 s fall over the storm, the back-off shows in the metric, and
    /// the claim lands within a few seconds of the storm's end.
    #[tokio::test(start_paused = true)]
    async fn a_throttle_storm_is_met_by_backing_off_together() {
        const STORM: Duration = Duration::from_secs(20);
        fastrand::seed(7);
        let metrics = Metrics::new("p", "n").unwrap();
        let p = policy();
        let start = tokio::time::Instant::now();
        let sent = std::sync::Mutex::new(vec![]);
        let answer = || {
            let at = start.elapsed();
            sent.lock().unwrap().push(at);
            async move {
                if at < STORM {
                    Err(err(ErrorKind::Throttled))
                } else {
                    Ok(())
                }
            }
        };
        let describes = async {
            while start.elapsed() < STORM + Duration::from_secs(10) {
                let _ = call("DescribeAddresses", &p, &metrics, answer).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        let claim = async {
            let mut level_seen = 0;
            loop {
                let r = mutate("AssociateAddress", &p, &metrics, || true, answer).await;
                level_seen = level_seen.max(metrics.cloud_backoff_level());
                if r.is_ok() {
                    return (start.elapsed(), level_seen);
                }
            }
        };
        let ((landed, level_seen), ()) = tokio::join!(claim, describes);
        let sent = sent.into_inner().unwrap();
        let per_5s: Vec<usize> = (0..4)
            .map(|i| {
                let (from, to) = (Duration::from_secs(5 * i), Duration::from_secs(5 * (i + 1)));
                sent.iter().filter(|t| **t >= from && **t < to).count()
            })
            .collect();
        // Each later 5 s sends fewer than the first (with per-call retries
        // alone, the claim's and the describes' attempts would hold at
        // several a second).
        let later = &per_5s[1..];
        assert!(
            later.iter().all(|n| n + 2 <= per_5s[0]),
            "requests per 5 s over the storm: {per_5s:?}"
        );
        assert!(level_seen >= 3, "the back-off level: {level_seen}");
        assert_eq!(metrics.cloud_backoff_level(), 0, "over after the storm");
        assert!(
            landed < STORM + CAP / 4 + Duration::from_secs(1),
            "the claim landed {landed:?} after the storm's start"
        );
    }

    /// (error the fake returns every time, attempts as a read, as a
    /// mutating call)
    #[tokio::test(start_paused = true)]
    async fn reads_retry_what_is_retryable_mutating_calls_only_throttling() {
        for (kind, read, mutating) in [
            (ErrorKind::Throttled, 4, 4),
            (ErrorKind::Server, 4, 1),
            (ErrorKind::Timeout, 4, 1),
            (ErrorKind::Transport, 4, 1),
            (ErrorKind::Auth, 1, 1),
            (ErrorKind::NotFound, 1, 1),
            (ErrorKind::Conflict, 1, 1),
            (ErrorKind::Client, 1, 1),
        ] {
            for (is_mutating, attempts) in [(false, read), (true, mutating)] {
                let metrics = Metrics::new("p", "n").unwrap();
                let n = AtomicUsize::new(0);
                let f = || {
                    n.fetch_add(1, Ordering::SeqCst);
                    async move { Err::<(), _>(err(kind)) }
                };
                let r = if is_mutating {
                    mutate("Test", &policy(), &metrics, || true, f).await
                } else {
                    call("Test", &policy(), &metrics, f).await
                };
                assert_eq!(r.unwrap_err().kind, kind);
                assert_eq!(
                    n.load(Ordering::SeqCst),
                    attempts,
                    "{kind:?} mutating={is_mutating}"
                );
                assert_eq!(
                    metrics.cloud_calls_count("Test", kind.as_str()),
                    attempts as u64
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_read_times_out_and_is_retried_then_succeeds() {
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
        assert_eq!(metrics.cloud_calls_count("Test", "timeout"), 1);
        assert_eq!(metrics.cloud_calls_count("Test", "success"), 1);
    }

    /// A throttled mutating call whose verdict falls while it backs off is
    /// not sent again, and what was not sent is not counted.
    #[tokio::test(start_paused = true)]
    async fn a_mutating_call_whose_guard_fails_is_not_sent() {
        let metrics = Metrics::new("p", "n").unwrap();
        let stands = AtomicBool::new(true);
        let n = AtomicUsize::new(0);
        let r: Result<(), _> = mutate(
            "Test",
            &policy(),
            &metrics,
            || stands.load(Ordering::SeqCst),
            || {
                n.fetch_add(1, Ordering::SeqCst);
                stands.store(false, Ordering::SeqCst);
                async move { Err(err(ErrorKind::Throttled)) }
            },
        )
        .await;
        assert_eq!(r.unwrap_err().code, SUPERSEDED);
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert_eq!(metrics.cloud_calls_count("Test", "throttled"), 1);
    }
}
