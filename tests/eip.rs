//! Healing the Elastic IP: the watchdog with a real Keepalived pair, real
//! HAProxy, and moto's EC2 server (patched by tests/moto/launch.py so that it
//! honours PrivateIpAddress and AllowReassignment), with the real
//! aws-sdk-ec2 client and an IMDSv2 stub per node. Mutating calls are
//! counted at the emulator (its request recorder), by client and target ENI,
//! not by the watchdog's own counters.

mod common;

use common::{FAILOVER, Lab, SETTLE, Watchdog};
use std::time::Duration;

/// The healing takes grace (5 s) + a verification + the calls.
const HEAL: Duration = Duration::from_secs(40);

/// A pair with the cloud, node a MASTER with the EIP; both watchdogs in
/// `mode`, notify scripts as given. Returns once both watchdogs have seen
/// the cloud's view with a settled VRRP state.
fn cloud_pair(
    lab: &mut Lab,
    mode: &str,
    dry_run: bool,
    notify: Option<&str>,
) -> (Watchdog, Watchdog) {
    lab.add_cloud();
    lab.set_vip(mode, dry_run);
    lab.set_notify("a", notify);
    lab.set_notify("b", notify);
    let wa = lab.a.start_watchdog(true);
    let wb = lab.b.start_watchdog(true);
    lab.start_services();
    wa.wait_state("master", SETTLE);
    wb.wait_state("backup", SETTLE);
    assert_eq!(lab.eip_on(), "a", "set-up puts the EIP on a");
    wa.wait_for("a converged", SETTLE, |e| {
        e["message"] == "vip decision"
            && e["why"]
                .as_str()
                .is_some_and(|w| w.starts_with("converged"))
    });
    (wa, wb)
}

fn heal_log(w: &Watchdog) -> serde_json::Value {
    w.wait_for("a claim", HEAL, |e| {
        e["message"] == "claiming the VIP for this node"
    })
}

#[test]
fn a_failed_notify_script_is_healed_after_grace() {
    let mut lab = Lab::new();
    let (wa, wb) = cloud_pair(&mut lab, "heal", false, Some("fail"));
    wa.forget_past();
    wb.forget_past();
    lab.a.kill_haproxy();
    wb.wait_state("master", FAILOVER);
    wb.wait_for("b waits for the notify script's grace", FAILOVER, |e| {
        e["message"] == "waiting before acting"
            && e["why"].as_str().is_some_and(|w| w.contains("grace"))
    });
    let claim = heal_log(&wb);
    assert_eq!(claim["reason"], "elsewhere", "{claim}");
    wb.wait_for("b's claim converged", HEAL, |e| {
        e["message"] == "claim converged"
    });
    let arrived = wb.wait_for("b sees it here", HEAL, |e| {
        e["message"] == "the cloud shows the VIP on this node, the MASTER"
    });
    assert!(
        arrived["latency_ms"].as_u64().is_some_and(|ms| ms >= 5_000),
        "after grace: {arrived}"
    );
    assert_eq!(lab.eip_on(), "b");
    // Counted at the emulator: one assign and one associate, both by b's
    // watchdog for b's ENI; nothing by a's watchdog; the script did nothing.
    let calls = lab.mutating_calls();
    let eni_b = lab.eni("b");
    assert_eq!(
        calls["watchdog"][format!("AssignPrivateIpAddresses {eni_b}")],
        1,
        "{calls}"
    );
    assert_eq!(
        calls["watchdog"][format!("AssociateAddress {eni_b}")],
        1,
        "{calls}"
    );
    assert_eq!(lab.calls_by("watchdog", "a"), 0, "{calls}");
    assert!(
        calls["other"].is_null(),
        "the failing script made no call: {calls}"
    );
    let m = wb.metrics();
    assert_eq!(
        common::metric(
            &m,
            "vip_watchdog_heals_total",
            &[("vip", "web"), ("reason", "elsewhere")]
        ),
        Some(1.0)
    );
    assert_eq!(
        common::metric(&m, "vip_watchdog_vip_here", &[("vip", "web")]),
        Some(1.0)
    );
    assert_eq!(
        common::metric(
            &m,
            "vip_watchdog_failover_latency_seconds_count",
            &[("vip", "web")]
        ),
        Some(1.0)
    );
}
