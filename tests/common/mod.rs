//! A lab of real parts for the integration tests, one file per thing it
//! drives: `lab` (two network namespaces joined by a veth pair, and the
//! clean-up), `node` (each namespace's Debian Keepalived with unicast VRRP
//! and one instance `VI_1`, a real HAProxy on its own 127.0.0.1:8080,
//! PostgreSQL, and the watchdog built from this repo), `watchdog` (its JSON
//! log stream, status and metrics), `events` (the log's event names that
//! tests wait on), `cloud` (moto, the EIP, routes, notify scripts, faults,
//! the observer), `prometheus` (a real Prometheus and the exposition's
//! checks), `browser` (headless Chromium) and `client` (requests through
//! a failover).
//!
//! Tests wait for the watchdog's events with a deadline; they never sleep.
//! Every lab has its own namespaces and directory, so tests run in
//! parallel, and `Drop` kills every process in the namespaces and deletes
//! them even when a test fails.

#![allow(dead_code)]

pub mod browser;
pub mod client;
pub mod cloud;
pub mod events;
pub mod lab;
pub mod node;
pub mod prometheus;
pub mod sampler;
pub mod tls;
pub mod watchdog;

// Each test binary uses some of these; the rest are not unused.
#[allow(unused_imports)]
pub use {
    browser::{Rendered, chromium},
    cloud::{CloudLab, moto_script, next_move, venv_python},
    events::is,
    lab::Lab,
    node::Node,
    prometheus::{
        ABSENT_IN_AN_EIP_LAB, Prometheus, alerts_and_dashboards_use_only, metric,
        metrics_doc_lists_exactly, promtool_check_metrics,
    },
    watchdog::Watchdog,
};

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

pub const VIP: &str = "10.213.0.100";
/// The active-active lab's second VIP (VI_2, MASTER on b).
pub const SECOND_VIP: &str = "10.213.0.101";
const SUBNET: &str = "10.213.0";
const NS_PREFIX: &str = "vwt";

/// The repository, as cargo says at run time: test binaries are reused from
/// a shared target directory across checkouts, so a path baked in at
/// compile time could name another (or a deleted) checkout.
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Fails with a clear message naming each of `tools` not on PATH.
pub fn require_tools(tools: &[&str]) {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "this test needs {}; run ./scripts/test.sh as root on Debian 12, which installs them",
        missing.join(", ")
    );
}

pub fn require_prerequisites() {
    let mut missing = vec![];
    if !nix::unistd::Uid::effective().is_root() {
        missing.push("root (network namespaces)".to_owned());
    }
    for tool in [
        "keepalived",
        "haproxy",
        "ip",
        "curl",
        "promtool",
        "setpriv",
        "nft",
        "psql",
        "runuser",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            missing.push(tool.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "integration tests need {}; run ./scripts/test.sh as root on Debian 12, which installs them",
        missing.join(", ")
    );
}

/// Runs `cmd` to its end; its stdout, failing with its stderr unless it
/// exits 0.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The watchdog binary the labs run: `VIP_WATCHDOG_BIN` when set (a
/// benchmark can measure a release build without rebuilding itself in
/// that profile), else the one cargo built with this test or benchmark.
pub fn watchdog_bin() -> PathBuf {
    std::env::var_os("VIP_WATCHDOG_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_vip-watchdog")),
        PathBuf::from,
    )
}

/// An HTTP/1.0 GET of `http://{address}{path}` from inside network namespace
/// `ns`, on a thread that enters it, with no process spawned: for the
/// benchmarks' millisecond polls. Returns the body of a 200 answer, None for
/// any other answer or error (connection refused, timeout).
pub fn get_in_ns(ns: &str, address: &str, path: &str) -> Option<String> {
    use std::io::Read;
    let (ns, address, path) = (ns.to_owned(), address.to_owned(), path.to_owned());
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).ok()?;
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
        let mut s = std::net::TcpStream::connect(&address).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.0 200").then(|| body.to_owned())
    })
    .join()
    .ok()
    .flatten()
}

/// A command run inside network namespace `ns`.
pub fn in_ns(ns: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]);
    cmd
}

fn ip(args: &[&str]) -> String {
    run(Command::new("ip").args(args))
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Spawns `cmd`, waits for a stdout or stderr line containing `ready`, then
/// keeps draining the output into `log`; the lines after `ready` also come
/// out of the returned receiver.
pub fn spawn_until(
    mut cmd: Command,
    ready: &'static str,
    what: &str,
    log: PathBuf,
) -> (Child, Receiver<String>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    for stream in [
        Box::new(out) as Box<dyn std::io::Read + Send>,
        Box::new(err),
    ] {
        let tx = tx.clone();
        let log = log.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .ok();
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(ready) => return (child, rx),
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                panic!("{what} did not say {ready:?} within 60 s");
            }
        }
    }
}

/// An RFC 3339 time (as /v1/status and the logs write them) in Unix seconds.
pub fn unix(rfc3339: &str) -> f64 {
    humantime::parse_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339:?} is not RFC 3339: {e}"))
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

pub const SETTLE: Duration = Duration::from_secs(30);
pub const FAILOVER: Duration = Duration::from_secs(20);
