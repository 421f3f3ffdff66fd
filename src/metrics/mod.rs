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

pub mod forwarding;
pub mod keepalived;
mod read;
mod register;
pub mod reload;
mod summary;
mod turn;

pub use read::value;

use crate::core::seen::CloudError;
use crate::core::words::{HealReason, Mover};
use crate::core::words::{Health, VrrpState};

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
    address_kept: IntGaugeVec,
    handover_waiting: IntGaugeVec,
    split_in_cloud: IntGaugeVec,
    cloud_backoff: IntGauge,
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
    /// Keepalived's own counters and script status (keepalived.rs).
    pub keepalived: keepalived::KeepalivedStats,
    /// `ip_forward`, read at each scrape while a route VIP is configured
    /// (forwarding.rs).
    pub ip_forward: forwarding::IpForward,
    /// Each VIP's config, last failover and failed calls (summary.rs).
    pub summary: summary::Summary,
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
    /// The process-wide back-off's level (`cloud::throttle`).
    pub fn cloud_backoff(&self, level: u32) {
        self.cloud_backoff.set(i64::from(level));
    }

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
        self.address_kept.with_label_values(&[vip]).set(0);
    }

    /// A break-before-make VIP's gauge, at 0.
    pub fn handover_init(&self, vip: &str) {
        self.handover_waiting.with_label_values(&[vip]).set(0);
    }

    /// Claim rule 13: which break-before-make VIPs wait for the old holder.
    pub fn sync_handovers<'a>(&self, waiting: impl Iterator<Item = (&'a str, bool)>) {
        for (vip, waiting) in waiting {
            self.handover_waiting
                .with_label_values(&[vip])
                .set(i64::from(waiting));
        }
    }

    /// A VIP's rule-14 gauge, at 0 (with state tags on).
    pub fn split_in_cloud_init(&self, vip: &str) {
        self.split_in_cloud.with_label_values(&[vip]).set(0);
    }

    /// Claim rule 14: which VIPs this MASTER leaves on another MASTER.
    pub fn sync_splits_in_cloud<'a>(&self, splits: impl Iterator<Item = (&'a str, bool)>) {
        for (vip, split) in splits {
            self.split_in_cloud
                .with_label_values(&[vip])
                .set(i64::from(split));
        }
    }

    /// Address rule A6: which `manage_address` VIPs are kept off MASTER.
    pub fn sync_addresses<'a>(&self, kept: impl Iterator<Item = (&'a str, bool)>) {
        for (vip, kept) in kept {
            self.address_kept
                .with_label_values(&[vip])
                .set(i64::from(kept));
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
        self.summary.failover(vip, latency, SystemTime::now());
    }

    pub fn permission(&self, vip: &str, action: &str, denied: bool) {
        self.cloud_permission_denied
            .with_label_values(&[vip, action])
            .set(i64::from(denied));
    }

    pub fn line_read(&self, at: SystemTime, valid: bool) {
        self.fifo_lines_read.inc();
        if valid {
            self.fifo_last_line.set(epoch(at));
        }
    }
}

/// Registers `m` with `r` and hands it back (`register.rs`).
/// An `IntGaugeVec` named `name`, registered in `r`.
fn gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, prometheus::Error> {
    reg(r, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

/// An `IntCounterVec` named `name`, registered in `r`.
fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    reg(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn reg<M: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    m: M,
) -> Result<M, prometheus::Error> {
    r.register(Box::new(m.clone()))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    /// A cloud side's note sets its gauge: a refused permission, an
    /// unknown allocation ID, and back.
    #[test]
    fn notes_set_their_gauges() {
        use crate::core::cloud::Note;
        use crate::core::message::Evidence;
        use crate::core::seen::Action;
        let m = Metrics::new("p", "n").unwrap();
        m.vip_init("web");
        let permission = |allowed| Note::Permission {
            vip: "web".into(),
            action: Action::AssociateAddress,
            allowed,
            before: None,
            evidence: Evidence::DryRun,
            detail: String::new(),
        };
        let unknown = |unknown| Note::AllocationUnknown {
            vip: "web".into(),
            allocation_id: "eipalloc-web".into(),
            unknown,
        };
        let gauges = |m: &Metrics| {
            (
                m.permission_denied("web", "AssociateAddress"),
                m.value("vip_watchdog_vip_allocation_unknown", &[("vip", "web")]),
            )
        };
        assert_eq!(gauges(&m), (0, Some(0.0)));
        m.note(&permission(false));
        m.note(&unknown(true));
        assert_eq!(gauges(&m), (1, Some(1.0)));
        m.note(&permission(true));
        m.note(&unknown(false));
        assert_eq!(gauges(&m), (0, Some(0.0)));
    }

    use super::*;
    use crate::core::input::Event;
    use crate::core::model::Model;
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
