//! The config reload metrics: one set for the process, registered in each
//! run's registry (a reload starts a new run; the counts go on).

use std::sync::LazyLock;

use prometheus::{Gauge, IntCounterVec, IntGauge, Opts};

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

/// 1 when the last SIGHUP reload was applied or found the file unchanged,
/// 0 when the file was refused; 1 at start (the config it started with was
/// valid). Node exporter's and Prometheus's own name for it.
pub static LAST_RELOAD_OK: LazyLock<IntGauge> = LazyLock::new(|| {
    let g = IntGauge::new(
        "config_last_reload_successful",
        "1 when the last config reload (SIGHUP) succeeded or the process started with a valid config; 0 when the file was refused and the running config kept.",
    )
    .expect("a valid metric");
    g.set(1);
    g
});

/// When the config was last loaded successfully (start or reload).
pub static LAST_RELOAD_AT: LazyLock<Gauge> = LazyLock::new(|| {
    let g = Gauge::new(
        "config_last_reload_success_timestamp_seconds",
        "Unix time of the last successful config load: the start, or a SIGHUP reload applied or unchanged.",
    )
    .expect("a valid metric");
    g.set(crate::metrics::epoch(std::time::SystemTime::now()));
    g
});

pub fn reload_ok(ok: bool) {
    LAST_RELOAD_OK.set(i64::from(ok));
    if ok {
        LAST_RELOAD_AT.set(crate::metrics::epoch(std::time::SystemTime::now()));
    }
}
