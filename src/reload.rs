//! The process's life: `run` with the config, again with a new one on
//! SIGHUP, until SIGTERM or SIGINT.
//!
//! SIGHUP re-reads the config file. An invalid one is refused: logged with
//! each error, counted (`vip_watchdog_config_reloads_total{result="failed"}`),
//! and the running watchdog goes on untouched. A valid one that differs is
//! applied: every task stops and starts again with it, in the same process
//! (the FIFO's path stays; lines written in the few milliseconds between
//! are discarded as at any start, and the state is learnt again from
//! Keepalived's JSON dump; damping is kept in `cloud.state_dir`). The log
//! settings apply at the next start of the process.

use std::path::PathBuf;
use std::sync::LazyLock;

use prometheus::{IntCounterVec, Opts};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{Config, WebFlags};

/// Reloads by result; one counter for the process, registered in each
/// run's metrics.
pub static RELOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let c = IntCounterVec::new(
        Opts::new(
            "config_reloads_total",
            "SIGHUP config reloads, by result: applied, unchanged, failed (invalid: the running config was kept).",
        ),
        &["result"],
    )
    .expect("a valid metric");
    for r in ["applied", "unchanged", "failed"] {
        c.with_label_values(&[r]);
    }
    c
});

/// Runs until SIGTERM or SIGINT (Ok) or a critical task fails (Err).
pub async fn run_until_stopped(
    path: PathBuf,
    flags: WebFlags,
    config: Config,
) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let (tx, mut reloaded) = mpsc::channel::<Config>(1);
    let signals = tokio::spawn(signals(shutdown.clone(), path, flags, config.clone(), tx));
    let mut config = config;
    let result = loop {
        let round = shutdown.child_token();
        let run = crate::run(config.clone(), round.clone());
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => break r,
            Some(new) = reloaded.recv() => {
                round.cancel();
                if let Err(e) = run.await {
                    break Err(e);
                }
                if new.log != config.log {
                    warn!("the log settings changed: they apply at the next start of the process");
                }
                config = new;
                RELOADS.with_label_values(&["applied"]).inc();
                info!("config reloaded and applied");
            }
        }
    };
    signals.abort();
    result
}

async fn signals(
    shutdown: CancellationToken,
    path: PathBuf,
    flags: WebFlags,
    mut current: Config,
    reloaded: mpsc::Sender<Config>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers; SIGTERM will kill without cleanup");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {
                info!(signal = "SIGTERM", "shutdown requested");
                break;
            }
            _ = int.recv() => {
                info!(signal = "SIGINT", "shutdown requested");
                break;
            }
            _ = hup.recv() => match Config::load_with(&path, &flags) {
                Err(e) => {
                    RELOADS.with_label_values(&["failed"]).inc();
                    error!(signal = "SIGHUP", path = %path.display(), error = %e, "config reload refused: the file is invalid; the running config is kept");
                }
                Ok(new) if new == current => {
                    RELOADS.with_label_values(&["unchanged"]).inc();
                    info!(signal = "SIGHUP", path = %path.display(), "config reload: unchanged");
                }
                Ok(new) => {
                    info!(signal = "SIGHUP", path = %path.display(), "config reload: valid; restarting every task with it");
                    current = new.clone();
                    if reloaded.send(new).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    shutdown.cancel();
}
