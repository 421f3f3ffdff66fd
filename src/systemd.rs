//! systemd's notify protocol (`Type=notify`): READY=1 once the watchdog
//! serves, WATCHDOG=1 while the state owner publishes, STOPPING=1 at a
//! real shutdown only (`stopping`, called when SIGTERM or SIGINT arrives):
//! a reload restarts this task with the others, and STOPPING=1 then would
//! make systemd take the service for stopping and kill it after
//! TimeoutStopSec. The pings follow the owner's heartbeat, not a timer of
//! their own: an owner that stopped publishing stops them, and systemd
//! restarts the service. Under no service manager (`NOTIFY_SOCKET` unset)
//! this does nothing.

use std::time::{Duration, SystemTime};

use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::status::Status;

/// Whether a heartbeat published at `heartbeat` is fresh at `now`: the
/// same bound as `/healthz`.
pub fn fresh(heartbeat: SystemTime, now: SystemTime) -> bool {
    now.duration_since(heartbeat).unwrap_or_default() <= crate::status::STALE_AFTER
}

/// Tells systemd the service is stopping (a shutdown, never a reload).
pub fn stopping() {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
    }
}

pub async fn run(status: watch::Receiver<Status>, cancel: CancellationToken) -> anyhow::Result<()> {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        cancel.cancelled().await;
        return Ok(());
    }
    if let Err(e) = sd_notify::notify(false, &[NotifyState::Ready]) {
        warn!(event = "systemd_notify_failed", error = %e, "cannot tell systemd we are ready");
    }
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        cancel.cancelled().await;
        return Ok(());
    }
    let every = Duration::from_micros(usec) / 2;
    info!(
        event = "systemd_watchdog_on",
        every_ms = every.as_millis() as u64,
        "systemd watchdog: pinging while the state owner publishes"
    );
    let mut stale_logged = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
        let heartbeat = status.borrow().heartbeat;
        if fresh(heartbeat, SystemTime::now()) {
            stale_logged = false;
            if let Err(e) = sd_notify::notify(false, &[NotifyState::Watchdog]) {
                warn!(event = "systemd_ping_failed", error = %e, "cannot ping systemd's watchdog");
            }
        } else if !stale_logged {
            stale_logged = true;
            warn!(
                event = "systemd_watchdog_stopped",
                "the state owner has stopped publishing: no more pings to systemd's watchdog, which will restart the service"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fresh_heartbeat_is_pinged() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let rows = [
            (t, t, true),
            (t, t + Duration::from_secs(5), true),
            (t, t + Duration::from_secs(6), false),
            // A wall clock stepped back is no staleness.
            (t, t - Duration::from_secs(60), true),
        ];
        for (beat, now, want) in rows {
            assert_eq!(fresh(beat, now), want, "{beat:?} {now:?}");
        }
    }
}
