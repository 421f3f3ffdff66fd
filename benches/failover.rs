//! Benchmark: how long a failover really takes, from the fault to the Elastic
//! IP on the new MASTER, for the notify-script baseline and for vip-watchdog.
//!
//!     cargo bench --bench failover                 # 20 rounds per fault and setup
//!     BENCH_SMOKE=1 cargo test --bench failover    # 1 round each (in the test suite)
//!     BENCH_ROUNDS=N cargo bench --bench failover
//!
//! Three labs run side by side (each: a Keepalived pair with HAProxy in
//! network namespaces, moto's EC2 server patched by tests/moto/launch.py, an
//! IMDSv2 stub per node), and rounds alternate between them:
//!
//! - (A) baseline: no watchdog; `notify_master` is tests/moto/notify_baseline.sh,
//!   the typical notify script (IMDSv2 with curl, then the AWS CLI's
//!   describe-instances, assign-private-ip-addresses, associate-address).
//! - (B) vip-watchdog in `own` mode, `min_master_age = "1s"` (its minimum),
//!   no notify script.
//! - (C) vip-watchdog in `own` mode with the peer channel (`[peer]`), at the
//!   shipped defaults (`min_master_age` 3 s, heartbeat 1 s, max_age 3 s,
//!   process check 250 ms, probe interval 1 s; the lab template's probe
//!   timeout 150 ms and rise/fall 1, which no failover here waits for):
//!   the new MASTER claims as soon as its peer says it is not MASTER
//!   (rule 11), no notify script.
//!
//! In (B) and (C), `keepalived.release_on_crash` is on (the shipped
//! default): when the MASTER's Keepalived crashes, its watchdog sends the
//! priority-0 advert Keepalived could not, so the peer's Keepalived takes
//! over after its skew time. (A) has no watchdog, so its crash waits out
//! Keepalived's detection.
//!
//! Faults on the MASTER (node a): HAProxy stopped; Keepalived SIGTERM;
//! Keepalived crashed (SIGKILL of its VRRP process, then of the parent).
//! An observer in the cloud namespace polls DescribeAddresses every 10 ms;
//! the latency is from the fault to the observer seeing the EIP on node b.
//! After each round the fault is undone and the pair (and the EIP) goes back
//! to node a before the next one; the next fault comes a fraction of a
//! second after that (the same fractions for every setup, spread over the
//! second: see `support::fault_offset`), so that faults fall evenly over
//! Keepalived's 1 s check and advert timers in every lab. (B) and (C) are
//! broken into phases from the watchdog's own log: Keepalived's detection
//! (fault -> MASTER line read), the watchdog's reaction (-> claim sent;
//! includes min_master_age), the cloud calls (-> associate accepted, or the
//! describe that found the EIP had followed its private IP, when no
//! associate is needed), and confirmation (-> observer).
//! It reports; it asserts no timing.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::Lab;
use support::{Fault, Observer, STEP, Watch, secs, since, stats, ts};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setup {
    Script,
    Own,
    OwnPeer,
}

struct Pair {
    name: &'static str,
    lab: Lab,
    observer: Observer,
    eni_a: String,
    eni_b: String,
    watch: Watch,
}

#[derive(Default)]
struct Phases {
    /// The watchdog's own sample minus the observer's, per round (ms).
    errors: Vec<f64>,
    detection: Vec<Duration>,
    reaction: Vec<Duration>,
    calls: Vec<Duration>,
    confirmation: Vec<Duration>,
    /// From Keepalived's detection (the MASTER line) to the observer.
    after_detection: Vec<Duration>,
}

impl Pair {
    fn new(name: &'static str, setup: Setup) -> Pair {
        let mut lab = Lab::new();
        lab.add_cloud();
        if setup == Setup::Own {
            // Changed from the shipped 3 s (docs/benchmarks.md says why):
            // the wait is a fixed cost added to every own-mode round.
            lab.vip_overrides.push(("min_master_age", "\"1s\"".into()));
        }
        let watch_fifos = if setup != Setup::Script {
            lab.set_vip("own", false);
            if setup == Setup::OwnPeer {
                lab.add_peer_channel(true);
                // The shipped process-check and probe intervals (the lab's
                // are quicker): the process watch is on the path of a crash.
                for n in lab.nodes_mut() {
                    n.intervals = ("250ms", "1s");
                }
            }
            None
        } else {
            lab.set_notify("a", Some("baseline"));
            lab.set_notify("b", Some("baseline"));
            Some((lab.a.read_fifo(), lab.b.read_fifo()))
        };
        let observer = Observer::new(lab.start_observer(3 * 3600));
        let watch = Watch::start(&lab, watch_fifos);
        lab.start_services();
        let (eni_a, eni_b) = (lab.eni("a"), lab.eni("b"));
        let mut pair = Pair {
            name,
            lab,
            observer,
            eni_a,
            eni_b,
            watch,
        };
        pair.watch.settled_on_a();
        let eni_a = pair.eni_a.clone();
        pair.wait_eip(&eni_a);
        pair
    }

    fn wait_eip(&mut self, eni: &str) -> SystemTime {
        match self.observer.wait_for(eni, STEP) {
            Some(t) => t,
            None => panic!(
                "{}: the EIP did not reach {eni} within {STEP:?}\n{}\n{}",
                self.name,
                self.watch.tails(80),
                self.lab.keepalived_logs()
            ),
        }
    }

    /// One failover, `offset` after the pair settled; returns its latency,
    /// and (B, C) its phases.
    fn round(&mut self, fault: Fault, offset: Duration, phases: &mut Phases) -> Duration {
        self.watch.forget_past();
        // Not a wait for anything: it places the fault at a chosen point of
        // Keepalived's 1 s check and advert timers (see
        // `support::fault_offset`).
        std::thread::sleep(offset);
        let t0 = SystemTime::now();
        fault.inject(&mut self.lab.a);
        let eni_b = self.eni_b.clone();
        let moved = self.wait_eip(&eni_b);
        if let Some(wb) = self.watch.watchdog("b") {
            let master = ts(&wb.wait_state("master", STEP));
            let claim = ts(&wb.wait_for("b's claim", STEP, |e| common::is(e, "claim_started")));
            let accepted = ts(
                &wb.wait_for("associate accepted or EIP followed", STEP, |e| {
                    common::is(e, "claim_associate_accepted") || common::is(e, "claim_eip_followed")
                }),
            );
            let own = support::sample(wb);
            let error = support::error_ms(&own, moved);
            eprintln!(
                "  watchdog's sample {:.3} s (moved by {}), observer's {:.3} s: error {error:+.0} ms",
                own.latency.as_secs_f64(),
                own.moved_by,
                own.latency.as_secs_f64() - error / 1000.0
            );
            phases.errors.push(error);
            phases.detection.push(since(master, t0));
            phases.reaction.push(since(claim, master));
            phases.calls.push(since(accepted, claim));
            phases.confirmation.push(since(moved, accepted));
            phases.after_detection.push(since(moved, master));
        }
        // Back to node a, settled, before the next round.
        fault.restore(&mut self.lab.a);
        let eni_a = self.eni_a.clone();
        self.wait_eip(&eni_a);
        self.watch.settled_on_a();
        since(moved, t0)
    }
}

fn main() {
    common::require_prerequisites();
    let rounds = support::rounds(1, 20);
    let mut a = Pair::new("A: notify script + AWS CLI", Setup::Script);
    let mut b = Pair::new("B: own mode, min_master_age 1s", Setup::Own);
    let mut c = Pair::new("C: own mode + peer channel, defaults", Setup::OwnPeer);
    let mut results: BTreeMap<(Fault, &'static str), Vec<Duration>> = BTreeMap::new();
    let mut phases: BTreeMap<(Fault, &'static str), Phases> = BTreeMap::new();
    for round in 0..rounds {
        for fault in Fault::ALL {
            // Rotate which setup goes first, so drift hits all alike.
            let mut order: [&mut Pair; 3] = [&mut a, &mut b, &mut c];
            order.rotate_left(round % 3);
            for pair in order {
                let latency = pair.round(
                    fault,
                    support::fault_offset(round),
                    phases.entry((fault, pair.name)).or_default(),
                );
                eprintln!(
                    "round {round} {:<28} {:<28} {}",
                    fault.name(),
                    pair.name,
                    secs(latency)
                );
                results.entry((fault, pair.name)).or_default().push(latency);
            }
        }
    }
    println!(
        "failover benchmark: fault -> EIP on the new MASTER, {rounds} round(s) per fault and setup"
    );
    println!("| fault | setup | median | p95 | max |");
    println!("|---|---|---|---|---|");
    for ((fault, setup), v) in &results {
        let (p50, p95, max) = stats(v);
        println!(
            "| {} | {setup} | {} | {} | {} |",
            fault.name(),
            secs(p50),
            secs(p95),
            secs(max)
        );
    }
    for w in [&b, &c] {
        println!();
        println!(
            "{}: the watchdog's failover-latency sample against the outside observer, per fault:",
            w.name
        );
        for fault in Fault::ALL {
            println!(
                "  {}: {}",
                fault.name(),
                support::error_summary(&phases[&(fault, w.name)].errors, 50.0)
            );
        }
        println!();
        println!(
            "| {} | median A / median | p95 A / p95 | Keepalived detection | watchdog reaction | cloud calls | confirmation | detection to EIP, p95 |",
            w.name
        );
        println!("|---|---|---|---|---|---|---|---|");
        for fault in Fault::ALL {
            let (ma, pa, _) = stats(&results[&(fault, a.name)]);
            let (mw, pw, _) = stats(&results[&(fault, w.name)]);
            let p = &phases[&(fault, w.name)];
            println!(
                "| {} | {:.1}x | {:.1}x | {} | {} | {} | {} | {} |",
                fault.name(),
                ma.as_secs_f64() / mw.as_secs_f64(),
                pa.as_secs_f64() / pw.as_secs_f64(),
                secs(stats(&p.detection).0),
                secs(stats(&p.reaction).0),
                secs(stats(&p.calls).0),
                secs(stats(&p.confirmation).0),
                secs(stats(&p.after_detection).1)
            );
        }
    }
}
