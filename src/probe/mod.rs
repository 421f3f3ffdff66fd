//! The local probe: the watchdog's own view of the load balancer (or role).
//! It never touches Keepalived's vrrp_script.

pub mod check;
pub mod risefall;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span};

use crate::config::ProbeConfig;
use crate::core::input::Event;
use crate::metrics::Metrics;
use check::{Outcome, Prober};
use risefall::Reporter;

/// Runs the probe every `interval` until cancelled; sends an event to the
/// owner each time the health crosses its rise or fall threshold, and when
/// the reason for it changes while it holds (`Reporter`).
pub async fn run(
    config: ProbeConfig,
    events: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let kind = config.check.kind();
    let prober = Prober::new(config.check, config.also, config.timeout)?;
    let mut report = Reporter::new(config.rise.get(), config.fall.get());
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            let started = Instant::now();
            let outcome = prober.run_once().await;
            let took = started.elapsed();
            let (ok, detail) = match outcome {
                Outcome::Success(d) => {
                    metrics.probe_result(took, None);
                    (true, d)
                }
                Outcome::Failure(reason, d) => {
                    metrics.probe_result(took, Some(reason.as_str()));
                    debug!(event = "probe_failed", reason = reason.as_str(), detail = %d, "probe failed");
                    (false, d)
                }
            };
            if let Some(health) = report.record(ok, &detail)
                && events.send(Event::Probe { health, detail }).await.is_err()
            {
                return Ok(()); // the owner is gone: shutting down
            }
        }
    }
    .instrument(info_span!("probe", kind))
    .await
}
