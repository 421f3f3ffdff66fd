//! Fuzzing on the stable toolchain: the parsers and answer handlers that
//! take input from outside, driven with mutated and random inputs.
//!
//!     cargo bench --bench fuzz                    # 10 000 000 inputs per target
//!     BENCH_SMOKE=1 cargo test --bench fuzz       # 20 000 per target (the test suite)
//!     FUZZ_INPUTS=N FUZZ_SEED=S FUZZ_TARGETS=fifo_line,config cargo bench --bench fuzz
//!
//! `cargo fuzz` needs a nightly toolchain, which these machines cannot
//! fetch; this harness runs the same kind of targets on stable. Each target
//! draws its inputs from its committed corpus (`fuzz/corpus/TARGET/`,
//! seeded from real Keepalived output, the example config, EC2-shaped
//! answers): byte and bit mutations, insertions, deletions, repeats,
//! splices of two corpus entries, interesting values, and purely random
//! bytes. The same seed gives the same inputs. Every input runs under
//! `catch_unwind`: a panic writes the input to `fuzz/crashes/` and fails
//! the run. Each target also checks what must hold of a success (a parsed
//! FIFO line prints back as itself; a refused config says why; a model fed
//! any lines stays bounded). Peak memory (VmHWM) is printed before and
//! after; the run fails if it grew by more than 256 MiB.
//!
//! Targets:
//! - `fifo_line`: bytes in random chunks through the FIFO's line splitter,
//!   each line through the parser, each parsed line into one long-lived
//!   model (names capped, so it stays bounded);
//! - `config`: the config loader and validator;
//! - `json_dump`: Keepalived's JSON state dump reader;
//! - `ec2_answer`: what turns DescribeAddresses and DescribeNetworkInterfaces
//!   answers into the cloud view (`cloud::aws::address_of`,
//!   `cloud::aws::private_ips_of`, `cloud::Address::holder`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ec2::types::{Address, NetworkInterface, NetworkInterfacePrivateIpAddress};
use vip_watchdog::config::Config;
use vip_watchdog::core::clock::{Mono, Stamp};
use vip_watchdog::core::input::Event;
use vip_watchdog::core::model::{MAX_NEW_NAMES, Model};
use vip_watchdog::keepalived::fifo::LineSplitter;
use vip_watchdog::keepalived::line;
use vip_watchdog::keepalived::startup::parse_json_dump;

const TARGETS: [&str; 4] = ["fifo_line", "config", "json_dump", "ec2_answer"];

/// Values that tend to find the edges.
const INTERESTING: [&[u8]; 16] = [
    b"\n",
    b"\"",
    b"\0",
    b" ",
    b"\xff\xfe",
    b"-1",
    b"0",
    b"255",
    b"256",
    b"4294967296",
    b"1e300",
    b"NaN",
    b"::ffff:10.0.0.1",
    b"999.1.1.1",
    b"\xe2\x80\xae",
    b"INSTANCE \"",
];

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = common::repo().join("fuzz/corpus").join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus {}: {e}", dir.display()))
        .map(|e| std::fs::read(e.expect("entry").path()).expect("corpus file"))
        .collect();
    out.sort();
    if target == "ec2_answer" {
        // One seed a line: an address's fields, `|`-separated.
        out = out
            .iter()
            .flat_map(|f| {
                f.split(|b| *b == b'\n')
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.is_empty())
            .collect();
    }
    assert!(!out.is_empty(), "the corpus {} is empty", dir.display());
    out
}

/// One input: a mutation of a corpus entry (or two), or random bytes.
fn input(rng: &mut fastrand::Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if rng.u8(..) < 8 {
        return (0..rng.usize(..256)).map(|_| rng.u8(..)).collect();
    }
    let mut v = corpus[rng.usize(..corpus.len())].clone();
    for _ in 0..rng.usize(1..6) {
        let at = if v.is_empty() {
            0
        } else {
            rng.usize(..=v.len())
        };
        match rng.u8(..8) {
            0 if !v.is_empty() => {
                let i = rng.usize(..v.len());
                v[i] ^= 1 << rng.u8(..8);
            }
            1 if !v.is_empty() => {
                let i = rng.usize(..v.len());
                v[i] = rng.u8(..);
            }
            2 => v.insert(at, rng.u8(..)),
            3 if at < v.len() => {
                let end = (at + rng.usize(1..16)).min(v.len());
                v.drain(at..end);
            }
            4 => {
                let i = INTERESTING[rng.usize(..INTERESTING.len())];
                v.splice(at..at, i.iter().copied());
            }
            5 if !v.is_empty() => {
                // Repeat a slice, up to a few KiB.
                let s = rng.usize(..v.len());
                let e = (s + rng.usize(1..64)).min(v.len());
                let chunk = v[s..e].to_vec();
                for _ in 0..rng.usize(1..64) {
                    v.splice(at..at, chunk.iter().copied());
                }
            }
            6 => {
                let other = &corpus[rng.usize(..corpus.len())];
                if !other.is_empty() {
                    let s = rng.usize(..other.len());
                    v.splice(at..at, other[s..].iter().copied());
                }
            }
            _ => {
                let i = rng.usize(..=v.len());
                v.truncate(i);
            }
        }
    }
    v
}

struct FifoTarget {
    model: Model,
}

impl FifoTarget {
    fn run(&mut self, rng: &mut fastrand::Rng, data: &[u8]) {
        let mut splitter = LineSplitter::default();
        let mut rest = data;
        let stamp = Stamp {
            mono: Mono::default(),
            wall: SystemTime::UNIX_EPOCH,
        };
        while !rest.is_empty() {
            let n = rng.usize(1..=rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            for raw in splitter.push(chunk) {
                let Ok(bytes) = raw else { continue };
                assert!(
                    bytes.len() <= line::MAX_LINE_LEN,
                    "the splitter bounds lines"
                );
                if let Ok(parsed) = line::parse_bytes(&bytes) {
                    let printed = parsed.to_string();
                    assert_eq!(
                        line::parse(&printed).as_ref(),
                        Ok(&parsed),
                        "a parsed line prints back as itself: {printed:?}"
                    );
                    self.model.observe(
                        Event::Line {
                            line: parsed,
                            at: stamp,
                        },
                        stamp,
                    );
                }
            }
        }
        assert!(self.model.instances.len() <= 1 + MAX_NEW_NAMES);
        assert!(self.model.groups.len() <= MAX_NEW_NAMES);
        assert!(self.model.lvs.len() <= MAX_NEW_NAMES);
    }
}

fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(errors) = Config::parse(&text) {
        assert!(!errors.0.is_empty(), "a refused config says why");
        for e in &errors.0 {
            assert!(!e.to_string().trim().is_empty(), "an error in words");
        }
    }
}

fn json_dump(data: &[u8]) {
    if let Ok(instances) = parse_json_dump(&String::from_utf8_lossy(data)) {
        for i in instances {
            let _ = i.name.len() + usize::from(i.priority);
        }
    }
}

fn ec2_answer(rng: &mut fastrand::Rng, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let f: Vec<&str> = text.split('|').collect();
    let mut field = |i: usize| f.get(i).copied().filter(|_| rng.u8(..) > 16);
    let a = Address::builder()
        .set_allocation_id(field(0).map(str::to_owned))
        .set_association_id(field(1).map(str::to_owned))
        .set_network_interface_id(field(2).map(str::to_owned))
        .set_private_ip_address(field(3).map(str::to_owned))
        .set_public_ip(field(4).map(str::to_owned))
        .build();
    if let Ok(addr) = vip_watchdog::cloud::aws::address_of(&a) {
        let h = addr.holder(
            "eni-0123456789abcdef0",
            "10.0.0.100".parse().expect("an IP"),
        );
        let _ = h.to_string();
    }
    let eni = field(2).unwrap_or("eni-x");
    let ni = NetworkInterface::builder()
        .set_network_interface_id(field(2).map(str::to_owned))
        .private_ip_addresses(
            NetworkInterfacePrivateIpAddress::builder()
                .set_private_ip_address(field(3).map(str::to_owned))
                .build(),
        )
        .private_ip_addresses(
            NetworkInterfacePrivateIpAddress::builder()
                .set_private_ip_address(field(4).map(str::to_owned))
                .build(),
        )
        .build();
    let _ = vip_watchdog::cloud::aws::private_ips_of(eni, &[ni]);
}

fn hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn crash_file(target: &str, seed: u64, n: u64, data: &[u8]) -> PathBuf {
    let dir = common::repo().join("fuzz/crashes");
    std::fs::create_dir_all(&dir).expect("fuzz/crashes");
    let path = dir.join(format!("{target}-{seed}-{n}"));
    std::fs::write(&path, data).expect("write the crashing input");
    path
}

fn main() {
    let smoke = std::env::var_os("BENCH_SMOKE").is_some();
    let inputs: u64 = match std::env::var("FUZZ_INPUTS") {
        Ok(n) => n.parse().expect("FUZZ_INPUTS is a number"),
        Err(_) if smoke => 20_000,
        Err(_) => 10_000_000,
    };
    let seed: u64 = match std::env::var("FUZZ_SEED") {
        Ok(s) => s.parse().expect("FUZZ_SEED is a number"),
        Err(_) => SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs()),
    };
    let targets: Vec<String> = match std::env::var("FUZZ_TARGETS") {
        Ok(t) => t.split(',').map(str::to_owned).collect(),
        Err(_) => TARGETS.map(str::to_owned).to_vec(),
    };
    // Panics are caught and reported with their input; keep the hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    println!("fuzz: seed {seed}, {inputs} inputs per target (replay: FUZZ_SEED={seed})");
    println!("| target | inputs | seconds | inputs/s | accepted | peak memory before -> after |");
    println!("|---|---|---|---|---|---|");
    let mut failed = vec![];
    for target in &targets {
        assert!(
            TARGETS.contains(&target.as_str()),
            "unknown target {target:?}; the targets: {TARGETS:?}"
        );
        let corpus = corpus(target);
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut fifo = FifoTarget {
            model: Model::new(["VI_1"]),
        };
        let before = hwm_kib();
        let started = Instant::now();
        let mut accepted = 0u64;
        let mut crash = None;
        for n in 0..inputs {
            let data = if n < corpus.len() as u64 {
                corpus[n as usize].clone()
            } else {
                input(&mut rng, &corpus)
            };
            let mut case_rng = fastrand::Rng::with_seed(seed ^ n);
            let outcome = catch_unwind(AssertUnwindSafe(|| match target.as_str() {
                "fifo_line" => fifo.run(&mut case_rng, &data),
                "config" => config(&data),
                "json_dump" => json_dump(&data),
                _ => ec2_answer(&mut case_rng, &data),
            }));
            match outcome {
                Ok(()) => accepted += 1,
                Err(e) => {
                    let why = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    crash = Some((crash_file(target, seed, n, &data), why));
                    break;
                }
            }
        }
        let took = started.elapsed().max(Duration::from_millis(1));
        let after = hwm_kib();
        println!(
            "| {target} | {accepted} | {:.1} | {:.0} | {} | {:.1} -> {:.1} MiB |",
            took.as_secs_f64(),
            accepted as f64 / took.as_secs_f64(),
            if crash.is_none() { "all" } else { "PANIC" },
            before as f64 / 1024.0,
            after as f64 / 1024.0
        );
        if let Some((path, why)) = crash {
            failed.push(format!(
                "{target}: panicked ({why}); input in {}",
                path.display()
            ));
        }
        if after.saturating_sub(before) > 256 * 1024 {
            failed.push(format!(
                "{target}: peak memory grew from {before} KiB to {after} KiB"
            ));
        }
    }
    assert!(failed.is_empty(), "fuzzing failed:\n{}", failed.join("\n"));
}
