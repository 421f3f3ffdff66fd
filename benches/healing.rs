//! Benchmark: a notify script that fails one time in three, with and without
//! vip-watchdog healing after it.
//!
//!     cargo bench --bench healing                  # 21 rounds per setup (7 fail)
//!     BENCH_SMOKE=1 cargo test --bench healing     # 3 rounds each (1 fails)
//!     BENCH_ROUNDS=N cargo bench --bench healing
//!
//! Two labs run side by side, as in `benches/failover.rs`, and rounds
//! alternate between them. In both, `notify_master` is the typical script
//! script (tests/moto/notify_baseline.sh: IMDSv2 with curl, then the AWS
//! CLI); on node b it fails every third run, before any call, as it does
//! when the CLI, its credentials or the metadata service fail it. Node a's
//! always works, so every round starts with the EIP on node a.
//!
//! - (A) the script alone, no watchdog.
//! - (B) the same script, and vip-watchdog in `heal` mode with its defaults
//!   (`grace = "10s"`, `min_master_age = "3s"`) except `max_claims = 1000`:
//!   the benchmark heals every few seconds, which the default damping (3
//!   claims per 10 minutes) would rightly hold back.
//!
//! Each round stops HAProxy on node a (the MASTER), and measures from then
//! until an observer polling the emulator every 10 ms sees the EIP on node
//! b, the new MASTER; a round whose EIP has not arrived after `WINDOW` is
//! counted as never (and the EIP is checked to be still on node a). Then
//! HAProxy comes back, node a takes MASTER and the EIP back, and the next
//! round goes. The mutating calls each client made are counted at the
//! emulator. It reports; it asserts no timing.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, SystemTime};

use common::Lab;
use support::{Observer, STEP, Watch, secs, since, summary, ts};

/// How long a round waits for an EIP that a failed script did not move.
const WINDOW: Duration = Duration::from_secs(30);

struct Pair {
    name: &'static str,
    lab: Lab,
    observer: Observer,
    eni_a: String,
    eni_b: String,
    watch: Watch,
    /// Rounds in which node b's script worked: fault -> EIP on node b.
    worked: Vec<Duration>,
    /// Rounds in which it failed: Some(fault -> EIP on node b), or None.
    failed: Vec<Option<Duration>>,
    /// (B) in the failed rounds: node b MASTER -> the watchdog's claim.
    waited: Vec<Duration>,
    /// (B) the watchdog's own sample minus the observer's, per round (ms).
    errors: Vec<f64>,
}

impl Pair {
    fn new(name: &'static str, watchdog: bool) -> Pair {
        let mut lab = Lab::new();
        lab.add_cloud();
        lab.set_notify("a", Some("baseline"));
        lab.set_notify("b", Some("baseline-flaky"));
        let fifos = if watchdog {
            lab.set_vip("heal", false);
            None
        } else {
            Some((lab.a.read_fifo(), lab.b.read_fifo()))
        };
        let observer = Observer::new(lab.start_observer(3 * 3600));
        let watch = Watch::start(&lab, fifos);
        lab.start_services();
        let (eni_a, eni_b) = (lab.eni("a"), lab.eni("b"));
        let mut pair = Pair {
            name,
            lab,
            observer,
            eni_a,
            eni_b,
            watch,
            worked: vec![],
            failed: vec![],
            waited: vec![],
            errors: vec![],
        };
        pair.watch.settled_on_a();
        // The set-up put the EIP on node a; the observer's first report.
        let eni_a = pair.eni_a.clone();
        pair.observer.wait(name, &eni_a);
        pair
    }

    /// How many times node b's notify_master has run.
    fn b_runs(&self) -> u64 {
        std::fs::read_to_string(self.lab.b.dir.join("notify.runs"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn round(&mut self) -> String {
        self.watch.forget_past();
        let runs_before = self.b_runs();
        let t0 = SystemTime::now();
        self.lab.a.kill_haproxy();
        let b_master = self.watch.wait_state("b", "master");
        let eni_b = self.eni_b.clone();
        let moved = self.observer.wait_for(&eni_b, WINDOW);
        // By now node b's script has run (it starts at the transition and,
        // when it fails, fails first thing).
        let runs = self.b_runs();
        assert_eq!(
            runs,
            runs_before + 1,
            "{}: node b's notify_master ran {} times this round",
            self.name,
            runs - runs_before
        );
        let script_failed = runs.is_multiple_of(3);
        let outcome = match (script_failed, moved) {
            (false, Some(at)) => {
                self.worked.push(since(at, t0));
                secs(since(at, t0))
            }
            (false, None) => panic!(
                "{}: node b's script worked but the EIP did not reach it within {WINDOW:?}",
                self.name
            ),
            (true, Some(at)) => {
                if let Some(wb) = self.watch.watchdog("b") {
                    let claim = wb.wait_for("b's claim", STEP, |e| common::is(e, "claim_started"));
                    self.waited.push(since(ts(&claim), b_master));
                }
                self.failed.push(Some(since(at, t0)));
                format!("{} (script failed)", secs(since(at, t0)))
            }
            (true, None) => {
                let on = self.lab.eip_on();
                assert_eq!(on, "a", "{}: the EIP is on {on:?}", self.name);
                self.failed.push(None);
                format!(
                    "never: still on node a after {} (script failed)",
                    secs(WINDOW)
                )
            }
        };
        if let (Some(wb), Some(at)) = (self.watch.watchdog("b"), moved) {
            let own = support::sample(wb);
            let error = support::error_ms(&own, at);
            self.errors.push(error);
            eprintln!(
                "  watchdog's sample {} (moved by {}); error against the observer {error:+.0} ms",
                secs(own.latency),
                own.moved_by
            );
        }
        // Back to node a. Its script (or, had it failed, its watchdog) moves
        // the EIP back unless it never left.
        self.lab.a.start_haproxy();
        if self.observer.on == self.eni_b {
            let eni_a = self.eni_a.clone();
            self.observer.wait(self.name, &eni_a);
        }
        self.watch.settled_on_a();
        outcome
    }

    fn report(&self) {
        let never = self.failed.iter().filter(|f| f.is_none()).count();
        let healed: Vec<Duration> = self.failed.iter().flatten().copied().collect();
        let failed = if never > 0 {
            format!(
                "never in {never} of {} (EIP still on the old MASTER after {})",
                self.failed.len(),
                secs(WINDOW)
            )
        } else {
            summary(&healed)
        };
        println!(
            "| {} | {} | {} | {} |",
            self.name,
            self.worked.len() + self.failed.len(),
            summary(&self.worked),
            failed
        );
    }
}

/// "Action: n" for the mutating calls `client` made from `node`.
fn mutating(calls: &serde_json::Value, client: &str, node: &str) -> String {
    let Some(m) = calls[format!("{client} {node}")].as_object() else {
        return "none".into();
    };
    let v: Vec<String> = m
        .iter()
        .filter(|(action, _)| {
            matches!(
                action.as_str(),
                "AssignPrivateIpAddresses" | "AssociateAddress"
            )
        })
        .map(|(action, n)| format!("{action} {n}"))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn main() {
    common::require_prerequisites();
    let rounds = support::rounds(3, 21);
    let mut a = Pair::new("A: notify script alone", false);
    let mut b = Pair::new("B: notify script + vip-watchdog, heal mode", true);
    for round in 0..rounds {
        let order: [&mut Pair; 2] = if round % 2 == 0 {
            [&mut a, &mut b]
        } else {
            [&mut b, &mut a]
        };
        for pair in order {
            let outcome = pair.round();
            eprintln!("round {round} {:<44} {outcome}", pair.name);
        }
    }
    println!(
        "healing benchmark: HAProxy stopped on the MASTER -> EIP on the new MASTER; node b's notify_master fails every third run; {rounds} round(s) per setup"
    );
    println!(
        "| setup | rounds | script worked: median / p95 / max | script failed: median / p95 / max |"
    );
    println!("|---|---|---|---|");
    a.report();
    b.report();
    println!();
    println!(
        "B, failed rounds: node b MASTER -> the watchdog's claim (grace 10 s): {}",
        summary(&b.waited)
    );
    println!(
        "B: the watchdog's failover-latency sample against the outside observer: {}",
        support::error_summary(&b.errors, 1_500.0)
    );
    let calls = b.lab.api_calls();
    let describes = calls["watchdog b"]["DescribeAddresses"]
        .as_u64()
        .unwrap_or(0);
    println!(
        "B: node b's watchdog made {describes} DescribeAddresses over {rounds} round(s) (each round two transitions on b), {:.1} per round",
        describes as f64 / rounds as f64
    );
    for pair in [&a, &b] {
        let calls = pair.lab.api_calls();
        println!(
            "{}: node b's mutating calls: AWS CLI {}; watchdog {}",
            pair.name,
            mutating(&calls, "aws-cli", "b"),
            mutating(&calls, "watchdog", "b")
        );
    }
}
