//! Benchmark: the watchdog's footprint and its cloud API calls, in the lab.
//!
//!     cargo bench --bench footprint                 # 6 restarts, 10 min idle, 10 failovers
//!     BENCH_SMOKE=1 cargo test --bench footprint    # 2 restarts, 5 s idle, 2 failovers
//!     BENCH_IDLE_SECS=N BENCH_ROUNDS=N BENCH_FLAP_SECS=N cargo bench --bench footprint
//!     VIP_WATCHDOG_BIN=/path/to/vip-watchdog ...    # measure that binary instead
//!     BENCH_STATE_TAGS=1 ...                        # with cloud.state_tags = true
//!
//! One lab (a Keepalived pair with HAProxy in network namespaces, moto's EC2
//! server patched by tests/moto/launch.py, an IMDSv2 stub per node) with
//! vip-watchdog in `own` mode on both nodes, at its shipped defaults
//! (`verify_interval = "30s"`, `verify_jitter = "3s"`, the fast pace of
//! `1s` for `20s` after a transition, `min_master_age = "3s"`, damping
//! included: converged claims are not damped), with the lab's Keepalived
//! side at `process_check_interval = "250ms"` and an http probe every `1s`.
//! In four phases:
//!
//! 1. Start-up: the watchdog on one node is stopped and started again
//!    (alternately the BACKUP's and the MASTER's), and `/v1/status` is
//!    polled from inside the node's namespace until it is correct: VI_1 in
//!    its real state, learned from Keepalived's JSON dump, and the VIP's
//!    cloud view and verdict known. Timed from the spawn.
//! 2. Idle: nothing happens for `BENCH_IDLE_SECS`; the CPU time each
//!    watchdog used, its resident memory, and every call it made to the
//!    emulator (counted at moto's recorder, by client and node) are read.
//! 3. Failovers: HAProxy is stopped on node a, the EIP moves to node b, then
//!    HAProxy comes back and the EIP moves back to node a; each move is one
//!    failover, finished when the observer sees the EIP on the new MASTER
//!    and that node's watchdog logs its claim converged. CPU time and calls
//!    in this phase, less the idle rate over its duration, are per failover.
//! 4. A flapping probe: HAProxy on node a is stopped for 0.5 s every 3 s for
//!    `BENCH_FLAP_SECS` (120; smoke 6), so that both the watchdog's probe and
//!    Keepalived's track script flap and VRRP moves back and forth: the
//!    describes each watchdog makes per minute then, counted at the emulator
//!    (every VRRP transition asks for a describe and the fast pace; the
//!    verifier's minimum gap bounds them).
//!
//! With `BENCH_STATE_TAGS=1` both watchdogs run with `state_tags = true`
//! at the default `state_tag_interval` (60 s): the CreateTags calls they
//! add show in the idle and per-failover counts.
//!
//! It reports; it asserts no timing.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use common::{Lab, Watchdog, get_in_ns, watchdog_bin};
use serde_json::Value;
use support::{Observer, STEP, cpu_time, mib, status_kib, summary};

/// True once `/v1/status` shows VI_1 as `state` from the JSON dump, and the
/// VIP's cloud view and verdict.
fn status_correct(status: &Value, state: &str) -> bool {
    let vi = status["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == "VI_1"));
    let vip = status["vips"].as_array().and_then(|a| a.first());
    vi.is_some_and(|i| i["state"] == state && i["source"] == "json_dump")
        && vip.is_some_and(|v| !v["cloud"].is_null() && !v["verdict"].is_null())
}

/// Restarts the watchdog `wd` of `node` and returns the new one, and the time
/// from its spawn to the first correct `/v1/status`.
fn restart(lab: &Lab, node: &str, wd: Watchdog, state: &str) -> (Watchdog, Duration) {
    let status = wd.stop();
    assert!(
        status.success(),
        "watchdog {node} exit after SIGTERM: {status:?}"
    );
    let n = lab.node(node);
    let t0 = Instant::now();
    let wd = n.start_watchdog(true);
    // Bounded: one request at a time, for at most STEP.
    loop {
        if let Some(body) = get_in_ns(&n.ns, &wd.address, "/v1/status") {
            let status: Value = serde_json::from_str(&body).expect("/v1/status is JSON");
            if status_correct(&status, state) {
                return (wd, t0.elapsed());
            }
        }
        assert!(
            t0.elapsed() < STEP,
            "watchdog {node}: no correct /v1/status within {STEP:?}:\n{}",
            wd.log_text()
        );
    }
}

/// Calls per action made by the watchdog on `node`.
fn calls_of(calls: &Value, node: &str) -> BTreeMap<String, u64> {
    calls[format!("watchdog {node}")]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

fn total(calls: &BTreeMap<String, u64>) -> u64 {
    calls.values().sum()
}

fn listing(calls: &BTreeMap<String, u64>, per: f64) -> String {
    if calls.is_empty() {
        return "none".into();
    }
    calls
        .iter()
        .map(|(k, v)| format!("{k} {:.1}", *v as f64 / per))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() {
    common::require_prerequisites();
    let smoke = support::is_smoke();
    let restarts = if smoke { 2 } else { 6 };
    let idle = Duration::from_secs(match std::env::var("BENCH_IDLE_SECS") {
        Ok(n) => n.parse().expect("BENCH_IDLE_SECS is a number"),
        Err(_) if smoke => 5,
        Err(_) => 600,
    });
    // Each round is two failovers: to node b and back.
    let rounds = support::rounds(1, 5);

    let bin = watchdog_bin();
    let bin_size = std::fs::metadata(&bin).expect("the watchdog binary").len();

    let mut lab = Lab::new();
    lab.add_cloud();
    for n in lab.nodes_mut() {
        n.intervals = ("250ms", "1s");
    }
    let state_tags = std::env::var_os("BENCH_STATE_TAGS").is_some_and(|v| v == "1");
    if state_tags {
        lab.cloud_overrides.push(("state_tags", "true".into()));
    }
    lab.set_vip("own", false);
    let mut wa = lab.a.start_watchdog(true);
    let mut wb = lab.b.start_watchdog(true);
    lab.start_services();
    wa.wait_state("master", STEP);
    wb.wait_state("backup", STEP);

    // 1. Start-up.
    let mut startup = vec![];
    for i in 0..restarts {
        let t;
        if i % 2 == 0 {
            (wb, t) = restart(&lab, "b", wb, "backup");
        } else {
            (wa, t) = restart(&lab, "a", wa, "master");
        }
        startup.push(t);
    }
    let (pa, pb) = (wa.child.id(), wb.child.id());
    for (pid, node) in [(pa, "a"), (pb, "b")] {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert_eq!(
            comm.trim(),
            "vip-watchdog",
            "process {pid} of node {node} is not the watchdog"
        );
    }

    // 2. Idle.
    lab.reset_api_calls();
    let (ca, cb) = (cpu_time(pa), cpu_time(pb));
    let t_idle = Instant::now();
    std::thread::park_timeout(idle);
    let idle = t_idle.elapsed();
    let idle_cpu = [cpu_time(pa) - ca, cpu_time(pb) - cb];
    let idle_rss = [status_kib(pa, "VmRSS:"), status_kib(pb, "VmRSS:")];
    let idle_calls = lab.api_calls();
    let idle_calls = [calls_of(&idle_calls, "a"), calls_of(&idle_calls, "b")];

    // 3. Failovers.
    let mut observer = Observer::new(lab.start_observer(3600));
    let (eni_a, eni_b) = (lab.eni("a"), lab.eni("b"));
    observer.wait("footprint", &eni_a);
    wa.forget_past();
    wb.forget_past();
    lab.reset_api_calls();
    let (ca, cb) = (cpu_time(pa), cpu_time(pb));
    let t_fail = Instant::now();
    let (mut to_b, mut back) = (vec![], vec![]);
    for _ in 0..rounds {
        let t0 = SystemTime::now();
        lab.a.kill_haproxy();
        let at = observer.wait("failover to b", &eni_b);
        to_b.push(support::since(at, t0));
        wb.wait_for("b's claim to converge", STEP, |e| {
            common::is(e, "claim_converged")
        });
        let t0 = SystemTime::now();
        lab.a.start_haproxy();
        let at = observer.wait("failover to a", &eni_a);
        back.push(support::since(at, t0));
        wa.wait_for("a's claim to converge", STEP, |e| {
            common::is(e, "claim_converged")
        });
    }
    let busy = t_fail.elapsed();
    let failovers = (2 * rounds) as f64;
    let busy_cpu = [cpu_time(pa) - ca, cpu_time(pb) - cb];
    let hwm = [status_kib(pa, "VmHWM:"), status_kib(pb, "VmHWM:")];
    let busy_calls = lab.api_calls();
    let busy_calls = [calls_of(&busy_calls, "a"), calls_of(&busy_calls, "b")];

    // 4. A flapping probe.
    let flap = Duration::from_secs(match std::env::var("BENCH_FLAP_SECS") {
        Ok(n) => n.parse().expect("BENCH_FLAP_SECS is a number"),
        Err(_) if smoke => 6,
        Err(_) => 120,
    });
    lab.reset_api_calls();
    let t_flap = Instant::now();
    while t_flap.elapsed() < flap {
        // The fault's schedule, not a wait for an event.
        lab.a.kill_haproxy();
        std::thread::park_timeout(Duration::from_millis(500));
        lab.a.start_haproxy();
        std::thread::park_timeout(Duration::from_millis(2500));
    }
    let flapped = t_flap.elapsed();
    let flap_calls = lab.api_calls();
    let flap_describes = |node: &str| {
        flap_calls[format!("watchdog {node}")]["DescribeAddresses"]
            .as_u64()
            .unwrap_or(0) as f64
            / flapped.as_secs_f64()
            * 60.0
    };
    let flap_describes = [flap_describes("a"), flap_describes("b")];

    let _ = wa.stop();
    let _ = wb.stop();

    // The report.
    let pct = |cpu: Duration, over: Duration| cpu.as_secs_f64() / over.as_secs_f64() * 100.0;
    let idle_share = busy.as_secs_f64() / idle.as_secs_f64();
    println!(
        "vip-watchdog footprint ({}, {} restarts, {:.0} s idle, {} failovers{}{})",
        bin.display(),
        restarts,
        idle.as_secs_f64(),
        2 * rounds,
        if state_tags { ", state tags on" } else { "" },
        if smoke { ", smoke" } else { "" }
    );
    println!("| measure | node a (MASTER) | node b (BACKUP) |");
    println!("|---|---|---|");
    println!("| binary size | {} | |", mib(bin_size / 1024));
    println!(
        "| start -> first correct /v1/status, median / p95 / max (both nodes) | {} | |",
        summary(&startup)
    );
    println!(
        "| resident memory, idle (VmRSS) | {} | {} |",
        mib(idle_rss[0]),
        mib(idle_rss[1])
    );
    println!(
        "| resident memory, peak after the failovers (VmHWM) | {} | {} |",
        mib(hwm[0]),
        mib(hwm[1])
    );
    println!(
        "| CPU while idle | {:.3} % of one core | {:.3} % |",
        pct(idle_cpu[0], idle),
        pct(idle_cpu[1], idle)
    );
    println!(
        "| CPU during the failover phase ({:.0} s) | {:.3} % | {:.3} % |",
        busy.as_secs_f64(),
        pct(busy_cpu[0], busy),
        pct(busy_cpu[1], busy)
    );
    let per_failover = |i: usize| {
        let extra = busy_cpu[i].as_secs_f64() - idle_cpu[i].as_secs_f64() * idle_share;
        format!("{:.1} ms", extra * 1000.0 / failovers)
    };
    println!(
        "| CPU time per failover, less the idle rate | {} | {} |",
        per_failover(0),
        per_failover(1)
    );
    let hours = idle.as_secs_f64() / 3600.0;
    println!(
        "| API calls while idle, per hour | {:.0} ({}) | {:.0} ({}) |",
        total(&idle_calls[0]) as f64 / hours,
        listing(&idle_calls[0], hours),
        total(&idle_calls[1]) as f64 / hours,
        listing(&idle_calls[1], hours)
    );
    let calls_per_failover = |i: usize| {
        let expected_idle = total(&idle_calls[i]) as f64 * idle_share;
        let net = (total(&busy_calls[i]) as f64 - expected_idle) / failovers;
        format!(
            "{net:.1} ({}; {} in all)",
            listing(&busy_calls[i], failovers),
            total(&busy_calls[i])
        )
    };
    println!(
        "| API calls per failover, less the idle rate | {} | {} |",
        calls_per_failover(0),
        calls_per_failover(1)
    );
    println!(
        "| DescribeAddresses per minute while HAProxy on a flaps (0.5 s down every 3 s, {:.0} s) | {:.1} | {:.1} |",
        flapped.as_secs_f64(),
        flap_describes[0],
        flap_describes[1]
    );
    println!(
        "EIP moves in this phase (min_master_age 3 s), median / p95 / max: HAProxy stopped on a -> EIP on b {}; HAProxy back on a -> EIP on a (a preempts) {}",
        summary(&to_b),
        summary(&back)
    );
}
