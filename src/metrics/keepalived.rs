//! Keepalived's own counters and script status (`keepalived/stats.rs`), as
//! the latest dump gave them. Keepalived keeps the counts; they are
//! exported as counters with its values (they restart from 0 with
//! Keepalived, which `rate()` takes as a counter reset), every configured
//! instance at 0 before the first dump.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

use crate::keepalived::stats::{Counters, InstanceStats};

/// A counter of the JSON dump: its name, help, and (for a family split by
/// `kind`) the label value; and how to read it.
struct CounterSpec {
    name: &'static str,
    help: &'static str,
    kind: Option<&'static str>,
    read: fn(&Counters) -> u64,
}

const COUNTERS: &[CounterSpec] = &[
    CounterSpec {
        name: "keepalived_vrrp_adverts_received_total",
        help: "VRRP adverts Keepalived received for the instance (its advert_rcvd).",
        kind: None,
        read: |c| c.advert_rcvd,
    },
    CounterSpec {
        name: "keepalived_vrrp_adverts_sent_total",
        help: "VRRP adverts Keepalived sent for the instance (advert_sent).",
        kind: None,
        read: |c| c.advert_sent,
    },
    CounterSpec {
        name: "keepalived_vrrp_became_master_total",
        help: "Times the instance became MASTER in this Keepalived process (become_master).",
        kind: None,
        read: |c| c.become_master,
    },
    CounterSpec {
        name: "keepalived_vrrp_released_master_total",
        help: "Times the instance left MASTER in this Keepalived process (release_master).",
        kind: None,
        read: |c| c.release_master,
    },
    CounterSpec {
        name: "keepalived_vrrp_priority_zero_received_total",
        help: "Priority-0 adverts received: the MASTER stopped or released (pri_zero_rcvd).",
        kind: None,
        read: |c| c.pri_zero_rcvd,
    },
    CounterSpec {
        name: "keepalived_vrrp_priority_zero_sent_total",
        help: "Priority-0 adverts sent: this MASTER stopped or released (pri_zero_sent).",
        kind: None,
        read: |c| c.pri_zero_sent,
    },
    CounterSpec {
        name: PACKET_ERRORS,
        help: "VRRP packets Keepalived dropped, by kind: length (packet_len_err), advert_interval (advert_interval_err), ip_ttl (ip_ttl_err), invalid_type (invalid_type_rcvd), address_list (addr_list_err).",
        kind: Some("length"),
        read: |c| c.packet_len_err,
    },
    CounterSpec {
        name: PACKET_ERRORS,
        help: "",
        kind: Some("advert_interval"),
        read: |c| c.advert_interval_err,
    },
    CounterSpec {
        name: PACKET_ERRORS,
        help: "",
        kind: Some("ip_ttl"),
        read: |c| c.ip_ttl_err,
    },
    CounterSpec {
        name: PACKET_ERRORS,
        help: "",
        kind: Some("invalid_type"),
        read: |c| c.invalid_type_rcvd,
    },
    CounterSpec {
        name: PACKET_ERRORS,
        help: "",
        kind: Some("address_list"),
        read: |c| c.addr_list_err,
    },
    CounterSpec {
        name: AUTH_ERRORS,
        help: "VRRP adverts that failed authentication, by kind: invalid_type (invalid_authtype), type_mismatch (authtype_mismatch), failure (auth_failure).",
        kind: Some("invalid_type"),
        read: |c| c.invalid_authtype,
    },
    CounterSpec {
        name: AUTH_ERRORS,
        help: "",
        kind: Some("type_mismatch"),
        read: |c| c.authtype_mismatch,
    },
    CounterSpec {
        name: AUTH_ERRORS,
        help: "",
        kind: Some("failure"),
        read: |c| c.auth_failure,
    },
];

const PACKET_ERRORS: &str = "keepalived_vrrp_packet_errors_total";
const AUTH_ERRORS: &str = "keepalived_vrrp_auth_errors_total";
const BASE_PRIORITY: &str = "keepalived_vrrp_base_priority";
const EFFECTIVE_PRIORITY: &str = "keepalived_vrrp_effective_priority";
const SCRIPT_STATUS: &str = "keepalived_vrrp_script_status";
const STATS_READ: &str = "keepalived_stats_last_read_timestamp_seconds";
const SCRIPTS_READ: &str = "keepalived_scripts_last_read_timestamp_seconds";

#[derive(Default)]
struct Latest {
    instances: BTreeMap<String, InstanceStats>,
    scripts: BTreeMap<String, bool>,
    stats_at: Option<f64>,
    scripts_at: Option<f64>,
}

/// Cloned into the registry; every clone shares the latest dump.
#[derive(Clone)]
pub struct KeepalivedStats {
    latest: Arc<Mutex<Latest>>,
    descs: Vec<Desc>,
}

/// (name, help, type) of every family, each once.
fn families() -> Vec<(&'static str, &'static str, MetricType)> {
    let mut out: Vec<(&str, &str, MetricType)> = Vec::new();
    for c in COUNTERS {
        if !out.iter().any(|(n, ..)| *n == c.name) {
            out.push((c.name, c.help, MetricType::COUNTER));
        }
    }
    out.extend([
        (
            BASE_PRIORITY,
            "The instance's configured priority, as the latest JSON dump gave it.",
            MetricType::GAUGE,
        ),
        (
            EFFECTIVE_PRIORITY,
            "The instance's priority after its tracked scripts' and interfaces' weights, as the latest JSON dump gave it (vip_watchdog_vrrp_priority follows the FIFO between dumps).",
            MetricType::GAUGE,
        ),
        (
            SCRIPT_STATUS,
            "1 while the vrrp_script's status is GOOD, 0 while BAD, from Keepalived's data dump (absent before it was read).",
            MetricType::GAUGE,
        ),
        (
            STATS_READ,
            "Unix time of the latest JSON dump the counters come from (absent before the first; asked at most once a minute).",
            MetricType::GAUGE,
        ),
        (
            SCRIPTS_READ,
            "Unix time of the latest data dump the script status comes from (absent before the first).",
            MetricType::GAUGE,
        ),
    ]);
    out
}

impl KeepalivedStats {
    pub fn new() -> Result<Self, prometheus::Error> {
        let descs = families()
            .into_iter()
            .map(|(name, help, _)| {
                Desc::new(name.into(), help.into(), Vec::new(), Default::default())
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            latest: Arc::new(Mutex::new(Latest::default())),
            descs,
        })
    }

    fn latest(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configured instances, at 0 until a dump gives their counts.
    pub fn init(&self, instances: &[String]) {
        let mut l = self.latest();
        for name in instances {
            l.instances
                .entry(name.clone())
                .or_insert_with(|| InstanceStats {
                    name: name.clone(),
                    state: crate::core::words::VrrpState::Unknown,
                    base_priority: 0,
                    effective_priority: 0,
                    counters: Counters::default(),
                });
        }
    }

    /// A JSON dump's instances (an instance it no longer lists keeps its
    /// last counts: Keepalived removed it, and its series ends at restart).
    pub fn stats(&self, instances: Vec<InstanceStats>, at: std::time::SystemTime) {
        let mut l = self.latest();
        for i in instances {
            l.instances.insert(i.name.clone(), i);
        }
        l.stats_at = Some(super::epoch(at));
    }

    /// A data dump's scripts, replacing the last.
    pub fn scripts(&self, scripts: BTreeMap<String, bool>, at: std::time::SystemTime) {
        let mut l = self.latest();
        l.scripts = scripts;
        l.scripts_at = Some(super::epoch(at));
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.into());
    l.set_value(value.into());
    l
}

fn counter(labels: Vec<LabelPair>, v: u64) -> Metric {
    let mut c = Counter::default();
    c.set_value(v as f64);
    let mut m = Metric::from_label(labels);
    m.set_counter(c);
    m
}

fn gauge(labels: Vec<LabelPair>, v: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(v);
    let mut m = Metric::from_gauge(g);
    m.set_label(labels);
    m
}

impl Collector for KeepalivedStats {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let l = self.latest();
        families()
            .into_iter()
            .map(|(name, help, kind)| {
                let mut metrics = Vec::new();
                for c in COUNTERS.iter().filter(|c| c.name == name) {
                    for (instance, i) in &l.instances {
                        let mut labels = vec![label("vrrp_instance", instance)];
                        if let Some(k) = c.kind {
                            labels.push(label("kind", k));
                        }
                        metrics.push(counter(labels, (c.read)(&i.counters)));
                    }
                }
                match name {
                    BASE_PRIORITY | EFFECTIVE_PRIORITY if l.stats_at.is_some() => {
                        for (instance, i) in &l.instances {
                            let p = if name == BASE_PRIORITY {
                                i.base_priority
                            } else {
                                i.effective_priority
                            };
                            metrics
                                .push(gauge(vec![label("vrrp_instance", instance)], f64::from(p)));
                        }
                    }
                    SCRIPT_STATUS => {
                        for (script, good) in &l.scripts {
                            metrics.push(gauge(
                                vec![label("script", script)],
                                if *good { 1.0 } else { 0.0 },
                            ));
                        }
                    }
                    STATS_READ => metrics.extend(l.stats_at.map(|t| gauge(vec![], t))),
                    SCRIPTS_READ => metrics.extend(l.scripts_at.map(|t| gauge(vec![], t))),
                    _ => {}
                }
                let mut f = MetricFamily::default();
                f.set_name(name.into());
                f.set_help(help.into());
                f.set_field_type(kind);
                f.set_metric(metrics);
                f
            })
            .filter(|f| !f.get_metric().is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::words::VrrpState;

    fn text(s: &KeepalivedStats) -> String {
        let r = prometheus::Registry::new_custom(Some("vip_watchdog".into()), None).unwrap();
        r.register(Box::new(s.clone())).unwrap();
        let mut out = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &r.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn configured_instances_start_at_zero_and_take_the_dumps_counts() {
        let s = KeepalivedStats::new().unwrap();
        s.init(&["VI_1".into()]);
        let before = text(&s);
        assert!(
            before.contains(
                "vip_watchdog_keepalived_vrrp_adverts_received_total{vrrp_instance=\"VI_1\"} 0"
            ),
            "{before}"
        );
        assert!(
            before.contains("vip_watchdog_keepalived_vrrp_auth_errors_total{kind=\"failure\",vrrp_instance=\"VI_1\"} 0")
                || before.contains("vip_watchdog_keepalived_vrrp_auth_errors_total{vrrp_instance=\"VI_1\",kind=\"failure\"} 0"),
            "{before}"
        );
        assert!(
            before.contains("# TYPE vip_watchdog_keepalived_vrrp_packet_errors_total counter"),
            "{before}"
        );
        // No dump yet: no priorities, no script, no read time.
        assert!(!before.contains("base_priority{"), "{before}");
        assert!(!before.contains("script_status"), "{before}");
        assert!(!before.contains("last_read_timestamp"), "{before}");

        s.stats(
            vec![InstanceStats {
                name: "VI_1".into(),
                state: VrrpState::Master,
                base_priority: 150,
                effective_priority: 140,
                counters: Counters {
                    advert_rcvd: 7,
                    pri_zero_sent: 2,
                    addr_list_err: 3,
                    ..Counters::default()
                },
            }],
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000),
        );
        s.scripts(
            BTreeMap::from([("chk_haproxy".into(), false)]),
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1001),
        );
        let after = text(&s);
        for want in [
            "vip_watchdog_keepalived_vrrp_adverts_received_total{vrrp_instance=\"VI_1\"} 7",
            "vip_watchdog_keepalived_vrrp_priority_zero_sent_total{vrrp_instance=\"VI_1\"} 2",
            "vip_watchdog_keepalived_vrrp_base_priority{vrrp_instance=\"VI_1\"} 150",
            "vip_watchdog_keepalived_vrrp_effective_priority{vrrp_instance=\"VI_1\"} 140",
            "vip_watchdog_keepalived_vrrp_script_status{script=\"chk_haproxy\"} 0",
            "vip_watchdog_keepalived_stats_last_read_timestamp_seconds 1000",
            "vip_watchdog_keepalived_scripts_last_read_timestamp_seconds 1001",
        ] {
            assert!(after.contains(want), "{want} in:\n{after}");
        }
        assert!(after.contains("address_list"), "{after}");
    }
}
