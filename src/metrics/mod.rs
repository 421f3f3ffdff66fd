//! Every metric the watchdog exports: one struct, registered once, passed
//! explicitly. Names are prefixed `vip_watchdog_`; every series carries the
//! constant labels `pair` and `node` so that alerts can compare the two nodes
//! of a pair.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub mod reload;

use crate::cloud::CloudError;
use crate::core::model::{Change, Model};
use crate::core::words::{HealReason, Mover};
use crate::core::words::{Health, VrrpState};
use crate::keepalived::line::LineError;
use crate::probe::check::FailReason;

/// The version line: `--version` and `vip_watchdog_build_info`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("VIP_WATCHDOG_REVISION"),
    ", rustc ",
    env!("VIP_WATCHDOG_RUSTC"),
    ")"
);

pub struct Metrics {
    registry: Registry,
    /// The constant labels: (pair, node).
    labels: (String, String),
    /// `process_*`, unprefixed as every exporter has them, with the same
    /// `pair` and `node` labels.
    process: Registry,
    vrrp_state: IntGaugeVec,
    vrrp_priority: IntGaugeVec,
    vrrp_transitions: IntCounterVec,
    vrrp_last_transition: GaugeVec,
    vrrp_other_master_seen: IntCounterVec,
    keepalived_up: IntGauge,
    /// No labels; absent (not 0) while Keepalived is not running.
    keepalived_start_time: GaugeVec,
    fifo_lines_read: IntCounter,
    fifo_lines_rejected: IntCounterVec,
    fifo_lines_stale: IntCounter,
    fifo_last_line: Gauge,
    fifo_reopens: IntCounter,
    probe_up: IntGauge,
    probe_duration: Histogram,
    probe_failures: IntCounterVec,
    lvs_up: IntGaugeVec,
    vip_here: IntGaugeVec,
    vip_converged: IntGaugeVec,
    vip_last_verified: GaugeVec,
    heals: IntCounterVec,
    claims_damped: IntCounterVec,
    claims_undone: IntCounterVec,
    address_changes: IntCounterVec,
    cloud_calls: IntCounterVec,
    cloud_call_duration: HistogramVec,
    failover_latency: HistogramVec,
    cloud_permission_denied: IntGaugeVec,
    vip_allocation_unknown: IntGaugeVec,
    fifo_names_dropped: IntCounterVec,
    claims_dropped: IntCounterVec,
    notify_runs: IntCounterVec,
    notify_run_duration: Histogram,
    vrrp_releases: IntCounterVec,
    process_check_errors: IntCounter,
    route_state: IntGaugeVec,
    instance_mismatch: IntGaugeVec,
    source_dest_check: IntGaugeVec,
    peer_messages: IntCounterVec,
    peer_sends: IntCounterVec,
    peer_up: IntGaugeVec,
    peer_last_report: prometheus::GaugeVec,
    split_brain: IntGaugeVec,
    /// The listeners' connections (http/listener.rs).
    pub connections: crate::http::listener::ConnectionMetrics,
    /// 1 while an instance's release advert is checked against the running
    /// Keepalived (keepalived/release.rs sets it).
    pub release_armed: IntGaugeVec,
}

/// Failover latency buckets, from the benchmarks (docs/benchmarks.md). The
/// watchdog measures from entering MASTER, so a working notify script
/// lands in 1-3 s, a claim in `own` mode tens of milliseconds after
/// `min_master_age` (1-3 s), a heal just after `grace` (10 s by default:
/// the 10-12.5 s bucket); above 15 s something is wrong.
pub const FAILOVER_BUCKETS: [f64; 16] = [
    0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.5, 10.0, 12.5, 15.0, 30.0, 60.0,
];

pub fn epoch(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Metrics {
    /// The constant labels every series carries: (pair, node).
    pub fn labels(&self) -> (&str, &str) {
        (&self.labels.0, &self.labels.1)
    }

    pub fn new(pair: &str, node: &str) -> Result<Self, prometheus::Error> {
        let labels = HashMap::from([
            ("pair".to_owned(), pair.to_owned()),
            ("node".to_owned(), node.to_owned()),
        ]);
        let registry = Registry::new_custom(Some("vip_watchdog".into()), Some(labels.clone()))?;
        registry.register(Box::new(reload::RELOADS.clone()))?;
        registry.register(Box::new(reload::LAST_RELOAD_OK.clone()))?;
        registry.register(Box::new(reload::LAST_RELOAD_AT.clone()))?;
        let process = Registry::new_custom(None, Some(labels))?;
        process.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let r = &registry;
        let build_info = reg(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "build_info",
                    "Always 1; the version of the running vip-watchdog, its git revision and the rustc that built it.",
                ),
                &["version", "revision", "rustc"],
            )?,
        )?;
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("VIP_WATCHDOG_REVISION"),
                env!("VIP_WATCHDOG_RUSTC"),
            ])
            .set(1);
        let m = Metrics {
            connections: crate::http::listener::ConnectionMetrics::register(r)?,
            release_armed: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "vrrp_release_armed",
                        "1 while the instance's priority-0 advert is checked against the running Keepalived (its -f, its JSON dump) and would be sent if it crashed while MASTER; 0 while not (the log says why).",
                    ),
                    &["vrrp_instance"],
                )?,
            )?,
            vrrp_state: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "vrrp_state",
                        "1 for the state each VRRP instance is in, 0 for the others (unknown, backup, master, fault, stop, deleted).",
                    ),
                    &["vrrp_instance", "state"],
                )?,
            )?,
            vrrp_priority: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "vrrp_priority",
                        "Effective VRRP priority last reported by Keepalived.",
                    ),
                    &["vrrp_instance"],
                )?,
            )?,
            vrrp_transitions: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "vrrp_transitions_total",
                        "VRRP state changes seen, by the state entered.",
                    ),
                    &["vrrp_instance", "state"],
                )?,
            )?,
            vrrp_last_transition: reg(
                r,
                GaugeVec::new(
                    Opts::new(
                        "vrrp_last_transition_timestamp_seconds",
                        "Unix time at which the instance entered its present state, when known.",
                    ),
                    &["vrrp_instance"],
                )?,
            )?,
            vrrp_other_master_seen: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "vrrp_other_master_seen_total",
                        "MASTER_RX_LOWER_PRI lines: this MASTER heard another MASTER with a lower priority.",
                    ),
                    &["vrrp_instance"],
                )?,
            )?,
            keepalived_start_time: reg(
                r,
                GaugeVec::new(
                    Opts::new(
                        "keepalived_start_time_seconds",
                        "Unix time at which the watched Keepalived process started; absent while it is not running.",
                    ),
                    &[],
                )?,
            )?,
            keepalived_up: reg(
                r,
                IntGauge::new(
                    "keepalived_up",
                    "1 while Keepalived's processes are running, 0 when they are gone.",
                )?,
            )?,
            fifo_lines_read: reg(
                r,
                IntCounter::new(
                    "fifo_lines_read_total",
                    "Lines read from Keepalived's notify FIFO since start-up.",
                )?,
            )?,
            fifo_lines_rejected: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "fifo_lines_rejected_total",
                        "FIFO lines that did not parse, by reason.",
                    ),
                    &["reason"],
                )?,
            )?,
            fifo_lines_stale: reg(
                r,
                IntCounter::new(
                    "fifo_lines_stale_total",
                    "FIFO lines found buffered at start-up and discarded as not the present.",
                )?,
            )?,
            fifo_last_line: reg(
                r,
                Gauge::new(
                    "fifo_last_line_timestamp_seconds",
                    "Unix time of the last valid line read from the FIFO.",
                )?,
            )?,
            fifo_reopens: reg(
                r,
                IntCounter::new(
                    "fifo_reopens_total",
                    "Times the FIFO was reopened because its path was removed or replaced.",
                )?,
            )?,
            probe_up: reg(
                r,
                IntGauge::new(
                    "probe_up",
                    "1 when the local probe passed its rise threshold, 0 when failing or not yet known.",
                )?,
            )?,
            probe_duration: reg(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "probe_duration_seconds",
                        "Duration of each local probe run.",
                    )
                    .buckets(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ]),
                )?,
            )?,
            probe_failures: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "probe_failures_total",
                        "Failed local probe runs, by reason.",
                    ),
                    &["reason"],
                )?,
            )?,
            lvs_up: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "lvs_up",
                        "1 when Keepalived reported the LVS virtual or real server UP.",
                    ),
                    &["kind", "service"],
                )?,
            )?,
            vip_here: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "vip_here",
                        "1 when the cloud last showed the VIP on this node's ENI and private IP.",
                    ),
                    &["vip"],
                )?,
            )?,
            vip_converged: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "vip_converged",
                        "1 when the cloud agrees with this node's role: MASTER and the VIP here, or not MASTER and the VIP not here.",
                    ),
                    &["vip"],
                )?,
            )?,
            vip_last_verified: reg(
                r,
                GaugeVec::new(
                    Opts::new(
                        "vip_last_verified_timestamp_seconds",
                        "Unix time of the cloud's last answer about the VIP.",
                    ),
                    &["vip"],
                )?,
            )?,
            heals: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "heals_total",
                        "Claims this node made for a VIP, by reason (missed, elsewhere, stolen, drifted).",
                    ),
                    &["vip", "reason"],
                )?,
            )?,
            claims_damped: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "claims_damped_total",
                        "Times a due claim was held back by max_claims or back-off.",
                    ),
                    &["vip"],
                )?,
            )?,
            address_changes: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "address_changes_total",
                        "Changes of a manage_address VIP's private IP on this host (add, remove), by outcome (ok, error).",
                    ),
                    &["vip", "change", "outcome"],
                )?,
            )?,
            claims_undone: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "claims_undone_total",
                        "Moves of the VIP away from this MASTER after the first within one mastership: fights, which back off and count against max_claims.",
                    ),
                    &["vip"],
                )?,
            )?,
            cloud_calls: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "cloud_api_calls_total",
                        "Cloud API calls, by operation and outcome (success or the error kind).",
                    ),
                    &["operation", "outcome"],
                )?,
            )?,
            cloud_call_duration: reg(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "cloud_api_call_duration_seconds",
                        "Duration of each cloud API call attempt.",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ]),
                    &["operation"],
                )?,
            )?,
            failover_latency: reg(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "failover_latency_seconds",
                        "One sample per mastership this process saw begin: from the MASTER line's arrival to the first cloud answer, asked for after it, that shows the VIP on this node; by who moved it (watchdog, notify_script).",
                    )
                    .buckets(FAILOVER_BUCKETS.to_vec()),
                    &["vip", "moved_by"],
                )?,
            )?,
            instance_mismatch: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "vrrp_instance_mismatch",
                        "1 for a VRRP instance that Keepalived and the config disagree on: known_to=\"keepalived\" (Keepalived reports it, the config does not name it) or known_to=\"config\" (the config names it, Keepalived's JSON dump did not list it).",
                    ),
                    &["vrrp_instance", "known_to"],
                )?,
            )?,
            route_state: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "vip_route_state",
                        "1 for the state of a route VIP's route in each route table, 0 for the others (here, elsewhere, instance, blackhole, other, missing).",
                    ),
                    &["vip", "route_table", "state"],
                )?,
            )?,
            source_dest_check: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "eni_source_dest_check",
                        "1 when this node's ENI has its source/destination check on: it then drops traffic for a routed VIP (route VIPs only).",
                    ),
                    &["eni"],
                )?,
            )?,
            process_check_errors: reg(
                r,
                IntCounter::new(
                    "keepalived_process_check_errors_total",
                    "Looks at Keepalived's processes that failed without evidence either way (a pid file or /proc that could not be read); the state was kept as it was.",
                )?,
            )?,
            vrrp_releases: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "vrrp_releases_total",
                        "Keepalived crashed while MASTER: its priority-0 advert sent on its behalf (keepalived.release_on_crash), by outcome (sent, failed).",
                    ),
                    &["vrrp_instance", "outcome"],
                )?,
            )?,
            notify_runs: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "notify_runs_total",
                        "Notify script runs reported by `vip-watchdog notify`, by how they ended (succeeded, failed, timed_out, not_started).",
                    ),
                    &["outcome"],
                )?,
            )?,
            notify_run_duration: reg(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "notify_run_duration_seconds",
                        "How long each notify script run reported by `vip-watchdog notify` took.",
                    )
                    .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0]),
                )?,
            )?,
            cloud_permission_denied: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "cloud_permission_denied",
                        "1 when the cloud refused (or, with DryRun, would refuse) an API action this node needs for the VIP; 0 when it allowed it. No series until an answer came.",
                    ),
                    &["vip", "action"],
                )?,
            )?,
            vip_allocation_unknown: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "vip_allocation_unknown",
                        "1 when EC2 says the VIP's allocation ID does not exist (a configuration error); the other VIPs are still watched.",
                    ),
                    &["vip"],
                )?,
            )?,
            fifo_names_dropped: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "fifo_names_dropped_total",
                        "FIFO lines dropped because they named one instance, group or LVS server too many (a bound on memory and labels).",
                    ),
                    &["kind"],
                )?,
            )?,
            claims_dropped: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "claims_dropped_total",
                        "Claims overtaken by events: the verdict no longer stood before a mutating call, which was not made.",
                    ),
                    &["vip"],
                )?,
            )?,
            peer_messages: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "peer_messages_total",
                        "Messages from the peer's watchdog, by result: accepted, or refused as malformed, unauthenticated, stale, replayed, out_of_order or foreign (another pair's or this node's own).",
                    ),
                    &["result"],
                )?,
            )?,
            peer_sends: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "peer_sends_total",
                        "Reports sent to the peer's watchdog, by outcome: ok (it took it), failed (no answer, or refused).",
                    ),
                    &["outcome"],
                )?,
            )?,
            peer_up: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "peer_up",
                        "1 while an authenticated report from the peer's watchdog is younger than peer.max_age; 0 otherwise (silent, unreachable, or refused). Present only with a [peer].",
                    ),
                    &["peer"],
                )?,
            )?,
            peer_last_report: reg(
                r,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "peer_last_report_timestamp_seconds",
                        "When the last authenticated report from the peer's watchdog arrived (Unix time). Present once one did.",
                    ),
                    &["peer"],
                )?,
            )?,
            split_brain: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "peer_split_brain",
                        "1 while this node and its peer (by the peer's fresh report) are both MASTER of the instance; rule 10 settles who keeps the VIP. Present only with a [peer].",
                    ),
                    &["vrrp_instance"],
                )?,
            )?,
            registry,
            labels: (pair.to_owned(), node.to_owned()),
            process,
        };
        // Every label value a counter can take exists from the start, so that
        // rate() and increase() see the first increment.
        for k in LineError::KINDS {
            m.fifo_lines_rejected.with_label_values(&[k]);
        }
        for op in crate::cloud::Action::operations() {
            for outcome in std::iter::once("success")
                .chain(crate::cloud::ErrorKind::ALL.into_iter().map(|k| k.as_str()))
            {
                m.cloud_calls.with_label_values(&[op, outcome]);
            }
        }
        for r in FailReason::ALL {
            m.probe_failures.with_label_values(&[r.as_str()]);
        }
        for o in crate::core::words::Outcome::ALL {
            m.notify_runs.with_label_values(&[o.as_str()]);
        }
        for k in ["instance", "group", "lvs"] {
            m.fifo_names_dropped.with_label_values(&[k]);
        }
        Ok(m)
    }

    /// The peer channel's series, when a peer is configured at `address`.
    /// The release counters at 0 for every instance it may release.
    pub fn release_init(&self, instances: &[String]) {
        for i in instances {
            for o in ["sent", "failed"] {
                self.vrrp_releases.with_label_values(&[i.as_str(), o]);
            }
            self.release_armed.with_label_values(&[i.as_str()]).set(0);
        }
    }

    pub fn peer_init(&self, address: &str, instances: &[&str]) {
        self.peer_messages.with_label_values(&["accepted"]);
        for l in crate::peer::message::Refused::LABELS {
            self.peer_messages.with_label_values(&[l]);
        }
        for o in ["ok", "failed"] {
            self.peer_sends.with_label_values(&[o]);
        }
        self.peer_up.with_label_values(&[address]).set(0);
        for i in instances {
            self.split_brain.with_label_values(&[i]).set(0);
        }
    }

    /// One message from the peer: `accepted` or a refusal's label.
    pub fn peer_message(&self, result: &str) {
        self.peer_messages.with_label_values(&[result]).inc();
    }

    pub fn peer_sent(&self, ok: bool) {
        self.peer_sends
            .with_label_values(&[if ok { "ok" } else { "failed" }])
            .inc();
    }

    /// The peer's freshness and split brain, at every owner turn.
    pub fn sync_peer(&self, address: &str, model: &Model, fresh: bool) {
        self.peer_up
            .with_label_values(&[address])
            .set(i64::from(fresh));
        if let Some(p) = &model.peer {
            self.peer_last_report
                .with_label_values(&[address])
                .set(epoch(p.at_wall));
        }
        for name in model.instances.keys() {
            if let Ok(g) = self.split_brain.get_metric_with_label_values(&[name]) {
                g.set(i64::from(model.split_brain.contains(name)));
            }
        }
    }

    /// Counters that follow from one change.
    pub fn count(&self, change: &Change) {
        match change {
            Change::Vrrp { instance, to, .. } => {
                self.vrrp_transitions
                    .with_label_values(&[instance.as_str(), to.as_str()])
                    .inc();
            }
            Change::OtherMasterSeen { instance } => {
                self.vrrp_other_master_seen
                    .with_label_values(&[instance.as_str()])
                    .inc();
            }
            Change::ProcessCheckFailed { .. } => self.process_check_errors.inc(),
            Change::NameDropped { kind, .. } => {
                self.fifo_names_dropped.with_label_values(&[kind]).inc();
            }
            Change::Released {
                instance, error, ..
            } => {
                let outcome = if error.is_some() { "failed" } else { "sent" };
                self.vrrp_releases
                    .with_label_values(&[instance.as_str(), outcome])
                    .inc();
            }
            Change::NotifyRun {
                outcome,
                duration_ms,
                ..
            } => {
                self.notify_runs
                    .with_label_values(&[outcome.as_str()])
                    .inc();
                self.notify_run_duration
                    .observe(*duration_ms as f64 / 1000.0);
            }
            _ => {}
        }
    }

    /// Gauges that mirror the model; called after every change.
    pub fn sync(&self, model: &Model) {
        for (name, inst) in &model.instances {
            for s in VrrpState::ALL {
                self.vrrp_state
                    .with_label_values(&[name.as_str(), s.as_str()])
                    .set(i64::from(inst.state == s));
                // Transition counters exist at 0 for every state.
                self.vrrp_transitions
                    .with_label_values(&[name.as_str(), s.as_str()]);
            }
            self.vrrp_other_master_seen
                .with_label_values(&[name.as_str()]);
            match inst.priority {
                Some(p) => self
                    .vrrp_priority
                    .with_label_values(&[name.as_str()])
                    .set(i64::from(p)),
                None => {
                    let _ = self.vrrp_priority.remove_label_values(&[name.as_str()]);
                }
            }
            match inst.since {
                Some(t) => self
                    .vrrp_last_transition
                    .with_label_values(&[name.as_str()])
                    .set(epoch(t)),
                None => {
                    let _ = self
                        .vrrp_last_transition
                        .remove_label_values(&[name.as_str()]);
                }
            }
        }
        // Present only while they disagree. The series that no longer
        // hold are removed one by one (no reset: a scrape in between would
        // see none, and restart the alert's `for`).
        let now = model.mismatches();
        let exported: Vec<(String, String)> = {
            use prometheus::core::Collector;
            self.instance_mismatch
                .collect()
                .iter()
                .flat_map(|f| f.get_metric())
                .map(|m| (label(m, "vrrp_instance"), label(m, "known_to")))
                .collect()
        };
        for (name, known_to) in &exported {
            if !now.iter().any(|(n, k)| n == name && k == known_to) {
                let _ = self
                    .instance_mismatch
                    .remove_label_values(&[name.as_str(), known_to.as_str()]);
            }
        }
        for (name, known_to) in now {
            self.instance_mismatch
                .with_label_values(&[name, known_to])
                .set(1);
        }
        self.keepalived_up
            .set(i64::from(model.keepalived.running == Some(true)));
        match model.keepalived.started {
            Some(t) if model.keepalived.running == Some(true) => self
                .keepalived_start_time
                .with_label_values::<&str>(&[])
                .set(epoch(t)),
            _ => {
                let _ = self.keepalived_start_time.remove_label_values::<&str>(&[]);
            }
        }
        self.probe_up
            .set(i64::from(model.probe.health == Health::Up));
        let lvs: BTreeMap<_, _> = model.lvs.iter().collect();
        for ((kind, service), up) in lvs {
            self.lvs_up
                .with_label_values(&[*kind, service.as_str()])
                .set(i64::from(*up));
        }
    }

    // The FIFO reader and the probe.

    pub fn line_rejected(&self, kind: &str) {
        self.fifo_lines_rejected.with_label_values(&[kind]).inc();
    }

    pub fn lines_stale(&self, n: u64) {
        self.fifo_lines_stale.inc_by(n);
    }

    pub fn fifo_reopened(&self) {
        self.fifo_reopens.inc();
    }

    pub fn probe_result(&self, took: std::time::Duration, failure: Option<&str>) {
        self.probe_duration.observe(took.as_secs_f64());
        if let Some(reason) = failure {
            self.probe_failures.with_label_values(&[reason]).inc();
        }
    }

    // The cloud side.

    /// Every series of one VIP, at 0 from the start.
    pub fn vip_init(&self, vip: &str) {
        for r in HealReason::ALL {
            self.heals.with_label_values(&[vip, r.as_str()]);
        }
        self.claims_damped.with_label_values(&[vip]);
        self.claims_undone.with_label_values(&[vip]);
        self.claims_dropped.with_label_values(&[vip]);
        self.vip_allocation_unknown.with_label_values(&[vip]).set(0);
    }

    /// One attempt of a cloud call, by operation and outcome.
    pub fn cloud_call<T>(
        &self,
        operation: &str,
        result: &Result<T, CloudError>,
        took: std::time::Duration,
    ) {
        self.cloud_call_duration
            .with_label_values(&[operation])
            .observe(took.as_secs_f64());
        let outcome = match result {
            Ok(_) => "success",
            Err(e) => e.kind.as_str(),
        };
        self.cloud_calls
            .with_label_values(&[operation, outcome])
            .inc();
    }

    pub fn cloud_calls_count(&self, operation: &str, outcome: &str) -> u64 {
        self.cloud_calls
            .with_label_values(&[operation, outcome])
            .get()
    }

    pub fn heal(&self, vip: &str, reason: HealReason) {
        self.heals.with_label_values(&[vip, reason.as_str()]).inc();
    }

    pub fn claim_damped(&self, vip: &str) {
        self.claims_damped.with_label_values(&[vip]).inc();
    }

    /// The counters of a `manage_address` VIP, at 0.
    pub fn address_init(&self, vip: &str) {
        for c in crate::core::address::Change::ALL {
            for outcome in ["ok", "error"] {
                self.address_changes
                    .with_label_values(&[vip, c.as_str(), outcome]);
            }
        }
    }

    pub fn address_changed(&self, vip: &str, change: crate::core::address::Change, ok: bool) {
        self.address_changes
            .with_label_values(&[vip, change.as_str(), if ok { "ok" } else { "error" }])
            .inc();
    }

    pub fn claim_undone(&self, vip: &str) {
        self.claims_undone.with_label_values(&[vip]).inc();
    }

    pub fn claim_dropped(&self, vip: &str) {
        self.claims_dropped.with_label_values(&[vip]).inc();
    }

    /// A cloud answer about the VIP, whose request was sent at `sent`.
    pub fn vip_seen(&self, vip: &str, here: bool, sent: SystemTime) {
        self.vip_here.with_label_values(&[vip]).set(i64::from(here));
        self.vip_last_verified
            .with_label_values(&[vip])
            .set(epoch(sent));
    }

    pub fn vip_converged(&self, vip: &str, converged: bool) {
        self.vip_converged
            .with_label_values(&[vip])
            .set(i64::from(converged));
    }

    pub fn vip_allocation_unknown(&self, vip: &str, unknown: bool) {
        self.vip_allocation_unknown
            .with_label_values(&[vip])
            .set(i64::from(unknown));
    }

    pub fn route_state(&self, vip: &str, table: &str, state: crate::core::words::RouteState) {
        for s in crate::core::words::RouteState::ALL {
            self.route_state
                .with_label_values(&[vip, table, s.as_str()])
                .set(i64::from(s == state));
        }
    }

    pub fn source_dest_check(&self, eni: &str, on: bool) {
        self.source_dest_check
            .with_label_values(&[eni])
            .set(i64::from(on));
    }

    pub fn failover(&self, vip: &str, moved_by: Mover, latency: std::time::Duration) {
        self.failover_latency
            .with_label_values(&[vip, moved_by.as_str()])
            .observe(latency.as_secs_f64());
    }

    pub fn permission(&self, vip: &str, action: &str, denied: bool) {
        self.cloud_permission_denied
            .with_label_values(&[vip, action])
            .set(i64::from(denied));
    }

    pub fn permission_denied(&self, vip: &str, action: &str) -> i64 {
        self.cloud_permission_denied
            .with_label_values(&[vip, action])
            .get()
    }

    pub fn line_read(&self, at: SystemTime, valid: bool) {
        self.fifo_lines_read.inc();
        if valid {
            self.fifo_last_line.set(epoch(at));
        }
    }

    /// The failover-latency histogram, series by series, for the landing
    /// page.
    pub fn failover_series(&self) -> Vec<crate::landing::LatencySeries> {
        use prometheus::core::Collector;
        let mut out = vec![];
        for family in self.failover_latency.collect() {
            for m in family.get_metric() {
                let h = m.get_histogram();
                let mut buckets: Vec<(f64, u64)> = h
                    .get_bucket()
                    .iter()
                    .map(|b| (b.upper_bound(), b.cumulative_count()))
                    .collect();
                buckets.push((f64::INFINITY, h.get_sample_count()));
                out.push(crate::landing::LatencySeries {
                    vip: label(m, "vip"),
                    moved_by: label(m, "moved_by"),
                    buckets,
                });
            }
        }
        out
    }

    /// The value of the series `name` (full name) whose labels include all
    /// of `labels`, from the exposition: what a scraper would read.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        value(&self.render(), name, labels)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = vec![];
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The value of label `name` of a gathered series, or "".
fn label(m: &prometheus::proto::Metric, name: &str) -> String {
    m.get_label()
        .iter()
        .find(|l| l.name() == name)
        .map_or(String::new(), |l| l.value().to_owned())
}

fn reg<M: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    m: M,
) -> Result<M, prometheus::Error> {
    r.register(Box::new(m.clone()))?;
    Ok(m)
}

/// The value of the series `name` whose labels include all of `labels`, in
/// a text exposition.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, v) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        let all = labels
            .iter()
            .all(|(k, val)| rest.contains(&format!("{k}=\"{val}\"")));
        (n == name && all).then(|| v.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::input::Event;
    use crate::keepalived::line::parse;

    #[test]
    fn lvs_servers_are_series_once_keepalived_names_them() {
        let m = Metrics::new("edge", "lb-a").unwrap();
        let mut model = Model::new(["VI_1"]);
        m.sync(&model);
        assert!(!m.render().contains("vip_watchdog_lvs_up"));
        let now = crate::core::clock::Stamp {
            mono: crate::core::clock::Mono::default(),
            wall: SystemTime::now(),
        };
        model.observe(
            Event::Line {
                line: parse("VS [192.168.201.15]:tcp:80 UP").unwrap(),
                at: now,
            },
            now,
        );
        m.sync(&model);
        let up = m.value(
            "vip_watchdog_lvs_up",
            &[("kind", "vs"), ("service", "[192.168.201.15]:tcp:80")],
        );
        assert_eq!(up, Some(1.0), "{}", m.render());
    }

    #[test]
    fn an_instance_mismatch_is_a_series_only_while_it_lasts() {
        let m = Metrics::new("edge", "lb-a").unwrap();
        let mut model = Model::new(["VI_1"]);
        let now = crate::core::clock::Stamp {
            mono: crate::core::clock::Mono::default(),
            wall: SystemTime::now(),
        };
        m.sync(&model);
        assert!(!m.render().contains("vip_watchdog_vrrp_instance_mismatch"));
        model.observe(Event::KeepalivedListed(["VI_2".to_owned()].into()), now);
        m.sync(&model);
        let v = m.value(
            "vip_watchdog_vrrp_instance_mismatch",
            &[("vrrp_instance", "VI_1"), ("known_to", "config")],
        );
        assert_eq!(v, Some(1.0));
        model.observe(Event::KeepalivedListed(["VI_1".to_owned()].into()), now);
        m.sync(&model);
        assert!(!m.render().contains("vrrp_instance_mismatch{"));
    }

    #[test]
    fn a_failover_adds_no_series_and_flips_the_enum_gauge() {
        let m = Metrics::new("edge", "lb-a").unwrap();
        let mut model = Model::new(["VI_1"]);
        m.sync(&model);
        let before = m.render();
        let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
        let state = |text: &str, s: &str| {
            value(
                text,
                "vip_watchdog_vrrp_state",
                &[
                    ("vrrp_instance", "VI_1"),
                    ("state", s),
                    ("pair", "edge"),
                    ("node", "lb-a"),
                ],
            )
        };
        assert_eq!(state(&before, "unknown"), Some(1.0), "{before}");
        assert_eq!(state(&before, "master"), Some(0.0));
        let now = crate::core::clock::Stamp {
            mono: crate::core::clock::Mono::default(),
            wall: SystemTime::now(),
        };
        for c in model.observe(
            Event::Line {
                line: parse("INSTANCE \"VI_1\" MASTER 150").unwrap(),
                at: now,
            },
            now,
        ) {
            m.count(&c);
        }
        m.sync(&model);
        let after = m.render();
        assert_eq!(state(&after, "master"), Some(1.0));
        assert_eq!(state(&after, "unknown"), Some(0.0));
        let transitions = value(
            &after,
            "vip_watchdog_vrrp_transitions_total",
            &[("vrrp_instance", "VI_1"), ("state", "master")],
        );
        assert_eq!(transitions, Some(1.0));
        // Priority and last-transition appear once known; nothing else is new.
        assert_eq!(series(&after), series(&before) + 2);
    }
}
