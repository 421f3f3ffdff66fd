//! What the alert rules and the fleet dashboard read about each VIP: its
//! config as an info series (so a rule can tell `own` from `heal`), its
//! last failover, and each cloud call's final outcome (after its retries,
//! where `cloud_api_calls_total` counts every attempt).

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::reg;
use crate::core::seen::{Action, ErrorKind};
use crate::core::vip::VipConfig;

pub struct Summary {
    vip_info: IntGaugeVec,
    failover_last_latency: GaugeVec,
    failover_last_at: GaugeVec,
    call_failures: IntCounterVec,
    verify_interval: prometheus::Gauge,
}

impl Summary {
    pub fn register(r: &Registry) -> Result<Summary, prometheus::Error> {
        let s = Summary {
            vip_info: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "vip_info",
                        "Always 1, one series per configured VIP: its VRRP instance, mode (heal, own), kind (eip, eip_instance, private_ip, route), allocation_id, private_ip and destination (each empty where the kind has none), and handover (make_before_break, break_before_make).",
                    ),
                    &[
                        "vip",
                        "vrrp_instance",
                        "mode",
                        "kind",
                        "allocation_id",
                        "private_ip",
                        "destination",
                        "handover",
                    ],
                )?,
            )?,
            failover_last_latency: reg(
                r,
                GaugeVec::new(
                    Opts::new(
                        "failover_last_latency_seconds",
                        "The latest failover_latency_seconds sample of the VIP on this node (absent before the first).",
                    ),
                    &["vip"],
                )?,
            )?,
            failover_last_at: reg(
                r,
                GaugeVec::new(
                    Opts::new(
                        "failover_last_timestamp_seconds",
                        "Unix time at which the latest failover_latency_seconds sample of the VIP on this node was taken (absent before the first).",
                    ),
                    &["vip"],
                )?,
            )?,
            call_failures: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "cloud_api_call_failures_total",
                        "Cloud API calls that failed after their retries (one per call, where cloud_api_calls_total counts every attempt), by operation and the last attempt's error kind.",
                    ),
                    &["operation", "outcome"],
                )?,
            )?,
            verify_interval: reg(
                r,
                prometheus::Gauge::new(
                    "cloud_verify_interval_seconds",
                    "cloud.verify_interval: how often the cloud is asked where each VIP is while nothing happens. CloudViewStale compares vip_last_verified_timestamp_seconds with it.",
                )?,
            )?,
        };
        for op in Action::operations() {
            for k in ErrorKind::ALL {
                s.call_failures.with_label_values(&[op, k.as_str()]);
            }
        }
        Ok(s)
    }

    /// The configured VIPs, replacing those of an earlier config (a
    /// reload may change a VIP's mode or remove it).
    pub fn vips(&self, vips: &[VipConfig], verify_interval: std::time::Duration) {
        self.vip_info.reset();
        for v in vips {
            use crate::core::target::VipTarget;
            let destination = match &v.target {
                VipTarget::Route { destination, .. } => destination.as_str(),
                _ => "",
            };
            let private_ip = match &v.target {
                VipTarget::EipOnEni { private_ip, .. } | VipTarget::PrivateIp { private_ip } => {
                    private_ip.to_string()
                }
                _ => String::new(),
            };
            self.vip_info
                .with_label_values(&[
                    v.name.as_str(),
                    v.vrrp_instance.as_str(),
                    v.policy.mode.as_str(),
                    v.target.kind(),
                    v.target.allocation_id().unwrap_or(""),
                    private_ip.as_str(),
                    destination,
                    v.handover.as_str(),
                ])
                .set(1);
        }
        self.verify_interval.set(verify_interval.as_secs_f64());
    }

    pub fn failover(&self, vip: &str, latency: std::time::Duration, at: std::time::SystemTime) {
        self.failover_last_latency
            .with_label_values(&[vip])
            .set(latency.as_secs_f64());
        self.failover_last_at
            .with_label_values(&[vip])
            .set(super::epoch(at));
    }

    /// A call that failed for good; `SUPERSEDED` (not sent) is no failure.
    pub fn call_failed(&self, operation: &str, kind: ErrorKind) {
        self.call_failures
            .with_label_values(&[operation, kind.as_str()])
            .inc();
    }
}
