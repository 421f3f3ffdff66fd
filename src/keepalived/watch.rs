//! The process-watch task: looks at Keepalived's processes every
//! `process_check_interval` (`keepalived/process.rs`), sends what changed to
//! the owner, and learns the state again from the JSON dump when a new or
//! resumed Keepalived appears (`keepalived/startup.rs`). With the JSON
//! dump on, it also reads Keepalived's counters and script status, one
//! signal a minute at most (`keepalived/stats.rs`).

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::KeepalivedConfig;
use crate::core::input::Event;
use crate::keepalived::process::{Observation, diff, observe, relearn};
use crate::keepalived::startup::DumpError;
use crate::keepalived::stats::{self, Ask, Planner, ROUND_GAP, Read};
use crate::metrics::Metrics;

/// Watches until cancelled, starting from the observation made at start-up.
pub async fn run(
    config: KeepalivedConfig,
    mut last: Observation,
    events: mpsc::Sender<Event>,
    metrics: std::sync::Arc<Metrics>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(config.process_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The start-up learned the state from a dump a moment ago: the first
    // round comes a gap after it.
    let mut stats_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + ROUND_GAP, ROUND_GAP);
    stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let instances: Vec<String> = config.instances.iter().map(|i| i.name.clone()).collect();
    metrics.keepalived.init(&instances);
    let mut stats = Stats::default();
    // A round runs beside the looks (a Keepalived slow to write its dump
    // must not delay noticing a crash); dropped, it is aborted.
    let mut round: Option<AbortOnDropHandle<(Ask, Result<Read, DumpError>)>> = None;
    let mut last_running = match &last {
        Observation::Running { main, .. } => Some(main.clone()),
        _ => None,
    };
    async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tick.tick() => {}
                _ = stats_tick.tick() => {
                    if let (None, Some(dump), Observation::Running { main, .. }) = (&round, &config.json_dump, &last) {
                        let ask = stats.planner.next();
                        let (dump, main) = (dump.clone(), main.clone());
                        round = Some(AbortOnDropHandle::new(tokio::spawn(async move {
                            (ask, stats::round(ask, &dump, &main).await)
                        })));
                    }
                    continue;
                }
                done = async {
                    match round.as_mut() {
                        Some(h) => h.await,
                        None => std::future::pending().await,
                    }
                } => {
                    round = None;
                    if let Ok((ask, result)) = done {
                        stats.done(ask, result, &metrics);
                    }
                    continue;
                }
            }
            let now = observe(&config, last_running.as_ref());
            let mut batch = diff(Some(&last), &now);
            if let (Some(why), Observation::Running { main, .. }) =
                (relearn(&last, last_running.as_ref(), &now), &now)
            {
                // Its age counts from now, so that a MASTER that was frozen
                // or unseen claims nothing before the adverts have settled
                // who is MASTER now.
                let (learned, _) = crate::keepalived::startup::learn(&config, main).await;
                // That was a signal, and to another process: counted from
                // it, and the scripts read again.
                stats_tick.reset();
                stats.planner = Planner::default();
                round = None;
                batch.extend(learned.into_iter().map(|e| match e {
                    Event::Learned {
                        instance,
                        state,
                        priority,
                        source,
                        reason,
                        ..
                    } => Event::Learned {
                        instance,
                        state,
                        priority,
                        since: None,
                        source,
                        reason: format!("{reason}; {why}"),
                    },
                    other => other,
                }));
            }
            for event in batch {
                if events.send(event).await.is_err() {
                    return Ok(());
                }
            }
            match now {
                // Nothing is concluded from a failed look.
                Observation::Unknown { .. } => {}
                Observation::Running { ref main, .. } => {
                    last_running = Some(main.clone());
                    last = now;
                }
                Observation::Gone { .. } => last = now,
            }
        }
    }
    .instrument(info_span!("process_watch"))
    .await
}

/// The stats rounds' memory: what to ask next, and the failure last logged
/// (a failure that repeats is logged once, at warn, and again when it ends).
#[derive(Default)]
struct Stats {
    planner: Planner,
    failing: Option<String>,
}

impl Stats {
    /// A round's result: the metrics, the planner, the log.
    fn done(&mut self, ask: Ask, result: Result<Read, DumpError>, metrics: &Metrics) {
        let now = std::time::SystemTime::now();
        let failure = match result {
            Ok(Read::Stats(instances)) => {
                self.planner.json_read(&instances);
                metrics.keepalived.stats(instances, now);
                None
            }
            Ok(Read::Scripts(scripts)) => {
                self.planner.data_done();
                debug!(
                    event = "keepalived_scripts_read",
                    scripts = scripts.len(),
                    "read keepalived's vrrp_script status from its data dump"
                );
                metrics.keepalived.scripts(scripts, now);
                None
            }
            Err(e) => {
                if ask == Ask::Data {
                    self.planner.data_done();
                }
                Some(format!("{ask:?} dump: {e}"))
            }
        };
        match (&self.failing, failure) {
            (None, Some(f)) => {
                warn!(event = "keepalived_stats_failed", error = %f, "cannot read keepalived's counters or script status; the last values stay");
                self.failing = Some(f);
            }
            (Some(_), None) => {
                info!(
                    event = "keepalived_stats_recovered",
                    "keepalived's counters and script status are read again"
                );
                self.failing = None;
            }
            _ => {}
        }
    }
}
