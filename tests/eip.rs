//! Healing the Elastic IP: the watchdog with a real Keepalived pair, real
//! HAProxy, and moto's EC2 server (patched by tests/moto/launch.py so that it
//! honours PrivateIpAddress and AllowReassignment), with the real
//! aws-sdk-ec2 client and an IMDSv2 stub per node. Mutating calls are
//! counted at the emulator (its request recorder), by client and target ENI,
//! not by the watchdog's own counters. moto never throttles, fails or drops
//! a connection: those answers come from a fault-injecting proxy
//! (tests/moto/faults.py) between one watchdog and the emulator.

mod common;

use common::{FAILOVER, Lab, SETTLE, Watchdog, is, metric};
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// The healing takes grace (10 s, the shipped default) + a describe + the calls.
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
    prepare(lab, mode, dry_run, notify);
    start(lab)
}

fn prepare(lab: &mut Lab, mode: &str, dry_run: bool, notify: Option<&str>) {
    lab.add_cloud();
    lab.set_vip(mode, dry_run);
    lab.set_notify("a", notify);
    lab.set_notify("b", notify);
}

fn start(lab: &mut Lab) -> (Watchdog, Watchdog) {
    let wa = lab.a.start_watchdog(true);
    let wb = lab.b.start_watchdog(true);
    lab.start_services();
    wa.wait_state("master", SETTLE);
    wb.wait_state("backup", SETTLE);
    assert_eq!(lab.eip_on(), "a", "set-up puts the EIP on a");
    wait_converged(&wa, "a converged");
    (wa, wb)
}

/// HAProxy dies on a, the MASTER; returns once b's watchdog reports MASTER.
fn fail_over_to_b(lab: &mut Lab, wa: &Watchdog, wb: &Watchdog) {
    wa.forget_past();
    wb.forget_past();
    lab.a.kill_haproxy();
    wb.wait_state("master", FAILOVER);
}

/// Waits until the status shows the VIP here and the verdict hold.
fn wait_converged(w: &Watchdog, what: &str) {
    w.wait_status(what, HEAL, |s| {
        s["vips"][0]["cloud"]["where"] == "here" && s["vips"][0]["verdict"] == "hold"
    });
}

fn heal_log(w: &Watchdog) -> serde_json::Value {
    w.wait_for("a claim", HEAL, |e| is(e, "claim_started"))
}

#[test]
fn a_failed_notify_script_is_healed_after_grace() {
    let mut lab = Lab::new();
    let (wa, wb) = cloud_pair(&mut lab, "heal", false, Some("fail"));
    fail_over_to_b(&mut lab, &wa, &wb);
    // b waits (min_master_age, then grace: the sample below is past it).
    wb.wait_for("b waits", FAILOVER, |e| is(e, "verdict_wait"));
    let claim = heal_log(&wb);
    assert_eq!(claim["reason"], "elsewhere", "{claim}");
    wb.wait_for("b's claim converged", HEAL, |e| is(e, "claim_converged"));
    let arrived = wb.wait_for("b sees it here", HEAL, |e| is(e, "vip_arrived"));
    assert!(
        arrived["latency_ms"]
            .as_u64()
            .is_some_and(|ms| ms >= 10_000),
        "after grace: {arrived}"
    );
    assert_eq!(lab.eip_on(), "b");
    // Counted at the emulator: one assign by b's watchdog for b's ENI, and
    // no associate: the EIP followed its private IP (as in EC2), which the
    // describe after the assign showed; nothing by a's watchdog; the script
    // did nothing.
    let calls = lab.mutating_calls();
    let eni_b = lab.eni("b");
    assert_eq!(
        calls["watchdog"][format!("AssignPrivateIpAddresses {eni_b}")],
        1,
        "{calls}"
    );
    assert!(
        calls["watchdog"][format!("AssociateAddress {eni_b}")].is_null(),
        "{calls}"
    );
    wb.wait_for("b saw the EIP follow", HEAL, |e| {
        is(e, "claim_eip_followed")
    });
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

#[test]
fn a_missing_notify_script_is_healed_after_grace() {
    let mut lab = Lab::new();
    let (wa, wb) = cloud_pair(&mut lab, "heal", false, Some("missing"));
    fail_over_to_b(&mut lab, &wa, &wb);
    heal_log(&wb);
    wb.wait_for("b's claim converged", HEAL, |e| is(e, "claim_converged"));
    assert_eq!(lab.eip_on(), "b");
    let calls = lab.mutating_calls();
    assert_eq!(
        lab.calls_by("watchdog", "b"),
        1,
        "one assign, which the EIP followed: {calls}"
    );
    assert_eq!(lab.calls_by("watchdog", "a"), 0, "{calls}");
}

/// (a) The notify script works: the watchdog sees it converge and makes no
/// mutating call at all.
#[test]
fn a_working_notify_script_leaves_the_watchdog_nothing_to_do() {
    let mut lab = Lab::new();
    let (wa, wb) = cloud_pair(&mut lab, "heal", false, Some("ok"));
    fail_over_to_b(&mut lab, &wa, &wb);
    wb.wait_for("b sees it here", HEAL, |e| is(e, "vip_arrived"));
    // Past the grace, the verdict is still: converged, nothing to do.
    wait_converged(&wb, "b converged after grace");
    assert_eq!(lab.eip_on(), "b");
    let calls = lab.mutating_calls();
    assert!(
        calls["watchdog"].is_null(),
        "no mutating call by any watchdog: {calls}"
    );
    // Keepalived may run a notify script more than once (it does at start-up
    // races); what matters is that the script moved it and the watchdog did not.
    assert!(
        lab.calls_by("other", "b") >= 2,
        "the script's assign and associate: {calls}"
    );
    let m = wb.metrics();
    assert_eq!(
        common::metric(&m, "vip_watchdog_vip_converged", &[("vip", "web")]),
        Some(1.0),
        "{m}"
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

/// (c) The notify script runs twice: the watchdog adds no call of its own.
#[test]
fn a_notify_script_run_twice_adds_no_watchdog_call() {
    let mut lab = Lab::new();
    let (wa, wb) = cloud_pair(&mut lab, "heal", false, Some("twice"));
    fail_over_to_b(&mut lab, &wa, &wb);
    wb.wait_for("b sees it here", HEAL, |e| is(e, "vip_arrived"));
    wait_converged(&wb, "b converged after grace");
    let calls = lab.mutating_calls();
    assert!(calls["watchdog"].is_null(), "{calls}");
    assert!(
        lab.calls_by("other", "b") >= 4,
        "the script ran its two calls twice: {calls}"
    );
    assert_eq!(lab.eip_on(), "b");
}

/// (e) dry_run decides and says so, and mutates nothing: over the whole
/// failover (the notify script fails, the grace passes, a claim is due) the
/// emulator records no mutating call from the watchdog.
#[test]
fn dry_run_mutates_nothing() {
    let mut lab = Lab::new();
    let (wa, wb) = cloud_pair(&mut lab, "heal", true, Some("fail"));
    fail_over_to_b(&mut lab, &wa, &wb);
    wb.wait_for("b in its grace", FAILOVER, |e| is(e, "verdict_wait"));
    let would = wb.wait_for("b's dry-run verdict", HEAL, |e| is(e, "claim_dry_run"));
    assert_eq!(would["reason"], "elsewhere", "{would}");
    assert_eq!(wb.status()["vips"][0]["verdict"], "would_claim");
    assert!(wb.stop().success());
    assert!(wa.stop().success());
    let calls = lab.mutating_calls();
    assert!(
        calls["watchdog"].is_null(),
        "no mutating call in the watchdogs' lives: {calls}"
    );
    assert_eq!(lab.eip_on(), "a", "nothing moved");
}

/// `own` mode with no notify script: the watchdog moves the EIP itself once
/// the new MASTER is `min_master_age` old.
#[test]
fn own_mode_moves_the_eip_without_a_notify_script() {
    let mut lab = Lab::new();
    let (wa, wb) = cloud_pair(&mut lab, "own", false, None);
    fail_over_to_b(&mut lab, &wa, &wb);
    let claim = heal_log(&wb);
    assert_eq!(claim["reason"], "elsewhere", "{claim}");
    let arrived = wb.wait_for("b sees it here", HEAL, |e| is(e, "vip_arrived"));
    let ms = arrived["latency_ms"].as_u64().expect("latency");
    assert!(ms >= 3_000, "not before min_master_age: {arrived}");
    assert_eq!(arrived["moved_by"], "watchdog", "{arrived}");
    assert_eq!(lab.eip_on(), "b");
    assert_eq!(
        lab.calls_by("watchdog", "b"),
        1,
        "one assign, which the EIP followed"
    );
    assert_eq!(lab.calls_by("watchdog", "a"), 0, "a, in FAULT, never acts");
    // The cloud metrics follow Prometheus' conventions too, and this
    // watchdog exports every family that alerts/ and dashboards/ use.
    let m = wb.metrics();
    common::promtool_check_metrics(&m);
    common::alerts_and_dashboards_use_only(&m);
    common::metrics_doc_lists_exactly(&m);
    // The page at / for a person: the state, the VIP, the failover chart.
    let page = wb.landing();
    for want in [
        "vip-watchdog on b (pair lab)",
        "<td class=\"master\">master</td>",
        "VIP web, moved by watchdog: 1 failover<",
        "<svg",
        "href=\"/metrics\"",
    ] {
        assert!(page.contains(want), "{want} in {page}");
    }
    // The same page in a browser (headless Chromium): the DOM it built has
    // the chart's bars and the links, and the screenshot is a full page.
    // VIP_WATCHDOG_SCREENSHOT=docs/landing.png keeps it (scripts/screenshot.sh).
    let url = format!("http://{}/", wb.address);
    let shown = common::chromium(&lab.b.ns, &url, &lab.b.dir);
    for want in [
        "<svg",
        "<rect",
        "1 failover<",
        "<a href=\"/metrics\">",
        "<a href=\"/v1/status\">",
        "<td class=\"master\">master</td>",
    ] {
        assert!(
            shown.dom.contains(want),
            "{want} in the rendered DOM: {}",
            shown.dom
        );
    }
    assert_eq!(
        shown.png_size(),
        (common::Rendered::WIDTH, common::Rendered::HEIGHT)
    );
    // A blank page compresses to a few hundred bytes; text, a table and
    // a chart do not.
    assert!(shown.png.len() > 20_000, "{} bytes", shown.png.len());
    // Nothing runs off the right of the page (the decisions' JSON once did).
    assert!(
        shown.right_edge_is_clear(16),
        "the page is wider than the window (see {})",
        lab.b.dir.join("landing.png").display()
    );
    if let Some(keep) = std::env::var_os("VIP_WATCHDOG_SCREENSHOT") {
        std::fs::write(&keep, &shown.png).expect("write the screenshot");
    }
    // Exporter conventions: the process collector's families, the build's
    // revision, and every operation x outcome of the call counter from 0.
    for family in ["process_cpu_seconds_total", "process_start_time_seconds"] {
        assert!(m.contains(&format!("# TYPE {family} ")), "{family}");
    }
    assert!(
        !m.contains("vip_watchdog_start_time_seconds"),
        "one start time"
    );
    let revision = metric_labels(&m, "vip_watchdog_build_info", "revision");
    assert!(
        revision.len() == 1 && !revision[0].is_empty() && revision[0] != "unknown",
        "{revision:?}"
    );
    let unused = metric(
        &m,
        "vip_watchdog_cloud_api_calls_total",
        &[("operation", "CreateRoute"), ("outcome", "throttled")],
    );
    assert_eq!(unused, Some(0.0), "every operation x outcome exists at 0");
}

/// The values of `label` across the series of `name`.
fn metric_labels(text: &str, name: &str, label: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| {
            let i = l.find(&format!("{label}=\""))? + label.len() + 2;
            Some(l[i..].split('"').next()?.to_owned())
        })
        .collect()
}

/// (f) The watchdog restarted during the grace learns the MASTER's real
/// transition time from the JSON dump, claims once, and a second restart
/// after convergence claims nothing more.
#[test]
fn a_watchdog_restarted_mid_failover_converges_without_a_duplicate_claim() {
    let mut lab = Lab::new();
    let (wa, wb) = cloud_pair(&mut lab, "heal", false, Some("fail"));
    fail_over_to_b(&mut lab, &wa, &wb);
    wb.wait_for("b in its grace", FAILOVER, |e| is(e, "verdict_wait"));
    assert!(wb.stop().success());
    let wb = lab.b.start_watchdog(true);
    wb.wait_learned("master", "json_dump");
    heal_log(&wb);
    wb.wait_for("b's claim converged", HEAL, |e| is(e, "claim_converged"));
    assert!(wb.stop().success());
    let wb = lab.b.start_watchdog(true);
    wait_converged(&wb, "b converged after restart");
    assert_eq!(lab.eip_on(), "b");
    assert_eq!(
        lab.calls_by("watchdog", "b"),
        1,
        "one assign (the EIP followed it) in all: {}",
        lab.mutating_calls()
    );
}

/// (d) keepalived #2231: a BACKUP that boots without hearing its peer is
/// MASTER for about a second and its notify script takes the EIP. The real
/// MASTER's watchdog takes it back; the booting node's watchdog never claims.
#[test]
fn an_eip_stolen_by_a_booting_backup_is_taken_back_by_the_real_master() {
    let mut lab = Lab::new();
    let (wa, wb) = cloud_pair(&mut lab, "heal", false, Some("ok"));
    lab.b.signal_keepalived(nix::sys::signal::Signal::SIGTERM);
    wb.wait_state("stop", FAILOVER);
    lab.b.reap_keepalived();
    // b boots deaf to VRRP: it does not hear a's adverts and goes MASTER.
    lab.b.block_vrrp(true);
    wa.forget_past();
    wb.forget_past();
    lab.b.start_keepalived();
    wb.wait_state("master", SETTLE);
    lab.b.block_vrrp(false);
    wb.wait_state("backup", FAILOVER);
    // Meanwhile b's notify script moved the EIP; a (MASTER throughout) heals.
    let claim = heal_log(&wa);
    assert_eq!(claim["reason"], "stolen", "{claim}");
    wa.wait_for("a's claim converged", HEAL, |e| is(e, "claim_converged"));
    assert_eq!(lab.eip_on(), "a");
    let calls = lab.mutating_calls();
    assert!(
        lab.calls_by("other", "b") >= 2,
        "b's notify script took it: {calls}"
    );
    assert_eq!(
        lab.calls_by("watchdog", "a"),
        1,
        "a took it back once, with one assign: {calls}"
    );
    assert_eq!(
        lab.calls_by("watchdog", "b"),
        0,
        "b's watchdog never claimed: {calls}"
    );
    assert_eq!(wa.instance()["state"], "master", "a never left MASTER");
}

/// The faults the proxy reports, in order, until `n` have come.
fn faults(rx: &Receiver<String>, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            rx.recv_timeout(HEAL)
                .unwrap_or_else(|_| panic!("fault {} of {n} was not injected", i + 1))
        })
        .collect()
}

fn calls_metric(w: &Watchdog, operation: &str, outcome: &str) -> f64 {
    metric(
        &w.metrics(),
        "vip_watchdog_cloud_api_calls_total",
        &[("operation", operation), ("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

/// Throttling (503 RequestLimitExceeded) is retried with back-off, reads and
/// mutating calls alike: the API refused before acting. A 503 Unavailable
/// on a mutating call may or may not have been applied: the watchdog does
/// not send it again blind, it describes first. Here the describe shows the
/// cloud without the VIP (the proxy never forwarded the call), and the
/// verdict stands: the claim is sent again, and its assign moves the EIP
/// with the private IP (as in EC2). The refused calls never reached the
/// emulator.
#[test]
fn throttling_is_retried_and_an_uncertain_call_is_checked_before_it_is_sent_again() {
    let mut lab = Lab::new();
    prepare(&mut lab, "own", false, None);
    let injected = lab.add_fault_proxy(
        "b",
        r#"{"DescribeNetworkInterfaces": ["throttle"], "AssignPrivateIpAddresses": ["throttle", "unavailable"]}"#,
    );
    let (wa, wb) = start(&mut lab);
    fail_over_to_b(&mut lab, &wa, &wb);
    heal_log(&wb);
    wb.wait_for("b's claim converged", HEAL, |e| is(e, "claim_converged"));
    assert_eq!(
        faults(&injected, 3),
        [
            "fault DescribeNetworkInterfaces throttle",
            "fault AssignPrivateIpAddresses throttle",
            "fault AssignPrivateIpAddresses unavailable"
        ]
    );
    for (operation, kind) in [
        ("DescribeNetworkInterfaces", "throttled"),
        ("AssignPrivateIpAddresses", "throttled"),
    ] {
        wb.wait_for(&format!("a retry of {operation} ({kind})"), HEAL, |e| {
            is(e, "cloud_call_retry") && e["operation"] == operation && e["kind"] == kind
        });
        assert_eq!(
            calls_metric(&wb, operation, kind),
            1.0,
            "{operation} {kind}"
        );
    }
    wb.wait_for("the uncertain assign checked first", HEAL, |e| {
        is(e, "claim_outcome_unknown")
    });
    wb.wait_for("sent again once the cloud lacked it", HEAL, |e| {
        is(e, "claim_resent")
    });
    assert_eq!(
        calls_metric(&wb, "AssignPrivateIpAddresses", "server_error"),
        1.0
    );
    assert_eq!(
        calls_metric(&wb, "AssignPrivateIpAddresses", "success"),
        1.0
    );
    assert_eq!(calls_metric(&wb, "AssociateAddress", "success"), 0.0);
    assert_eq!(lab.eip_on(), "b");
    assert_eq!(
        lab.calls_by("watchdog", "b"),
        1,
        "only the assign sent again reached the emulator, and no associate: {}",
        lab.mutating_calls()
    );
}

/// A connection dropped after the emulator took the AssignPrivateIpAddresses
/// (which moved the EIP with the private IP): the watchdog cannot know
/// whether it landed, so it does not send it again blind: it describes,
/// sees the EIP here, and the claim converges with the one call.
#[test]
fn a_mutating_call_whose_answer_is_lost_is_not_sent_again_blind() {
    let mut lab = Lab::new();
    prepare(&mut lab, "own", false, None);
    let injected = lab.add_fault_proxy("b", r#"{"AssignPrivateIpAddresses": ["drop"]}"#);
    let (wa, wb) = start(&mut lab);
    fail_over_to_b(&mut lab, &wa, &wb);
    heal_log(&wb);
    let done = wb.wait_for("b's claim converged", HEAL, |e| is(e, "claim_converged"));
    assert!(
        done["detail"]
            .as_str()
            .is_some_and(|d| d.contains("assign of")),
        "converged on the describe after the lost answer: {done}"
    );
    assert_eq!(
        faults(&injected, 1),
        ["fault AssignPrivateIpAddresses drop"]
    );
    assert_eq!(
        calls_metric(&wb, "AssignPrivateIpAddresses", "transport"),
        1.0
    );
    assert_eq!(
        calls_metric(&wb, "AssignPrivateIpAddresses", "success"),
        0.0
    );
    assert_eq!(lab.eip_on(), "b");
    let eni = lab.eni("b");
    let calls = lab.mutating_calls();
    assert_eq!(
        calls["watchdog"][format!("AssignPrivateIpAddresses {eni}")],
        1,
        "the dropped call reached the emulator, nothing else: {calls}"
    );
    assert!(
        calls["watchdog"][format!("AssociateAddress {eni}")].is_null(),
        "{calls}"
    );
}

/// AuthFailure is not retried within a claim. Each claim makes one
/// AssignPrivateIpAddresses, fails, asks the cloud again, and is counted
/// against `max_claims` (3 here): after three the watchdog holds back, the
/// EIP stays where it is, and the log names the error. (The assign is the
/// call refused: in EC2, and in the patched emulator, an assign moves the
/// EIP along with the private IP.)
#[test]
fn an_auth_failure_is_not_retried_and_failing_claims_are_damped() {
    let mut lab = Lab::new();
    prepare(&mut lab, "own", false, None);
    let injected = lab.add_fault_proxy(
        "b",
        r#"{"AssignPrivateIpAddresses": ["auth", "auth", "auth"]}"#,
    );
    let (wa, wb) = start(&mut lab);
    fail_over_to_b(&mut lab, &wa, &wb);
    for i in 1..=3 {
        heal_log(&wb);
        let failed = wb.wait_for(&format!("b's claim {i} to fail"), HEAL, |e| {
            is(e, "claim_failed")
        });
        assert!(
            failed["detail"]
                .as_str()
                .is_some_and(|d| d.contains("AuthFailure")),
            "the log names the error: {failed}"
        );
    }
    wb.wait_for("b to hold back", HEAL, |e| is(e, "claim_damped"));
    assert_eq!(
        faults(&injected, 3),
        ["fault AssignPrivateIpAddresses auth"; 3],
        "one assign per claim"
    );
    assert_eq!(calls_metric(&wb, "AssignPrivateIpAddresses", "auth"), 3.0);
    assert_eq!(calls_metric(&wb, "AssociateAddress", "success"), 0.0);
    // The refused call is the evidence: AssignPrivateIpAddresses has no DryRun.
    assert_eq!(
        permission_denied(&wb, "AssignPrivateIpAddresses"),
        Some(1.0)
    );
    wb.wait_for("the refusal logged", HEAL, |e| {
        is(e, "permission_refused")
            && e["action"] == "AssignPrivateIpAddresses"
            && e["evidence"] == "call"
    });
    assert!(
        wb.logged(|e| is(e, "cloud_call_retry") && e["kind"] == "auth")
            .is_empty(),
        "no retry of an auth failure:\n{}",
        wb.log_text()
    );
    assert_eq!(
        lab.calls_by("watchdog", "b"),
        0,
        "no mutating call reached the emulator: {}",
        lab.mutating_calls()
    );
    assert_eq!(lab.eip_on(), "a", "nothing moved the EIP");
}

fn permission_denied(w: &Watchdog, action: &str) -> Option<f64> {
    metric(
        &w.metrics(),
        "vip_watchdog_cloud_permission_denied",
        &[("vip", "web"), ("action", action)],
    )
}

/// An instance role without ec2:AssociateAddress (the proxy answers
/// UnauthorizedOperation to b's AssociateAddress, DryRun or not, as EC2
/// does): b's watchdog says so at start-up, long before a failover would
/// need it, in its log, its status and the gauge the CloudPermissionDenied
/// alert reads; `vip-watchdog check-cloud` says so too and exits 1. a's
/// checks find everything allowed, and no check moved the EIP (moto honours
/// DryRun on AssociateAddress; lab.py's set-up checks that too).
#[test]
fn a_missing_permission_is_reported_at_start_up_before_any_failover() {
    let mut lab = Lab::new();
    prepare(&mut lab, "own", false, None);
    let injected = lab.add_fault_proxy(
        "b",
        r#"{"DryRun:AssociateAddress": ["unauthorized*"], "AssociateAddress": ["unauthorized*"]}"#,
    );
    let (wa, wb) = start(&mut lab);
    let refused = wb.wait_for("b's refusal", HEAL, |e| is(e, "permission_refused"));
    assert_eq!(refused["action"], "AssociateAddress", "{refused}");
    assert_eq!(refused["iam_action"], "ec2:AssociateAddress", "{refused}");
    assert_eq!(refused["evidence"], "dry_run", "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("UnauthorizedOperation")),
        "{refused}"
    );
    assert_eq!(
        faults(&injected, 1),
        ["fault DryRun:AssociateAddress unauthorized"]
    );
    let done_b = wb.wait_for("b's check done", HEAL, |e| is(e, "permission_check_done"));
    assert_eq!(
        (done_b["allowed"].as_u64(), done_b["denied"].as_u64()),
        (Some(2), Some(1)),
        "{done_b}"
    );
    let done_a = wa.wait_for("a's check done", HEAL, |e| is(e, "permission_check_done"));
    assert_eq!(
        (done_a["allowed"].as_u64(), done_a["denied"].as_u64()),
        (Some(3), Some(0)),
        "{done_a}"
    );

    assert_eq!(permission_denied(&wb, "AssociateAddress"), Some(1.0));
    assert_eq!(permission_denied(&wb, "DescribeAddresses"), Some(0.0));
    assert_eq!(
        permission_denied(&wb, "DescribeNetworkInterfaces"),
        Some(0.0)
    );
    assert_eq!(
        permission_denied(&wb, "AssignPrivateIpAddresses"),
        None,
        "no DryRun exists for it, so no answer yet"
    );
    assert_eq!(permission_denied(&wa, "AssociateAddress"), Some(0.0));
    let status = wb.status();
    let perms = status["vips"][0]["permissions"]
        .as_array()
        .unwrap_or_else(|| panic!("permissions in the status: {status}"));
    let associate = perms
        .iter()
        .find(|p| p["action"] == "AssociateAddress")
        .unwrap_or_else(|| panic!("{perms:?}"));
    assert_eq!(associate["allowed"], false, "{associate}");
    assert_eq!(associate["evidence"], "dry_run", "{associate}");

    // The same check, once, from the command line (as after provisioning).
    let (code, out, err) = lab.b.check_cloud();
    assert_eq!(code, Some(1), "a refusal fails check-cloud:\n{out}\n{err}");
    assert!(
        out.lines().any(|l| l.contains("ec2:AssociateAddress")
            && l.contains("REFUSED")
            && l.contains("UnauthorizedOperation")),
        "{out}"
    );
    let eni_a = lab.eni("a");
    assert!(
        out.contains("vip web (") && out.contains(&format!("on another ENI, {eni_a}")),
        "where the VIP is, seen from b: {out}"
    );
    assert!(
        out.ends_with("2 allowed, 1 refused, 0 unanswered: NOT OK\n"),
        "{out}"
    );
    let (code, out, err) = lab.a.check_cloud();
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("): here, on this node's ENI"), "{out}");
    assert!(
        out.ends_with("3 allowed, 0 refused, 0 unanswered: OK\n"),
        "{out}"
    );

    assert_eq!(lab.eip_on(), "a", "the DryRun calls moved nothing");
    let calls = lab.mutating_calls();
    assert!(calls["watchdog"].is_null(), "no mutating call: {calls}");
}

/// Back off together: every EC2 call of b's watchdog is answered 503
/// RequestLimitExceeded for STORM (20 s) while b becomes MASTER. The
/// requests b sends (the fault proxy's count per 5 s) fall over the storm
/// instead of holding, the back-off shows in `vip_watchdog_cloud_backoff`,
/// and once the storm ends b claims and the EIP lands on b.
#[test]
fn a_throttle_storm_is_met_by_backing_off_together() {
    const STORM: Duration = Duration::from_secs(20);
    let mut lab = Lab::new();
    prepare(&mut lab, "own", false, None);
    let injected = lab.add_fault_proxy("b", "{}");
    let (wa, wb) = start(&mut lab);
    let storm = [
        "DescribeAddresses",
        "DescribeNetworkInterfaces",
        "AssignPrivateIpAddresses",
        "AssociateAddress",
        "DryRun:AssignPrivateIpAddresses",
        "DryRun:AssociateAddress",
    ]
    .map(|a| format!("\"{a}\": [\"throttle*\"]"))
    .join(", ");
    lab.set_faults("b", &format!("{{{storm}}}"));
    let began = std::time::Instant::now();
    fail_over_to_b(&mut lab, &wa, &wb);
    // Each refused request, when the proxy refused it, for the storm.
    let mut refused = vec![];
    while let Some(left) = STORM.checked_sub(began.elapsed()) {
        match injected.recv_timeout(left) {
            Ok(_) => refused.push(began.elapsed()),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
            Err(e) => panic!("the fault proxy: {e}"),
        }
    }
    let level = metric(&wb.metrics(), "vip_watchdog_cloud_backoff", &[]);
    lab.set_faults("b", "{}");
    let ended = std::time::Instant::now();
    wb.wait_for("b's claim converged", HEAL, |e| is(e, "claim_converged"));
    let per_5s: Vec<usize> = (0..4u64)
        .map(|i| {
            let (from, to) = (Duration::from_secs(5 * i), Duration::from_secs(5 * (i + 1)));
            refused.iter().filter(|t| **t >= from && **t < to).count()
        })
        .collect();
    eprintln!(
        "requests refused per 5 s of the storm: {per_5s:?}; back-off level at its end {level:?}; claim converged {:.1} s after it",
        ended.elapsed().as_secs_f64()
    );
    // Per-call retries alone held 3-5 requests a second through such a
    // storm (72 in 20 s); backing off together, at most one a second on
    // average, and no later 5 s above the first.
    assert!(
        per_5s[0] > 0
            && per_5s[1..].iter().all(|n| *n <= per_5s[0])
            && refused.len() as u64 <= STORM.as_secs(),
        "the request rate fell over the storm: {per_5s:?}"
    );
    assert!(level.is_some_and(|l| l >= 1.0), "back-off shown: {level:?}");
    assert_eq!(lab.eip_on(), "b");
    wb.wait_status("the back-off over", HEAL, |_| {
        metric(&wb.metrics(), "vip_watchdog_cloud_backoff", &[]) == Some(0.0)
    });
}
