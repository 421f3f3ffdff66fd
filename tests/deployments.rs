//! The deployments beyond an EIP on a secondary
//! private IP: a route-table VIP in two route tables, an EIP associated
//! by instance ID, and the secondary private IP itself (an internal VIP,
//! here also as a Kubernetes control-plane endpoint). A real Keepalived pair, real HAProxy, moto's EC2 server
//! patched by tests/moto/launch.py (routes: DryRun honoured, duplicate
//! CreateRoute refused, blackhole state; InstanceId of ENI associations;
//! AllowReassignment honoured and a secondary private IP found by the
//! addresses.private-ip-address filter),
//! the watchdogs at the shipped defaults but for `mode`. Calls are counted
//! at the emulator.

mod common;

use common::tls::{make_ca, make_cert};
use common::{FAILOVER, Lab, SETTLE, Watchdog, is, metric};
use std::time::Duration;

/// A claim at the defaults: grace 10 s, then a describe and the calls; or
/// a slow-pace describe (30 s + 3 s jitter) before a change is seen.
const HEAL: Duration = Duration::from_secs(45);

fn start(lab: &mut Lab) -> (Watchdog, Watchdog) {
    lab.start_pair()
}

fn arrived(w: &Watchdog, timeout: Duration) -> serde_json::Value {
    w.wait_for("the VIP seen here", timeout, |e| is(e, "vip_arrived"))
}

/// HAProxy stopped on a: b becomes MASTER and its watchdog sees the VIP
/// arrive, moved by the watchdog (b's own claim), within `timeout`.
fn moved_to_b_by_its_watchdog(lab: &mut Lab, wb: &Watchdog, timeout: Duration) {
    wb.forget_past();
    lab.a.kill_haproxy();
    wb.wait_state("master", FAILOVER);
    let seen = arrived(wb, timeout);
    assert_eq!(seen["moved_by"], "watchdog", "{seen}");
}

/// Own mode: the route in both tables follows the MASTER, one
/// ReplaceRoute per table from the new MASTER, none from the old one.
#[test]
fn a_route_vip_in_two_route_tables_moves_with_the_master() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_route_vip("own");
    let (wa, wb) = start(&mut lab);
    assert_eq!(lab.routes_on(), ["a", "a"], "set-up routes to a");
    assert!(lab.a.has_vip(), "Keepalived put the VIPs on a");
    moved_to_b_by_its_watchdog(&mut lab, &wb, FAILOVER);
    assert_eq!(lab.routes_on(), ["b", "b"], "both tables follow b");
    assert_eq!(lab.calls_by("watchdog", "b"), 2, "{}", lab.mutating_calls());
    let calls = lab.api_calls();
    assert_eq!(calls["watchdog b"]["ReplaceRoute"], 2, "{calls}");
    assert!(calls["watchdog b"]["CreateRoute"].is_null(), "{calls}");
    let status = wb.status();
    let routes = &status["vips"][0]["routes"];
    assert_eq!(routes[0]["state"], "here", "{status}");
    assert_eq!(routes[1]["state"], "here", "{status}");
    // And back: a preempts.
    wa.forget_past();
    lab.a.start_haproxy();
    wa.wait_state("master", FAILOVER);
    arrived(&wa, FAILOVER);
    assert_eq!(lab.routes_on(), ["a", "a"]);
    assert_eq!(lab.calls_by("watchdog", "a"), 2);
    assert_eq!(lab.calls_by("watchdog", "b"), 2, "b never fought back");
    let samples = metric(
        &wb.metrics(),
        "vip_watchdog_failover_latency_seconds_count",
        &[("vip", "routed"), ("moved_by", "watchdog")],
    );
    assert_eq!(samples, Some(1.0), "one sample, to the last table");
}

/// Heal mode: a notify script that updated the first table only (and
/// failed) is healed on the second after grace; the first is left alone.
#[test]
fn a_notify_script_that_updated_one_table_only_is_healed_on_the_other() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_route_vip("heal");
    lab.set_notify_route("b", "first-only");
    let (_wa, wb) = start(&mut lab);
    moved_to_b_by_its_watchdog(&mut lab, &wb, HEAL);
    assert_eq!(lab.routes_on(), ["b", "b"]);
    let calls = lab.api_calls();
    assert_eq!(
        calls["watchdog b"]["ReplaceRoute"], 1,
        "only the table the script missed: {calls}"
    );
    let heal = wb.wait_for("the heal", FAILOVER, |e| is(e, "claim_replace_route"));
    assert_eq!(
        heal["route_table"],
        lab.route_tables()[1].as_str(),
        "{heal}"
    );
}

/// A route left on a deleted ENI (blackhole) is reported by check-cloud
/// (exit 1) and by the watchdog (log, gauge), and the MASTER points it back
/// at itself, at the shipped 30 s verify interval.
#[test]
fn a_blackhole_route_is_reported_and_healed() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_route_vip("own");
    let (wa, _wb) = start(&mut lab);
    let (code, out, err) = lab.a.check_cloud();
    assert_eq!(code, Some(0), "check-cloud before: {out}{err}");
    wa.forget_past();
    let second = lab.route_tables()[1].clone();
    lab.set_route(&second, "blackhole");
    assert_eq!(lab.routes_on(), ["a", "blackhole"]);
    let (code, out, err) = lab.a.check_cloud();
    assert_eq!(code, Some(1), "check-cloud names the blackhole: {out}{err}");
    assert!(
        out.contains(&format!("the route in {second} is blackhole")),
        "{out}"
    );
    let reported = wa.wait_for("the blackhole reported", HEAL, |e| is(e, "route_blackhole"));
    assert_eq!(reported["route_table"], second.as_str(), "{reported}");
    let healed = wa.wait_for("the route pointed back", HEAL, |e| {
        is(e, "claim_replace_route")
    });
    assert_eq!(healed["was"], "blackhole", "{healed}");
    wa.wait_status("a sees it here again", HEAL, |s| {
        s["vips"][0]["cloud"]["where"] == "here"
    });
    assert_eq!(lab.routes_on(), ["a", "a"]);
    let exposition = wa.metrics();
    let here = metric(
        &exposition,
        "vip_watchdog_vip_route_state",
        &[("route_table", second.as_str()), ("state", "here")],
    );
    assert_eq!(here, Some(1.0));
    for name in [
        "vip_watchdog_vip_route_state",
        "vip_watchdog_eni_source_dest_check",
    ] {
        assert!(
            exposition.contains(&format!("# TYPE {name} ")),
            "a route lab exports {name}"
        );
    }
    common::promtool_check_metrics(&exposition);
}

/// The source/destination check: on, check-cloud says so (exit 1) and the
/// watchdog exports it. A route that targets an instance instead of an ENI
/// is named too.
#[test]
fn a_source_dest_check_left_on_and_an_instance_target_are_reported() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_route_vip("own");
    lab.set_source_dest_check("a", true);
    let first = lab.route_tables()[0].clone();
    let instance = lab.instance_id("b");
    lab.set_route(&first, &format!("instance:{instance}"));
    let (code, out, _) = lab.a.check_cloud();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("source/destination check is on"), "{out}");
    assert!(
        out.contains(&format!("the route in {first} is instance ({instance})")),
        "{out}"
    );
    let wa = lab.a.start_watchdog(true);
    let eni = lab.eni("a");
    let logged = wa.wait_for("the warning", SETTLE, |e| is(e, "source_dest_check_on"));
    assert_eq!(logged["eni"], eni.as_str(), "{logged}");
    let gauge = metric(
        &wa.metrics(),
        "vip_watchdog_eni_source_dest_check",
        &[("eni", eni.as_str())],
    );
    assert_eq!(gauge, Some(1.0));
}

/// IPv4 forwarding on a route VIP's node (a NAT appliance): off, the
/// watchdog logs an error at start-up and exports 0, `check-config --host`
/// names it (exit 1); turned on, the next scrape reads 1 and the host check
/// says ok. In a's own network namespace, set there for the test.
#[test]
fn ip_forwarding_off_on_a_route_node_is_reported_and_followed() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_route_vip("own");
    let ns = lab.a.ns.clone();
    let forward = |on: bool| {
        let out = common::in_ns(&ns)
            .args(["sysctl", "-q", "-w"])
            .arg(format!("net.ipv4.ip_forward={}", u8::from(on)))
            .output()
            .expect("sysctl runs");
        assert!(out.status.success(), "sysctl: {out:?}");
    };
    let (config, keepalived_conf) = (
        lab.a.watchdog_config(true),
        lab.a.dir.join("keepalived.conf"),
    );
    let host_check = || {
        let out = common::in_ns(&ns)
            .arg(common::watchdog_bin())
            .args(["check-config", "--host", "--config"])
            .arg(&config)
            .arg("--keepalived-config")
            .arg(&keepalived_conf)
            .output()
            .expect("check-config runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    forward(false);
    let (wa, _wb) = start(&mut lab);
    let logged = wa.wait_for("the error", SETTLE, |e| is(e, "ip_forward_off"));
    assert_eq!(logged["level"], "ERROR", "{logged}");
    assert_eq!(logged["vips"], "routed", "{logged}");
    assert_eq!(
        metric(&wa.metrics(), "vip_watchdog_ip_forward", &[]),
        Some(0.0)
    );
    let (code, text) = host_check();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("host: PROBLEM: net.ipv4.ip_forward is OFF for the route VIPs (routed)"),
        "{text}"
    );

    forward(true);
    assert_eq!(
        metric(&wa.metrics(), "vip_watchdog_ip_forward", &[]),
        Some(1.0),
        "read at the scrape"
    );
    let (_, text) = host_check();
    assert!(
        text.contains("host: ok: net.ipv4.ip_forward is on for the route VIPs (routed)"),
        "{text}"
    );
}

/// An EIP associated by instance ID (a single-ENI instance): b's notify
/// script fails; b's watchdog heals after grace with AssociateAddress by
/// InstanceId, and sees it by InstanceId.
#[test]
fn an_eip_by_instance_id_moves_with_the_master_and_is_healed_after_a_failed_script() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_eip_by_instance("heal");
    lab.set_notify("b", Some("fail"));
    let (_wa, wb) = start(&mut lab);
    moved_to_b_by_its_watchdog(&mut lab, &wb, HEAL);
    assert_eq!(lab.eip_on(), "b");
    let calls = lab.api_calls();
    assert_eq!(calls["watchdog b"]["AssociateAddress"], 1, "{calls}");
    assert!(
        calls["watchdog b"]["AssignPrivateIpAddresses"].is_null(),
        "no private IP by instance ID: {calls}"
    );
    let claim = wb.wait_for("the claim", FAILOVER, |e| is(e, "claim_associate"));
    assert!(
        claim["what"]
            .as_str()
            .is_some_and(|t| t.contains("by instance ID")),
        "{claim}"
    );
}

/// Active-active: VI_1 is MASTER on a with the first EIP, VI_2
/// on b with the second; each [[vip]] follows its own instance. Stopping
/// a's HAProxy (both instances FAULT on a) moves the first EIP to b and
/// leaves the second where it is; starting it again moves the first back
/// to a, and only that one: two moves in all, counted at the emulator. The
/// verifier names both EIPs in one DescribeAddresses.
#[test]
fn an_active_active_pair_keeps_each_eip_with_the_master_of_its_instance() {
    let mut lab = Lab::new();
    lab.add_cloud();
    let second = lab.set_active_active();
    let first = lab.allocation_id();
    let wa = lab.a.start_watchdog(true);
    let wb = lab.b.start_watchdog(true);
    lab.start_services();
    let states = |w: &Watchdog, one: &'static str, two: &'static str| {
        w.wait_status("the instances' states", SETTLE, move |s| {
            s["instances"][0]["state"] == one && s["instances"][1]["state"] == two
        });
    };
    let here = |w: &Watchdog, vip: usize| {
        w.wait_status("the VIP here", SETTLE, move |s| {
            s["vips"][vip]["cloud"]["where"] == "here"
        });
    };
    states(&wa, "master", "backup");
    states(&wb, "backup", "master");
    here(&wa, 0);
    here(&wb, 1);
    assert_eq!(
        (lab.eip_of(&first), lab.eip_of(&second)),
        ("a".into(), "b".into())
    );
    lab.reset_api_calls();
    lab.a.kill_haproxy();
    states(&wb, "master", "master");
    here(&wb, 0);
    assert_eq!(
        (lab.eip_of(&first), lab.eip_of(&second)),
        ("b".into(), "b".into())
    );
    lab.a.start_haproxy();
    states(&wa, "master", "backup");
    here(&wa, 0);
    here(&wb, 1);
    assert_eq!(
        (lab.eip_of(&first), lab.eip_of(&second)),
        ("a".into(), "b".into())
    );
    // One assign each way; the EIP followed its private IP each time (as
    // in EC2): no associate.
    let calls = lab.api_calls();
    assert_eq!(
        calls["watchdog b"]["AssignPrivateIpAddresses"], 1,
        "{calls}"
    );
    assert_eq!(
        calls["watchdog a"]["AssignPrivateIpAddresses"], 1,
        "{calls}"
    );
    assert!(calls["watchdog b"]["AssociateAddress"].is_null(), "{calls}");
    assert!(calls["watchdog a"]["AssociateAddress"].is_null(), "{calls}");
    let sizes = lab.describe_sizes("a");
    assert!(
        sizes.contains(&2) && sizes.iter().all(|s| *s == 1 || *s == 2),
        "the verifier's describes name both EIPs (a claim's confirmation one): {sizes:?}"
    );
}

/// A secondary private IP as the VIP itself (`kind = "private_ip"`, an
/// internal load balancer reached inside the VPC), own mode: it follows the
/// MASTER with one AssignPrivateIpAddresses from the new MASTER, and when an
/// operator assigns it back to the old node's ENI behind the watchdogs'
/// backs, the MASTER's watchdog takes it back within the verify interval;
/// the other node's watchdog never calls.
#[test]
fn a_private_ip_vip_moves_with_the_master_and_a_steal_is_taken_back() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_private_ip_vip("own");
    let (wa, wb) = start(&mut lab);
    assert_eq!(lab.private_ip_on(), "a", "set-up assigns it to a");
    assert_eq!(wa.status()["vips"][0]["kind"], "private_ip");
    let (code, out, err) = lab.a.check_cloud();
    assert_eq!(code, Some(0), "check-cloud: {out}{err}");
    assert!(
        out.contains("vip web (secondary private IP 10.213.0.100 on this node's ENI): here"),
        "{out}"
    );
    assert!(
        out.contains("ec2:AssignPrivateIpAddresses    unknown  EC2 has no DryRun for it"),
        "no DryRun for the assign: {out}"
    );
    moved_to_b_by_its_watchdog(&mut lab, &wb, FAILOVER);
    assert_eq!(lab.private_ip_on(), "b", "moved, not copied");
    let calls = lab.api_calls();
    assert_eq!(
        calls["watchdog b"]["AssignPrivateIpAddresses"], 1,
        "{calls}"
    );
    assert!(
        calls["watchdog b"]["AssociateAddress"].is_null(),
        "no Elastic IP call for a private IP VIP: {calls}"
    );
    assert_eq!(wb.status()["vips"][0]["cloud"]["where"], "here");

    // Stolen back to a (now FAULT) by hand: b, MASTER throughout, heals.
    wb.forget_past();
    lab.assign_private_ip("a");
    assert_eq!(lab.private_ip_on(), "a");
    let claim = wb.wait_for("b's claim", HEAL, |e| is(e, "claim_started"));
    assert_eq!(claim["reason"], "stolen", "{claim}");
    wb.wait_for("b's claim converged", FAILOVER, |e| {
        is(e, "claim_converged")
    });
    assert_eq!(lab.private_ip_on(), "b");
    assert_eq!(lab.calls_by("watchdog", "a"), 0, "{}", lab.mutating_calls());
    let calls = lab.api_calls();
    assert_eq!(
        calls["watchdog b"]["AssignPrivateIpAddresses"], 2,
        "one assign per move: {calls}"
    );
    assert_eq!(wb.instance()["state"], "master", "b never left MASTER");
}

/// Heal mode next to a notify script that fails: after grace, b's
/// watchdog assigns the private IP; EC2 throttles the first assign (503,
/// not applied) and the answer to the second is lost (applied, no answer).
/// The watchdog retries the throttled call, then asks the cloud instead of
/// sending the lost one again: one assign reaches EC2.
#[test]
fn a_private_ip_claim_throttled_then_unanswered_lands_once() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_private_ip_vip("heal");
    lab.set_notify("b", Some("fail"));
    let injected =
        lab.add_fault_proxy("b", r#"{"AssignPrivateIpAddresses": ["throttle", "drop"]}"#);
    let (_wa, wb) = start(&mut lab);
    moved_to_b_by_its_watchdog(&mut lab, &wb, HEAL);
    assert_eq!(lab.private_ip_on(), "b");
    let faults: Vec<String> = (0..2)
        .map(|_| {
            injected
                .recv_timeout(FAILOVER)
                .expect("the proxy's fault lines")
        })
        .collect();
    assert_eq!(
        faults,
        [
            "fault AssignPrivateIpAddresses throttle",
            "fault AssignPrivateIpAddresses drop"
        ]
    );
    let eni = lab.eni("b");
    let calls = lab.mutating_calls();
    assert_eq!(
        calls["watchdog"][format!("AssignPrivateIpAddresses {eni}")],
        1,
        "the dropped call reached the emulator, nothing else: {calls}"
    );
}

/// The Kubernetes control-plane endpoint: a private VIP in front of the
/// API servers (HAProxy on each node, as kubeadm's HA guide sets it up),
/// probed with an https `/readyz` check that trusts only the cluster's CA
/// (`ca_file`); HAProxy here answers `/readyz` itself over TLS with a
/// certificate that CA signed, standing in for the API server. b's
/// watchdog is first given a CA that did not sign it: its probe is down
/// with the certificate error, and when b becomes MASTER it does not move
/// the address to itself. Restarted with the cluster CA, it claims.
#[test]
fn a_control_plane_endpoint_moves_only_to_a_node_whose_api_server_is_ready() {
    common::require_tools(&["openssl"]);
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_private_ip_vip("own");
    let pki = lab.a.dir.join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_ca(&pki, "cluster-ca");
    make_ca(&pki, "other-ca");
    make_cert(
        &pki,
        "cluster-ca",
        "apiserver",
        "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
    );
    // HAProxy's crt file holds the certificate and its key.
    let pem = pki.join("apiserver.pem");
    let crt = std::fs::read_to_string(pki.join("apiserver.crt")).unwrap();
    let key = std::fs::read_to_string(pki.join("apiserver.key")).unwrap();
    std::fs::write(&pem, crt + &key).unwrap();
    let probe = |ca: &str| {
        format!(
            "kind = \"http\"\nurl = \"https://127.0.0.1:6443/readyz\"\nca_file = \"{}\"",
            pki.join(ca).display()
        )
    };
    for n in [&mut lab.a, &mut lab.b] {
        n.extra_haproxy = format!(
            "frontend apiserver\n    bind 127.0.0.1:6443 ssl crt {}\n    http-request return status 200 content-type text/plain string ok if {{ path /readyz }}\n    http-request return status 404\n",
            pem.display()
        );
        n.write_configs();
    }
    lab.a.probe = probe("cluster-ca.crt");
    lab.b.probe = probe("other-ca.crt");
    let (wa, wb) = start(&mut lab);
    let up = wa.wait_status("a's probe up", SETTLE, |s| s["probe"]["health"] == "up");
    assert!(
        up["probe"]["detail"] == "HTTP 200",
        "a's /readyz over TLS: {up}"
    );
    // b's probe went down before HAProxy answered (connection refused);
    // the status follows the reason as it changes to the certificate.
    let down = wb.wait_status("b's probe refusing the certificate", SETTLE, |s| {
        s["probe"]["health"] == "down"
            && s["probe"]["detail"]
                .as_str()
                .is_some_and(|d| !d.contains("Connection refused"))
    });
    let detail = down["probe"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("certificate"),
        "b's probe names the certificate error: {down}"
    );

    // a's API server goes: b is MASTER, but not ready by its own probe.
    lab.a.kill_haproxy();
    wb.wait_state("master", FAILOVER);
    let held = wb.wait_status("b holding back", FAILOVER, |s| {
        s["vips"][0]["verdict"] == "hold" && s["vips"][0]["cloud"]["where"] == "elsewhere"
    });
    assert!(
        held["vips"][0]["why"]
            .as_str()
            .is_some_and(|w| w.contains("never claim for an unhealthy node")),
        "{held}"
    );
    assert_eq!(lab.private_ip_on(), "a", "not moved to an unready node");
    assert_eq!(lab.calls_by("watchdog", "b"), 0, "{}", lab.mutating_calls());

    // b's watchdog with the cluster's CA: ready, it claims.
    drop(wb);
    lab.b.probe = probe("cluster-ca.crt");
    let wb = lab.b.start_watchdog(true);
    wb.wait_for("b's claim", HEAL, |e| is(e, "claim_started"));
    let status = wb.wait_status("b sees it here", FAILOVER, |s| {
        s["vips"][0]["cloud"]["where"] == "here"
    });
    assert_eq!(lab.private_ip_on(), "b");
    assert_eq!(status["probe"]["health"], "up", "{status}");
    assert_eq!(lab.calls_by("watchdog", "a"), 0, "{}", lab.mutating_calls());
}
