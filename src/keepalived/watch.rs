//! The process-watch task: looks at Keepalived's processes every
//! `process_check_interval` (`keepalived/process.rs`), sends what changed to
//! the owner, and learns the state again from the JSON dump when a new or
//! resumed Keepalived appears (`keepalived/startup.rs`).

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span};

use crate::config::KeepalivedConfig;
use crate::core::input::Event;
use crate::keepalived::process::{Observation, diff, observe, relearn};

/// Watches until cancelled, starting from the observation made at start-up.
pub async fn run(
    config: KeepalivedConfig,
    mut last: Observation,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(config.process_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_running = match &last {
        Observation::Running { main, .. } => Some(main.clone()),
        _ => None,
    };
    async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tick.tick() => {}
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
