//! Benchmark: what clients feel during a failover. A client outside the
//! pair (`tests/common/client.rs`, in the cloud namespace) asks the node the
//! emulator says holds the EIP, on the private IP (HAProxy's port 8000),
//! every 10 ms; a request fails when that node does not carry the private
//! IP or its HAProxy is down. Per fault, the outage is from the last
//! answered request before the failures to the first answered after them.
//!
//!     cargo test --bench outage                    # 10 rounds per fault and setup
//!     BENCH_SMOKE=1 cargo test --bench outage      # 1 round each (in the test suite)
//!     BENCH_ROUNDS=N cargo test --bench outage
//!
//! Three labs side by side (each: a Keepalived pair with HAProxy in
//! network namespaces, moto's EC2 server patched by tests/moto/launch.py,
//! an IMDSv2 stub per node), rounds alternating between them, all at the
//! shipped defaults (process check 250 ms, probe 1 s, min_master_age 3 s,
//! peer heartbeat 1 s, max_age 3 s):
//!
//! - (A) the notify script, as such scripts are usually written: it adds the private IP
//!   (`ip addr add`, never removed) and moves the EIP with the AWS CLI;
//!   Keepalived's virtual_ipaddress does not list the private IP.
//! - (B) vip-watchdog in `own` mode with the peer channel; Keepalived adds
//!   and removes the private IP (virtual_ipaddress).
//! - (C) as (B), with `manage_address = true`: the watchdog adds the
//!   private IP before it claims, and the old MASTER keeps it until the
//!   cloud shows the EIP elsewhere.
//!
//! Faults on the MASTER (node a): HAProxy stopped; Keepalived SIGTERM (a
//! graceful stop, as `systemctl stop` in a maintenance); Keepalived crashed
//! (SIGKILL). Beside the outage: the fault to the EIP on b (the observer),
//! and Keepalived's detection (the fault to b's MASTER line), which the
//! outage of HAProxy stopped is compared with. Each round's fault falls a
//! golden-ratio fraction of a second after the pair settled (as in
//! `benches/failover.rs`, see `support::fault_offset`), the same in every
//! lab. It reports; it asserts no timing.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::Lab;
use common::client::{Client, outage};
use support::{Fault, Observer, Watch, secs, since, stats};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setup {
    Script,
    Keepalived,
    Managed,
}

struct Pair {
    name: &'static str,
    lab: Lab,
    client: Client,
    observer: Observer,
    eni_a: String,
    eni_b: String,
    watch: Watch,
}

/// One round's numbers.
struct Felt {
    lost: usize,
    outage: Duration,
    to_eip: Duration,
    detection: Duration,
}

impl Pair {
    fn new(name: &'static str, setup: Setup) -> Pair {
        let mut lab = Lab::new();
        lab.add_cloud();
        let watch_fifos = match setup {
            Setup::Script => {
                lab.set_vip_address_unmanaged("the notify script adds it and never removes it");
                lab.set_notify("a", Some("baseline"));
                lab.set_notify("b", Some("baseline"));
                Some((lab.a.read_fifo(), lab.b.read_fifo()))
            }
            Setup::Keepalived | Setup::Managed => {
                if setup == Setup::Managed {
                    lab.set_manage_address();
                }
                lab.set_vip("own", false);
                lab.add_peer_channel(true);
                for n in lab.nodes_mut() {
                    n.intervals = ("250ms", "1s");
                }
                None
            }
        };
        let (client, observer) = lab.start_client(Duration::from_secs(4 * 3600));
        let watch = Watch::start(&lab, watch_fifos);
        lab.start_services();
        let (eni_a, eni_b) = (lab.eni("a"), lab.eni("b"));
        let mut pair = Pair {
            name,
            lab,
            client,
            observer: Observer::new(observer),
            eni_a,
            eni_b,
            watch,
        };
        pair.watch.settled_on_a();
        let eni_a = pair.eni_a.clone();
        pair.observer.wait(name, &eni_a);
        if setup == Setup::Script {
            // The typical script adds the private IP on its first run; a,
            // MASTER from the start with the EIP already on it, gets it
            // here as it would at its first failover (`replace`: a's own
            // first run at start-up may have added it already).
            common::run(common::in_ns(&pair.lab.a.ns).args([
                "ip",
                "addr",
                "replace",
                &format!("{}/32", common::VIP),
                "dev",
                "eth0",
            ]));
        }
        pair.client
            .wait_served("a", SystemTime::now(), support::STEP);
        pair
    }

    fn round(&mut self, fault: Fault, offset: Duration) -> Felt {
        self.watch.forget_past();
        // Not a wait for anything: it places the fault at a chosen point of
        // Keepalived's 1 s check and advert timers (see
        // `support::fault_offset`).
        std::thread::sleep(offset);
        let t0 = SystemTime::now();
        fault.inject(&mut self.lab.a);
        let eni_b = self.eni_b.clone();
        let moved = self.observer.wait(self.name, &eni_b);
        let master = self.watch.wait_state("b", "master");
        let served = self.client.wait_served("b", moved, support::STEP);
        // A little past the first answer from b: failures after the move
        // count too.
        self.client
            .wait_served("b", served + Duration::from_millis(300), support::STEP);
        let felt = outage(&self.client.since(t0));
        // Back to node a, settled and answering, before the next round.
        fault.restore(&mut self.lab.a);
        let eni_a = self.eni_a.clone();
        let back = self.observer.wait(self.name, &eni_a);
        self.watch.settled_on_a();
        self.client.wait_served("a", back, support::STEP);
        self.client.forget_past();
        Felt {
            lost: felt.lost,
            outage: felt.outage,
            to_eip: since(moved, t0),
            detection: since(master, t0),
        }
    }
}

fn main() {
    common::require_prerequisites();
    let rounds = support::rounds(1, 10);
    let mut pairs = [
        Pair::new("A: notify script (adds the IP)", Setup::Script),
        Pair::new("B: own + peer, Keepalived's IP", Setup::Keepalived),
        Pair::new("C: own + peer, manage_address", Setup::Managed),
    ];
    let names: Vec<&'static str> = pairs.iter().map(|p| p.name).collect();
    let mut felt: BTreeMap<(Fault, &'static str), Vec<Felt>> = BTreeMap::new();
    for round in 0..rounds {
        for fault in Fault::ALL {
            // Rotate which setup goes first, so drift hits all alike.
            let mut order: Vec<&mut Pair> = pairs.iter_mut().collect();
            order.rotate_left(round % 3);
            for pair in order {
                let f = pair.round(fault, support::fault_offset(round));
                eprintln!(
                    "round {round} {:<28} {:<34} lost {:>3}, outage {}, fault to EIP {}, detection {}",
                    fault.name(),
                    pair.name,
                    f.lost,
                    secs(f.outage),
                    secs(f.to_eip),
                    secs(f.detection)
                );
                felt.entry((fault, pair.name)).or_default().push(f);
            }
        }
    }
    println!(
        "client-visible outage: a request every 10 ms to the EIP's node on the private IP, {rounds} round(s) per fault and setup"
    );
    println!(
        "| fault | setup | requests lost, median (max) | outage, median | p95 | max | fault to EIP, median | outage - Keepalived's detection, p95 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for fault in Fault::ALL {
        for name in &names {
            let v = &felt[&(fault, *name)];
            let mut lost: Vec<usize> = v.iter().map(|f| f.lost).collect();
            lost.sort();
            let (o50, o95, omax) = stats(&v.iter().map(|f| f.outage).collect::<Vec<_>>());
            let (e50, _, _) = stats(&v.iter().map(|f| f.to_eip).collect::<Vec<_>>());
            let over: Vec<f64> = v
                .iter()
                .map(|f| f.outage.as_secs_f64() - f.detection.as_secs_f64())
                .collect();
            let mut over_sorted = over.clone();
            over_sorted.sort_by(f64::total_cmp);
            let p95 = over_sorted[((over_sorted.len() - 1) as f64 * 0.95).round() as usize];
            println!(
                "| {} | {name} | {} ({}) | {} | {} | {} | {} | {:+.2} s |",
                fault.name(),
                lost[lost.len() / 2],
                lost[lost.len() - 1],
                secs(o50),
                secs(o95),
                secs(omax),
                secs(e50),
                p95
            );
        }
    }
}
