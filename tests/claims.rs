//! Claims on fresh truth only, at the shipped defaults (`verify_interval`
//! 30 s, `grace` 10 s, `min_master_age` 3 s, `max_claims` 3 per 10 min):
//! a real Keepalived pair, real HAProxy, moto's EC2 server (patched by
//! tests/moto/launch.py) and, where a call must hang, the fault proxy
//! (tests/moto/faults.py). Mutating calls are counted at the emulator; EIP
//! moves are timed by an outside observer polling the emulator every 10 ms.

mod common;

use common::{FAILOVER, Lab, SETTLE, Watchdog, is, metric, next_move, unix};
use std::time::Duration;

/// A claim's wait at the defaults (grace 10 s) plus a describe and the calls.
const HEAL: Duration = Duration::from_secs(40);

/// Where the watchdog's sample may lie after the observer's move in `heal`
/// mode: the fast pace after a transition (`fast_verify_interval` 1 s, plus
/// its jitter and the verifier's minimum gap) and a describe's round trip.
const HEAL_MODE_ERROR: f64 = 1.5;

fn start(lab: &mut Lab, mode: &str) -> (Watchdog, Watchdog) {
    lab.set_vip(mode, false);
    launch(lab)
}

/// Both watchdogs, then HAProxy and Keepalived; returns once a is MASTER
/// and sees the EIP here.
fn launch(lab: &mut Lab) -> (Watchdog, Watchdog) {
    let pair = lab.start_pair();
    assert_eq!(lab.eip_on(), "a", "set-up puts the EIP on a");
    pair
}

/// Fails over to `to`: from a to b by stopping a's HAProxy; from b to a by
/// starting it again (a has the higher priority and preempts). Returns the
/// new MASTER's `vrrp state changed` event.
fn fail_over(lab: &mut Lab, to: &str, wa: &Watchdog, wb: &Watchdog) -> serde_json::Value {
    wa.forget_past();
    wb.forget_past();
    if to == "b" {
        lab.a.kill_haproxy();
        wb.wait_state("master", FAILOVER)
    } else {
        lab.a.start_haproxy();
        wa.wait_state("master", FAILOVER)
    }
}

fn count(w: &Watchdog, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(&w.metrics(), name, labels).unwrap_or(0.0)
}

fn samples(w: &Watchdog, moved_by: &str) -> f64 {
    count(
        w,
        "vip_watchdog_failover_latency_seconds_count",
        &[("vip", "web"), ("moved_by", moved_by)],
    )
}

fn heals(w: &Watchdog) -> f64 {
    ["missed", "elsewhere", "stolen", "drifted"]
        .iter()
        .map(|r| {
            count(
                w,
                "vip_watchdog_heals_total",
                &[("vip", "web"), ("reason", r)],
            )
        })
        .sum()
}

/// Waits until the new MASTER `w` has a cloud view asked for after its
/// grace ended: the moment the old watchdog claimed on a stale view.
fn wait_past_grace(w: &Watchdog) {
    w.wait_status("a view taken after grace", HEAL, |s| {
        let since = s["instances"][0]["since"].as_str().map(unix);
        let seen = s["vips"][0]["observed_at"].as_str().map(unix);
        matches!((since, seen), (Some(m), Some(v)) if v >= m + 10.0)
    });
}

/// Five failovers in a few minutes with a working notify script, `heal`
/// mode, the shipped verify interval: no mutating call from either
/// watchdog, no heal, and five latency samples (moved by the notify
/// script), each within `HEAL_MODE_ERROR` after the observer saw the EIP
/// move. Then a sixth where the script fails: healed after grace.
#[test]
fn a_working_notify_script_costs_the_watchdog_nothing_and_a_failed_one_is_healed() {
    let mut lab = Lab::new();
    lab.add_cloud();
    let switch = lab.a.dir.join("notify.switch");
    lab.set_notify("a", Some(&format!("switch:{}", switch.display())));
    lab.set_notify("b", Some("ok"));
    let (wa, wb) = start(&mut lab, "heal");
    let observer = lab.start_observer(900);
    assert_eq!(
        next_move(&observer, FAILOVER).1,
        lab.eni("a"),
        "where it starts"
    );
    let mut errors = vec![];
    for (round, to) in ["b", "a", "b", "a", "b"].into_iter().enumerate() {
        fail_over(&mut lab, to, &wa, &wb);
        let w = if to == "a" { &wa } else { &wb };
        let (moved_at, eni) = next_move(&observer, FAILOVER);
        assert_eq!(
            eni,
            lab.eni(to),
            "round {round}: the script moved it to {to}"
        );
        let arrived = w.wait_for("the VIP seen here", HEAL, |e| is(e, "vip_arrived"));
        assert_eq!(arrived["moved_by"], "notify_script", "{arrived}");
        let seen = unix(arrived["seen_at"].as_str().expect("seen_at"));
        let error = seen - moved_at;
        assert!(
            (-0.05..=HEAL_MODE_ERROR).contains(&error),
            "round {round}: the watchdog saw the move {error:.3} s after the observer: {arrived}"
        );
        errors.push(error);
        wait_past_grace(w);
    }
    println!("heal mode: the watchdog's sample after the observer's, per round (s): {errors:.3?}");
    let calls = lab.mutating_calls();
    assert!(
        calls["watchdog"].is_null(),
        "no watchdog mutating call: {calls}"
    );
    assert_eq!((heals(&wa), heals(&wb)), (0.0, 0.0));
    assert_eq!(
        samples(&wa, "notify_script") + samples(&wb, "notify_script"),
        5.0
    );
    assert_eq!(samples(&wa, "watchdog") + samples(&wb, "watchdog"), 0.0);

    // The sixth: a's script fails; a's watchdog heals after grace.
    std::fs::write(&switch, "fail").unwrap();
    let master = fail_over(&mut lab, "a", &wa, &wb);
    let claim = wa.wait_for("a's claim", HEAL, |e| is(e, "claim_started"));
    assert_eq!(claim["reason"], "elsewhere", "{claim}");
    let claimed_after =
        unix(claim["timestamp"].as_str().unwrap()) - unix(master["timestamp"].as_str().unwrap());
    assert!(claimed_after >= 10.0, "not before grace: {claimed_after} s");
    wa.wait_for("a's claim converged", HEAL, |e| is(e, "claim_converged"));
    assert_eq!(lab.eip_on(), "a");
    assert_eq!(samples(&wa, "watchdog"), 1.0);
    // One call: the assign, which moved the EIP with its private IP (as in
    // EC2); the describe after it showed that, so no associate was sent.
    assert_eq!(lab.calls_by("watchdog", "a"), 1, "{}", lab.mutating_calls());
}

/// Ten failovers in a few minutes in `own` mode, no notify script: ten
/// claims, none damped (claims that converge count against nothing), the
/// EIP on the new MASTER each time.
#[test]
fn own_mode_follows_ten_failovers_without_damping() {
    let mut lab = Lab::new();
    lab.add_cloud();
    let (wa, wb) = start(&mut lab, "own");
    for (round, to) in ["b", "a"].into_iter().cycle().take(10).enumerate() {
        fail_over(&mut lab, to, &wa, &wb);
        let w = if to == "a" { &wa } else { &wb };
        w.wait_for("the claim converged", HEAL, |e| is(e, "claim_converged"));
        assert_eq!(lab.eip_on(), to, "round {round}");
    }
    let damped = count(&wa, "vip_watchdog_claims_damped_total", &[("vip", "web")])
        + count(&wb, "vip_watchdog_claims_damped_total", &[("vip", "web")]);
    assert_eq!(damped, 0.0);
    assert_eq!(heals(&wa) + heals(&wb), 10.0);
    assert_eq!(samples(&wa, "watchdog") + samples(&wb, "watchdog"), 10.0);
    assert_eq!(wb.status()["vips"][0]["counted_claims"], 0);
}

/// A claim overtaken by events: the proxy holds b's first mutating call
/// (the assign, which in EC2 and the patched emulator moves the EIP with the
/// private IP) while b's HAProxy stops and a takes over again. The held call
/// times out; b describes, sees its verdict gone, and sends nothing more.
#[test]
fn a_claim_overtaken_by_events_is_dropped_not_sent_again() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_vip("own", false);
    let injected = lab.add_fault_proxy(
        "b",
        r#"{"AssignPrivateIpAddresses": ["hold"], "AssociateAddress": ["hold"]}"#,
    );
    let (wa, wb) = launch(&mut lab);
    fail_over(&mut lab, "b", &wa, &wb);
    wb.wait_for("b's claim", HEAL, |e| is(e, "claim_started"));
    assert_eq!(
        injected.recv_timeout(HEAL).expect("the assign is held"),
        "fault AssignPrivateIpAddresses hold"
    );
    // While the call hangs: b's HAProxy stops, a's comes back.
    lab.b.kill_haproxy();
    lab.a.start_haproxy();
    wb.wait_for("b's claim dropped", HEAL, |e| is(e, "claim_dropped"));
    wa.wait_state("master", FAILOVER);
    wa.wait_status("a converged", HEAL, |s| {
        s["vips"][0]["cloud"]["where"] == "here"
    });
    assert_eq!(lab.eip_on(), "a", "the EIP stays with the peer");
    assert_eq!(lab.calls_by("watchdog", "b"), 0, "{}", lab.mutating_calls());
    assert!(
        injected.try_recv().is_err(),
        "nothing else was sent to the proxy's plan"
    );
    assert_eq!(
        count(&wb, "vip_watchdog_claims_dropped_total", &[("vip", "web")]),
        1.0
    );
    assert_eq!(
        count(
            &wb,
            "vip_watchdog_cloud_api_calls_total",
            &[
                ("operation", "AssignPrivateIpAddresses"),
                ("outcome", "timeout")
            ]
        ),
        1.0,
        "timed out once, never retried"
    );
}

/// A late notify run on the BACKUP: a was MASTER for a moment, its slow
/// script (12 s) moves the EIP long after b became MASTER again. b's
/// watchdog, at the shipped verify interval, sees it within the fast pace
/// after its transition, and takes it back `min_master_age` after the move,
/// without back-off (the first move away in its mastership is no fight).
#[test]
fn a_late_notify_run_on_the_backup_is_taken_back_within_seconds() {
    let mut lab = Lab::new();
    lab.add_cloud();
    let switch = lab.a.dir.join("notify.switch");
    lab.set_notify("a", Some(&format!("switch:{}", switch.display())));
    lab.set_notify("b", Some("ok"));
    let (wa, wb) = start(&mut lab, "heal");
    // From now on a's notify_master is slow.
    std::fs::write(&switch, "delay 12").unwrap();
    fail_over(&mut lab, "b", &wa, &wb);
    wb.wait_for("b sees it here", HEAL, |e| is(e, "vip_arrived"));
    // a is MASTER for a moment: its slow notify_master starts, then a fails.
    fail_over(&mut lab, "a", &wa, &wb);
    let observer = lab.start_observer(120);
    assert_eq!(
        next_move(&observer, FAILOVER).1,
        lab.eni("b"),
        "where it starts"
    );
    lab.a.kill_haproxy();
    wb.wait_state("master", FAILOVER);
    let (stolen_at, eni) = next_move(&observer, HEAL);
    assert_eq!(eni, lab.eni("a"), "a's late script took it");
    let (back_at, eni) = next_move(&observer, HEAL);
    assert_eq!(eni, lab.eni("b"), "b's watchdog took it back");
    let took = back_at - stolen_at;
    // min_master_age counts from the request of the describe that saw the
    // move, which may leave a few ms before the observer (polling every
    // 10 ms) sees the move land: hence 2.9, not 3.0.
    assert!(
        (2.9..8.0).contains(&took),
        "back on the MASTER {took:.2} s after the move (min_master_age 3 s)"
    );
    let claim = wb.wait_for("b's claim", HEAL, |e| is(e, "claim_started"));
    assert_eq!(claim["reason"], "stolen", "{claim}");
    assert_eq!(
        count(&wb, "vip_watchdog_claims_damped_total", &[("vip", "web")]),
        0.0
    );
    assert_eq!(lab.calls_by("watchdog", "a"), 0, "{}", lab.mutating_calls());
    println!("stolen at {stolen_at:.3}, back at {back_at:.3}: {took:.3} s");
}

/// A watchdog restarted on the MASTER, twice: no latency sample (it did not
/// see the mastership begin), no claim, and its damping carried over (one
/// claim failed before: EC2 refused the assign once).
#[test]
fn a_watchdog_restarted_on_the_master_records_nothing_and_keeps_its_damping() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_vip("own", false);
    let injected = lab.add_fault_proxy("b", r#"{"AssignPrivateIpAddresses": ["unauthorized"]}"#);
    let wa = lab.a.start_watchdog(true);
    let mut wb = lab.b.start_watchdog(true);
    lab.start_services();
    wa.wait_state("master", SETTLE);
    wb.wait_state("backup", SETTLE);
    fail_over(&mut lab, "b", &wa, &wb);
    wb.wait_for("b's first claim fails", HEAL, |e| is(e, "claim_failed"));
    assert_eq!(
        injected.recv_timeout(HEAL).unwrap(),
        "fault AssignPrivateIpAddresses unauthorized"
    );
    wb.wait_for("b's second claim converged", HEAL, |e| {
        is(e, "claim_converged")
    });
    assert_eq!(wb.status()["vips"][0]["counted_claims"], 1);
    let calls = lab.calls_by("watchdog", "b");
    for restart in 1..=2 {
        assert!(wb.stop().success());
        wb = lab.b.start_watchdog(true);
        wb.wait_learned("master", "json_dump");
        let status = wb.wait_status("b sees the EIP here", HEAL, |s| {
            s["vips"][0]["cloud"]["where"] == "here"
        });
        assert_eq!(
            status["vips"][0]["counted_claims"], 1,
            "restart {restart}: {status}"
        );
        assert!(
            !wb.logged(|e| is(e, "damping_restored")).is_empty(),
            "restart {restart}"
        );
        let m = wb.metrics();
        assert_eq!(
            metric(
                &m,
                "vip_watchdog_failover_latency_seconds_count",
                &[("vip", "web")]
            ),
            None,
            "restart {restart}: no latency sample"
        );
        assert_eq!(heals(&wb), 0.0, "restart {restart}: no claim");
    }
    assert_eq!(
        lab.calls_by("watchdog", "b"),
        calls,
        "{}",
        lab.mutating_calls()
    );
}

/// A Keepalived frozen with SIGSTOP (both its processes) on the MASTER: the
/// watchdog reports it down at once and claims nothing; the peer takes over.
/// Resumed with SIGCONT, it is MASTER again (the higher priority), learnt
/// anew, and claims only after min_master_age from the resume.
#[test]
fn a_stopped_keepalived_on_the_master_is_down_and_claims_nothing() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let mut lab = Lab::new();
    lab.add_cloud();
    let (wa, wb) = start(&mut lab, "own");
    wa.forget_past();
    let pids = [lab.a.keepalived_pid(), lab.a.vrrp_pid()].map(Pid::from_raw);
    for p in pids {
        kill(p, Signal::SIGSTOP).unwrap();
    }
    let gone = wa.wait_for("keepalived down", FAILOVER, |e| is(e, "keepalived_gone"));
    assert!(
        gone["detail"]
            .as_str()
            .is_some_and(|d| d.contains("stopped (state T)")),
        "{gone}"
    );
    wa.wait_state("stop", FAILOVER);
    assert_eq!(
        metric(&wa.metrics(), "vip_watchdog_keepalived_up", &[]),
        Some(0.0)
    );
    wb.wait_state("master", FAILOVER);
    wb.wait_for("b's claim converged", HEAL, |e| is(e, "claim_converged"));
    assert_eq!(lab.eip_on(), "b");
    assert_eq!(lab.calls_by("watchdog", "a"), 0, "{}", lab.mutating_calls());
    assert_eq!(wa.status()["keepalived"]["running"], false);
    // A stopped Keepalived may resume as MASTER: it is not released
    // (release rule R2), and b took over on Keepalived's own detection.
    assert_eq!(wa.releases("sent"), Some(0.0));
    assert_eq!(lab.b.keepalived_stat("pri_zero_rcvd"), 0);
    // Resumed, the same Keepalived writes no line for the MASTER state it
    // kept: a's watchdog learns it again, its age counting from the resume,
    // and a (the higher priority) takes the EIP back after min_master_age.
    wa.forget_past();
    for p in pids {
        kill(p, Signal::SIGCONT).unwrap();
    }
    let learned = wa.wait_for("a's state learned again", FAILOVER, |e| {
        is(e, "vrrp_learned")
    });
    assert!(
        learned["reason"]
            .as_str()
            .is_some_and(|r| r.contains("resumed")),
        "{learned}"
    );
    wb.wait_state("backup", FAILOVER);
    let claim = wa.wait_for("a's claim", HEAL, |e| is(e, "claim_started"));
    let age =
        unix(claim["timestamp"].as_str().unwrap()) - unix(learned["timestamp"].as_str().unwrap());
    assert!(
        age >= 3.0,
        "not before min_master_age from the resume: {age:.2} s"
    );
    wa.wait_for("a's claim converged", HEAL, |e| is(e, "claim_converged"));
    assert_eq!(lab.eip_on(), "a");
}

/// One wrong allocation ID fails EC2's batched describe for every VIP; the
/// verifier asks one by one, reports the wrong one (log, gauge, status,
/// check-cloud), and keeps watching the others.
#[test]
fn a_wrong_allocation_id_blinds_no_other_vip() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_vip("own", false);
    for n in lab.nodes_mut() {
        n.cloud_toml.push_str(
            "\n[[vip]]\nkind = \"eip\"\nname = \"typo\"\nallocation_id = \"eipalloc-00000000000000bad\"\nprivate_ip = \"10.213.0.101\"\nvrrp_instance = \"VI_1\"\nmode = \"own\"\n",
        );
    }
    let wa = lab.a.start_watchdog(true);
    let wb = lab.b.start_watchdog(true);
    lab.start_services();
    wa.wait_state("master", SETTLE);
    wb.wait_state("backup", SETTLE);
    let e = wa.wait_for("the wrong ID reported", SETTLE, |e| {
        is(e, "vip_allocation_unknown")
    });
    assert_eq!(e["vip"], "typo", "{e}");
    let status = wa.wait_status("web seen here", SETTLE, |s| {
        s["vips"][0]["cloud"]["where"] == "here"
    });
    assert_eq!(status["vips"][1]["allocation_known"], false, "{status}");
    assert_eq!(
        metric(
            &wa.metrics(),
            "vip_watchdog_vip_allocation_unknown",
            &[("vip", "typo")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &wa.metrics(),
            "vip_watchdog_vip_allocation_unknown",
            &[("vip", "web")]
        ),
        Some(0.0)
    );
    let (code, out, err) = lab.a.check_cloud();
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains(
            "vip typo (EIP eipalloc-00000000000000bad on this node's ENI, private IP 10.213.0.101): UNKNOWN"
        ),
        "{out}"
    );
    assert!(out.contains("vip web ("), "{out}");
}

/// EC2's describes are eventually consistent: every DescribeAddresses
/// answer b's watchdog gets lags the truth by 3 s (the fault proxy answers
/// each with what the same request got 3 s earlier). b's claim is confirmed
/// only once the answers catch up; it never claims a second time, and a
/// never acts.
#[test]
fn describes_that_lag_the_truth_cost_no_second_claim() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_vip("own", false);
    let injected = lab.add_fault_proxy("b", r#"{"DescribeAddresses": ["lag:3*"]}"#);
    let (wa, wb) = launch(&mut lab);
    fail_over(&mut lab, "b", &wa, &wb);
    let claim = wb.wait_for("b's claim", HEAL, |e| is(e, "claim_started"));
    let done = wb.wait_for("b's claim converged", HEAL, |e| is(e, "claim_converged"));
    let took =
        unix(done["timestamp"].as_str().unwrap()) - unix(claim["timestamp"].as_str().unwrap());
    assert!(
        took >= 3.0,
        "confirmed only when the answers caught up: {took:.2} s"
    );
    assert_eq!(lab.eip_on(), "b");
    assert_eq!(
        lab.calls_by("watchdog", "b"),
        2,
        "one assign, one associate: {}",
        lab.mutating_calls()
    );
    assert_eq!(lab.calls_by("watchdog", "a"), 0, "{}", lab.mutating_calls());
    assert_eq!(heals(&wb), 1.0);
    assert!(
        injected
            .try_iter()
            .any(|f| f == "fault DescribeAddresses lag:3"),
        "the answers lagged"
    );
    // Later answers still lag, and show it here: no further claim.
    wb.wait_status("b's lagging view shows it here", HEAL, |s| {
        s["vips"][0]["cloud"]["where"] == "here" && s["vips"][0]["verdict"] == "hold"
    });
    assert_eq!(heals(&wb), 1.0);
}

/// Keepalived crashes on the MASTER (SIGKILL of its VRRP process, then of
/// the parent): a's watchdog sends the priority-0 advert Keepalived could
/// not (release_on_crash), b takes over and claims. Keepalived started
/// again on a is followed as before: a (the higher priority) is MASTER
/// again and takes the EIP back.
#[test]
fn a_crashed_master_is_released_and_a_restarted_keepalived_is_followed() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let mut lab = Lab::new();
    lab.add_cloud();
    let (wa, wb) = start(&mut lab, "own");
    wa.forget_past();
    wb.forget_past();
    kill(Pid::from_raw(lab.a.vrrp_pid()), Signal::SIGKILL).unwrap();
    lab.a.signal_keepalived(Signal::SIGKILL);
    lab.a.reap_keepalived();
    wa.wait_for("a's release", FAILOVER, |e| is(e, "release_sent"));
    wb.wait_state("master", FAILOVER);
    wb.wait_for("b's claim converged", HEAL, |e| is(e, "claim_converged"));
    assert_eq!(lab.eip_on(), "b");
    assert_eq!(lab.b.keepalived_stat("pri_zero_rcvd"), 1);

    wa.forget_past();
    lab.a.start_keepalived();
    wa.wait_state("master", FAILOVER);
    wa.wait_for("a's claim converged", HEAL, |e| is(e, "claim_converged"));
    assert_eq!(lab.eip_on(), "a");
    assert_eq!(wa.releases("sent"), Some(1.0));
}
