//! Keepalived's own health as the watchdog exports it, read from a real
//! Keepalived pair at the shipped defaults (one dump a minute at most):
//! VRRP blocked into b stops b's received-adverts counter while a keeps
//! sending, and b's failing HAProxy check shows in b's script status.
//! About three minutes: the rounds are a minute apart.

mod common;

use std::time::Duration;

use common::{Lab, SETTLE, metric};

/// Two rounds and a margin.
const ROUNDS: Duration = Duration::from_secs(150);

fn read_at(m: &str) -> Option<f64> {
    metric(
        m,
        "vip_watchdog_keepalived_stats_last_read_timestamp_seconds",
        &[],
    )
}

fn counter(m: &str, name: &str) -> f64 {
    metric(m, name, &[("vrrp_instance", "VI_1")]).unwrap_or_else(|| panic!("{name} in:\n{m}"))
}

const RECEIVED: &str = "vip_watchdog_keepalived_vrrp_adverts_received_total";
const SENT: &str = "vip_watchdog_keepalived_vrrp_adverts_sent_total";
const SCRIPT: &str = "vip_watchdog_keepalived_vrrp_script_status";

#[test]
fn keepalived_counters_follow_a_blocked_vrrp_path_and_script_status_a_failed_check() {
    let mut lab = Lab::new();
    let wa = lab.a.start_watchdog(true);
    let wb = lab.b.start_watchdog(true);
    lab.start_services();
    wa.wait_state("master", SETTLE);
    wb.wait_state("backup", SETTLE);

    // Before the first round: every counter of the configured instance at 0.
    let m = wb.metrics();
    assert_eq!(read_at(&m), None, "no dump read yet:\n{m}");
    assert_eq!(counter(&m, RECEIVED), 0.0);
    assert_eq!(
        metric(
            &m,
            "vip_watchdog_keepalived_vrrp_auth_errors_total",
            &[("vrrp_instance", "VI_1"), ("kind", "failure")]
        ),
        Some(0.0)
    );

    // The first round (the JSON dump), VRRP flowing: b has received a's
    // adverts, one a second since Keepalived started.
    let first = wb.wait_metrics("b's first JSON round", ROUNDS, |m| read_at(m).is_some());
    let (received_before, read_before) = (counter(&first, RECEIVED), read_at(&first).unwrap());
    assert!(
        received_before >= 20.0,
        "b received {received_before} adverts before the block"
    );
    let a_first = wa.wait_metrics("a's first JSON round", ROUNDS, |m| read_at(m).is_some());
    let sent_before = counter(&a_first, SENT);
    assert_eq!(
        metric(
            &first,
            "vip_watchdog_keepalived_vrrp_base_priority",
            &[("vrrp_instance", "VI_1")]
        ),
        Some(100.0),
        "b's configured priority"
    );

    // VRRP dropped into b, and b's HAProxy stopped: b's check fails, so b
    // goes FAULT (no split brain) and hears nothing.
    lab.b.block_vrrp(true);
    lab.b.kill_haproxy();
    wb.wait_state("fault", SETTLE);

    // The second round reads the scripts (never read yet): b's check BAD,
    // a's GOOD.
    let b_scripts = wb.wait_metrics("b's script status", ROUNDS, |m| {
        metric(m, SCRIPT, &[("script", "chk_haproxy")]).is_some()
    });
    assert_eq!(
        metric(&b_scripts, SCRIPT, &[("script", "chk_haproxy")]),
        Some(0.0),
        "{b_scripts}"
    );
    let a_scripts = wa.wait_metrics("a's script status", ROUNDS, |m| {
        metric(m, SCRIPT, &[("script", "chk_haproxy")]).is_some()
    });
    assert_eq!(
        metric(&a_scripts, SCRIPT, &[("script", "chk_haproxy")]),
        Some(1.0),
        "{a_scripts}"
    );

    // The third round (JSON again): over two minutes b received (almost)
    // nothing, a sent an advert a second.
    let later = wb.wait_metrics("b's next JSON round", ROUNDS, |m| {
        read_at(m).is_some_and(|t| t > read_before)
    });
    let received_after = counter(&later, RECEIVED);
    let took = read_at(&later).unwrap() - read_before;
    let a_later = wa.wait_metrics("a's next JSON round", ROUNDS, |m| {
        counter(m, SENT) > sent_before + 30.0
    });
    let sent_after = counter(&a_later, SENT);
    println!(
        "b: {received_before} adverts received before the block, {} in the {took:.0} s after; a sent {} meanwhile",
        received_after - received_before,
        sent_after - sent_before
    );
    assert!(
        received_after - received_before <= 2.0,
        "b's received counter kept moving while VRRP was blocked: {received_before} -> {received_after}"
    );
    assert!(took >= 100.0, "two rounds apart, a minute each: {took} s");
    assert_eq!(
        metric(
            &later,
            "vip_watchdog_keepalived_vrrp_effective_priority",
            &[("vrrp_instance", "VI_1")]
        ),
        Some(100.0),
        "{later}"
    );
    common::promtool_check_metrics(&later);
}
