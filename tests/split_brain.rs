//! Split brains without the peer channel, on a real Keepalived pair with
//! real HAProxy and moto's EC2 server (patched by tests/moto/launch.py), the
//! watchdogs at the shipped defaults in `heal` mode next to each node's
//! notify script, as a user runs them. EIP moves are counted by an outside
//! observer polling the emulator every 10 ms.

mod common;

use common::{FAILOVER, Lab, is, next_move};
use std::sync::mpsc::RecvTimeoutError;
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
    let (_, to) = next_move(&observer, FAILOVER);
    assert_eq!(to, lab.eni("a"), "a, the VRRP winner, took it back");
    let claim = wa.wait_for("a's claim", FAILOVER, |e| is(e, "claim_started"));
    assert_eq!(claim["reason"], "stolen", "{claim}");
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
    lab.steal_eip_for("b");
    let (stolen_at, to) = next_move(&observer, FAILOVER);
    assert_eq!(to, lab.eni("b"), "the steal");
    let moved = wa.wait_for("a seeing the steal", VERIFY, |e| {
        is(e, "vip_moved_away") || is(e, "vip_fight")
    });
    assert!(
        is(&moved, "vip_moved_away"),
        "a first move, not a fight: {moved}"
    );
    let (back_at, to) = next_move(&observer, VERIFY);
    assert_eq!(to, lab.eni("a"), "a took it back");
    let claim = wa.wait_for("a's claim", FAILOVER, |e| is(e, "claim_started"));
    assert_eq!(claim["reason"], "stolen", "{claim}");
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
