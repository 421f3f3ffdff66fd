//! Split brains the peer channel does not settle, on a real Keepalived pair with
//! real HAProxy and moto's EC2 server (patched by tests/moto/launch.py), the
//! watchdogs at the shipped defaults in `heal` mode next to each node's
//! notify script, as a user runs them. EIP moves are counted by an outside
//! observer polling the emulator every 10 ms.

mod common;

use common::{FAILOVER, Lab, Watchdog, is, metric, next_move};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// How long VRRP stays blocked one way: well past what a's rules 4, 5 and
/// 8 alone would wait before taking the EIP back (min_master_age 3 s, the
/// verify interval, grace 10 s).
const SPLIT_FOR: Duration = Duration::from_secs(30);

/// How long the EIP must then stay put: a verify interval and a damping
/// back-off's first step (10 s) with room.
const QUIET_FOR: Duration = Duration::from_secs(15);

/// A's next look at the cloud without a transition of its own: the shipped
/// verify interval (30 s) and its jitter (3 s), with room.
const VERIFY: Duration = Duration::from_secs(45);

/// The EIP's next move, within `within`, is a taking it back: to a's ENI,
/// by a's claim for reason "stolen". Returns when it moved.
fn a_takes_it_back(lab: &Lab, wa: &Watchdog, observer: &Receiver<String>, within: Duration) -> f64 {
    let (at, to) = next_move(observer, within);
    assert_eq!(to, lab.eni("a"), "a took it back");
    let claim = wa.wait_for("a's claim", FAILOVER, |e| is(e, "claim_started"));
    assert_eq!(claim["reason"], "stolen", "{claim}");
    at
}

/// A stray notify run for b moves the EIP to b; returns when it moved.
fn steal_for_b(lab: &Lab, observer: &Receiver<String>) -> f64 {
    lab.steal_eip_for("b");
    let (at, to) = next_move(observer, FAILOVER);
    assert_eq!(to, lab.eni("b"), "the steal");
    at
}

/// Rule 12: VRRP dropped on its way into b (a security group rule on one
/// side). b hears nothing, becomes MASTER too, and its notify script moves
/// the EIP to b. a still hears b's adverts: its Keepalived writes
/// `MASTER_RX_LOWER_PRI`, so a's watchdog leaves the EIP where b's script
/// put it for the whole split (no fight). Once VRRP gets through, b goes
/// BACKUP, the lines stop, and a's watchdog takes the EIP back, once.
/// A steal after that is taken back as a first move away (rule 8), not as
/// the next round of a fight that ended with the split (rule 9).
#[test]
fn a_one_way_split_moves_the_eip_once_during_it_and_once_after() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_notify("a", Some("ok"));
    lab.set_notify("b", Some("ok"));
    lab.set_vip("heal", false);
    let (wa, wb) = lab.start_pair();
    let observer = lab.start_observer(600);
    assert_eq!(next_move(&observer, FAILOVER).1, lab.eni("a"), "set-up");
    wa.forget_past();
    lab.reset_api_calls();

    lab.b.block_vrrp(true);
    wb.wait_state("master", FAILOVER);
    wa.wait_for("a's Keepalived hearing b", FAILOVER, |e| {
        is(e, "vrrp_other_master")
    });
    let (_, to) = next_move(&observer, FAILOVER);
    assert_eq!(to, lab.eni("b"), "b's notify script moved the EIP to b");
    wa.wait_for("a seeing the EIP moved away", VERIFY, |e| {
        is(e, "vip_moved_away")
    });
    match observer.recv_timeout(SPLIT_FOR) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!(
            "the EIP moved again during the split: {other:?}\n{}",
            wa.log_text()
        ),
    }
    assert_eq!(
        lab.calls_by("watchdog", "a"),
        0,
        "a's watchdog fought: {}",
        lab.mutating_calls()
    );
    assert_eq!(lab.eip_on(), "b");

    wa.forget_past();
    lab.b.block_vrrp(false);
    wb.wait_state("backup", FAILOVER);
    a_takes_it_back(&lab, &wa, &observer, FAILOVER);
    wa.wait_for("a's claim converged", FAILOVER, |e| {
        is(e, "claim_converged")
    });
    match observer.recv_timeout(QUIET_FOR) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("the EIP moved again after the split: {other:?}"),
    }
    assert_eq!(lab.calls_by("watchdog", "b"), 0, "{}", lab.mutating_calls());
    assert_eq!(lab.eip_on(), "a");

    // Rule 9 (issue 23, point 3): the split is over, and so is what it
    // counted. A steal now (a stray script run for b) is a first move away
    // in a's mastership again: taken back min_master_age after a sees it,
    // with no back-off, although a's mastership saw the move of the split.
    wa.forget_past();
    let stolen_at = steal_for_b(&lab, &observer);
    let moved = wa.wait_for("a seeing the steal", VERIFY, |e| {
        is(e, "vip_moved_away") || is(e, "vip_fight")
    });
    assert!(
        is(&moved, "vip_moved_away"),
        "a first move, not a fight: {moved}"
    );
    let back_at = a_takes_it_back(&lab, &wa, &observer, VERIFY);
    assert!(
        wa.logged(|e| is(e, "claim_damped")).is_empty(),
        "a backed off: {}",
        wa.log_text()
    );
    println!(
        "stolen at {stolen_at:.3}, back on a at {back_at:.3} ({:.1} s, a verify interval and min_master_age)",
        back_at - stolen_at
    );
}

/// How long the split-brain alert may take: its `for` (30 s) and a
/// Prometheus evaluation and notification, with room.
const ALERT: Duration = Duration::from_secs(90);

/// The CreateTags calls each node's watchdog made since recording was reset.
fn create_tags(lab: &Lab) -> (u64, u64) {
    let calls = lab.api_calls();
    let n = |node: &str| {
        calls[format!("watchdog {node}")]["CreateTags"]
            .as_u64()
            .unwrap_or(0)
    };
    (n("a"), n("b"))
}

/// Issue 23, point 2, at the shipped defaults but for `state_tags = true`:
/// VRRP and the peer channel both cut (a security group that blocks both).
/// b becomes MASTER and its notify script moves the EIP to b: the one move
/// of the partition. a sees the EIP moved away, reads b's fresh state tag
/// ("master healthy") in its describe, and leaves it there (rule 14) for as
/// long as the partition lasts: vip_watchdog_split_brain_in_cloud and the
/// SplitBrainInCloud alert (in a real Prometheus) name it. Once VRRP gets
/// through, b goes BACKUP and says so in its tag; a takes the EIP back,
/// once. A late steal by b, BACKUP, is still taken back (rule 8).
#[test]
fn a_full_partition_moves_the_eip_once_while_it_lasts_and_the_tags_name_it() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_notify("a", Some("ok"));
    lab.set_notify("b", Some("ok"));
    lab.add_peer_channel(true);
    lab.cloud_overrides.push(("state_tags", "true".into()));
    lab.set_vip("heal", false);
    for n in lab.nodes_mut() {
        n.listen = "0.0.0.0:9842".into();
    }
    let (wa, wb) = lab.start_pair();
    let prom = lab.start_prometheus(&[]);
    let observer = lab.start_observer(900);
    assert_eq!(next_move(&observer, FAILOVER).1, lab.eni("a"), "set-up");
    lab.reset_api_calls();
    let started = std::time::Instant::now();
    wa.forget_past();

    for n in [&lab.a, &lab.b] {
        n.block_vrrp(true);
        n.block_peer(true);
    }
    wb.wait_state("master", FAILOVER);
    let (_, to) = next_move(&observer, FAILOVER);
    assert_eq!(to, lab.eni("b"), "b's notify script moved the EIP to b");
    wa.wait_for("a seeing the EIP moved away", VERIFY, |e| {
        is(e, "vip_moved_away")
    });
    let tag = wa.wait_for("a reading b's state tag", FAILOVER, |e| {
        is(e, "state_tag_master") || is(e, "state_tag_not_master") || is(e, "state_tag_ignored")
    });
    assert!(is(&tag, "state_tag_master"), "{tag}");
    assert_eq!(tag["writer"], "b", "{tag}");
    wa.wait_metrics("a's split-brain gauge", FAILOVER, |m| {
        metric(m, "vip_watchdog_split_brain_in_cloud", &[("vip", "web")]) == Some(1.0)
    });
    wa.wait_for("a's split-brain line", FAILOVER, |e| {
        is(e, "split_brain_in_cloud")
    });
    let alert = prom.wait_alert(
        "SplitBrainInCloud",
        &[("node", "a"), ("vip", "web")],
        true,
        ALERT,
    );
    println!("alert: {}", alert["annotations"]["summary"]);
    assert!(
        observer.try_recv().is_err(),
        "the EIP moved again during the partition\n{}",
        wa.log_text()
    );
    assert_eq!(
        lab.calls_by("watchdog", "a"),
        0,
        "a's watchdog fought: {}",
        lab.mutating_calls()
    );
    assert_eq!(lab.eip_on(), "b");
    let partition = started.elapsed();
    let (tags_a, tags_b) = create_tags(&lab);

    wa.forget_past();
    for n in [&lab.a, &lab.b] {
        n.block_vrrp(false);
        n.block_peer(false);
    }
    let lifted = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    wb.wait_state("backup", FAILOVER);
    let back_move = a_takes_it_back(&lab, &wa, &observer, VERIFY);
    wa.wait_for("a's claim converged", FAILOVER, |e| {
        is(e, "claim_converged")
    });
    match observer.recv_timeout(QUIET_FOR) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("the EIP moved again after the partition: {other:?}"),
    }
    assert_eq!(lab.calls_by("watchdog", "b"), 0, "{}", lab.mutating_calls());
    wa.wait_for("a's split-brain-over line", FAILOVER, |e| {
        is(e, "split_brain_in_cloud_over")
    });
    wa.wait_metrics("a's split-brain gauge back to 0", FAILOVER, |m| {
        metric(m, "vip_watchdog_split_brain_in_cloud", &[("vip", "web")]) == Some(0.0)
    });

    // A late steal by b, BACKUP (its tag says so): taken back.
    wa.forget_past();
    let stolen_at = steal_for_b(&lab, &observer);
    let retaken_at = a_takes_it_back(&lab, &wa, &observer, VERIFY);
    println!(
        "partition: b's move, then none for {:.1} s; taken back {:.1} s after VRRP got through; a steal by the BACKUP taken back after {:.1} s",
        partition.as_secs_f64(),
        back_move - lifted,
        retaken_at - stolen_at
    );
    println!(
        "CreateTags during the {:.0} s partition: a {tags_a}, b {tags_b}",
        partition.as_secs_f64()
    );
}

/// State tags, `state_tag_interval` shortened to 10 s (a tag then counts
/// for 20 s; the twin above runs the default) and `own` mode without
/// scripts, so that each move is a watchdog's: a first claim never waits
/// for a tag (b claims in a partition although a's tag says "master"), and
/// a tag its writer no longer refreshes counts for nothing (b's watchdog
/// killed: a takes the EIP back once b's tag is stale).
#[test]
fn a_tag_left_behind_holds_back_no_claim_for_long() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.cloud_overrides.push(("state_tags", "true".into()));
    lab.cloud_overrides
        .push(("state_tag_interval", "\"10s\"".into()));
    lab.set_vip("own", false);
    let (wa, wb) = lab.start_pair();
    let observer = lab.start_observer(600);
    assert_eq!(next_move(&observer, FAILOVER).1, lab.eni("a"), "set-up");

    for n in [&lab.a, &lab.b] {
        n.block_vrrp(true);
    }
    wb.wait_state("master", FAILOVER);
    let tag = wb.wait_for("b reading a's state tag", FAILOVER, |e| {
        is(e, "state_tag_master")
    });
    assert_eq!(tag["writer"], "a", "{tag}");
    // a's watchdog refreshes its tag every 10 s: were a first claim to
    // wait for the tag, b would never claim.
    let claim = wb.wait_for("b's claim", FAILOVER, |e| is(e, "claim_started"));
    assert_eq!(claim["reason"], "elsewhere", "a first claim: {claim}");
    let (_, to) = next_move(&observer, FAILOVER);
    assert_eq!(to, lab.eni("b"), "b's watchdog moved the EIP");
    wa.forget_past();
    wa.wait_for("a seeing the EIP moved away", VERIFY, |e| {
        is(e, "vip_moved_away")
    });
    wa.wait_for("a reading b's state tag", FAILOVER, |e| {
        is(e, "state_tag_master")
    });

    // b's watchdog dies (or loses the API): its tag is no longer refreshed.
    drop(wb);
    let killed = std::time::Instant::now();
    let (_, to) = next_move(&observer, VERIFY + Duration::from_secs(20));
    assert_eq!(to, lab.eni("a"), "a took the EIP back");
    let after = killed.elapsed();
    let stale = wa.wait_for("a reading b's stale tag", FAILOVER, |e| {
        is(e, "state_tag_not_master")
    });
    assert!(
        stale["why"].as_str().unwrap_or("").starts_with("stale"),
        "{stale}"
    );
    let claim = wa.wait_for("a's claim", FAILOVER, |e| is(e, "claim_started"));
    assert_eq!(claim["reason"], "stolen", "{claim}");
    println!(
        "b's watchdog killed: a took the EIP back {:.1} s later (b's tag counts for 20 s from its last write, then a describe)",
        after.as_secs_f64()
    );
}
