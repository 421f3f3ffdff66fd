//! Benchmark: the delay from a Keepalived FIFO line to the changed metric,
//! and the watchdog's footprint without a cloud (for the footprint with one,
//! see benches/footprint.rs).
//!
//!     cargo bench --bench fifo_to_metric            # 500 rounds, 30 s idle
//!     BENCH_SMOKE=1 cargo test --bench fifo_to_metric   # 5 rounds, 1 s idle
//!     VIP_WATCHDOG_BIN=/path/to/vip-watchdog ...         # measure that binary
//!
//! It runs the real binary with a FIFO of its own (no Keepalived needed: the
//! benchmark writes Keepalived's lines itself), alternates `MASTER` and
//! `BACKUP` lines, and after each write polls `/metrics` on loopback until
//! `vip_watchdog_vrrp_state{state=..}` flips; the delay includes one
//! `/metrics` request. Then it leaves the watchdog idle and reads its
//! resident memory and CPU time from /proc. It reports; it asserts no timing.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.starts_with("HTTP/1.0 200").then_some(body)
}

fn state_is(metrics: &str, state: &str) -> bool {
    metrics.lines().any(|l| {
        l.starts_with("vip_watchdog_vrrp_state{")
            && l.contains(&format!("state=\"{state}\""))
            && l.ends_with(" 1")
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let smoke = std::env::var_os("BENCH_SMOKE").is_some();
    let (rounds, idle) = if smoke {
        (5, Duration::from_secs(1))
    } else {
        (500, Duration::from_secs(30))
    };
    let dir = std::env::temp_dir().join(format!("vip-watchdog-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let fifo = dir.join("keepalived.fifo");
    let config = dir.join("watchdog.toml");
    std::fs::write(
        &config,
        format!(
            r#"[node]
name = "bench"
pair = "bench"
[http]
listen = "127.0.0.1:0"
local_socket = "{dir}/local.sock"
[log]
format = "json"
level = "info"
[keepalived]
fifo = "{fifo}"
pid_file = "{dir}/absent.pid"
vrrp_pid_file = ""
json_dump = false
[[keepalived.instance]]
name = "VI_1"
[probe]
kind = "exec"
command = ["true"]
interval = "1s"
timeout = "500ms"
"#,
            fifo = fifo.display(),
            dir = dir.display()
        ),
    )
    .expect("config");

    let started = Instant::now();
    let mut child = Command::new(common::watchdog_bin())
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watchdog starts");
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("watchdog log").expect("log line");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if common::is(&v, "http_listening") {
            break v["address"].as_str().expect("address").to_owned();
        }
    };
    // Keep draining the log so the watchdog never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    // Start-up is measured in the lab, to a correct status (benches/footprint.rs).
    while get(&addr, "/v1/status").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no /v1/status within 10 s"
        );
    }

    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("FIFO");
    let mut delays = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (word, state) = if round % 2 == 0 {
            ("MASTER", "master")
        } else {
            ("BACKUP", "backup")
        };
        let t0 = Instant::now();
        writer
            .write_all(format!("INSTANCE \"VI_1\" {word} 150\n").as_bytes())
            .expect("FIFO write");
        let mut polls = 0;
        loop {
            polls += 1;
            if get(&addr, "/metrics").is_some_and(|m| state_is(&m, state)) {
                break;
            }
            assert!(
                polls < 10_000 && t0.elapsed() < Duration::from_secs(2),
                "round {round}: metric did not change"
            );
        }
        delays.push(t0.elapsed());
    }

    let cpu_before = support::cpu_time(pid);
    let idle_start = Instant::now();
    std::thread::park_timeout(idle);
    let idle_elapsed = idle_start.elapsed();
    let cpu = support::cpu_time(pid) - cpu_before;
    let cpu_pct = cpu.as_secs_f64() / idle_elapsed.as_secs_f64() * 100.0;
    let rss_kib = support::status_kib(pid, "VmRSS:");
    let hwm_kib = support::status_kib(pid, "VmHWM:");

    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = child.wait().expect("exit");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "watchdog exit after SIGTERM: {status:?}");

    delays.sort();
    let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1000.0);
    let mean = delays.iter().sum::<Duration>() / delays.len() as u32;
    println!(
        "vip-watchdog fifo_to_metric ({}, {rounds} rounds{})",
        common::watchdog_bin().display(),
        if smoke { ", smoke" } else { "" }
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| FIFO line -> /metrics changed, p50 | {} |",
        ms(percentile(&delays, 0.5))
    );
    println!(
        "| FIFO line -> /metrics changed, p95 | {} |",
        ms(percentile(&delays, 0.95))
    );
    println!(
        "| FIFO line -> /metrics changed, max | {} |",
        ms(*delays.last().expect("rounds"))
    );
    println!("| FIFO line -> /metrics changed, mean | {} |", ms(mean));
    println!(
        "| resident memory, idle (VmRSS) | {} |",
        support::mib(rss_kib)
    );
    println!(
        "| resident memory, peak (VmHWM) | {} |",
        support::mib(hwm_kib)
    );
    println!(
        "| CPU while idle ({:.0} s, probe every 1 s) | {cpu_pct:.2} % of one core |",
        idle_elapsed.as_secs_f64()
    );
}
