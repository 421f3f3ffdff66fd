//! The randomised soak: a pair through failovers drawn at random, in both
//! modes, on real Keepalived, HAProxy and moto behind the fault proxy.
//!
//!     ./scripts/soak.sh [--rounds N] [--seed S]   # 100 rounds by default
//!     BENCH_SMOKE=1 cargo test --bench soak       # 10 rounds, seed 1 (the test suite)
//!     SOAK_ROUNDS=N SOAK_SEED=S cargo test --bench soak
//!
//! Two labs, each a Keepalived pair with HAProxy, moto (patched by
//! tests/moto/launch.py) and a fault proxy in front of each node's
//! watchdog: one in `own` mode with no notify script, one in `heal` mode
//! with the typical notify script (which a round may make fail, hang or run
//! twice). The watchdogs run at the shipped defaults. Rounds alternate
//! between the labs; each draws one step:
//!
//! - HAProxy stopped on the MASTER; Keepalived SIGTERM, SIGKILL (a crash:
//!   the VRRP process and the parent) or SIGSTOP (for 8 s) on the MASTER;
//! - Keepalived reloaded (SIGHUP) on either node; the FIFO removed and
//!   recreated (a tmp cleaner), then Keepalived reloaded to reopen it;
//! - a watchdog SIGKILLed and restarted;
//! - VRRP cut both ways for 10 s (a split brain: a partition, neither
//!   node hearing the other); VRRP cut one way for 10 s (into the BACKUP,
//!   which goes MASTER while the MASTER still hears it: the one-way split
//!   of rule 12);
//! - a cloud fault on the node that takes over, then HAProxy stopped on the
//!   MASTER: throttling, a 503, a connection reset after the call was
//!   applied, describes lagging 2 s, a call held until it times out;
//! - (`heal` mode) the new MASTER's notify script fails, hangs 25 s, or
//!   runs twice, then HAProxy stopped on the MASTER.
//!
//! After the step, and after undoing it, the check: within `BOUND` exactly
//! one node is a healthy MASTER (by its watchdog: MASTER, Keepalived
//! running, probe up) and the observer (polling the emulator every 10 ms)
//! sees the EIP on it; or that node's watchdog says why not (its verdict
//! and reason in /v1/status). Printed at the end: rounds, failovers (EIP
//! moves), heals, wrong moves (a watchdog's mutating call while its node
//! was broken by the step: must be 0), the time the EIP was not on the
//! healthy MASTER after a step (p50, p95, max), API calls per move, each
//! watchdog's memory at the start and the end, and restarts of a watchdog
//! other than the planned ones (must be 0). A failed run prints its seed;
//! the same seed replays the same steps.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime};

use common::{Lab, Watchdog, metric, unix};
use nix::sys::signal::Signal;
use support::{mib, status_kib};

/// How long a step may take to settle (a heal takes `grace` 10 s and a
/// describe; a split brain or a resumed Keepalived some more).
const BOUND: Duration = Duration::from_secs(60);

const CLOUD_FAULTS: [(&str, &str); 6] = [
    (
        "throttling",
        r#"{"AssignPrivateIpAddresses": ["throttle", "throttle"], "DescribeAddresses": ["throttle"]}"#,
    ),
    (
        "a 503 on the assign",
        r#"{"AssignPrivateIpAddresses": ["unavailable"]}"#,
    ),
    (
        "a reset after the assign applied",
        r#"{"AssignPrivateIpAddresses": ["drop"]}"#,
    ),
    (
        "describes lagging 2 s",
        r#"{"DescribeAddresses": ["lag:2*"]}"#,
    ),
    (
        "the assign held until it times out",
        r#"{"AssignPrivateIpAddresses": ["hold"]}"#,
    ),
    (
        "describes answered out of order",
        r#"{"DescribeAddresses": ["jitter:1.5*"]}"#,
    ),
];

const NOTIFY_FAULTS: [&str; 3] = ["fail", "delay 25", "twice"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    HaproxyStopped,
    KeepalivedSigterm,
    KeepalivedCrash,
    KeepalivedStopped,
    KeepalivedReload(usize),
    FifoRecreated(usize),
    WatchdogKilled(usize),
    VrrpCut,
    /// VRRP cut, and node b's associate lands 3 s late (after a's).
    VrrpCutLateAssign,
    /// VRRP dropped on its way into the BACKUP only.
    VrrpOneWay,
    Cloud(usize),
    Notify(usize),
}

impl Step {
    fn draw(rng: &mut fastrand::Rng, heal: bool) -> Step {
        let node = rng.usize(..2);
        match rng.usize(..if heal { 13 } else { 12 }) {
            0 => Step::HaproxyStopped,
            1 => Step::KeepalivedSigterm,
            2 => Step::KeepalivedCrash,
            3 => Step::KeepalivedStopped,
            4 => Step::KeepalivedReload(node),
            5 => Step::FifoRecreated(node),
            6 => Step::WatchdogKilled(node),
            7 => Step::VrrpCut,
            8 => Step::VrrpCutLateAssign,
            9 => Step::VrrpOneWay,
            10 | 11 => Step::Cloud(rng.usize(..CLOUD_FAULTS.len())),
            _ => Step::Notify(rng.usize(..NOTIFY_FAULTS.len())),
        }
    }

    fn describe(self) -> String {
        let n = |i: usize| ["a", "b"][i];
        match self {
            Step::HaproxyStopped => "HAProxy stopped on the MASTER".into(),
            Step::KeepalivedSigterm => "Keepalived SIGTERM on the MASTER".into(),
            Step::KeepalivedCrash => "Keepalived crash (SIGKILL) on the MASTER".into(),
            Step::KeepalivedStopped => "Keepalived SIGSTOP for 8 s on the MASTER".into(),
            Step::KeepalivedReload(i) => format!("Keepalived reloaded on {}", n(i)),
            Step::FifoRecreated(i) => format!("the FIFO removed and recreated on {}", n(i)),
            Step::WatchdogKilled(i) => format!("the watchdog SIGKILLed on {}", n(i)),
            Step::VrrpCut => "VRRP cut both ways for 10 s".into(),
            Step::VrrpOneWay => "VRRP cut into the BACKUP for 10 s (a one-way split)".into(),
            Step::VrrpCutLateAssign => {
                "VRRP cut for 10 s, b's AssignPrivateIpAddresses landing 3 s late".into()
            }
            Step::Cloud(f) => format!(
                "{} on the new MASTER, then HAProxy stopped",
                CLOUD_FAULTS[f].0
            ),
            Step::Notify(f) => format!(
                "the new MASTER's notify script: {}, then HAProxy stopped",
                NOTIFY_FAULTS[f]
            ),
        }
    }
}

struct Pair {
    name: &'static str,
    heal: bool,
    lab: Lab,
    w: [Option<Watchdog>; 2],
    observer: Receiver<String>,
    on: String,
    moves: usize,
    /// Each node's broken intervals (Unix seconds): a mutating call by its
    /// watchdog inside one is a wrong move.
    broken: [Vec<(f64, f64)>; 2],
    /// The logs of watchdogs that were killed (planned) and replaced.
    old_logs: [String; 2],
    memory_start: [u64; 2],
    planned_restarts: usize,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Pair {
    fn new(name: &'static str, heal: bool) -> Pair {
        let mut lab = Lab::new();
        lab.add_cloud();
        if heal {
            for n in ["a", "b"] {
                let switch = lab.node(n).dir.join("notify.switch");
                lab.set_notify(n, Some(&format!("switch:{}", switch.display())));
            }
        }
        lab.set_vip(if heal { "heal" } else { "own" }, false);
        lab.add_fault_proxy("a", "{}");
        lab.add_fault_proxy("b", "{}");
        let wa = lab.a.start_watchdog(true);
        let wb = lab.b.start_watchdog(true);
        lab.start_services();
        let observer = lab.start_observer(4 * 3600);
        let memory_start = [
            status_kib(wa.child.id(), "VmRSS:"),
            status_kib(wb.child.id(), "VmRSS:"),
        ];
        let mut pair = Pair {
            name,
            heal,
            lab,
            w: [Some(wa), Some(wb)],
            observer,
            on: String::new(),
            moves: 0,
            broken: [vec![], vec![]],
            old_logs: [String::new(), String::new()],
            memory_start,
            planned_restarts: 0,
        };
        pair.settle("set-up", Some(0), Duration::from_secs(6), Instant::now())
            .unwrap_or_else(|e| panic!("{name}: set-up: {e}"));
        pair
    }

    fn w(&self, i: usize) -> &Watchdog {
        self.w[i].as_ref().expect("a watchdog")
    }

    fn node(&mut self, i: usize) -> &mut common::Node {
        if i == 0 {
            &mut self.lab.a
        } else {
            &mut self.lab.b
        }
    }

    /// Where the observer last saw the EIP: "a", "b" or "-".
    fn follow(&mut self) {
        while let Ok(line) = self.observer.try_recv() {
            let eni = line
                .split_once(' ')
                .map(|(_, e)| e.to_owned())
                .unwrap_or_default();
            let on = if eni == self.lab.eni("a") {
                "a"
            } else if eni == self.lab.eni("b") {
                "b"
            } else {
                "-"
            };
            if !self.on.is_empty() {
                self.moves += 1;
            }
            self.on = on.to_owned();
        }
    }

    /// The one healthy MASTER, by the watchdogs' own reports.
    fn healthy_master(&self) -> Option<usize> {
        let healthy: Vec<usize> = (0..2)
            .filter(|&i| {
                let s = self.w(i).status();
                let vi = &s["instances"][0];
                vi["state"] == "master"
                    && s["keepalived"]["running"] == true
                    && s["probe"]["health"] == "up"
            })
            .collect();
        (healthy.len() == 1).then(|| healthy[0])
    }

    /// Waits until one healthy MASTER (`expect`, when given) holds the EIP
    /// and has for `stable` on end; returns how long after `since` that
    /// began, or why not (the MASTER's watchdog's verdict, when it gives
    /// one).
    fn settle(
        &mut self,
        what: &str,
        expect: Option<usize>,
        stable: Duration,
        since: Instant,
    ) -> Result<Duration, String> {
        let mut held_from: Option<Instant> = None;
        loop {
            self.follow();
            let master = self.healthy_master();
            let ok =
                master.is_some_and(|m| expect.is_none_or(|e| e == m) && self.on == ["a", "b"][m]);
            match (ok, held_from) {
                (true, None) => held_from = Some(Instant::now()),
                (false, Some(_)) => held_from = None,
                _ => {}
            }
            if let Some(h) = held_from
                && h.elapsed() >= stable
            {
                return Ok(h.duration_since(since));
            }
            if since.elapsed() > BOUND + stable {
                let why = match master {
                    Some(m) => {
                        let v = &self.w(m).status()["vips"][0];
                        format!(
                            "{}: the EIP is on {:?}; {}'s watchdog says {} ({})",
                            what,
                            self.on,
                            ["a", "b"][m],
                            v["verdict"],
                            v["why"]
                        )
                    }
                    None => format!("{what}: no single healthy MASTER"),
                };
                return Err(why);
            }
            std::thread::park_timeout(Duration::from_millis(200));
        }
    }

    fn master(&self) -> usize {
        self.healthy_master()
            .expect("a settled pair has one healthy MASTER")
    }

    fn signal(&mut self, i: usize, sig: Signal, vrrp_too: bool) {
        let node = self.node(i);
        if vrrp_too {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(node.vrrp_pid()), sig);
        }
        node.signal_keepalived(sig);
    }

    fn restart_keepalived(&mut self, i: usize) {
        let node = self.node(i);
        node.reap_keepalived();
        support::kill_keepalived_in(&node.ns.clone());
        node.start_keepalived();
    }

    /// Applies the step; returns what undoes it.
    fn apply(&mut self, step: Step) -> Box<dyn FnOnce(&mut Pair)> {
        let m = self.master();
        let o = 1 - m;
        let t0 = now();
        let broken = move |p: &mut Pair, i: usize| {
            let t = now();
            p.broken[i].push((t0, t));
        };
        match step {
            Step::HaproxyStopped | Step::Cloud(_) | Step::Notify(_) => {
                if let Step::Cloud(f) = step {
                    self.lab.set_faults(["a", "b"][o], CLOUD_FAULTS[f].1);
                }
                if let Step::Notify(f) = step {
                    let switch = self.node(o).dir.join("notify.switch");
                    std::fs::write(switch, NOTIFY_FAULTS[f]).expect("the switch file");
                }
                self.node(m).kill_haproxy();
                Box::new(move |p: &mut Pair| {
                    p.node(m).start_haproxy();
                    broken(p, m);
                    p.lab.set_faults(["a", "b"][o], "{}");
                    let _ = std::fs::remove_file(p.node(o).dir.join("notify.switch"));
                })
            }
            Step::KeepalivedSigterm => {
                self.signal(m, Signal::SIGTERM, false);
                Box::new(move |p: &mut Pair| {
                    p.restart_keepalived(m);
                    broken(p, m);
                })
            }
            Step::KeepalivedCrash => {
                self.signal(m, Signal::SIGKILL, true);
                Box::new(move |p: &mut Pair| {
                    p.restart_keepalived(m);
                    broken(p, m);
                })
            }
            Step::KeepalivedStopped => {
                self.signal(m, Signal::SIGSTOP, true);
                // The fault's schedule, not a wait for an event.
                std::thread::park_timeout(Duration::from_secs(8));
                Box::new(move |p: &mut Pair| {
                    p.signal(m, Signal::SIGCONT, true);
                    broken(p, m);
                })
            }
            Step::KeepalivedReload(i) => {
                self.signal(i, Signal::SIGHUP, false);
                Box::new(|_: &mut Pair| {})
            }
            Step::FifoRecreated(i) => {
                let fifo = self.node(i).fifo();
                let _ = std::fs::remove_file(&fifo);
                nix::unistd::mkfifo(
                    &fifo,
                    nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
                )
                .expect("mkfifo");
                // As an operator would: reload Keepalived to reopen it.
                std::thread::park_timeout(Duration::from_millis(500));
                self.signal(i, Signal::SIGHUP, false);
                Box::new(|_: &mut Pair| {})
            }
            Step::WatchdogKilled(i) => {
                let mut w = self.w[i].take().expect("a watchdog");
                let _ = w.child.kill();
                let _ = w.child.wait();
                self.old_logs[i].push_str(&w.log_text());
                self.old_logs[i].push('\n');
                drop(w);
                self.planned_restarts += 1;
                self.w[i] = Some(self.node(i).start_watchdog(true));
                Box::new(|_: &mut Pair| {})
            }
            Step::VrrpOneWay => {
                self.node(o).block_vrrp(true);
                std::thread::park_timeout(Duration::from_secs(10));
                self.node(o).block_vrrp(false);
                Box::new(|_: &mut Pair| {})
            }
            Step::VrrpCut | Step::VrrpCutLateAssign => {
                let late = step == Step::VrrpCutLateAssign;
                if late {
                    self.lab
                        .set_faults("b", r#"{"AssignPrivateIpAddresses": ["late:3*"]}"#);
                }
                self.lab.a.block_vrrp(true);
                self.lab.b.block_vrrp(true);
                std::thread::park_timeout(Duration::from_secs(10));
                self.lab.a.block_vrrp(false);
                self.lab.b.block_vrrp(false);
                Box::new(move |p: &mut Pair| {
                    if late {
                        p.lab.set_faults("b", "{}");
                    }
                })
            }
        }
    }

    /// Mutating calls a watchdog made while its node was broken.
    fn wrong_moves(&self) -> Vec<String> {
        let mut out = vec![];
        for i in 0..2 {
            let log = format!("{}\n{}", self.old_logs[i], self.w(i).log_text());
            for line in log.lines() {
                let Some(json) = line.split_once("] ").map(|(_, j)| j) else {
                    continue;
                };
                let Ok(e) = serde_json::from_str::<serde_json::Value>(json) else {
                    continue;
                };
                let mutating =
                    common::is(&e, "claim_associate") || common::is(&e, "claim_assign_private_ip");
                if !mutating {
                    continue;
                }
                let t = unix(e["timestamp"].as_str().unwrap_or_default());
                if self.broken[i].iter().any(|(a, b)| (*a..=*b).contains(&t)) {
                    out.push(format!(
                        "{}: {} at {t:.3}, node {} broken",
                        self.name,
                        e["event"],
                        ["a", "b"][i]
                    ));
                }
            }
        }
        out
    }

    fn unplanned_exits(&mut self) -> usize {
        self.w
            .iter_mut()
            .flatten()
            .filter_map(|w| w.child.try_wait().ok().flatten())
            .count()
    }
}

fn main() {
    common::require_prerequisites();
    let smoke = support::is_smoke();
    let rounds: usize = match std::env::var("SOAK_ROUNDS") {
        Ok(n) => n.parse().expect("SOAK_ROUNDS is a number"),
        Err(_) if smoke => 10,
        Err(_) => 100,
    };
    let seed: u64 = match std::env::var("SOAK_SEED") {
        Ok(s) => s.parse().expect("SOAK_SEED is a number"),
        Err(_) if smoke => 1,
        Err(_) => SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs()),
    };
    println!("soak: seed {seed}, {rounds} rounds (replay: SOAK_SEED={seed} SOAK_ROUNDS={rounds})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut pairs = [Pair::new("own", false), Pair::new("heal", true)];
    let mut away = vec![];
    let mut explained = vec![];
    let mut failures = vec![];
    let mut unplanned = 0;
    for round in 0..rounds {
        let p = &mut pairs[round % 2];
        let step = Step::draw(&mut rng, p.heal);
        // A step that breaks the MASTER must move the EIP to the other node.
        let expect = match step {
            Step::HaproxyStopped
            | Step::KeepalivedSigterm
            | Step::KeepalivedCrash
            | Step::KeepalivedStopped
            | Step::Cloud(_)
            | Step::Notify(_) => Some(1 - p.master()),
            _ => None,
        };
        let injected = Instant::now();
        let undo = p.apply(step);
        let first = p.settle("after the step", expect, Duration::from_secs(2), injected);
        undo(p);
        // Undone, the pair may move again (node a preempts): settled once
        // quiet for 6 s.
        let second = p.settle(
            "after undoing it",
            None,
            Duration::from_secs(6),
            Instant::now(),
        );
        unplanned += p.unplanned_exits();
        let outcome = match (&first, &second) {
            (Ok(a), Ok(b)) => {
                away.push(*a);
                format!(
                    "settled in {:.1} s, then {:.1} s",
                    a.as_secs_f64(),
                    b.as_secs_f64()
                )
            }
            (Err(e), _) | (_, Err(e)) => {
                if e.contains("says \"damped\"") || e.contains("says \"wait\"") {
                    explained.push(format!("round {round} ({}): {e}", p.name));
                    format!("not settled, explained: {e}")
                } else {
                    failures.push(format!(
                        "round {round} ({}, {}): {e}",
                        p.name,
                        step.describe()
                    ));
                    format!("NOT SETTLED: {e}")
                }
            }
        };
        eprintln!(
            "round {round:>3} {:<5} {:<60} {outcome}",
            p.name,
            step.describe()
        );
        if !failures.is_empty() {
            // The pair is in a state the next steps cannot start from.
            break;
        }
    }
    let wrong: Vec<String> = pairs.iter().flat_map(Pair::wrong_moves).collect();
    println!("| measure | own | heal |");
    println!("|---|---|---|");
    let both = |f: &dyn Fn(&Pair) -> String| (f(&pairs[0]), f(&pairs[1]));
    let (a, b) = both(&|p| p.moves.to_string());
    println!("| EIP moves (failovers and heals) | {a} | {b} |");
    let (a, b) = both(&|p| {
        (0..2)
            .map(|i| {
                ["missed", "elsewhere", "stolen", "drifted"]
                    .iter()
                    .filter_map(|r| {
                        metric(
                            &p.w(i).metrics(),
                            "vip_watchdog_heals_total",
                            &[("reason", r)],
                        )
                    })
                    .sum::<f64>()
            })
            .sum::<f64>()
            .to_string()
    });
    println!("| claims made by the watchdogs (heals_total, since their last start) | {a} | {b} |");
    let (a, b) = both(&|p| {
        let calls = p.lab.api_calls();
        let n: u64 = ["watchdog a", "watchdog b"]
            .iter()
            .filter_map(|k| calls[*k].as_object())
            .flat_map(|m| m.values().filter_map(|v| v.as_u64()))
            .sum();
        format!("{:.1} ({n} in all)", n as f64 / p.moves.max(1) as f64)
    });
    println!("| API calls per EIP move | {a} | {b} |");
    let (a, b) = both(&|p| {
        (0..2)
            .map(|i| {
                format!(
                    "{}: {} -> {}",
                    ["a", "b"][i],
                    mib(p.memory_start[i]),
                    mib(status_kib(p.w(i).child.id(), "VmRSS:"))
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    println!("| watchdog memory, start -> end | {a} | {b} |");
    let (a, b) = both(&|p| p.planned_restarts.to_string());
    println!("| planned watchdog restarts | {a} | {b} |");
    println!();
    println!(
        "rounds: {}; the EIP off the healthy MASTER after a step, p50 / p95 / max: {}",
        away.len() + explained.len() + failures.len(),
        support::summary(&away)
    );
    println!("wrong moves: {}", wrong.len());
    println!("unplanned watchdog exits: {unplanned}");
    println!(
        "not settled but explained by the watchdog: {}",
        explained.len()
    );
    for e in &explained {
        println!("  {e}");
    }
    assert!(
        failures.is_empty() && wrong.is_empty() && unplanned == 0,
        "the soak failed (replay: SOAK_SEED={seed} SOAK_ROUNDS={rounds}):\n{}\n{}",
        failures.join("\n"),
        wrong.join("\n")
    );
}
