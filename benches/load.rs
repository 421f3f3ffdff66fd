//! Benchmark: load at the edges. A FIFO flooded as fast as a writer can,
//! and 64 VIPs on one node.
//!
//!     cargo bench --bench load                    # a 30 s flood
//!     BENCH_SMOKE=1 cargo test --bench load       # a 2 s flood (the test suite)
//!     BENCH_FLOOD_SECS=N cargo bench --bench load
//!
//! One node of the lab (network namespace `a`) with moto's EC2 server
//! (patched by tests/moto/launch.py) and 64 Elastic IPs, and vip-watchdog at
//! its shipped defaults with 64 `[[vip]]`s (all on VRRP instance VI_1; no
//! Keepalived runs, so nothing is claimed: this measures the watchdog, not
//! the cloud). A writer thread floods the notify FIFO with Keepalived's
//! lines (VRRP transitions of 64 instances, group and LVS lines) for
//! `BENCH_FLOOD_SECS`, blocking when the pipe is full, as Keepalived's
//! non-blocking writes would then drop. Meanwhile a thread inside the
//! node's namespace asks `/metrics` and `/v1/status` in turn, one request
//! at a time. Reported: the lines written and their rate, how long the
//! watchdog took to read the last of them, the two endpoints' latency
//! (p50 / p99 / max), the watchdog's memory before, after and at peak, and
//! how many VIPs each DescribeAddresses named (counted at the emulator).
//! It reports; it asserts only what is not a timing: every describe named
//! all 64 VIPs.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Lab, metric};
use support::{STEP, mib, status_kib};

const VIPS: usize = 64;

/// One HTTP/1.1 GET on a new connection; the time to the last byte.
fn get(address: &str, path: &str) -> Duration {
    let started = Instant::now();
    let mut s = TcpStream::connect(address).expect("connect to the watchdog");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut body = vec![];
    s.read_to_end(&mut body).expect("answer");
    assert!(
        body.starts_with(b"HTTP/1.1 200"),
        "{path}: {}",
        String::from_utf8_lossy(&body[..body.len().min(200)])
    );
    started.elapsed()
}

fn percentiles(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort();
    let at = |p: f64| v[(((v.len() - 1) as f64) * p).round() as usize];
    format!(
        "{:.1} / {:.1} / {:.1} ms ({} requests)",
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        v[v.len() - 1].as_secs_f64() * 1000.0,
        v.len()
    )
}

fn main() {
    common::require_prerequisites();
    let smoke = support::is_smoke();
    let flood = Duration::from_secs(match std::env::var("BENCH_FLOOD_SECS") {
        Ok(n) => n.parse().expect("BENCH_FLOOD_SECS is a number"),
        Err(_) if smoke => 2,
        Err(_) => 30,
    });

    let mut lab = Lab::new();
    lab.add_cloud();
    let extra = lab.allocate(VIPS - 1);
    lab.set_vip("own", false);
    for (i, alloc) in extra.iter().enumerate() {
        lab.a.cloud_toml.push_str(&format!(
            "\n[[vip]]\nkind = \"eip\"\nname = \"v{i}\"\nallocation_id = \"{alloc}\"\nprivate_ip = \"10.213.0.{}\"\nvrrp_instance = \"VI_1\"\nmode = \"own\"\n",
            120 + i
        ));
    }
    let address = "127.0.0.1:9842";
    lab.a.listen = address.into();
    let wa = lab.a.start_watchdog(false);
    wa.wait_status("every VIP's cloud view", STEP, |s| {
        s["vips"]
            .as_array()
            .is_some_and(|v| v.len() == VIPS && v.iter().all(|x| !x["cloud"].is_null()))
    });
    let pid = wa.child.id();
    let rss_before = status_kib(pid, "VmRSS:");
    lab.reset_api_calls();

    // The HTTP client, inside node a's namespace.
    let stop = Arc::new(AtomicBool::new(false));
    let ns = lab.a.ns.clone();
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("the namespace");
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let (mut metrics, mut status) = (vec![], vec![]);
            while !stop.load(Ordering::Relaxed) {
                metrics.push(get(address, "/metrics"));
                status.push(get(address, "/v1/status"));
            }
            (metrics, status)
        })
    };

    // The flood.
    let fifo = lab.a.fifo();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("the FIFO");
        let states = ["MASTER", "BACKUP", "FAULT", "MASTER_RX_LOWER_PRI", "STOP"];
        let started = Instant::now();
        let mut lines = 0u64;
        let mut buf = String::new();
        while started.elapsed() < flood {
            buf.clear();
            for i in 0..64u64 {
                let n = lines + i;
                let k = n % 64 + 1;
                match n % 16 {
                    0 => buf.push_str(&format!("GROUP \"G{}\" BACKUP 0\n", n % 8)),
                    1 => buf.push_str(&format!("VS [10.0.0.{}]:tcp:80 UP\n", n % 32)),
                    _ => buf.push_str(&format!(
                        "INSTANCE \"VI_{k}\" {} {}\n",
                        states[(n / 64 % 5) as usize],
                        100 + n % 50
                    )),
                }
            }
            f.write_all(buf.as_bytes()).expect("FIFO write");
            lines += 64;
        }
        (lines, started.elapsed())
    });
    let (written, took) = writer.join().expect("the writer");
    let flood_end = Instant::now();
    // Caught up: the watchdog has read every line written.
    let read = |w: &common::Watchdog| {
        metric(&w.metrics(), "vip_watchdog_fifo_lines_read_total", &[]).unwrap_or(0.0) as u64
    };
    let deadline = Instant::now() + STEP;
    while read(&wa) < written {
        assert!(
            Instant::now() < deadline,
            "the watchdog read {} of {written} lines within {STEP:?}",
            read(&wa)
        );
        std::thread::park_timeout(Duration::from_millis(20));
    }
    let caught_up = flood_end.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (metrics, status) = client.join().expect("the client");
    let rss_after = status_kib(pid, "VmRSS:");
    let hwm = status_kib(pid, "VmHWM:");
    let sizes = lab.describe_sizes("a");
    let m = wa.metrics();
    let dropped: f64 = ["instance", "group", "lvs"]
        .iter()
        .filter_map(|k| metric(&m, "vip_watchdog_fifo_names_dropped_total", &[("kind", k)]))
        .sum();

    println!(
        "load benchmark: a FIFO flooded for {:.1} s and {VIPS} VIPs on one node{}",
        took.as_secs_f64(),
        if smoke { " (smoke)" } else { "" }
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| lines written | {written} ({:.0} a second) |",
        written as f64 / took.as_secs_f64()
    );
    println!(
        "| the watchdog read the last of them | {:.0} ms after the flood ended |",
        caught_up.as_secs_f64() * 1000.0
    );
    println!("| lines dropped for naming one name too many | {dropped} |");
    println!(
        "| `/metrics` during the flood, p50 / p99 / max | {} |",
        percentiles(metrics)
    );
    println!(
        "| `/v1/status` during the flood, p50 / p99 / max | {} |",
        percentiles(status)
    );
    println!(
        "| resident memory: before, after, peak | {} / {} / {} |",
        mib(rss_before),
        mib(rss_after),
        mib(hwm)
    );
    println!(
        "| DescribeAddresses during the flood | {} calls, each naming {:?} VIPs |",
        sizes.len(),
        sizes.iter().collect::<std::collections::BTreeSet<_>>()
    );
    assert!(
        !sizes.is_empty() && sizes.iter().all(|n| *n == VIPS),
        "every describe names all {VIPS} VIPs: {sizes:?}"
    );
}
