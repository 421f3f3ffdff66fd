//! The database pair: the VIP follows the primary, not mere
//! liveness. Real PostgreSQL from Debian's packages on each node (a primary
//! on a, a server in recovery on b), each Keepalived tracking the role
//! (`weight 60`: a primary outranks any replica), the watchdogs probing
//! with `kind = "postgres"`, `own` mode at the shipped defaults, moto's EC2
//! server (patched by tests/moto/launch.py). Calls counted at the emulator.

mod common;

use common::{FAILOVER, Lab, SETTLE, is, unix};
use std::time::SystemTime;

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// a's Keepalived stops while its database is still the primary: b
/// becomes VRRP MASTER as a replica, and its watchdog holds (the probe
/// says replica) well past `min_master_age`: no call. Then the DBA demotes
/// a and promotes b: b's watchdog claims, after the promotion. When a's
/// Keepalived comes back with a as a replica, b stays MASTER and a's
/// watchdog never claims.
#[test]
fn the_eip_follows_the_primary_and_a_replica_never_claims() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.a.start_postgres(false);
    lab.b.start_postgres(true);
    assert!(!lab.a.pg_in_recovery() && lab.b.pg_in_recovery());
    lab.set_vip("own", false);
    for n in lab.nodes_mut() {
        n.write_configs();
    }
    let wa = lab.a.start_watchdog(true);
    let wb = lab.b.start_watchdog(true);
    lab.start_services();
    wa.wait_state("master", SETTLE);
    wb.wait_state("backup", SETTLE);
    wa.wait_status("a, the primary, sees the EIP here", SETTLE, |s| {
        s["vips"][0]["cloud"]["where"] == "here" && s["probe"]["health"] == "up"
    });
    wb.wait_status("b's probe: a replica", SETTLE, |s| {
        s["probe"]["health"] == "down"
    });
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
