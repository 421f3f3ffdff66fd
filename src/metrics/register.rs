//! Registration: every metric registered once, every label value a counter
//! can take created at 0 so that rate() and increase() see the first
//! increment.

use super::*;
use crate::keepalived::line::LineError;
use crate::probe::check::FailReason;

impl Metrics {
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
        let build_info = gauge_vec(
            r,
            "build_info",
            "Always 1; the version of the running vip-watchdog, its git revision and the rustc that built it.",
            &["version", "revision", "rustc"],
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
            summary: super::summary::Summary::register(r)?,
            keepalived: reg(r, super::keepalived::KeepalivedStats::new()?)?,
            ip_forward: reg(r, super::forwarding::IpForward::new()?)?,
            release_armed: gauge_vec(r, "vrrp_release_armed", "1 while the instance's priority-0 advert is checked against the running Keepalived (its -f, its JSON dump) and would be sent if it crashed while MASTER; 0 while not (the log says why).", &["vrrp_instance"])?,
            vrrp_state: gauge_vec(r, "vrrp_state", "1 for the state each VRRP instance is in, 0 for the others (unknown, backup, master, fault, stop, deleted).", &["vrrp_instance", "state"])?,
            vrrp_priority: gauge_vec(r, "vrrp_priority", "Effective VRRP priority last reported by Keepalived.", &["vrrp_instance"])?,
            vrrp_transitions: counter_vec(r, "vrrp_transitions_total", "VRRP state changes seen, by the state entered.", &["vrrp_instance", "state"])?,
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
            vrrp_other_master_seen: counter_vec(r, "vrrp_other_master_seen_total", "MASTER_RX_LOWER_PRI lines: this MASTER heard another MASTER with a lower priority.", &["vrrp_instance"])?,
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
            fifo_lines_rejected: counter_vec(r, "fifo_lines_rejected_total", "FIFO lines that did not parse, by reason.", &["reason"])?,
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
            probe_failures: counter_vec(r, "probe_failures_total", "Failed local probe runs, by reason.", &["reason"])?,
            lvs_up: gauge_vec(r, "lvs_up", "1 when Keepalived reported the LVS virtual or real server UP.", &["kind", "service"])?,
            vip_here: gauge_vec(r, "vip_here", "1 when the cloud last showed the VIP on this node's ENI and private IP.", &["vip"])?,
            vip_converged: gauge_vec(r, "vip_converged", "1 when the cloud agrees with this node's role: MASTER and the VIP here, or not MASTER and the VIP not here.", &["vip"])?,
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
            heals: counter_vec(r, "heals_total", "Claims this node made for a VIP, by reason (missed, elsewhere, stolen, drifted).", &["vip", "reason"])?,
            claims_damped: counter_vec(r, "claims_damped_total", "Times a due claim was held back by max_claims or back-off.", &["vip"])?,
            address_changes: counter_vec(r, "address_changes_total", "Changes of a manage_address VIP's private IP on this host (add, remove), by outcome (ok, error).", &["vip", "change", "outcome"])?,
            address_kept: gauge_vec(r, "address_kept", "1 while this node, not MASTER past address_hold, keeps a manage_address VIP's private IP because the cloud still sends the VIP here and the probe is up (nobody claimed it).", &["vip"])?,
            handover_waiting: gauge_vec(r, "handover_waiting", "1 while this node, a healthy MASTER, holds back its claim of a break-before-make VIP because the old holder has not let go (claim rule 13).", &["vip"])?,
            split_in_cloud: gauge_vec(r, "split_brain_in_cloud", "1 while this node, a healthy MASTER, leaves a VIP that was moved away from it on the other node, whose fresh state tag says it is a healthy MASTER too (claim rule 14: VRRP and the peer channel are both cut). Present only with cloud.state_tags.", &["vip"])?,
            claims_undone: counter_vec(r, "claims_undone_total", "Moves of the VIP away from this MASTER after the first within one mastership: fights, which back off and count against max_claims.", &["vip"])?,
            cloud_backoff: reg(
                r,
                IntGauge::new(
                    "cloud_backoff",
                    "EC2's throttled answers in a row (0: none). While above 0 every cloud call of this process pauses before it is sent (exponential with jitter, up to 6 s for describes and 1.5 s for claims).",
                )?,
            )?,
            cloud_calls: counter_vec(r, "cloud_api_calls_total", "Cloud API calls, by operation and outcome (success or the error kind).", &["operation", "outcome"])?,
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
            instance_mismatch: gauge_vec(r, "vrrp_instance_mismatch", "1 for a VRRP instance that Keepalived and the config disagree on: known_to=\"keepalived\" (Keepalived reports it, the config does not name it) or known_to=\"config\" (the config names it, Keepalived's JSON dump did not list it).", &["vrrp_instance", "known_to"])?,
            route_state: gauge_vec(r, "vip_route_state", "1 for the state of a route VIP's route in each route table, 0 for the others (here, elsewhere, instance, blackhole, other, missing).", &["vip", "route_table", "state"])?,
            source_dest_check: gauge_vec(r, "eni_source_dest_check", "1 when this node's ENI has its source/destination check on: it then drops traffic for a routed VIP (route VIPs only).", &["eni"])?,
            process_check_errors: reg(
                r,
                IntCounter::new(
                    "keepalived_process_check_errors_total",
                    "Looks at Keepalived's processes that failed without evidence either way (a pid file or /proc that could not be read); the state was kept as it was.",
                )?,
            )?,
            vrrp_releases: counter_vec(r, "vrrp_releases_total", "Keepalived crashed while MASTER: its priority-0 advert sent on its behalf (keepalived.release_on_crash), by outcome (sent, failed).", &["vrrp_instance", "outcome"])?,
            notify_runs: counter_vec(r, "notify_runs_total", "Notify script runs reported by `vip-watchdog notify`, by how they ended (succeeded, failed, timed_out, not_started).", &["outcome"])?,
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
            cloud_permission_denied: gauge_vec(r, "cloud_permission_denied", "1 when the cloud refused (or, with DryRun, would refuse) an API action this node needs for the VIP; 0 when it allowed it. No series until an answer came.", &["vip", "action"])?,
            vip_allocation_unknown: gauge_vec(r, "vip_allocation_unknown", "1 when EC2 says the VIP's allocation ID does not exist (a configuration error); the other VIPs are still watched.", &["vip"])?,
            fifo_names_dropped: counter_vec(r, "fifo_names_dropped_total", "FIFO lines dropped because they named one instance, group or LVS server too many (a bound on memory and labels).", &["kind"])?,
            claims_dropped: counter_vec(r, "claims_dropped_total", "Claims overtaken by events: the verdict no longer stood before a mutating call, which was not made.", &["vip"])?,
            peer_messages: counter_vec(r, "peer_messages_total", "Messages from the peer's watchdog, by result: accepted, or refused as malformed, unauthenticated, stale, replayed, out_of_order or foreign (another pair's or this node's own).", &["result"])?,
            peer_sends: counter_vec(r, "peer_sends_total", "Reports sent to the peer's watchdog, by outcome: ok (it took it), failed (no answer, or refused).", &["outcome"])?,
            peer_up: gauge_vec(r, "peer_up", "1 while an authenticated report from the peer's watchdog is younger than peer.max_age; 0 otherwise (silent, unreachable, or refused). Present only with a [peer].", &["peer"])?,
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
            split_brain: gauge_vec(r, "peer_split_brain", "1 while this node and its peer (by the peer's fresh report) are both MASTER of the instance; rule 10 settles who keeps the VIP. Present only with a [peer].", &["vrrp_instance"])?,
            registry,
            labels: (pair.to_owned(), node.to_owned()),
            process,
        };
        // Every label value a counter can take exists from the start, so that
        // rate() and increase() see the first increment.
        for k in LineError::KINDS {
            m.fifo_lines_rejected.with_label_values(&[k]);
        }
        for op in crate::core::seen::Action::operations() {
            for outcome in std::iter::once("success").chain(
                crate::core::seen::ErrorKind::ALL
                    .into_iter()
                    .map(|k| k.as_str()),
            ) {
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
}
