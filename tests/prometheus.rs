//! The alert rules and the dashboards in a real Prometheus (Debian's), which
//! scrapes the live watchdogs of two Keepalived pairs (each with HAProxy and
//! the patched EC2 emulator) every second and evaluates `alerts/` every
//! second.
//! Alerts are awaited as notifications at a receiver standing in for
//! Alertmanager; pending is read from Prometheus's own `ALERTS` history.

mod common;

use std::time::Duration;

use common::{FAILOVER, Lab, SETTLE, is};

const ALERT: Duration = Duration::from_secs(60);

#[test]
fn alerts_fire_and_resolve_and_every_dashboard_query_returns_series() {
    let mut lab = Lab::new();
    lab.add_cloud();
    lab.set_vip("heal", false);
    lab.set_notify("a", Some("fail"));
    lab.set_notify("b", Some("fail"));
    // The channel too, so that the dashboards' peer panels have series.
    lab.add_peer_channel(true);
    lab.a.listen = "0.0.0.0:9842".into();
    lab.b.listen = "0.0.0.0:9842".into();
    // A second pair, "lab2", set up as the first, in namespaces of its own:
    // the same Prometheus scrapes both (through `Lab::reach`), so that the
    // fleet dashboard has a row for each and the per-pair one is asked for
    // each.
    let mut other = Lab::new();
    other.set_pair("lab2");
    other.add_cloud();
    other.set_vip("heal", false);
    other.set_notify("a", Some("fail"));
    other.set_notify("b", Some("fail"));
    other.add_peer_channel(true);
    other.a.listen = "0.0.0.0:9842".into();
    other.b.listen = "0.0.0.0:9842".into();
    let others = lab.reach(&other);
    let prom = lab.start_prometheus(&others);
    let (_oa, ob) = other.start_pair();
    // lab2's failover: a's load balancer stops, b's watchdog heals (its
    // notify script fails). It runs on while lab's scenario goes on.
    other.a.kill_haproxy();
    ob.wait_state("master", FAILOVER);
    let wa = lab.a.start_watchdog(true);
    let wb = lab.b.start_watchdog(true);
    lab.start_services();
    wa.wait_state("master", SETTLE);
    wb.wait_state("backup", SETTLE);

    // Split brain: VRRP blocked both ways, b becomes MASTER as well.
    wb.forget_past();
    lab.a.block_vrrp(true);
    lab.b.block_vrrp(true);
    wb.wait_state("master", FAILOVER);
    let split = prom.wait_alert(
        "VrrpSplitBrain",
        &[("pair", "lab"), ("vrrp_instance", "VI_1")],
        true,
        ALERT,
    );
    assert_eq!(split["labels"]["severity"], "critical", "{split}");
    assert_eq!(
        split["annotations"]["runbook_url"], "https://runbook.lab/vip-watchdog#vrrpsplitbrain",
        "the runbook's base, from Prometheus's external label"
    );
    assert!(
        split["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("2 nodes of pair lab")),
        "{split}"
    );
    // It was pending before it fired (its `for` is 10 s).
    let pending = prom.query(r#"ALERTS{alertname="VrrpSplitBrain", alertstate="pending"}[10m]"#);
    assert!(!pending.is_empty(), "VrrpSplitBrain never went pending");
    // Unblocked: b hears a's higher priority and goes back; the alert resolves.
    lab.a.block_vrrp(false);
    lab.b.block_vrrp(false);
    wb.wait_state("backup", FAILOVER);
    prom.wait_alert(
        "VrrpSplitBrain",
        &[("pair", "lab"), ("vrrp_instance", "VI_1")],
        false,
        ALERT,
    );

    // During the split brain b, a healthy MASTER past grace whose notify
    // script failed, may have claimed the EIP (today's rules cannot tell a
    // split brain from a failover); a, MASTER throughout, takes it back
    // once it sees the move (the first in its mastership: no back-off).
    // (At the emulator: a's own view may not have seen b's claim yet.)
    wa.wait_status("a holds the EIP again", Duration::from_secs(60), |s| {
        s["vips"][0]["cloud"]["where"] == "here" && lab.eip_on() == "a"
    });

    // A failover whose notify script fails: b's watchdog heals, and the
    // alert that says the notify scripts are not doing their job fires.
    wa.forget_past();
    wb.forget_past();
    // b may have healed during the split brain already, and
    // VipHealsHappening may fire on that: the failover's heal is told
    // apart by the count Prometheus scrapes.
    let heals_before: f64 = wb
        .metrics()
        .lines()
        .filter_map(|l| l.strip_prefix("vip_watchdog_heals_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    lab.a.kill_haproxy();
    wb.wait_state("master", FAILOVER);
    wb.wait_for("b's claim converged", Duration::from_secs(40), |e| {
        is(e, "claim_converged")
    });
    let heal = prom.wait_alert(
        "VipHealsHappening",
        &[("pair", "lab"), ("node", "b"), ("vip", "web")],
        true,
        ALERT,
    );
    assert_eq!(
        heal["annotations"]["runbook_url"], "https://runbook.lab/vip-watchdog#viphealshappening",
        "{heal}"
    );
    // The heal is counted only in heal mode: the rule joins the VIP's info
    // series, which both nodes export with the config's settings.
    let info =
        prom.query(r#"vip_watchdog_vip_info{pair="lab", vip="web", mode="heal", kind="eip", private_ip="10.213.0.100", handover="make_before_break"} == 1"#);
    assert_eq!(info.len(), 2, "one info series per node: {info:?}");
    // b serves alone: a's load balancer fails its probe, so a is no
    // BACKUP that could take over (its `for` is 1 m).
    let alone = prom.wait_alert(
        "RedundancyLost",
        &[("pair", "lab"), ("node", "b"), ("vrrp_instance", "VI_1")],
        true,
        ALERT * 2,
    );
    assert!(
        alone["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("b serves VI_1 of pair lab alone")),
        "{alone}"
    );
    prom.wait_query(
        "Prometheus scrapes b's heal of the failover",
        &format!(r#"sum(vip_watchdog_heals_total{{pair="lab", node="b"}}) > {heals_before}"#),
        ALERT,
    );
    // The failover's latency sample on b, scraped twice at least: the
    // dashboard's latency panels read `increase` over it, which needs two.
    prom.wait_query(
        "Prometheus scrapes b's failover-latency sample twice",
        r#"count_over_time(vip_watchdog_failover_latency_seconds_count{pair="lab", node="b"}[1h]) >= 2"#,
        ALERT,
    );
    // b's latest sample, as the fleet dashboard reads it.
    prom.wait_query(
        "b's latest failover latency",
        r#"vip_watchdog_failover_last_latency_seconds{pair="lab", node="b", vip="web"} > 0"#,
        ALERT,
    );
    // No MASTER was ever missing long enough, the MASTER's probe never
    // failed while it was MASTER for 30 s, the cloud answered throughout,
    // and the config was never reloaded: those stay silent.
    for quiet in [
        "VrrpNoMaster",
        "KeepalivedDown",
        "ProbeFailingOnMaster",
        "CloudViewStale",
        "ConfigReloadFailed",
    ] {
        let firing = prom.query(&format!(
            r#"ALERTS{{alertname="{quiet}", alertstate="firing"}}[10m]"#
        ));
        assert!(firing.is_empty(), "{quiet} fired: {firing:?}");
    }

    // A target label `node` clashes with the watchdog's own: Prometheus
    // keeps the target's and renames the watchdog's (prometheus/ explains;
    // this is why the example scrape configs set no such label).
    let clash = prom.query(r#"vip_watchdog_build_info{job="label-clash"}"#);
    assert_eq!(clash.len(), 1, "{clash:?}");
    assert_eq!(clash[0]["metric"]["node"], "from-the-target", "{clash:?}");
    assert_eq!(clash[0]["metric"]["exported_node"], "a", "{clash:?}");

    // lab2's heal and its failover's latency, scraped (twice at least: the
    // dashboards read `increase` over the histogram).
    prom.wait_query(
        "Prometheus scrapes lab2's heal of its failover",
        r#"sum(vip_watchdog_heals_total{pair="lab2", node="b"}) > 0"#,
        ALERT,
    );
    prom.wait_query(
        "Prometheus scrapes lab2's failover-latency sample twice",
        r#"count_over_time(vip_watchdog_failover_latency_seconds_count{pair="lab2", node="b"}[1h]) >= 2"#,
        ALERT,
    );

    // Every query of every dashboard (panels, annotations, variables), with
    // its variables filled, is valid PromQL and returns series from these
    // live watchdogs: the per-pair dashboard's for each pair, the fleet
    // dashboard's for both pairs at once (each of its series that is per
    // pair is there for both).
    const PAIRS: [&str; 2] = ["lab", "lab2"];
    let fill = |q: &str, pair: &str| {
        q.replace("$__rate_interval", "1m")
            .replace("$pair", pair)
            .replace("$node", ".*")
            .replace("$vip", ".*")
    };
    let mut checked = 0;
    let mut files: Vec<_> = std::fs::read_dir(common::repo().join("dashboards"))
        .expect("dashboards/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "the per-pair and the fleet dashboards: {files:?}"
    );
    for file in &files {
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).expect("dashboard"))
                .expect("dashboard JSON");
        let panels = dashboard["panels"].as_array().expect("panels");
        let annotations = dashboard["annotations"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let queries = panels
            .iter()
            .flat_map(|p| {
                let title = p["title"].as_str().unwrap_or_default().to_owned();
                p["targets"]
                    .as_array()
                    .expect("targets")
                    .iter()
                    .map(move |t| (title.clone(), t["expr"].as_str().expect("expr").to_owned()))
            })
            // An annotation marks moments over the dashboard's range:
            // asked over the last 15 minutes (a subquery), it has series
            // from this test's transitions.
            .chain(annotations.iter().map(|a| {
                let expr = a["target"]["expr"].as_str().expect("an annotation's expr");
                (
                    format!("annotation {}", a["name"]),
                    format!("({expr})[15m:5s]"),
                )
            }))
            .collect::<Vec<_>>();
        let per_pair = dashboard["templating"]["list"]
            .as_array()
            .expect("variables")
            .iter()
            .any(|v| v["name"] == "pair");
        let pairs: &[&str] = if per_pair { &PAIRS } else { &["(fleet)"] };
        for pair in pairs {
            for (title, expr) in &queries {
                let expr = fill(expr, pair);
                let result = prom.query(&expr);
                // Valid PromQL always (an API error fails `query`); empty
                // only for what these labs have none of: route VIPs
                // (tests/deployments.rs reads their metric from a route lab)
                // and managed private IPs (tests/make_before_break.rs).
                let absent_here = expr.contains("vip_watchdog_vip_route_state")
                    || expr.contains("vip_watchdog_address_changes_total");
                assert!(
                    !result.is_empty() || absent_here,
                    "{}: {title:?}: {expr} returned no series",
                    file.display()
                );
                if !per_pair && result.iter().any(|r| r["metric"]["pair"].is_string()) {
                    let seen: std::collections::BTreeSet<&str> = result
                        .iter()
                        .filter_map(|r| r["metric"]["pair"].as_str())
                        .collect();
                    assert_eq!(
                        seen,
                        PAIRS.into(),
                        "{}: {title:?}: {expr} lacks a pair: {result:?}",
                        file.display()
                    );
                }
                checked += 1;
            }
        }
        for var in dashboard["templating"]["list"]
            .as_array()
            .expect("variables")
        {
            let Some(q) = var["query"]["query"].as_str() else {
                continue;
            };
            // Grafana's label_values(METRIC{...}, LABEL).
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .expect("label_values");
            let (matcher, label) = inner.rsplit_once(", ").expect("matcher, label");
            for pair in PAIRS {
                let values = prom.label_values(label, &fill(matcher, pair));
                assert!(
                    !values.is_empty(),
                    "variable {}: {q} has no values",
                    var["name"]
                );
                if label == "pair" {
                    assert!(
                        PAIRS.iter().all(|p| values.iter().any(|v| v == p)),
                        "variable pair offers {values:?}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "checked {checked} queries");
}
