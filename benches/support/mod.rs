//! What the lab benchmarks share: waiting on the observer and on FIFO lines,
//! timestamps from the watchdog's JSON log, and the statistics they print.

#![allow(dead_code)]

use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;

use crate::common::{Node, Watchdog};

/// The most any one step of a round may take before the benchmark fails.
pub const STEP: Duration = Duration::from_secs(60);

/// The faults a failover benchmark injects on the MASTER.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Fault {
    HaproxyStopped,
    KeepalivedSigterm,
    KeepalivedCrash,
}

impl Fault {
    pub const ALL: [Fault; 3] = [
        Self::HaproxyStopped,
        Self::KeepalivedSigterm,
        Self::KeepalivedCrash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::HaproxyStopped => "HAProxy stopped",
            Self::KeepalivedSigterm => "Keepalived SIGTERM",
            Self::KeepalivedCrash => "Keepalived crash (SIGKILL)",
        }
    }

    /// HAProxy killed; Keepalived stopped (SIGTERM, as `systemctl stop`);
    /// Keepalived crashed (SIGKILL of its VRRP process, then of the parent).
    pub fn inject(self, node: &mut Node) {
        match self {
            Self::HaproxyStopped => node.kill_haproxy(),
            Self::KeepalivedSigterm => node.signal_keepalived(Signal::SIGTERM),
            Self::KeepalivedCrash => {
                let vrrp = nix::unistd::Pid::from_raw(node.vrrp_pid());
                nix::sys::signal::kill(vrrp, Signal::SIGKILL).expect("kill the VRRP process");
                node.signal_keepalived(Signal::SIGKILL);
            }
        }
    }

    /// Undoes the fault.
    pub fn restore(self, node: &mut Node) {
        match self {
            Self::HaproxyStopped => node.start_haproxy(),
            Self::KeepalivedSigterm | Self::KeepalivedCrash => {
                node.reap_keepalived();
                kill_keepalived_in(&node.ns);
                node.start_keepalived();
            }
        }
    }
}

/// The lab's observer (`Lab::start_observer`): which ENI holds the EIP.
pub struct Observer {
    rx: Receiver<String>,
    /// The ENI the observer last reported.
    pub on: String,
}

impl Observer {
    pub fn new(rx: Receiver<String>) -> Self {
        Self {
            rx,
            on: String::new(),
        }
    }

    /// Waits up to `timeout` for the observer to see the EIP arrive on `eni`
    /// (a change: if it is there already, this waits for it to leave and
    /// come back); returns when it arrived (the observer's clock), or None.
    pub fn wait_for(&mut self, eni: &str, timeout: Duration) -> Option<SystemTime> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.rx.recv_timeout(left).ok()?;
            let (t, on) = line.split_once(' ').expect("EPOCH ENI");
            self.on = on.to_owned();
            if on == eni {
                let secs: f64 = t.parse().expect("epoch");
                return Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs));
            }
        }
    }

    /// As `wait_for`, failing the benchmark after `STEP`.
    pub fn wait(&mut self, what: &str, eni: &str) -> SystemTime {
        self.wait_for(eni, STEP)
            .unwrap_or_else(|| panic!("{what}: the EIP did not reach {eni} within {STEP:?}"))
    }
}

/// Node a's and node b's FIFO lines (`Node::read_fifo`).
pub type FifoPair = (
    Receiver<(SystemTime, String)>,
    Receiver<(SystemTime, String)>,
);

/// How a benchmark follows the pair's VRRP state: from Keepalived's notify
/// FIFOs, read by the benchmark itself (a setup with no watchdog), or from
/// the watchdogs' logs.
pub enum Watch {
    Fifo {
        a: Receiver<(SystemTime, String)>,
        b: Receiver<(SystemTime, String)>,
    },
    Watchdogs {
        a: Box<Watchdog>,
        b: Box<Watchdog>,
    },
}

impl Watch {
    /// `fifos` (a setup with no watchdog: the FIFO readers, made before
    /// Keepalived starts), or else both nodes' watchdogs, started now.
    pub fn start(lab: &crate::common::Lab, fifos: Option<FifoPair>) -> Watch {
        match fifos {
            Some((a, b)) => Watch::Fifo { a, b },
            None => Watch::Watchdogs {
                a: Box::new(lab.a.start_watchdog(true)),
                b: Box::new(lab.b.start_watchdog(true)),
            },
        }
    }

    /// Drops what was seen so far (call it right before a fault).
    pub fn forget_past(&self) {
        match self {
            Watch::Fifo { a, b } => {
                drain(a);
                drain(b);
            }
            Watch::Watchdogs { a, b } => {
                a.forget_past();
                b.forget_past();
            }
        }
    }

    /// Waits until node `node` ("a" or "b") enters `state` ("master",
    /// "backup"); returns when that was seen: the FIFO line's arrival, or
    /// the watchdog's log time.
    pub fn wait_state(&self, node: &str, state: &str) -> SystemTime {
        match (self, node) {
            (Watch::Fifo { a, .. }, "a") | (Watch::Fifo { b: a, .. }, _) => {
                fifo_line(a, &state.to_uppercase())
            }
            (Watch::Watchdogs { a, .. }, "a") | (Watch::Watchdogs { b: a, .. }, _) => {
                ts(&a.wait_state(state, STEP))
            }
        }
    }

    /// Waits until node a is MASTER and node b BACKUP.
    pub fn settled_on_a(&self) {
        self.wait_state("a", "master");
        self.wait_state("b", "backup");
    }

    /// Node `node`'s watchdog, in the setup that has them.
    /// The last `n` log lines of each watchdog, for a failed step.
    pub fn tails(&self, n: usize) -> String {
        let Watch::Watchdogs { a, b } = self else {
            return String::new();
        };
        let tail = |w: &Watchdog| {
            let text = w.log_text();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "--- watchdog a ---\n{}\n--- watchdog b ---\n{}",
            tail(a),
            tail(b)
        )
    }

    pub fn watchdog(&self, node: &str) -> Option<&Watchdog> {
        match (self, node) {
            (Watch::Fifo { .. }, _) => None,
            (Watch::Watchdogs { a, .. }, "a") => Some(a),
            (Watch::Watchdogs { b, .. }, _) => Some(b),
        }
    }
}

/// The watchdog's own failover-latency sample, as it logs it: the latency
/// from the MASTER line, when the describe that showed the VIP here was
/// sent, and who moved it.
pub struct Sample {
    pub latency: Duration,
    pub seen_at: SystemTime,
    pub moved_by: String,
}

/// Waits for `w`'s next failover-latency sample.
pub fn sample(w: &Watchdog) -> Sample {
    let e = w.wait_for("the watchdog's latency sample", STEP, |e| {
        crate::common::is(e, "vip_arrived")
    });
    Sample {
        latency: Duration::from_millis(e["latency_ms"].as_u64().expect("latency_ms")),
        seen_at: humantime::parse_rfc3339_weak(e["seen_at"].as_str().expect("seen_at"))
            .expect("RFC 3339"),
        moved_by: e["moved_by"].as_str().unwrap_or_default().to_owned(),
    }
}

/// The watchdog's sample against the observer's move, in signed
/// milliseconds (positive: the watchdog saw it later). Both are latencies
/// from the same MASTER line, so their difference is that of the two times.
pub fn error_ms(s: &Sample, moved: SystemTime) -> f64 {
    match s.seen_at.duration_since(moved) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

/// "median / p95 / max" of absolute errors in ms, and how many of them
/// are within `bound_ms`.
pub fn error_summary(errors: &[f64], bound_ms: f64) -> String {
    if errors.is_empty() {
        return "-".into();
    }
    let mut abs: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let at = |p: f64| abs[(((abs.len() - 1) as f64) * p).round() as usize];
    let within = abs.iter().filter(|e| **e <= bound_ms).count();
    format!(
        "|error| {:.0} / {:.0} / {:.0} ms (median / p95 / max); within {bound_ms:.0} ms: {within} of {}",
        at(0.5),
        at(0.95),
        abs[abs.len() - 1],
        abs.len()
    )
}

/// The `timestamp` of a watchdog's JSON log event.
pub fn ts(event: &serde_json::Value) -> SystemTime {
    humantime::parse_rfc3339_weak(event["timestamp"].as_str().expect("timestamp"))
        .expect("RFC 3339")
}

pub fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

/// Waits for a FIFO line whose state is `word`; returns when it was read.
pub fn fifo_line(rx: &Receiver<(SystemTime, String)>, word: &str) -> SystemTime {
    loop {
        let (at, line) = rx
            .recv_timeout(STEP)
            .unwrap_or_else(|_| panic!("no FIFO line {word} within {STEP:?}"));
        if line.split_whitespace().nth(2) == Some(word) {
            return at;
        }
    }
}

pub fn drain<T>(rx: &Receiver<T>) {
    while rx.try_recv().is_ok() {}
}

/// Kills every keepalived left in `ns` (a crash can orphan a VRRP process).
pub fn kill_keepalived_in(ns: &str) {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids");
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "keepalived"
            && let Ok(p) = pid.parse::<i32>()
        {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), Signal::SIGKILL);
        }
    }
}

/// Where in Keepalived's 1 s timers round `round`'s fault falls, the same
/// for every setup: a round takes nearly the same time each time, so
/// without it a lab injects its faults at nearly the same phase of its
/// `vrrp_script` check every round, and the detection of HAProxy stopped
/// (0 to 1 s of it) would differ between labs by where each happened to
/// lock (0.86 s median in one run, 1.38 s in another). The golden-ratio
/// sequence spreads 20 rounds evenly over the second.
pub fn fault_offset(round: usize) -> Duration {
    let golden = 0.618_033_988_75_f64;
    Duration::from_secs_f64((round as f64 * golden).fract())
}

/// Median, p95 and max.
pub fn stats(v: &[Duration]) -> (Duration, Duration, Duration) {
    let mut s = v.to_vec();
    s.sort();
    let at = |p: f64| s[(((s.len() - 1) as f64) * p).round() as usize];
    (at(0.5), at(0.95), *s.last().expect("samples"))
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// "median / p95 / max", or "-" without samples.
pub fn summary(v: &[Duration]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let (p50, p95, max) = stats(v);
    format!("{} / {} / {}", secs(p50), secs(p95), secs(max))
}

/// Rounds from BENCH_ROUNDS, else `smoke` under BENCH_SMOKE, else `full`.
pub fn rounds(smoke: usize, full: usize) -> usize {
    match std::env::var("BENCH_ROUNDS") {
        Ok(n) => n.parse().expect("BENCH_ROUNDS is a number"),
        Err(_) if is_smoke() => smoke,
        Err(_) => full,
    }
}

pub fn is_smoke() -> bool {
    std::env::var_os("BENCH_SMOKE").is_some()
}

/// The CPU time (user + system) of process `pid`, all its threads, live or
/// gone; clock-tick resolution (10 ms here).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    let rest: Vec<&str> = stat[stat.rfind(')').expect(")") + 1..]
        .split_whitespace()
        .collect();
    let ticks = rest[11].parse::<u64>().expect("utime") + rest[12].parse::<u64>().expect("stime");
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Duration::from_secs_f64(ticks as f64 / hz)
}

/// A `/proc/PID/status` field in KiB (VmRSS:, VmHWM:).
pub fn status_kib(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
