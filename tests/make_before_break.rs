//! `manage_address = true` on real parts: a Keepalived pair whose
//! virtual_ipaddress leaves the private IP to the watchdogs, HAProxy
//! serving on it, the patched EC2 emulator, the two watchdogs in `own` mode
//! with the peer channel at the shipped defaults, and a client outside the
//! pair (`common::client`) asking the node the emulator says holds the EIP,
//! on the private IP, every 10 ms. The client-visible outage of each fault
//! kind, against the notify script and Keepalived managing the IP, is
//! measured by benches/outage.rs.

mod common;

use std::time::{Duration, SystemTime};

use common::client::{Request, outage};
use common::{FAILOVER, Lab, SETTLE, Watchdog, is, metric};
use nix::sys::signal::Signal;

fn ts(event: &serde_json::Value) -> SystemTime {
    let t = event["timestamp"].as_str().expect("a timestamp");
    SystemTime::UNIX_EPOCH + Duration::from_secs_f64(common::unix(t))
}

fn changes(w: &Watchdog, change: &str, outcome: &str) -> f64 {
    metric(
        &w.metrics(),
        "vip_watchdog_address_changes_total",
        &[("change", change), ("outcome", outcome)],
    )
    .unwrap_or(-1.0)
}

/// A pair in `own` mode whose private IP the watchdogs carry
/// (`manage_address = true` on eth0), no notify scripts; `peer`: with the
/// channel.
fn managed_lab(peer: bool) -> Lab {
    managed_lab_of(peer, false)
}

/// `managed_lab`, with the private IP itself as the VIP (`kind =
/// "private_ip"`) when `private_ip`.
fn managed_lab_of(peer: bool, private_ip: bool) -> Lab {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_manage_address();
    if private_ip {
        lab.set_private_ip_vip("own");
    } else {
        lab.set_vip("own", false);
    }
    lab.set_notify("a", None);
    lab.set_notify("b", None);
    if peer {
        lab.add_peer_channel(true);
    }
    lab
}

/// Keepalived stopped on the MASTER (SIGTERM, as `systemctl stop` and a
/// maintenance do): b adds the private IP before it claims, a keeps
/// serving on it until its own describe shows the EIP on b, and the client
/// loses no request.
#[test]
fn a_graceful_stop_loses_no_request_with_manage_address() {
    graceful_stop_loses_no_request(false);
}

/// The same with the private IP itself as the VIP (`kind = "private_ip"`):
/// the address follows the same rules as an EIP's private IP.
#[test]
fn a_graceful_stop_loses_no_request_with_a_managed_private_ip_vip() {
    graceful_stop_loses_no_request(true);
}

fn graceful_stop_loses_no_request(private_ip: bool) {
    let mut lab = managed_lab_of(true, private_ip);
    let (client, observer) = lab.start_client(Duration::from_secs(600));
    let (wa, wb) = lab.start_pair();
    wa.wait_for("a adds the private IP", SETTLE, |e| {
        is(e, "address_changed") && e["change"] == "add"
    });
    let start = SystemTime::now();
    client.wait_served("a", start, SETTLE);
    assert!(lab.a.has_vip(), "a, the MASTER, carries the private IP");
    assert!(!lab.b.has_vip(), "b, the BACKUP, does not");
    assert_eq!(
        common::next_move(&observer, FAILOVER).1,
        lab.eni("a"),
        "where it starts"
    );
    wa.forget_past();
    wb.forget_past();

    let fault = SystemTime::now();
    lab.a.signal_keepalived(Signal::SIGTERM);
    let (_, to) = common::next_move(&observer, FAILOVER);
    assert_eq!(to, lab.eni("b"), "the EIP moves to b");
    let served_b = client.wait_served("b", fault, FAILOVER);
    let added = wb.wait_for("b adds the private IP", FAILOVER, |e| {
        is(e, "address_change_started") && e["change"] == "add"
    });
    let claimed = wb.wait_for("b claims", FAILOVER, |e| is(e, "claim_started"));
    assert!(
        ts(&added) <= ts(&claimed),
        "make before break: b adds the private IP before it claims: {added} {claimed}"
    );
    let removed = wa.wait_for("a removes the private IP", FAILOVER, |e| {
        is(e, "address_change_started") && e["change"] == "remove"
    });
    assert!(
        ts(&removed) > ts(&claimed),
        "a removes the private IP only after b's claim: {removed} {claimed}"
    );
    assert!(
        removed["why"]
            .as_str()
            .unwrap_or_default()
            .contains("elsewhere"),
        "on the cloud's word, not the bound: {removed}"
    );
    wa.wait_for("a's removal done", FAILOVER, |e| {
        is(e, "address_changed") && e["change"] == "remove"
    });
    assert!(!lab.a.has_vip(), "a no longer carries it");
    assert!(lab.b.has_vip(), "b does");
    let address = |w: &Watchdog| w.status()["vips"][0]["address"].clone();
    assert_eq!(
        address(&wb)["why"],
        "MASTER: it serves on the private IP",
        "{}",
        address(&wb)
    );
    assert_eq!(address(&wb)["interface"], "eth0");
    // Some more requests on b, then what the client felt.
    let after = client.wait_served("b", served_b + Duration::from_millis(200), SETTLE);
    let requests: Vec<Request> = client.since(fault);
    let felt = outage(&requests);
    let served = |n: &str| {
        requests
            .iter()
            .filter(|r| r.served_by.as_deref() == Some(n))
            .count()
    };
    eprintln!(
        "Keepalived SIGTERM with manage_address: {} requests until {:?} after the fault, {} served by a, {} by b, {} lost, outage {:?}",
        requests.len(),
        after.duration_since(fault).unwrap_or_default(),
        served("a"),
        served("b"),
        felt.lost,
        felt.outage
    );
    assert!(
        served("a") > 0 && served("b") > 0,
        "both served: {requests:?}"
    );
    assert_eq!(
        felt.lost,
        0,
        "a graceful stop loses no request: {:?}",
        requests
            .iter()
            .filter(|r| r.served_by.is_none())
            .collect::<Vec<_>>()
    );
    assert_eq!(changes(&wa, "add", "ok"), 1.0);
    assert_eq!(changes(&wa, "remove", "ok"), 1.0);
    assert_eq!(changes(&wb, "add", "ok"), 1.0);
    assert_eq!(changes(&wb, "remove", "error"), 0.0);
    let m = wb.metrics();
    assert!(
        m.contains("# TYPE vip_watchdog_address_changes_total counter"),
        "the family the alert PrivateIpChangeFailing uses"
    );
    common::promtool_check_metrics(&m);
    common::metrics_doc_lists_exactly(&m);
    common::alerts_and_dashboards_use_only(&m);
}

/// A new MASTER that cannot add the private IP (here: its `interface`
/// does not exist; without CAP_NET_ADMIN the kernel refuses the same way)
/// never claims: claim rule 6 holds, the failure is logged with what was
/// wrong and counted, and the add is tried again after a pause (rule A2),
/// not at every turn. The EIP stays where it was.
#[test]
fn a_master_that_cannot_add_the_private_ip_never_claims() {
    let mut lab = managed_lab(false);
    lab.b.cloud_toml = lab
        .b
        .cloud_toml
        .replace("interface = \"eth0\"", "interface = \"eth9\"");
    assert!(lab.b.cloud_toml.contains("eth9"), "{}", lab.b.cloud_toml);
    let (wa, wb) = lab.start_pair();
    wa.wait_for("a adds the private IP", SETTLE, |e| {
        is(e, "address_changed") && e["change"] == "add"
    });
    wb.forget_past();
    lab.a.kill_haproxy();
    wb.wait_state("master", FAILOVER);
    let failed = |what| wb.wait_for(what, FAILOVER, |e| is(e, "address_change_failed"));
    let first = failed("b's add fails");
    assert!(
        first["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no interface named \"eth9\""),
        "names what was wrong: {first}"
    );
    let second = failed("b tries again");
    let pause = ts(&second).duration_since(ts(&first)).unwrap_or_default();
    assert!(
        pause >= Duration::from_secs(4),
        "tried again after a pause, not at every turn: {pause:?}"
    );
    // By the second try b has been MASTER for over min_master_age (3 s):
    // it would have claimed by now, but for the private IP.
    let verdict = wb.status()["vips"][0].clone();
    assert_eq!(verdict["verdict"], "hold", "{verdict}");
    assert!(
        verdict["why"]
            .as_str()
            .unwrap_or_default()
            .contains("private IP is not on this host"),
        "{verdict}"
    );
    assert_eq!(lab.calls_by("watchdog", "b"), 0, "b made no mutating call");
    assert_eq!(lab.eip_on(), "a", "the EIP stays where it was");
    assert!(!lab.b.has_vip());
    assert!(changes(&wb, "add", "error") >= 2.0);
    assert_eq!(changes(&wb, "add", "ok"), 0.0);
}

/// The outage arithmetic the benchmark reports.
#[test]
fn outage_spans_from_the_last_answer_to_the_next() {
    let t = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
    let r = |ms, ok: bool| Request {
        at: t(ms),
        served_by: ok.then(|| "a".to_owned()),
    };
    assert_eq!(outage(&[r(0, true), r(10, true)]).lost, 0);
    assert_eq!(outage(&[r(0, true), r(10, true)]).outage, Duration::ZERO);
    let o = outage(&[
        r(0, true),
        r(10, false),
        r(20, false),
        r(30, true),
        r(40, false),
        r(50, true),
    ]);
    assert_eq!((o.lost, o.outage), (3, Duration::from_millis(30 + 20)));
    let o = outage(&[r(0, true), r(10, false), r(20, false)]);
    assert_eq!((o.lost, o.outage), (2, Duration::from_millis(20)));
}

/// The address task removes the managed IP whatever prefix it carries (an
/// operator may have added it as /24 by hand): a removal that left it
/// would be asked again at every turn. In a network namespace of its own,
/// on one end of a veth pair.
#[test]
fn removal_takes_the_address_whatever_its_prefix() {
    use vip_watchdog::core::address::Change;
    use vip_watchdog::core::input::Event;
    use vip_watchdog::core::message::AddressJob;
    use vip_watchdog::core::message::CloudEvent;
    use vip_watchdog::host::address::run;
    common::require_tools(&["ip"]);
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    let ns = Ns(format!("vwt-addr-{}", std::process::id()));
    let ip = |args: &[&str]| common::run(std::process::Command::new("ip").args(args));
    ip(&["netns", "add", &ns.0]);
    ip(&[
        "-n", &ns.0, "link", "add", "dummy0", "type", "veth", "peer", "name", "dummy1",
    ]);
    ip(&["-n", &ns.0, "link", "set", "dummy0", "up"]);
    ip(&["-n", &ns.0, "addr", "add", "10.9.9.9/24", "dev", "dummy0"]);
    let listed = || ip(&["-n", &ns.0, "-o", "addr", "show", "dev", "dummy0"]);
    assert!(listed().contains("10.9.9.9/24"), "{}", listed());

    let path = format!("/var/run/netns/{}", ns.0);
    let event = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("the namespace's file");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let (jobs, rx) = tokio::sync::mpsc::channel(1);
            let (done, mut events) = tokio::sync::mpsc::channel(1);
            let cancel = tokio_util::sync::CancellationToken::new();
            let task = tokio::spawn(run(rx, done, cancel.clone()));
            jobs.send(AddressJob {
                vip: "web".into(),
                change: Change::Remove,
                ip: "10.9.9.9".parse().unwrap(),
                interface: "dummy0".into(),
            })
            .await
            .expect("the task takes the job");
            let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .expect("the task answers within 30 s");
            cancel.cancel();
            let _ = task.await;
            event
        })
    })
    .join()
    .expect("the namespace thread");
    match event {
        Some(Event::Cloud(CloudEvent::AddressDone {
            change: Change::Remove,
            error: None,
            ..
        })) => {}
        other => panic!("the removal: {other:?}"),
    }
    assert!(!listed().contains("10.9.9.9"), "{}", listed());
}
