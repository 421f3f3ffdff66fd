//! A planned switchover on real parts: the Keepalived pair tracks the
//! watchdog's drain file (`vrrp_track_file`, weight 0, as
//! docs/operations.md's snippet), HAProxy serves on the private IP, the
//! patched EC2 emulator, the watchdogs in `own` mode with the peer channel
//! and `manage_address`, and a client outside the pair asking the node the
//! emulator says holds the EIP every 10 ms (`common::client`).
//! `vip-watchdog switchover` on the MASTER: one move, no request lost;
//! `--undo`: the node is back (and, Keepalived preempting, MASTER again);
//! refused while the peer could not take over.

mod common;

use std::process::Stdio;
use std::time::{Duration, SystemTime};

use common::client::outage;
use common::{FAILOVER, Lab, Node, SETTLE, Watchdog};

/// `vip-watchdog switchover ARGS` in `node`'s namespace, with its config,
/// asking the watchdog `w` (the lab's listen on a port the kernel chose);
/// (success, stdout, stderr).
fn switchover(node: &Node, w: &Watchdog, args: &[&str]) -> (bool, String, String) {
    let config = node.watchdog_config(true);
    let out = common::in_ns(&node.ns)
        .arg(common::watchdog_bin())
        .args([
            "switchover",
            "--timeout",
            "40s",
            "--web.listen-address",
            &w.address,
        ])
        .arg("--config")
        .arg(&config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("vip-watchdog switchover runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn drain_file(node: &Node) -> String {
    std::fs::read_to_string(node.dir.join("drain")).unwrap_or_default()
}

#[test]
fn a_switchover_moves_the_vip_once_with_no_request_lost_and_undo_gives_the_node_back() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_manage_address();
    lab.set_vip("own", false);
    lab.set_notify("a", None);
    lab.set_notify("b", None);
    lab.add_peer_channel(true);
    let (client, observer) = lab.start_client(Duration::from_secs(600));
    let (wa, wb) = lab.start_pair();
    let start = SystemTime::now();
    client.wait_served("a", start, SETTLE);
    assert_eq!(common::next_move(&observer, FAILOVER).1, lab.eni("a"));
    // a hears b, a healthy BACKUP (rule 2's precondition).
    wa.wait_status("a's peer view: b a healthy BACKUP", SETTLE, |s| {
        let r = &s["peer"]["report"];
        s["peer"]["fresh"] == true && r["probe"] == "up" && r["instances"][0]["state"] == "backup"
    });

    // The drain.
    let drained = SystemTime::now();
    let (ok, out, err) = switchover(&lab.a, &wa, &[]);
    assert!(ok, "switchover: {out}\n{err}");
    assert!(out.contains("switched over"), "{out}");
    assert_eq!(drain_file(&lab.a), "1\n");
    assert_eq!(common::next_move(&observer, FAILOVER).1, lab.eni("b"));
    client.wait_served("b", drained, FAILOVER);
    assert_eq!(wa.instance()["state"], "fault", "a drained: FAULT");
    assert_eq!(wb.instance()["state"], "master");
    // One move: nothing more while the node stays drained.
    if let Ok(again) = observer.recv_timeout(Duration::from_secs(10)) {
        panic!("a second move while drained: {again}");
    }
    let during = client.since(drained);
    let felt = outage(&during);
    let served = |n: &str| {
        during
            .iter()
            .filter(|r| r.served_by.as_deref() == Some(n))
            .count()
    };
    eprintln!(
        "switchover: {} requests, {} served by a, {} by b, {} lost",
        during.len(),
        served("a"),
        served("b"),
        felt.lost
    );
    assert!(served("a") > 0 && served("b") > 0, "both served");
    assert_eq!(felt.lost, 0, "a planned switchover loses no request");

    // Undo: a leaves FAULT; with Keepalived's preemption (a has the higher
    // priority) it is MASTER again and the VIP comes back, make before
    // break as well.
    let undone = SystemTime::now();
    let (ok, out, err) = switchover(&lab.a, &wa, &["--undo"]);
    assert!(ok, "switchover --undo: {out}\n{err}");
    assert!(out.contains("back"), "{out}");
    assert_eq!(drain_file(&lab.a), "0\n");
    assert_eq!(common::next_move(&observer, FAILOVER).1, lab.eni("a"));
    client.wait_served("a", undone, FAILOVER);
    wa.wait_status("a MASTER again", FAILOVER, |s| {
        s["instances"][0]["state"] == "master" && s["vips"][0]["cloud"]["where"] == "here"
    });
    let felt = outage(&client.since(undone));
    assert_eq!(felt.lost, 0, "giving the node back loses no request");

    // Refused while the peer could not take over: b's HAProxy down (its
    // probe down, its check failing).
    lab.b.kill_haproxy();
    wa.wait_status("a's peer view: b's probe down", SETTLE, |s| {
        s["peer"]["report"]["probe"] == "down"
    });
    let (ok, out, err) = switchover(&lab.a, &wa, &[]);
    assert!(!ok, "refused: {out}\n{err}");
    assert!(
        err.contains("409") && err.contains("probe is down"),
        "{err}"
    );
    assert_eq!(drain_file(&lab.a), "0\n", "nothing written");
    assert_eq!(wa.instance()["state"], "master");
}
