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

use crate::metrics::reload::{LAST_RELOAD_AT, LAST_RELOAD_OK, RELOADS, reload_ok};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{Config, WebFlags};

/// The metrics of this process: one registry for its whole life, so that a
/// reload keeps every counter. Built anew only when the reload changed
/// `node.name` or `node.pair`, every series' constant labels.
fn metrics_for(
    config: &Config,
    old: Option<std::sync::Arc<crate::metrics::Metrics>>,
) -> anyhow::Result<std::sync::Arc<crate::metrics::Metrics>> {
    match old {
        Some(m) if m.labels() == (config.node.pair.as_str(), config.node.name.as_str()) => Ok(m),
        _ => Ok(std::sync::Arc::new(
            crate::metrics::Metrics::new(&config.node.pair, &config.node.name)
                .map_err(|e| anyhow::anyhow!("registering metrics: {e}"))?,
        )),
    }
}

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
    LazyLock::force(&LAST_RELOAD_OK);
    LazyLock::force(&LAST_RELOAD_AT);
    let mut metrics = None;
    let result = loop {
        let round = shutdown.child_token();
        let m = match metrics_for(&config, metrics.take()) {
            Ok(m) => m,
            Err(e) => break Err(e),
        };
        metrics = Some(m.clone());
        let run = crate::run(config.clone(), m, round.clone());
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => break r,
            Some(new) = reloaded.recv() => {
                round.cancel();
                if let Err(e) = run.await {
                    break Err(e);
                }
                if new.log != config.log {
                    warn!(event = "reload_log_settings_changed", "the log settings changed: they apply at the next start of the process");
                }
                config = new;
                RELOADS.with_label_values(&["applied"]).inc();
                reload_ok(true);
                info!(event = "reload_applied", "config reloaded and applied");
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
        error!(
            event = "signals_unavailable",
            "cannot install signal handlers; SIGTERM will kill without cleanup"
        );
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {
                info!(event = "shutdown_requested", signal = "SIGTERM", "shutdown requested");
                break;
            }
            _ = int.recv() => {
                info!(event = "shutdown_requested", signal = "SIGINT", "shutdown requested");
                break;
            }
            _ = hup.recv() => match Config::load_with(&path, &flags) {
                Err(e) => {
                    RELOADS.with_label_values(&["failed"]).inc();
                    reload_ok(false);
                    error!(event = "reload_refused", signal = "SIGHUP", path = %path.display(), error = %e, "config reload refused: the file is invalid; the running config is kept");
                }
                Ok(new) if new == current => {
                    RELOADS.with_label_values(&["unchanged"]).inc();
                    reload_ok(true);
                    info!(event = "reload_unchanged", signal = "SIGHUP", path = %path.display(), "config reload: unchanged");
                }
                Ok(new) => {
                    info!(event = "reload_restarting", signal = "SIGHUP", path = %path.display(), "config reload: valid; restarting every task with it");
                    current = new.clone();
                    if reloaded.send(new).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    crate::systemd::stopping();
    shutdown.cancel();
}
