//! One cloud call: bounded by a timeout, counted by operation and outcome,
//! retried with exponential back-off and jitter (backon) when its
//! `ErrorKind` says so. Reads retry throttling, 5xx, timeouts and transport
//! errors; mutating calls retry throttling only (the API refused before
//! acting), and only while their `guard` still holds.

use std::future::Future;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use tracing::warn;

use crate::core::seen::{CloudError, ErrorKind};
use crate::metrics::Metrics;

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
    run(operation, policy, metrics, ErrorKind::retryable, || true, f).await
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
        ErrorKind::retryable_mutating,
        guard,
        f,
    )
    .await
}

async fn run<T, F, Fut>(
    operation: &'static str,
    policy: &CallPolicy,
    metrics: &Metrics,
    retry: fn(ErrorKind) -> bool,
    guard: impl Fn() -> bool,
    mut f: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    let attempt = || {
        let fut = (guard()).then(&mut f);
        async move {
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
        .when(|e: &CloudError| retry(e.kind) && e.code != SUPERSEDED)
        .notify(|e: &CloudError, after: Duration| {
            warn!(event = "cloud_call_retry", operation, kind = e.kind.as_str(), error = %e, retry_in_ms = after.as_millis() as u64, "cloud call failed; retrying");
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
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
        }
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
