//! The database pair: the VIP follows the primary, not mere
//! liveness. Real PostgreSQL from Debian's packages on each node (a primary
//! on a, a server in recovery on b), each Keepalived tracking the role
//! (`weight 60`: a primary outranks any replica), the watchdogs probing
//! with `kind = "postgres"`, `own` mode at the shipped defaults, moto's EC2
//! server (patched by tests/moto/launch.py). Calls counted at the emulator.

mod common;

use common::sampler::AddressSampler;
use common::{FAILOVER, Lab, SETTLE, Watchdog, is, metric, next_move, unix};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::{Duration, SystemTime};

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A database pair: a primary on a, a replica on b, Keepalived and the
/// watchdogs tracking the role; `configure` sets the VIP (and whatever
/// goes with it). Returns once a is MASTER with its probe up and sees the
/// VIP here, and b is BACKUP with its probe down (a replica).
fn start_database_pair(configure: impl FnOnce(&mut Lab)) -> (Lab, Watchdog, Watchdog) {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.a.start_postgres(false);
    lab.b.start_postgres(true);
    assert!(!lab.a.pg_in_recovery() && lab.b.pg_in_recovery());
    configure(&mut lab);
    for n in lab.nodes_mut() {
        n.write_configs();
    }
    let (wa, wb) = lab.start_pair();
    wa.wait_status("a, the primary: its probe up", SETTLE, |s| {
        s["probe"]["health"] == "up"
    });
    wb.wait_status("b's probe: a replica", SETTLE, |s| {
        s["probe"]["health"] == "down"
    });
    (lab, wa, wb)
}

/// a's Keepalived stops while its database is still the primary: b
/// becomes VRRP MASTER as a replica, and its watchdog holds (the probe
/// says replica) well past `min_master_age`: no call. Then the DBA demotes
/// a and promotes b: b's watchdog claims, after the promotion. When a's
/// Keepalived comes back with a as a replica, b stays MASTER and a's
/// watchdog never claims.
#[test]
fn the_eip_follows_the_primary_and_a_replica_never_claims() {
    let (mut lab, wa, wb) = start_database_pair(|lab| lab.set_vip("own", false));
    lab.reset_api_calls();

    // a's Keepalived goes; a's database is still the primary.
    wb.forget_past();
    lab.a.signal_keepalived(nix::sys::signal::Signal::SIGTERM);
    lab.a.reap_keepalived();
    let master = wb.wait_state("master", FAILOVER);
    let since = unix(master["timestamp"].as_str().expect("timestamp"));
    let held = wb.wait_status("b MASTER past min_master_age, holding", SETTLE, |s| {
        epoch_now() - since > 5.0 && s["vips"][0]["verdict"] == "hold"
    });
    assert!(
        held["vips"][0]["why"]
            .as_str()
            .is_some_and(|w| w.contains("the local probe is down")),
        "{held}"
    );
    assert_eq!(lab.eip_on(), "a", "no replica took it");
    assert!(lab.api_calls()["watchdog b"]["AssociateAddress"].is_null());

    // The DBA's switchover: demote a, promote b.
    lab.a.pg_demote();
    let promoted_at = epoch_now();
    lab.b.pg_promote();
    assert!(lab.a.pg_in_recovery() && !lab.b.pg_in_recovery());
    let claim = wb.wait_for("b's claim", FAILOVER, |e| is(e, "claim_started"));
    let claimed_at = unix(claim["timestamp"].as_str().expect("timestamp"));
    assert!(
        claimed_at > promoted_at,
        "claimed at {claimed_at:.3}, before the promotion at {promoted_at:.3}"
    );
    wb.wait_status("b sees the EIP here", FAILOVER, |s| {
        s["vips"][0]["cloud"]["where"] == "here"
    });
    assert_eq!(lab.eip_on(), "b");

    // a's Keepalived returns, a a replica: b (primary) keeps MASTER.
    wa.forget_past();
    lab.a.start_keepalived();
    wa.wait_state("backup", SETTLE);
    wa.wait_status("a's probe: a replica", SETTLE, |s| {
        s["probe"]["health"] == "down"
    });
    assert_eq!(wb.status()["instances"][0]["state"], "master");
    assert_eq!(lab.eip_on(), "b");
    // b's one assign moved the EIP with its private IP: no associate.
    let calls = lab.api_calls();
    assert_eq!(
        calls["watchdog b"]["AssignPrivateIpAddresses"], 1,
        "{calls}"
    );
    assert!(calls["watchdog b"]["AssociateAddress"].is_null(), "{calls}");
    assert!(
        calls["watchdog a"]["AssignPrivateIpAddresses"].is_null(),
        "{calls}"
    );
}

/// The database pair with `handover = "break_before_make"` (shipped
/// fence_wait, 30 s): the private IP itself as the VIP (`kind =
/// "private_ip"`), carried by the watchdogs (`manage_address`), the peer
/// channel on. Returns once a, the primary, is MASTER with the address on
/// its host and the VIP on its ENI, b a replica and BACKUP without it.
fn break_before_make_pair() -> (Lab, Watchdog, Watchdog) {
    let (lab, wa, wb) = start_database_pair(|lab| {
        lab.add_peer_channel(true);
        lab.set_manage_address();
        lab.set_break_before_make();
        lab.set_private_ip_vip("own");
    });
    wa.wait_status("a carries the address and sees the VIP here", SETTLE, |s| {
        s["vips"][0]["cloud"]["where"] == "here"
            && s["vips"][0]["private_ip_on_host"] == true
            && s["vips"][0]["handover"]["mode"] == "break_before_make"
    });
    assert!(lab.a.has_vip() && !lab.b.has_vip());
    assert_eq!(lab.private_ip_on(), "a");
    (lab, wa, wb)
}

/// A switchover: the DBA demotes a (still MASTER, as a replica outranks
/// none: it keeps the address, rule A4) and promotes b, which now
/// outranks a. a, BACKUP, removes the address at once and says so; only
/// then does b add it and claim. An outside observer samples both hosts'
/// addresses (new holder first) and the cloud's view every 10 ms: never
/// both hosts at once, and the cloud moves the VIP to b only after a let
/// go.
#[test]
fn a_promotion_hands_over_break_before_make() {
    let (mut lab, wa, wb) = break_before_make_pair();
    let cloud = lab.start_private_ip_observer(120);
    let (_, first) = next_move(&cloud, SETTLE);
    assert_eq!(first, lab.eni("a"));
    let hosts = AddressSampler::start(&lab.a.ns, &lab.b.ns, Duration::from_secs(120));

    lab.a.pg_demote();
    wa.wait_status("a, demoted, still MASTER", SETTLE, |s| {
        s["probe"]["health"] == "down" && s["instances"][0]["state"] == "master"
    });
    assert!(lab.a.has_vip(), "a MASTER keeps the address (A4)");
    wb.forget_past();
    lab.b.pg_promote();
    wb.wait_state("master", FAILOVER);
    let claim = wb.wait_for("b's claim", FAILOVER, |e| is(e, "claim_started"));
    let why = claim["why"].as_str().unwrap_or_default();
    assert!(
        why.contains("break before make: the old holder reported the address removed"),
        "{claim}"
    );
    wb.wait_status("b sees the VIP here", FAILOVER, |s| {
        s["vips"][0]["cloud"]["where"] == "here"
    });
    let (moved_at, to) = next_move(&cloud, FAILOVER);
    assert_eq!(to, lab.eni("b"), "the cloud moved it to b alone");
    // A few samples after the move, then the record.
    let settled = wb.wait_status("b carries the address", SETTLE, |s| {
        s["vips"][0]["private_ip_on_host"] == true
    });
    let samples = hosts.stop();
    let both: Vec<_> = samples.iter().filter(|s| s.old && s.new).collect();
    assert!(both.is_empty(), "both hosts carried it: {both:?}");
    let last_old = samples
        .iter()
        .filter(|s| s.old)
        .map(|s| s.at)
        .fold(f64::MIN, f64::max);
    let first_new = samples
        .iter()
        .find(|s| s.new)
        .map(|s| s.at)
        .expect("a sample with the address on b");
    assert!(
        last_old < first_new,
        "a at {last_old:.3}, b from {first_new:.3}"
    );
    assert!(
        last_old < moved_at,
        "the cloud moved the VIP to b at {moved_at:.3}, while a still had the address at {last_old:.3}"
    );
    let gaps: Vec<f64> = samples.windows(2).map(|w| w[1].at - w[0].at).collect();
    let max_gap = gaps.iter().copied().fold(0.0, f64::max);
    println!(
        "{} host samples (largest gap {:.1} ms); a let go at {last_old:.3} (last sample with it), b added it by {first_new:.3}, the cloud moved at {moved_at:.3}; b's status: {}",
        samples.len(),
        max_gap * 1000.0,
        settled["vips"][0]["handover"]
    );
    // a's own words: the address went first.
    assert!(
        wa.logged(|e| is(e, "address_change_started") && e["change"] == "remove")
            .iter()
            .any(|e| e["why"]
                .as_str()
                .is_some_and(|w| w.contains("break before make"))),
        "a's log: {}",
        wa.log_text()
    );
}

/// The old primary's host dies (its watchdog, Keepalived and database
/// killed at once): b becomes MASTER, is promoted (as a DBA or a
/// notify_master script would), and then waits: its peer is silent, so it
/// is taken as down only fence_wait (30 s, the shipped default) after b's
/// MASTER line; then b adds the address and claims. The status says what
/// it waits for.
#[test]
fn a_dead_old_primary_is_taken_over_after_fence_wait() {
    let (mut lab, mut wa, wb) = break_before_make_pair();
    wb.forget_past();
    wa.child.kill().expect("kill a's watchdog");
    wa.child.wait().expect("reap a's watchdog");
    kill(Pid::from_raw(lab.a.vrrp_pid()), Signal::SIGKILL).expect("kill a's VRRP child");
    lab.a.signal_keepalived(Signal::SIGKILL);
    lab.a.reap_keepalived();
    lab.a.pg_kill();
    let master = wb.wait_state("master", FAILOVER);
    let master_at = unix(master["timestamp"].as_str().expect("timestamp"));
    lab.b.pg_promote();
    let waiting = wb.wait_status("b, promoted, waits for fence_wait", SETTLE, |s| {
        s["probe"]["health"] == "up" && s["vips"][0]["handover"]["peer"] == "waiting"
    });
    let h = &waiting["vips"][0]["handover"];
    assert!(
        h["why"]
            .as_str()
            .is_some_and(|w| w.contains("the peer's watchdog is silent")),
        "{h}"
    );
    assert!(h["fence_until"].is_string(), "{h}");
    assert!(!lab.b.has_vip(), "no address before fence_wait");
    let waiting = |m: &str| metric(m, "vip_watchdog_handover_waiting", &[("vip", "web")]);
    assert_eq!(
        waiting(&wb.metrics()),
        Some(1.0),
        "the gauge while held back"
    );
    let claim = wb.wait_for("b's claim after fence_wait", Duration::from_secs(60), |e| {
        is(e, "claim_started")
    });
    let claimed_at = unix(claim["timestamp"].as_str().expect("timestamp"));
    let waited = claimed_at - master_at;
    println!("b MASTER at {master_at:.3}, claimed {waited:.3} s later (fence_wait 30 s)");
    assert!(
        waited >= 29.9,
        "claimed {waited:.3} s after its MASTER line"
    );
    assert!(
        claim["why"]
            .as_str()
            .is_some_and(|w| w.contains("silent for fence_wait")),
        "{claim}"
    );
    wb.wait_status("b sees the VIP here", FAILOVER, |s| {
        s["vips"][0]["cloud"]["where"] == "here"
    });
    assert!(lab.b.has_vip());
    assert_eq!(lab.private_ip_on(), "b");
    assert_eq!(waiting(&wb.metrics()), Some(0.0), "the gauge once claimed");
}
