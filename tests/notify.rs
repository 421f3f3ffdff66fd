//! The notify wrapper (`vip-watchdog notify -- SCRIPT`) as Keepalived's
//! `notify_master`, on a real Keepalived pair, real HAProxy and moto's EC2
//! server (patched by tests/moto/launch.py), the watchdogs at the shipped
//! defaults (`heal` mode, `grace` 10 s). EIP moves are timed by an outside
//! observer polling the emulator every 10 ms.

mod common;

use common::{FAILOVER, Lab, Watchdog, is, metric, next_move, unix};
use serde_json::Value;
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::Duration;

fn launch(lab: &mut Lab) -> (Watchdog, Watchdog) {
    lab.set_vip("heal", false);
    let pair = lab.start_pair();
    assert_eq!(lab.eip_on(), "a", "set-up puts the EIP on a");
    pair
}

fn runs(w: &Watchdog, outcome: &str) -> f64 {
    metric(
        &w.metrics(),
        "vip_watchdog_notify_runs_total",
        &[("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

/// One wrapped failover: to `to` (HAProxy stopped on a for "b", started
/// again for "a"), awaiting the new MASTER (then `during` on its
/// watchdog), the EIP's move as the outside observer saw it, the VIP seen
/// here and the wrapper's report. Returns the watchdog's sample minus the
/// observer's (s), the vip_arrived event and the report.
fn wrapped_failover(
    lab: &mut Lab,
    (wa, wb): (&Watchdog, &Watchdog),
    observer: &Receiver<String>,
    to: &str,
    during: impl Fn(&Watchdog),
) -> (f64, Value, Value) {
    wa.forget_past();
    wb.forget_past();
    let w = if to == "a" {
        lab.a.start_haproxy();
        wa
    } else {
        lab.a.kill_haproxy();
        wb
    };
    w.wait_state("master", FAILOVER);
    during(w);
    let (moved_at, eni) = next_move(observer, FAILOVER);
    assert_eq!(eni, lab.eni(to), "the EIP moved to {to}");
    let arrived = w.wait_for("the VIP seen here", FAILOVER, |e| is(e, "vip_arrived"));
    let report = w.wait_for("the wrapper's report", FAILOVER, |e| {
        is(e, "notify_succeeded")
    });
    assert_eq!(arrived["moved_by"], "notify_script", "{arrived}");
    let seen = unix(arrived["seen_at"].as_str().expect("seen_at"));
    (seen - moved_at, arrived, report)
}

/// A notify script that hangs is killed with its process group at the
/// wrapper's timeout (5 s here, set in keepalived.conf as a user would),
/// and the watchdog heals at once: before `grace` (10 s) would have let it.
#[test]
fn a_hung_notify_script_is_killed_at_its_timeout_and_the_watchdog_heals_at_once() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_notify_wrapped("b", Some("5s"), "delayed:600");
    let (wa, wb) = launch(&mut lab);
    let observer = lab.start_observer(300);
    assert_eq!(next_move(&observer, FAILOVER).1, lab.eni("a"));
    wb.forget_past();
    lab.a.kill_haproxy();
    let master = wb.wait_state("master", FAILOVER);
    let master_at = unix(master["timestamp"].as_str().expect("timestamp"));
    let reported = wb.wait_for("the wrapper's report", Duration::from_secs(15), |e| {
        is(e, "notify_failed")
    });
    assert_eq!(reported["outcome"], "timed_out", "{reported}");
    assert_eq!(reported["vrrp_instance"], "VI_1", "{reported}");
    let ran = reported["duration_ms"].as_u64().expect("duration_ms");
    assert!(
        (5000..6500).contains(&ran),
        "killed at the 5 s timeout, not later: {reported}"
    );
    let (moved_at, eni) = next_move(&observer, Duration::from_secs(15));
    assert_eq!(eni, lab.eni("b"), "healed onto b");
    let after = moved_at - master_at;
    assert!(
        after < 10.0,
        "healed {after:.2} s after the MASTER line: before grace (10 s) ended"
    );
    let arrived = wb.wait_for("the VIP seen here", FAILOVER, |e| is(e, "vip_arrived"));
    assert_eq!(arrived["moved_by"], "watchdog", "{arrived}");
    assert_eq!(runs(&wb, "timed_out"), 1.0);
    assert_eq!(runs(&wb, "succeeded"), 0.0);
    // The script (python, sleeping) and its group are gone.
    let left = Command::new("pgrep")
        .args(["-f", "notify delayed:600"])
        .output()
        .expect("pgrep runs");
    assert!(
        left.stdout.is_empty(),
        "the hung script still runs: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    // The old MASTER's watchdog never claimed back.
    assert_eq!(lab.calls_by("watchdog", "a"), 0);
    drop(wa);
}

/// A notify script that succeeds: the watchdog asks the cloud as soon as
/// the wrapper reports, so its latency sample ends when the cloud really
/// changed: within 100 ms of the outside observer, in each of three
/// failovers, at the wrapper's default timeout.
#[test]
fn a_successful_run_gives_a_latency_sample_that_matches_the_observer() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_notify_wrapped("a", None, "ok");
    lab.set_notify_wrapped("b", None, "ok");
    let (wa, wb) = launch(&mut lab);
    let observer = lab.start_observer(600);
    assert_eq!(next_move(&observer, FAILOVER).1, lab.eni("a"));
    let mut errors = vec![];
    for (round, to) in ["b", "a", "b"].into_iter().enumerate() {
        let (error, arrived, report) =
            wrapped_failover(&mut lab, (&wa, &wb), &observer, to, |_| {});
        assert!(
            (-0.05..=0.1).contains(&error),
            "round {round}: the watchdog's sample ends {error:.3} s after the observer saw the move: {arrived}\nthe report: {report}"
        );
        errors.push(error);
    }
    println!(
        "notify wrapper: the watchdog's sample minus the observer's, per round (s): {errors:.3?}"
    );
    // a's first election at start-up ran it too.
    assert_eq!((runs(&wa, "succeeded"), runs(&wb, "succeeded")), (2.0, 2.0));
    // The wrapper reached them on their Unix sockets (owner only); the TCP
    // listener has no notify route that another process could answer.
    for n in [&lab.a, &lab.b] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(n.dir.join("run").join("local.sock"))
            .expect("the notify socket")
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o600);
    }
    assert_eq!(wa.http_code("/v1/notify/gate"), "404");
    let calls = lab.mutating_calls();
    assert!(
        calls["watchdog"].is_null(),
        "the scripts moved it; no watchdog mutating call: {calls}"
    );
}

/// A wrapped notify script that exits 0 without moving anything (an empty
/// or wrong script): its end ends grace like a failure's, the view asked
/// for after the report shows the EIP elsewhere, and the watchdog heals at
/// once instead of waiting out the whole `grace` (10 s).
#[test]
fn a_script_that_succeeds_without_moving_the_eip_is_healed_before_grace() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_notify_wrapped("b", None, "noop");
    let (wa, wb) = launch(&mut lab);
    let observer = lab.start_observer(300);
    assert_eq!(next_move(&observer, FAILOVER).1, lab.eni("a"));
    wb.forget_past();
    lab.a.kill_haproxy();
    let master = wb.wait_state("master", FAILOVER);
    let master_at = unix(master["timestamp"].as_str().expect("timestamp"));
    wb.wait_for("the wrapper's report", FAILOVER, |e| {
        is(e, "notify_succeeded")
    });
    let (moved_at, eni) = next_move(&observer, FAILOVER);
    assert_eq!(eni, lab.eni("b"), "healed onto b");
    let after = moved_at - master_at;
    assert!(
        after < 10.0,
        "healed {after:.2} s after the MASTER line: before grace (10 s) ended"
    );
    let arrived = wb.wait_for("the VIP seen here", FAILOVER, |e| is(e, "vip_arrived"));
    assert_eq!(arrived["moved_by"], "watchdog", "{arrived}");
    assert_eq!(runs(&wb, "succeeded"), 1.0);
    assert_eq!(lab.calls_by("watchdog", "a"), 0);
    drop(wa);
}

/// A wrapped script that lingers 0.8 s after its last call (the AWS CLI
/// takes that long to exit): the watchdog watches the cloud every 200 ms
/// while the run is in flight, so it learns the script's move from a
/// describe, not at the script's exit: its latency sample ends within
/// 250 ms of the outside observer, in each of two failovers.
#[test]
fn a_lingering_script_s_move_is_seen_while_it_runs() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_notify_wrapped("a", None, "linger:0.8");
    lab.set_notify_wrapped("b", None, "linger:0.8");
    let (wa, wb) = launch(&mut lab);
    let observer = lab.start_observer(600);
    assert_eq!(next_move(&observer, FAILOVER).1, lab.eni("a"));
    let mut errors = vec![];
    for (round, to) in ["b", "a"].into_iter().enumerate() {
        let (error, arrived, report) = wrapped_failover(&mut lab, (&wa, &wb), &observer, to, |w| {
            w.wait_for("the run watched", FAILOVER, |e| is(e, "notify_started"));
        });
        let seen = unix(arrived["seen_at"].as_str().expect("seen_at"));
        let reported = unix(report["timestamp"].as_str().expect("timestamp"));
        assert!(
            (-0.05..=0.25).contains(&error) && seen < reported,
            "round {round}: the sample ends {error:.3} s after the observer's move, the report came at {reported:.3}: {arrived}"
        );
        errors.push(error);
    }
    println!(
        "a script lingering 0.8 s: the watchdog's sample minus the observer's, per round (s): {errors:.3?}"
    );
    let calls = lab.mutating_calls();
    assert!(
        calls["watchdog"].is_null(),
        "the scripts moved it; no watchdog mutating call: {calls}"
    );
}
