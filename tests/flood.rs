//! A flood of idle connections cannot starve the watchdog: on real parts
//! (a Keepalived pair with HAProxy, the patched EC2 emulator, the peer
//! channel, `own` mode at the shipped defaults), the MASTER's watchdog runs
//! with 1,024 file descriptors (a unit without `LimitNOFILE`) while 2,000
//! idle connections are opened to each of its listeners: to `http.listen`
//! from the cloud's namespace (the VPC), to `peer.listen` from the peer's
//! own address. Then HAProxy dies on the MASTER. Shown: the EIP moves, no
//! transition is invented, Keepalived is never thought gone, the status
//! still answers on loopback, the listeners refuse what is over their caps,
//! time the idle ones out, and the watchdog's descriptors stay bounded.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{FAILOVER, Lab, SETTLE, Watchdog, in_ns, metric};
use serde_json::Value;

/// Connections opened to each listener.
const FLOOD: usize = 2_000;
/// The listeners' caps and the loopback reserve (src/http/listener.rs).
const HTTP_CAP: usize = 256;
const PEER_CAP: usize = 16;
const LOOPBACK_RESERVE: usize = 32;

/// `tests/flood/idle.py` holding its connections; killed when dropped.
struct Holder(Child);

impl Holder {
    /// Opens `targets` (HOST:PORT:COUNT) from namespace `ns`; returns once
    /// every connect has returned, with what each target took.
    fn open(ns: &str, targets: &[String]) -> (Holder, Value) {
        let mut child = in_ns(ns)
            .arg("python3")
            .arg(common::repo().join("tests/flood/idle.py"))
            .args(targets)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs tests/flood/idle.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let holder = Holder(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(90))
            .expect("idle.py reports within its 60 s bound");
        let report: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("idle.py's report {line:?}: {e}"));
        (holder, report)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fds(w: &Watchdog) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", w.child.id()))
        .expect("the watchdog's /proc/PID/fd")
        .count()
}

fn counter(m: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(m, name, labels).unwrap_or_else(|| panic!("{name}{labels:?} is exported"))
}

fn masters(w: &Watchdog) -> f64 {
    counter(
        &w.metrics(),
        "vip_watchdog_vrrp_transitions_total",
        &[("vrrp_instance", "VI_1"), ("state", "master")],
    )
}

#[test]
fn two_thousand_idle_connections_per_listener_do_not_stop_a_failover() {
    common::require_tools(&["python3", "prlimit"]);
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_vip("own", false);
    lab.set_notify("a", None);
    lab.set_notify("b", None);
    lab.add_peer_channel(true);
    lab.a.listen = "0.0.0.0:9842".into();
    lab.a.nofile = Some(1024);
    let (wa, wb) = lab.start_pair();
    let observer = lab.start_observer(120);
    assert_eq!(common::next_move(&observer, FAILOVER).1, lab.eni("a"));
    let a_masters = masters(&wa);
    let b_masters = masters(&wb);
    let idle_fds = fds(&wa);

    let http = format!("10.213.1.1:9842:{FLOOD}");
    let peer = format!("{}:9843:{FLOOD}", lab.a.addr);
    let cloud_ns = lab.cloud.as_ref().expect("a cloud").ns.clone();
    let (_vpc, took) = Holder::open(&cloud_ns, &[http]);
    let (_from_b, took_b) = Holder::open(&lab.b.ns, &[peer]);
    // From a's own address, not the peer's: refused before a byte is read.
    let stranger = format!("{}:9843:20", lab.a.addr);
    let (_from_a, _) = Holder::open(&lab.a.ns, &[stranger]);
    eprintln!("flood: http {took}, peer {took_b}");

    let flooded_fds = fds(&wa);
    let m = wa.metrics();
    eprintln!("a's descriptors: {idle_fds} before the flood, {flooded_fds} under it (limit 1024)");
    assert!(
        flooded_fds <= idle_fds + HTTP_CAP + PEER_CAP + LOOPBACK_RESERVE,
        "descriptors: {idle_fds} before, {flooded_fds} under the flood"
    );
    for (listener, cap) in [("http", HTTP_CAP), ("peer", PEER_CAP)] {
        let open = counter(
            &m,
            "vip_watchdog_http_connections",
            &[("listener", listener)],
        );
        assert!(
            open <= (cap + LOOPBACK_RESERVE) as f64,
            "{listener}: {open} open"
        );
        let refused = counter(
            &m,
            "vip_watchdog_http_connections_refused_total",
            &[("listener", listener), ("reason", "cap")],
        );
        assert!(refused > 0.0, "{listener}: nothing refused over its cap");
        let errors = counter(
            &m,
            "vip_watchdog_http_accept_errors_total",
            &[("listener", listener)],
        );
        assert_eq!(
            errors, 0.0,
            "{listener}: accept failed (out of descriptors?)"
        );
    }
    let strangers = counter(
        &m,
        "vip_watchdog_http_connections_refused_total",
        &[("listener", "peer"), ("reason", "address")],
    );
    assert!(
        strangers >= 20.0,
        "peer listener, not from the peer: {strangers} refused"
    );

    // The failover, with the flood held.
    wa.forget_past();
    wb.forget_past();
    lab.a.kill_haproxy();
    wb.wait_state("master", FAILOVER);
    let (_, to) = common::next_move(&observer, FAILOVER);
    assert_eq!(to, lab.eni("b"), "the EIP moved to b");
    wa.wait_status("a leaves MASTER", FAILOVER, |s| {
        s["instances"][0]["state"] != "master"
    });
    assert_eq!(masters(&wa), a_masters, "a: no MASTER invented");
    assert_eq!(
        masters(&wb),
        b_masters + 1.0,
        "b: one MASTER, the failover's"
    );
    let status = wa.status();
    assert_eq!(status["keepalived"]["running"], true, "{status}");
    let m = wa.metrics();
    assert_eq!(
        counter(
            &m,
            "vip_watchdog_keepalived_process_check_errors_total",
            &[]
        ),
        0.0,
        "a's process watch never failed under the flood"
    );

    // The idle connections within the caps are timed out (10 s for a
    // request head on http, 5 s on peer), and their descriptors return.
    wa.wait_status("the flood's idle connections timed out", SETTLE, |_| {
        let m = wa.metrics();
        ["http", "peer"].iter().all(|l| {
            counter(
                &m,
                "vip_watchdog_http_connections_timed_out_total",
                &[("listener", l), ("reason", "header")],
            ) > 0.0
                && counter(&m, "vip_watchdog_http_connections", &[("listener", l)]) <= 1.0
        })
    });
    let after = fds(&wa);
    eprintln!("a's descriptors once the idle connections timed out: {after}");
    assert!(after <= idle_fds + 8, "{idle_fds} before, {after} after");
    assert_eq!(lab.eip_on(), "b");
    drop((wa, wb));
}
