//! A lab of real parts for the integration tests.
//!
//! Two network namespaces (`a`, `b`) joined by a veth pair, each running
//! Debian's Keepalived (unicast VRRP, one instance `VI_1`, a vrrp_script that
//! checks the local HAProxy), a real HAProxy on the namespace's own
//! 127.0.0.1:8080, and the vip-watchdog binary built from this repo with JSON
//! logs. Tests wait for the watchdog's log events with a deadline; they never
//! sleep. Every lab has its own namespaces and directory, so tests run in
//! parallel, and `Drop` kills every process in the namespaces and deletes
//! them even when a test fails.

#![allow(dead_code)]

pub mod client;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const VIP: &str = "10.213.0.100";
/// The active-active lab's second VIP (VI_2, MASTER on b).
pub const SECOND_VIP: &str = "10.213.0.101";
const SUBNET: &str = "10.213.0";
const NS_PREFIX: &str = "vwt";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The repository, as cargo says at run time: test binaries are reused from
/// a shared target directory across checkouts, so a path baked in at
/// compile time could name another (or a deleted) checkout.
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Fails with a clear message when the lab cannot be built here.
/// What headless Chromium (Debian's package) made of a page.
pub struct Rendered {
    /// The DOM after rendering (`--dump-dom`).
    pub dom: String,
    /// A PNG screenshot, `WIDTH` x `HEIGHT`.
    pub png: Vec<u8>,
}

impl Rendered {
    pub const WIDTH: u32 = 1000;
    pub const HEIGHT: u32 = 1100;

    /// Whether the rightmost `columns` of the screenshot are all the
    /// background (the top-left pixel's colour): nothing ran off the page.
    pub fn right_edge_is_clear(&self, columns: u32) -> bool {
        let decoder = png::Decoder::new(std::io::Cursor::new(&self.png));
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("a frame");
        let px = info.color_type.samples();
        let at = |x: u32, y: u32| {
            let i = (y as usize * info.line_size) + x as usize * px;
            &buf[i..i + px]
        };
        let background = at(0, 0).to_vec();
        (info.width - columns..info.width)
            .all(|x| (0..info.height).all(|y| at(x, y) == background.as_slice()))
    }

    /// The PNG's width and height, from its IHDR chunk.
    pub fn png_size(&self) -> (u32, u32) {
        assert_eq!(&self.png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        let be = |i: usize| u32::from_be_bytes(self.png[i..i + 4].try_into().unwrap());
        (be(16), be(20))
    }
}

/// Opens `url` in headless Chromium inside namespace `ns`, with a profile
/// in `dir`: the DOM it rendered and a screenshot.
pub fn chromium(ns: &str, url: &str, dir: &Path) -> Rendered {
    require_tools(&["chromium"]);
    let profile = dir.join("chromium-profile");
    let shot = dir.join("landing.png");
    let base = |cmd: &mut Command| {
        cmd.args([
            "timeout",
            "60",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    };
    let mut dump = in_ns(ns);
    base(&mut dump);
    let dom = run(dump.args(["--dump-dom", url]));
    let mut screenshot = in_ns(ns);
    base(&mut screenshot);
    run(screenshot
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!(
            "--window-size={},{}",
            Rendered::WIDTH,
            Rendered::HEIGHT
        ))
        .arg(url));
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    Rendered { dom, png }
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

/// Removes namespaces left by test processes that no longer exist.
fn sweep_stale_namespaces() {
    let list = ip(&["netns", "list"]);
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !pid_alive(pid) {
            kill_namespace(name);
        }
    }
}

/// Kills every process in the namespace (re-checking, for processes that
/// fork while dying; at most 50 rounds), then deletes it.
fn kill_namespace(ns: &str) {
    for _ in 0..50 {
        let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
            break;
        };
        let pids = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || pids.trim().is_empty() {
            break;
        }
        for pid in pids.split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        std::thread::yield_now();
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

/// A watchdog process with its JSON log stream.
pub struct Watchdog {
    pub child: Child,
    events: Receiver<Value>,
    /// Events received but not yet matched by a `wait_for`, oldest first.
    backlog: std::cell::RefCell<Vec<Value>>,
    pub log: Arc<Mutex<Vec<String>>>,
    pub address: String,
    ns: String,
}

impl Watchdog {
    /// Waits for a log event matching `pred`, oldest first; each event
    /// matches once. Panics with the log on timeout.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        {
            let mut backlog = self.backlog.borrow_mut();
            if let Some(i) = backlog.iter().position(&pred) {
                return backlog.remove(i);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) if pred(&ev) => return ev,
                Ok(ev) => self.backlog.borrow_mut().push(ev),
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "timed out after {timeout:?} waiting for {what}; log:\n{}",
                        self.log_text()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "watchdog exited while waiting for {what}; log:\n{}",
                        self.log_text()
                    )
                }
            }
        }
    }

    /// Drops every event received so far: later waits see only what happens
    /// after this call (call it right before injecting a fault).
    pub fn forget_past(&self) {
        let mut backlog = self.backlog.borrow_mut();
        backlog.clear();
        while let Ok(ev) = self.events.try_recv() {
            drop(ev);
        }
    }

    /// Polls `/v1/status` (every 100 ms, for at most `timeout`) until `pred`
    /// holds; returns that status. Panics with the log on timeout.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status();
            if pred(&status) {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; status: {status}\nlog:\n{}",
                    self.log_text()
                );
            }
            // Bounded polling of an HTTP endpoint, not a wait for time to pass.
            let _ = self.events_ready(Duration::from_millis(100));
        }
    }

    /// Waits up to `d` for a log event (kept for later `wait_for`s).
    fn events_ready(&self, d: Duration) -> bool {
        match self.events.recv_timeout(d) {
            Ok(ev) => {
                self.backlog.borrow_mut().push(ev);
                true
            }
            Err(_) => false,
        }
    }

    /// Waits for `vrrp state changed` of VI_1 to `to`; returns the event.
    pub fn wait_state(&self, to: &str, timeout: Duration) -> Value {
        self.wait_for(&format!("VI_1 -> {to} in {}", self.ns), timeout, |e| {
            e["message"] == "vrrp state changed" && e["vrrp_instance"] == "VI_1" && e["to"] == to
        })
    }

    /// Waits for the start-up report of VI_1 and checks its state and source.
    pub fn wait_learned(&self, state: &str, source: &str) -> Value {
        let ev = self.wait_for(&format!("VI_1 learned in {}", self.ns), SETTLE, |e| {
            e["message"] == "vrrp state learned at start-up"
        });
        assert_eq!(
            (ev["state"].as_str(), ev["source"].as_str()),
            (Some(state), Some(source)),
            "{ev}"
        );
        ev
    }

    /// `vip_watchdog_vrrp_releases_total` for VI_1 and `outcome`.
    pub fn releases(&self, outcome: &str) -> Option<f64> {
        metric(
            &self.metrics(),
            "vip_watchdog_vrrp_releases_total",
            &[("vrrp_instance", "VI_1"), ("outcome", outcome)],
        )
    }

    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> String {
        run(in_ns(&self.ns).args([
            "curl",
            "-sS",
            "--max-time",
            "5",
            &format!("http://{}{path}", self.address),
        ]))
    }

    /// The page at `/`.
    pub fn landing(&self) -> String {
        self.get("/")
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.get("/v1/status")).expect("/v1/status is JSON")
    }

    pub fn instance(&self) -> Value {
        let status = self.status();
        status["instances"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["name"] == "VI_1").cloned())
            .unwrap_or_else(|| panic!("no VI_1 in {status}"))
    }

    pub fn metrics(&self) -> String {
        self.get("/metrics")
    }

    pub fn healthz(&self) -> String {
        self.get("/healthz")
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        self.child.wait().expect("watchdog exit status")
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every metric that alerts/ and dashboards/ name exists in `exposition`
/// (a live /metrics), so that a rename cannot silently break them.
/// Metrics that an EIP lab's exposition lacks by design, each shown
/// elsewhere: manage_address's (tests/make_before_break.rs), the peer
/// channel's (tests/peer.rs), the route VIP's
/// (tests/deployments.rs reads them from a route lab's /metrics), the
/// instance mismatch, absent while Keepalived and the config agree, and
/// LVS servers', absent without LVS (the metrics unit tests).
pub const ABSENT_IN_AN_EIP_LAB: [&str; 10] = [
    "vip_watchdog_address_changes_total",
    "vip_watchdog_vip_route_state",
    "vip_watchdog_eni_source_dest_check",
    "vip_watchdog_vrrp_instance_mismatch",
    "vip_watchdog_lvs_up",
    "vip_watchdog_peer_up",
    "vip_watchdog_peer_last_report_timestamp_seconds",
    "vip_watchdog_peer_messages_total",
    "vip_watchdog_peer_sends_total",
    "vip_watchdog_peer_split_brain",
];

pub fn alerts_and_dashboards_use_only(exposition: &str) {
    let exported: std::collections::BTreeSet<&str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .chain(ABSENT_IN_AN_EIP_LAB)
        .collect();
    let root = repo();
    for dir in ["alerts", "dashboards"] {
        for entry in std::fs::read_dir(root.join(dir)).expect(dir) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            let mut named = 0;
            for (i, _) in text.match_indices("vip_watchdog_") {
                let name: String = text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| exported.contains(f)))
                    .unwrap_or(&name);
                assert!(
                    exported.contains(family),
                    "{} names {name}, which /metrics lacks",
                    path.display()
                );
                named += 1;
            }
            assert!(named > 0, "{} names no metric", path.display());
        }
    }
}

/// README's metric table names every family of `exposition`, and names
/// nothing else but the families an EIP lab lacks by design.
pub fn readme_lists_exactly(exposition: &str) {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let listed: std::collections::BTreeSet<String> = readme
        .lines()
        .filter(|l| l.starts_with("| `vip_watchdog_") || l.starts_with("| `process_"))
        .flat_map(|l| {
            let first = l.split(" | ").next().unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let exported: std::collections::BTreeSet<String> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let unlisted: Vec<&String> = exported.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "README's metric table lacks {unlisted:?}"
    );
    let stale: Vec<&String> = listed
        .difference(&exported)
        .filter(|n| !ABSENT_IN_AN_EIP_LAB.contains(&n.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "README lists {stale:?}, which /metrics lacks"
    );
}

/// `promtool check metrics` must accept the exposition without a word.
pub fn promtool_check_metrics(exposition: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("promtool reads");
    let out = promtool.wait_with_output().expect("promtool ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{exposition}"
    );
}

/// The value of the series `name` whose labels include all of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    vip_watchdog::metrics::value(text, name, labels)
}

pub struct Node {
    pub name: &'static str,
    pub ns: String,
    pub dir: PathBuf,
    pub addr: String,
    peer: String,
    priority: u8,
    pub keepalived: Option<Child>,
    pub haproxy: Option<Child>,
    /// keepalived.conf's notify_master line, or nothing.
    pub notify: String,
    /// The private IP's line of virtual_ipaddress (Keepalived adds it on
    /// the MASTER), or a comment (`Lab::set_manage_address`, a notify
    /// script that adds it).
    pub vip_address: String,
    /// More lines of keepalived.conf's virtual_ipaddress block.
    pub extra_vips: String,
    /// More vrrp_instance blocks of keepalived.conf.
    pub extra_instances: String,
    /// Keepalived's tracked script and its weight line (none: FAULT when
    /// it fails); HAProxy's health by default.
    pub check: String,
    pub check_weight: String,
    /// The watchdog's probe kind and keys; HAProxy's health by default.
    pub probe: String,
    /// A PostgreSQL server runs in this node's directory.
    pub postgres: bool,
    /// The watchdog's [cloud] and [[vip]] tables, or nothing.
    pub cloud_toml: String,
    /// The watchdog's [peer] table, or nothing.
    pub peer_toml: String,
    /// The watchdog's http.listen.
    pub listen: String,
    /// `--web.config.file`, when set.
    pub web_config: Option<PathBuf>,
    /// The watchdog's file descriptor limit (prlimit), when set.
    pub nofile: Option<u32>,
    /// The watchdog's keepalived.process_check_interval and probe.interval:
    /// quicker than the defaults, unless a benchmark wants those.
    pub intervals: (&'static str, &'static str),
}

impl Node {
    /// The FIFO lives in a directory of its own, which a test may hand to
    /// an unprivileged watchdog.
    pub fn fifo(&self) -> PathBuf {
        self.dir.join("run").join("keepalived.fifo")
    }

    /// Hands the FIFO's directory to `uid`, as an operator would for an
    /// unprivileged watchdog.
    pub fn give_fifo_dir_to(&self, uid: u32) {
        let dir = self.dir.join("run");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).expect("chown the FIFO directory");
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("keepalived.pid")
    }
    pub fn vrrp_pid_file(&self) -> PathBuf {
        self.dir.join("keepalived_vrrp.pid")
    }

    /// Fills a template from `lab/` (shared with the demo).
    fn template(&self, file: &str, extra: &[(&str, &str)]) -> String {
        let path = repo().join("lab").join(file);
        let mut text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let priority = self.priority.to_string();
        let fifo = self.fifo().display().to_string();
        let dir = self.dir.display().to_string();
        let common = [
            ("@NAME@", self.name),
            ("@FIFO@", fifo.as_str()),
            ("@DIR@", dir.as_str()),
            ("@PRIORITY@", priority.as_str()),
            ("@ADDR@", self.addr.as_str()),
            ("@PEER@", self.peer.as_str()),
            ("@VIP@", VIP),
            ("@VIP_ADDRESS@", self.vip_address.as_str()),
            ("@NOTIFY@", self.notify.as_str()),
            ("@EXTRA_VIPS@", self.extra_vips.as_str()),
            ("@EXTRA_INSTANCES@", self.extra_instances.as_str()),
            ("@CHECK@", self.check.as_str()),
            ("@CHECK_WEIGHT@", self.check_weight.as_str()),
            ("@PROBE@", self.probe.as_str()),
            ("@CLOUD@", self.cloud_toml.as_str()),
            ("@PEER_CHANNEL@", self.peer_toml.as_str()),
        ];
        for (k, v) in common.iter().chain(extra) {
            text = text.replace(k, v);
        }
        assert!(
            !text.contains("@"),
            "{file}: a placeholder is left unfilled:\n{text}"
        );
        text
    }

    pub fn write_configs(&self) {
        std::fs::write(
            self.dir.join("keepalived.conf"),
            self.template("keepalived.conf.in", &[]),
        )
        .unwrap();
        std::fs::write(
            self.dir.join("haproxy.cfg"),
            self.template("haproxy.cfg", &[]),
        )
        .unwrap();
    }

    pub fn start_haproxy(&mut self) {
        let log = std::fs::File::create(self.dir.join("haproxy.log")).unwrap();
        let child = in_ns(&self.ns)
            .args(["haproxy", "-db", "-f"])
            .arg(self.dir.join("haproxy.cfg"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("haproxy starts");
        self.haproxy = Some(child);
    }

    pub fn kill_haproxy(&mut self) {
        if let Some(mut c) = self.haproxy.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn start_keepalived(&mut self) {
        // A crash leaves pid files behind, and its VRRP process may still
        // be a zombie waiting for init to reap it: Keepalived would then
        // say "daemon is already running" and exit. Dead is dead.
        for file in [
            self.pid_file(),
            self.vrrp_pid_file(),
            self.dir.join("keepalived_checkers.pid"),
        ] {
            let pid = std::fs::read_to_string(&file).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
            let dead = match stat {
                Err(_) => true,
                Ok(s) => s
                    .rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            };
            if dead {
                let _ = std::fs::remove_file(&file);
            }
        }
        let log = std::fs::File::create(self.dir.join("keepalived.log")).unwrap();
        let child = in_ns(&self.ns)
            .args(["keepalived", "--dont-fork", "--vrrp", "--log-console", "-f"])
            .arg(self.dir.join("keepalived.conf"))
            .arg("-p")
            .arg(self.pid_file())
            .arg("-r")
            .arg(self.vrrp_pid_file())
            .arg("-c")
            .arg(self.dir.join("keepalived_checkers.pid"))
            .env("TMPDIR", &self.dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("keepalived starts");
        self.keepalived = Some(child);
    }

    pub fn keepalived_pid(&self) -> i32 {
        self.keepalived.as_ref().expect("keepalived started").id() as i32
    }

    /// The VRRP child's pid, once Keepalived has written its pid file.
    pub fn vrrp_pid(&self) -> i32 {
        std::fs::read_to_string(self.vrrp_pid_file())
            .expect("VRRP pid file")
            .trim()
            .parse()
            .expect("a pid")
    }

    /// Keepalived's own JSON dump (`data` and `stats` per instance), asked
    /// for with its JSON signal as the watchdog asks at start-up.
    pub fn keepalived_dump(&self) -> Value {
        use vip_watchdog::keepalived::{process, startup};
        let cfg = vip_watchdog::config::JsonDumpConfig {
            file: self.dir.join("keepalived.json"),
            signal: None,
            binary: "keepalived".into(),
            timeout: Duration::from_secs(10),
        };
        let main = process::inspect(self.keepalived_pid(), "keepalived")
            .unwrap_or_else(|e| panic!("{}: keepalived: {e}", self.name));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(startup::request_json_dump(&cfg, &main))
            .unwrap_or_else(|e| panic!("{}: keepalived's JSON dump: {e}", self.name));
        let text = std::fs::read_to_string(&cfg.file).expect("the dump just read");
        serde_json::from_str(&text).expect("the dump is JSON")
    }

    /// One of Keepalived's own counters for VI_1 (its JSON dump's `stats`).
    pub fn keepalived_stat(&self, name: &str) -> u64 {
        let dump = self.keepalived_dump();
        dump.as_array()
            .and_then(|list| {
                list.iter()
                    .find(|i| i["data"]["iname"] == "VI_1")
                    .and_then(|i| i["stats"][name].as_u64())
            })
            .unwrap_or_else(|| panic!("{}: no stats.{name} for VI_1 in {dump}", self.name))
    }

    pub fn signal_keepalived(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.keepalived_pid());
        nix::sys::signal::kill(pid, sig).expect("keepalived can be signalled");
    }

    pub fn reap_keepalived(&mut self) -> std::process::ExitStatus {
        self.keepalived
            .take()
            .expect("keepalived started")
            .wait()
            .expect("exit status")
    }

    /// Writes raw bytes into the FIFO, as Keepalived would.
    pub fn write_fifo(&self, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.fifo())
            .expect("FIFO open for writing (a reader holds it)");
        f.write_all(text.as_bytes()).expect("FIFO write");
    }

    /// Creates the FIFO and reads it, for a node without a watchdog: each
    /// line comes out with the time it was read.
    pub fn read_fifo(&self) -> Receiver<(std::time::SystemTime, String)> {
        let path = self.fifo();
        nix::unistd::mkfifo(
            &path,
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .expect("mkfifo");
        // Read-write: never EOF when Keepalived restarts.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("FIFO");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                if tx.send((std::time::SystemTime::now(), line)).is_err() {
                    break;
                }
            }
        });
        rx
    }

    /// Drops (or stops dropping) incoming VRRP in this node's namespace.
    /// Drops the peer channel (TCP to port 9843) coming into this node.
    pub fn block_peer(&self, on: bool) {
        let nft = |rule: &str| {
            run(in_ns(&self.ns).args(["nft"]).arg(rule));
        };
        if on {
            nft("add table inet vwpeer");
            nft(
                "add chain inet vwpeer input { type filter hook input priority 0; policy accept; }",
            );
            nft("add rule inet vwpeer input tcp dport 9843 drop");
        } else {
            nft("delete table inet vwpeer");
        }
    }

    pub fn block_vrrp(&self, on: bool) {
        let nft = |rule: &str| {
            run(in_ns(&self.ns).args(["nft"]).arg(rule));
        };
        if on {
            nft("add table inet vw");
            nft("add chain inet vw input { type filter hook input priority 0; policy accept; }");
            nft("add rule inet vw input ip protocol vrrp drop");
        } else {
            nft("delete table inet vw");
        }
    }

    /// A program of Debian's PostgreSQL (the newest installed).
    fn pg_bin(name: &str) -> PathBuf {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL from Debian's packages (scripts/test.sh installs it)")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        versions.sort();
        versions
            .pop()
            .expect("a PostgreSQL version")
            .join("bin")
            .join(name)
    }

    fn pg_data(&self) -> PathBuf {
        self.dir.join("pg")
    }

    /// The socket directory: the server listens on no TCP port.
    pub fn pg_socket(&self) -> PathBuf {
        self.dir.join("pgsock")
    }

    /// pg_ctl as the postgres user, in this node's namespace.
    fn pg_ctl(&self, args: &[&str]) {
        let log = self.pg_socket().join("postgres.log");
        run(in_ns(&self.ns)
            .args(["runuser", "-u", "postgres", "--"])
            .arg(Self::pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.pg_data())
            .arg("-l")
            .arg(&log)
            .args(args));
    }

    /// A fresh PostgreSQL cluster in this node's directory (trust on its
    /// socket only), started as a primary, or in recovery (a standby that
    /// stays one until promoted). Keepalived tracks the role (weight 60:
    /// a replica keeps its base priority, a primary adds 60); the
    /// watchdog's probe is `kind = "postgres"` on the socket.
    pub fn start_postgres(&mut self, replica: bool) {
        let (data, sock) = (self.pg_data(), self.pg_socket());
        for d in [&data, &sock] {
            std::fs::create_dir_all(d).unwrap();
            run(Command::new("chown").arg("postgres:postgres").arg(d));
        }
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Self::pg_bin("initdb"))
            .args(["--auth=trust", "-U", "postgres", "-D"])
            .arg(&data));
        let conf = format!(
            "listen_addresses = ''\nunix_socket_directories = '{}'\nhot_standby = on\n",
            sock.display()
        );
        let mut text = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        text.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), text).unwrap();
        if replica {
            self.pg_standby_signal();
        }
        self.pg_ctl(&["-w", "start"]);
        self.postgres = true;
        let script = self.dir.join("chk_pg.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n# Keepalived's view of the role: a primary passes.\n[ \"$(/usr/bin/psql -h {} -U postgres -d postgres -tAc 'select pg_is_in_recovery()')\" = f ]\n",
                sock.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        self.check = script.display().to_string();
        self.check_weight = "weight 60".into();
        self.probe = format!("kind = \"postgres\"\ndsn = \"{}\"", self.pg_dsn());
        self.write_configs();
    }

    fn pg_standby_signal(&self) {
        let signal = self.pg_data().join("standby.signal");
        std::fs::write(&signal, "").unwrap();
        run(Command::new("chown").arg("postgres:postgres").arg(&signal));
    }

    pub fn pg_dsn(&self) -> String {
        format!(
            "host={} user=postgres dbname=postgres connect_timeout=1",
            self.pg_socket().display()
        )
    }

    /// Ends recovery: the server becomes a primary.
    pub fn pg_promote(&self) {
        self.pg_ctl(&["-w", "promote"]);
    }

    /// Restarts the server in recovery: a primary becomes a replica.
    pub fn pg_demote(&self) {
        self.pg_ctl(&["-w", "-m", "fast", "stop"]);
        self.pg_standby_signal();
        self.pg_ctl(&["-w", "start"]);
    }

    /// Whether the server is in recovery, as psql says.
    pub fn pg_in_recovery(&self) -> bool {
        let out = run(Command::new("psql").arg("-h").arg(self.pg_socket()).args([
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
            "select pg_is_in_recovery()",
        ]));
        out.trim() == "t"
    }

    pub fn has_vip(&self) -> bool {
        ip(&["-n", &self.ns, "-o", "addr", "show", "dev", "eth0"]).contains(&format!(" {VIP}/32"))
    }

    pub fn watchdog_config(&self, json_dump: bool) -> PathBuf {
        let json_dump = json_dump.to_string();
        let text = self.template(
            "watchdog.toml.in",
            &[
                ("@LISTEN@", self.listen.as_str()),
                ("@LOG_FORMAT@", "json"),
                ("@JSON_DUMP@", json_dump.as_str()),
                ("@PROCESS_CHECK@", self.intervals.0),
                ("@PROBE_INTERVAL@", self.intervals.1),
            ],
        );
        let path = self.dir.join(format!("watchdog-{json_dump}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Starts the watchdog in this node's namespace; returns once it listens.
    /// Runs `vip-watchdog check-cloud` in the node's namespace with the
    /// watchdog's config and credentials; returns (exit code, stdout, stderr).
    pub fn check_cloud(&self) -> (Option<i32>, String, String) {
        let config = self.watchdog_config(true);
        let out = in_ns(&self.ns)
            .arg(watchdog_bin())
            .args(["check-cloud", "--config"])
            .arg(&config)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .stdin(Stdio::null())
            .output()
            .expect("vip-watchdog check-cloud runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn start_watchdog(&self, json_dump: bool) -> Watchdog {
        self.start_watchdog_as(json_dump, None)
    }

    /// Starts the watchdog, as `uid` (with no groups) when given.
    pub fn start_watchdog_as(&self, json_dump: bool, uid: Option<u32>) -> Watchdog {
        let config = self.watchdog_config(json_dump);
        let mut cmd = in_ns(&self.ns);
        if let Some(n) = self.nofile {
            cmd.args(["prlimit", &format!("--nofile={n}:{n}"), "--"]);
        }
        if let Some(uid) = uid {
            cmd.args([
                "setpriv",
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "--",
            ]);
        }
        cmd.arg(watchdog_bin())
            .args(["run", "--config"])
            .arg(&config);
        if let Some(web) = &self.web_config {
            cmd.arg("--web.config.file").arg(web);
        }
        let mut child = cmd
            .env_remove("RUST_LOG")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("watchdog starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(vec![]));
        let keep = log.clone();
        let tag = self.name;
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut l) = keep.lock() {
                    l.push(format!("[{tag}] {line}"));
                }
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        let mut wd = Watchdog {
            child,
            events: rx,
            backlog: Default::default(),
            log,
            address: String::new(),
            ns: self.ns.clone(),
        };
        let ev = wd.wait_for("the watchdog to listen", Duration::from_secs(20), |e| {
            e["message"] == "http listening"
        });
        wd.address = ev["address"].as_str().expect("address field").to_owned();
        wd
    }
}

pub struct Lab {
    pub a: Node,
    pub b: Node,
    dir: PathBuf,
    id: String,
    pub cloud: Option<CloudLab>,
    /// Keys of the [[vip]] table (`min_master_age`, `grace`, `max_claims`,
    /// ...) and of the [cloud] table (`verify_interval`, ...) that differ
    /// from the shipped defaults; none by default: tests run what users
    /// run. A test or benchmark that sets one says why.
    pub vip_overrides: Vec<(&'static str, String)>,
    pub cloud_overrides: Vec<(&'static str, String)>,
}

/// A real Prometheus (see `Lab::start_prometheus`).
pub struct Prometheus {
    ns: String,
    alerts: Receiver<String>,
    backlog: std::cell::RefCell<Vec<Value>>,
}

impl Prometheus {
    /// GET `path` of Prometheus's HTTP API with one URL-encoded parameter;
    /// returns `data`, failing on any API error.
    fn api_get(&self, path: &str, param: &str) -> Value {
        let out = run(in_ns(&self.ns)
            .args(["curl", "-sS", "--max-time", "10", "-G"])
            .arg(format!("http://127.0.0.1:9090{path}"))
            .args(["--data-urlencode", param]));
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{param}: {e}: {out}"));
        assert_eq!(v["status"], "success", "{param}: {v}");
        v["data"].clone()
    }

    /// The active targets, as `/api/v1/targets` gives them.
    pub fn targets(&self) -> Vec<Value> {
        let out = run(in_ns(&self.ns).args([
            "curl",
            "-sS",
            "--max-time",
            "10",
            "http://127.0.0.1:9090/api/v1/targets?state=active",
        ]));
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("targets: {e}: {out}"));
        v["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Returns once `n` targets have each been scraped at least once.
    pub fn wait_scraped(&self, n: usize, timeout: Duration) -> Vec<Value> {
        poll_api(
            &format!("all {n} targets scraped"),
            timeout,
            || self.targets(),
            |t| t.len() == n && t.iter().all(|t| t["health"] != "unknown"),
        )
    }

    /// An instant query; returns `data.result`.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let data = self.api_get("/api/v1/query", &format!("query={promql}"));
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Returns an instant query's `data.result` once it has a series.
    pub fn wait_query(&self, what: &str, promql: &str, timeout: Duration) -> Vec<Value> {
        poll_api(
            &format!("{what} ({promql} returning a series)"),
            timeout,
            || self.query(promql),
            |result| !result.is_empty(),
        )
    }

    /// Values of `label` on the series that `matcher` selects.
    pub fn label_values(&self, label: &str, matcher: &str) -> Vec<String> {
        let data = self.api_get(
            &format!("/api/v1/label/{label}/values"),
            &format!("match[]={matcher}"),
        );
        data.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits for a notification of alert `name` whose labels include
    /// `labels`, firing (`endsAt` in the future) or resolved (in the past).
    pub fn wait_alert(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        firing: bool,
        timeout: Duration,
    ) -> Value {
        let matches = |a: &Value| {
            let ends = a["endsAt"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
            let is_firing = ends.is_some_and(|e| e > std::time::SystemTime::now());
            a["labels"]["alertname"] == name
                && labels.iter().all(|(k, v)| a["labels"][*k] == *v)
                && is_firing == firing
        };
        if let Some(i) = self.backlog.borrow().iter().position(&matches) {
            return self.backlog.borrow_mut().remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.alerts.recv_timeout(left) {
                Ok(line) => {
                    let Ok(a) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    if matches(&a) {
                        return a;
                    }
                    self.backlog.borrow_mut().push(a);
                }
                Err(_) => panic!(
                    "no {} notification of {name} {labels:?} within {timeout:?}; seen: {:?}",
                    if firing { "firing" } else { "resolved" },
                    self.backlog
                        .borrow()
                        .iter()
                        .map(|a| a["labels"]["alertname"].to_string())
                        .collect::<Vec<_>>()
                ),
            }
        }
    }
}

/// Polls Prometheus's API with `fetch` (bounded: every 200 ms until
/// `timeout`) until `done` holds; returns that answer.
fn poll_api<T: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    fetch: impl Fn() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = fetch();
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {timeout:?}; last answer: {answer:?}"
        );
        std::thread::park_timeout(Duration::from_millis(200));
    }
}

/// moto's EC2 server in a namespace of its own, linked to both nodes.
pub struct CloudLab {
    pub ns: String,
    children: Vec<Child>,
    /// `lab.py setup`'s answer: region, allocation_id, nodes.{a,b}.{instance_id,eni,mac}.
    pub ids: Value,
}

/// The venv with moto[server] (scripts/test.sh makes it).
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("VIP_WATCHDOG_VENV")
        .unwrap_or_else(|| "/var/tmp/vip-watchdog-venv".into());
    let python = PathBuf::from(venv).join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import moto.server, boto3"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import moto.server; run ./scripts/test.sh, which installs moto[server] 5.2.5 there",
        python.display()
    );
    python
}

pub fn moto_script(name: &str) -> String {
    repo().join("tests/moto").join(name).display().to_string()
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

impl Lab {
    /// Namespaces, veth, addresses and config files; nothing running yet.
    pub fn new() -> Lab {
        require_prerequisites();
        sweep_stale_namespaces();
        let id = format!(
            "{NS_PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(format!("vip-watchdog-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let node = |name: &'static str, host: u8, peer: u8, priority: u8| Node {
            name,
            ns: format!("{id}-{name}"),
            dir: dir.join(name),
            addr: format!("{SUBNET}.{host}"),
            peer: format!("{SUBNET}.{peer}"),
            priority,
            keepalived: None,
            haproxy: None,
            notify: String::new(),
            vip_address: format!("{VIP}/32 dev eth0"),
            extra_vips: String::new(),
            extra_instances: String::new(),
            check: "/usr/bin/curl -sf -o /dev/null --max-time 1 http://127.0.0.1:8080/health"
                .into(),
            check_weight: String::new(),
            probe: "kind = \"http\"\nurl = \"http://127.0.0.1:8080/health\"".into(),
            postgres: false,
            cloud_toml: String::new(),
            peer_toml: String::new(),
            listen: "127.0.0.1:0".into(),
            web_config: None,
            nofile: None,
            intervals: ("100ms", "200ms"),
        };
        let lab = Lab {
            a: node("a", 1, 2, 150),
            b: node("b", 2, 1, 100),
            dir,
            id: id.clone(),
            cloud: None,
            vip_overrides: vec![],
            cloud_overrides: vec![],
        };
        // From here on, Drop cleans up whatever was made.
        for n in [&lab.a, &lab.b] {
            std::fs::create_dir_all(n.dir.join("run")).unwrap();
            ip(&["netns", "add", &n.ns]);
            ip(&["-n", &n.ns, "link", "set", "lo", "up"]);
            n.write_configs();
        }
        ip(&[
            "link", "add", "eth0", "netns", &lab.a.ns, "type", "veth", "peer", "name", "eth0",
            "netns", &lab.b.ns,
        ]);
        for n in [&lab.a, &lab.b] {
            ip(&[
                "-n",
                &n.ns,
                "addr",
                "add",
                &format!("{}/24", n.addr),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &n.ns, "link", "set", "eth0", "up"]);
        }
        lab
    }

    pub fn nodes_mut(&mut self) -> [&mut Node; 2] {
        [&mut self.a, &mut self.b]
    }

    /// Node "a" or "b".
    pub fn node(&self, name: &str) -> &Node {
        match name {
            "a" => &self.a,
            "b" => &self.b,
            _ => panic!("no node {name:?} in the lab"),
        }
    }

    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        match name {
            "a" => &mut self.a,
            "b" => &mut self.b,
            _ => panic!("no node {name:?} in the lab"),
        }
    }

    /// The peer channel between the two watchdogs, on the VRRP link's
    /// addresses (port 9843), at the shipped heartbeat, max_age and replay
    /// window; `same_secret: false` gives b a secret of its own.
    pub fn add_peer_channel(&mut self, same_secret: bool) {
        use std::os::unix::fs::PermissionsExt as _;
        let addrs = [self.a.addr.clone(), self.b.addr.clone()];
        for (i, n) in [&mut self.a, &mut self.b].into_iter().enumerate() {
            let secret = n.dir.join("peer.key");
            let text = if same_secret || i == 0 {
                "the lab's shared secret, well over 32 bytes long\n"
            } else {
                "another secret entirely, also over 32 bytes long\n"
            };
            std::fs::write(&secret, text).unwrap();
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
            n.peer_toml = format!(
                "[peer]\nlisten = \"{}:9843\"\naddress = \"{}:9843\"\nsecret_file = \"{}\"\n",
                addrs[i],
                addrs[1 - i],
                secret.display()
            );
        }
    }

    /// The private IP out of Keepalived's hands: each watchdog adds it to
    /// eth0 as a healthy MASTER and removes it once the cloud shows the
    /// VIP elsewhere (`manage_address = true`). Call before `set_vip`.
    pub fn set_manage_address(&mut self) {
        self.vip_overrides.push(("manage_address", "true".into()));
        self.vip_overrides.push(("interface", "\"eth0\"".into()));
        self.set_vip_address_unmanaged("vip-watchdog adds and removes it (manage_address)");
    }

    /// Keepalived's virtual_ipaddress without the private IP, `because`.
    pub fn set_vip_address_unmanaged(&mut self, because: &str) {
        for n in self.nodes_mut() {
            n.vip_address = format!("# {VIP}: {because}");
            n.write_configs();
        }
    }

    /// Both watchdogs, then HAProxy and Keepalived; returns once a is
    /// MASTER, b BACKUP, and a sees its first VIP here.
    pub fn start_pair(&mut self) -> (Watchdog, Watchdog) {
        let wa = self.a.start_watchdog(true);
        let wb = self.b.start_watchdog(true);
        self.start_services();
        wa.wait_state("master", SETTLE);
        wb.wait_state("backup", SETTLE);
        wa.wait_status("a sees the VIP here", SETTLE, |s| {
            s["vips"][0]["cloud"]["where"] == "here"
        });
        (wa, wb)
    }

    /// moto (patched, see tests/moto/launch.py) in a `cloud` namespace linked
    /// to each node, the lab's VPC, instances and an EIP on node a, and an
    /// IMDSv2 stub in each node's namespace. Request recording starts after
    /// the set-up, so only the scenario's calls are counted.
    pub fn add_cloud(&mut self) {
        let python = venv_python();
        let ns = format!("{}-c", self.id);
        ip(&["netns", "add", &ns]);
        self.cloud = Some(CloudLab {
            ns: ns.clone(),
            children: vec![],
            ids: Value::Null,
        });
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        for (n, i, peer) in [(&self.a, 1, "ca0"), (&self.b, 2, "cb0")] {
            ip(&[
                "link", "add", "cl0", "netns", &n.ns, "type", "veth", "peer", "name", peer,
                "netns", &ns,
            ]);
            ip(&[
                "-n",
                &n.ns,
                "addr",
                "add",
                &format!("10.213.{i}.1/30"),
                "dev",
                "cl0",
            ]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.213.{i}.2/30"),
                "dev",
                peer,
            ]);
            ip(&["-n", &n.ns, "link", "set", "cl0", "up"]);
            ip(&["-n", &ns, "link", "set", peer, "up"]);
        }
        let mut moto = in_ns(&ns);
        moto.arg(&python)
            .args([&moto_script("launch.py"), "0.0.0.0", "5000"])
            // The recorder writes to a file: one per lab, not the shared cwd.
            .env("MOTO_RECORDER_FILEPATH", self.dir.join("moto_recording"))
            .current_dir(&self.dir);
        let (moto, _) = spawn_until(moto, "Running on", "moto", self.dir.join("moto.log"));
        self.cloud.as_mut().expect("cloud").children.push(moto);
        let setup = run(in_ns(&ns).arg(&python).args([
            &moto_script("lab.py"),
            "setup",
            "http://127.0.0.1:5000",
        ]));
        let ids: Value = serde_json::from_str(&setup).expect("setup prints JSON");
        for (n, i) in [(&mut self.a, 1), (&mut self.b, 2)] {
            let endpoint = format!("http://10.213.{i}.2:5000");
            let instance = ids["nodes"][n.name]["instance_id"]
                .as_str()
                .expect("instance id")
                .to_owned();
            let mut stub = in_ns(&n.ns);
            stub.arg(&python).args([
                &moto_script("lab.py"),
                "imds",
                "127.0.0.1",
                "8081",
                &endpoint,
                &instance,
            ]);
            let (stub, _) = spawn_until(stub, "ready", "the IMDS stub", n.dir.join("imds.log"));
            self.cloud.as_mut().expect("cloud").children.push(stub);
        }
        run(in_ns(&ns).args([
            "curl",
            "-sf",
            "-X",
            "POST",
            "http://127.0.0.1:5000/moto-api/recorder/start-recording",
        ]));
        self.cloud.as_mut().expect("cloud").ids = ids;
    }

    fn cloud(&self) -> &CloudLab {
        self.cloud.as_ref().expect("add_cloud first")
    }

    pub fn allocation_id(&self) -> String {
        self.cloud().ids["allocation_id"]
            .as_str()
            .expect("allocation id")
            .to_owned()
    }

    pub fn instance_id(&self, node: &str) -> String {
        self.cloud().ids["nodes"][node]["instance_id"]
            .as_str()
            .expect("instance id")
            .to_owned()
    }

    pub fn eni(&self, node: &str) -> String {
        self.cloud().ids["nodes"][node]["eni"]
            .as_str()
            .expect("eni")
            .to_owned()
    }

    /// The lab's route tables (two), whose route for the route VIP's
    /// destination targets node a's ENI at set-up.
    pub fn route_tables(&self) -> Vec<String> {
        self.cloud().ids["route_tables"]
            .as_array()
            .expect("route tables")
            .iter()
            .map(|t| t.as_str().expect("rtb").to_owned())
            .collect()
    }

    /// The route VIP's destination (a /32 outside the VPC's range).
    pub fn route_destination(&self) -> String {
        self.cloud().ids["route_destination"]
            .as_str()
            .expect("destination")
            .to_owned()
    }

    /// Where the route VIP's route points in each table, at the emulator:
    /// "a", "b", "blackhole", "instance:ID", "-" (no route) or another ENI.
    pub fn routes_on(&self) -> Vec<String> {
        let mut args = vec!["routes", "http://127.0.0.1:5000"];
        let tables = self.route_tables();
        args.extend(tables.iter().map(String::as_str));
        self.lab_py(&args)
            .lines()
            .map(|l| {
                let target = l.split_whitespace().nth(1).unwrap_or("").to_owned();
                ["a", "b"]
                    .into_iter()
                    .find(|n| self.eni(n) == target)
                    .map_or(target, str::to_owned)
            })
            .collect()
    }

    /// Points the route VIP's route in `table` at `target` (an ENI,
    /// "instance:ID", "blackhole" or "delete"), as an operator would.
    pub fn set_route(&self, table: &str, target: &str) {
        self.lab_py(&["route", "http://127.0.0.1:5000", table, target]);
    }

    /// Both watchdogs get one route VIP (kind = "route", the lab's
    /// destination in both route tables) instead of the EIP, at the shipped
    /// defaults but for `mode`; both Keepalived instances carry the
    /// destination as a virtual address.
    pub fn set_route_vip(&mut self, mode: &str) {
        let dest = self.route_destination();
        let tables = self
            .route_tables()
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let host = dest.trim_end_matches("/32").to_owned();
        for (n, i) in [(&mut self.a, 1), (&mut self.b, 2)] {
            n.extra_vips = format!("{host}/32 dev eth0");
            n.cloud_toml = format!(
                r#"[cloud]
endpoint = "http://10.213.{i}.2:5000"
imds_endpoint = "http://127.0.0.1:8081"
state_dir = "{state}"

[[vip]]
kind = "route"
name = "routed"
destination = "{dest}"
route_tables = [{tables}]
vrrp_instance = "VI_1"
mode = "{mode}"
"#,
                state = n.dir.join("state").display(),
            );
            n.write_configs();
        }
    }

    /// Active-active (seed 003): a second VRRP instance, VI_2, whose MASTER
    /// is b (a has the lower priority there), with its own EIP on b's
    /// secondary private IP `SECOND_VIP`; both watchdogs get both EIPs in
    /// `own` mode at the shipped defaults, each following its instance.
    /// Returns the second allocation ID.
    pub fn set_active_active(&mut self) -> String {
        self.set_vip("own", false);
        let eni_b = self.eni("b");
        let alloc2 = self
            .lab_py(&["second_eip", "http://127.0.0.1:5000", SECOND_VIP, &eni_b])
            .trim()
            .to_owned();
        for (n, i) in [(&mut self.a, 1), (&mut self.b, 2)] {
            let priority = if i == 1 { 100 } else { 150 };
            n.extra_instances = format!(
                r#"vrrp_instance VI_2 {{
    state BACKUP
    interface eth0
    virtual_router_id 52
    priority {priority}
    advert_int 1
    unicast_src_ip {addr}
    unicast_peer {{
        {peer}
    }}
    virtual_ipaddress {{
        {SECOND_VIP}/32 dev eth0
    }}
    track_script {{
        chk_haproxy
    }}
}}"#,
                addr = n.addr,
                peer = n.peer,
            );
            n.cloud_toml.push_str(&format!(
                r#"
[[vip]]
kind = "eip"
name = "web2"
allocation_id = "{alloc2}"
private_ip = "{SECOND_VIP}"
vrrp_instance = "VI_2"
mode = "own"

[[keepalived.instance]]
name = "VI_2"
vips = ["{SECOND_VIP}"]
"#
            ));
            n.write_configs();
        }
        alloc2
    }

    /// Which node's ENI the emulator has `alloc` on: "a", "b", or "-".
    pub fn eip_of(&self, alloc: &str) -> String {
        let eni = self.lab_py(&["where", "http://127.0.0.1:5000", alloc]);
        let eni = eni.trim();
        ["a", "b"]
            .into_iter()
            .find(|n| self.eni(n) == eni)
            .unwrap_or("-")
            .to_owned()
    }

    /// Turns node `name`'s ENI source/destination check on or off.
    pub fn set_source_dest_check(&self, name: &str, on: bool) {
        let eni = self.eni(name);
        self.lab_py(&[
            "source_dest_check",
            "http://127.0.0.1:5000",
            &eni,
            if on { "on" } else { "off" },
        ]);
    }

    /// Both watchdogs' EIP associated by instance ID (`associate =
    /// "instance"`, no private IP), at the shipped defaults but for `mode`.
    pub fn set_eip_by_instance(&mut self, mode: &str) {
        self.set_vip(mode, false);
        for n in [&mut self.a, &mut self.b] {
            n.cloud_toml = n.cloud_toml.replace(
                &format!("private_ip = \"{VIP}\"\n"),
                "associate = \"instance\"\n",
            );
            assert!(
                n.cloud_toml.contains("associate = \"instance\""),
                "{}",
                n.cloud_toml
            );
        }
    }

    /// Node `name`'s notify_master for the route VIP (lab.py notify_route):
    /// "ok" or "first-only" (updates the first table, then fails).
    pub fn set_notify_route(&mut self, name: &str, mode: &str) {
        let python = venv_python();
        let instance = self.cloud().ids["nodes"][name]["instance_id"]
            .as_str()
            .expect("id")
            .to_owned();
        let i = if name == "a" { 1 } else { 2 };
        let tables = self.route_tables().join(" ");
        let line = format!(
            "notify_master \"{} {} notify_route {mode} http://10.213.{i}.2:5000 {instance} {tables}\"",
            python.display(),
            moto_script("lab.py")
        );
        let node = self.node_mut(name);
        node.notify = line;
        node.write_configs();
    }

    fn lab_py(&self, args: &[&str]) -> String {
        let ns = &self.cloud().ns;
        run(in_ns(ns)
            .arg(venv_python())
            .arg(moto_script("lab.py"))
            .args(args))
    }

    /// Which node's ENI the emulator has the EIP on: "a", "b", or "-".
    pub fn eip_on(&self) -> String {
        let eni = self.lab_py(&["where", "http://127.0.0.1:5000", &self.allocation_id()]);
        let eni = eni.trim();
        ["a", "b"]
            .into_iter()
            .find(|n| self.eni(n) == eni)
            .map_or_else(|| eni.to_owned(), str::to_owned)
    }

    /// Mutating calls the emulator recorded: `client` is "watchdog" or
    /// "other" (the notify scripts); keys are "Action eni".
    pub fn mutating_calls(&self) -> Value {
        serde_json::from_str(&self.lab_py(&["calls", "http://127.0.0.1:5000"])).expect("calls JSON")
    }

    /// Every call the emulator recorded since recording started or was
    /// reset: {"client node": {"Action": n}}, client "watchdog", "aws-cli",
    /// "boto3" (the observer) or "other", node "a", "b" or "-".
    pub fn api_calls(&self) -> Value {
        serde_json::from_str(&self.lab_py(&["requests", "http://127.0.0.1:5000"]))
            .expect("requests JSON")
    }

    /// `n` more Elastic IPs in the emulator, not associated.
    pub fn allocate(&self, n: usize) -> Vec<String> {
        serde_json::from_str(&self.lab_py(&["allocate", "http://127.0.0.1:5000", &n.to_string()]))
            .expect("allocation IDs")
    }

    /// How many allocation IDs each DescribeAddresses of node `node`'s
    /// watchdog named, in order.
    pub fn describe_sizes(&self, node: &str) -> Vec<usize> {
        serde_json::from_str(&self.lab_py(&["describe_sizes", "http://127.0.0.1:5000", node]))
            .expect("sizes")
    }

    /// Empties the emulator's recording.
    pub fn reset_api_calls(&self) {
        self.lab_py(&["reset", "http://127.0.0.1:5000"]);
    }

    /// The number of mutating calls `client` made against `node`'s ENI.
    pub fn calls_by(&self, client: &str, node: &str) -> u64 {
        let eni = self.eni(node);
        self.mutating_calls()[client].as_object().map_or(0, |m| {
            m.iter()
                .filter(|(k, _)| k.ends_with(&eni))
                .map(|(_, v)| v.as_u64().unwrap_or(0))
                .sum()
        })
    }

    /// Node `name`'s notify_master: "ok", "fail", "twice" run the seed
    /// articles' script (tests/moto/lab.py notify); "baseline" is the seed
    /// article's bash script with the AWS CLI (tests/moto/notify_baseline.sh)
    /// and "baseline-flaky" the same failing every third run; "missing"
    /// names a file that does not exist; None has no notify_master.
    pub fn set_notify(&mut self, name: &str, mode: Option<&str>) {
        let python = venv_python();
        let alloc = self.allocation_id();
        let instance = self.cloud().ids["nodes"][name]["instance_id"]
            .as_str()
            .expect("id")
            .to_owned();
        let i = if name == "a" { 1 } else { 2 };
        let line = match mode {
            None => String::new(),
            Some("missing") => "notify_master \"/nonexistent/notify_master.sh\"".to_owned(),
            Some("baseline") => format!(
                "notify_master \"{} {} http://10.213.{i}.2:5000 {alloc} {VIP} http://127.0.0.1:8081\"",
                moto_script("notify_baseline.sh"),
                python.with_file_name("aws").display()
            ),
            Some("baseline-flaky") => format!(
                "notify_master \"{} {} http://10.213.{i}.2:5000 {alloc} {VIP} http://127.0.0.1:8081 3 {}\"",
                moto_script("notify_baseline.sh"),
                python.with_file_name("aws").display(),
                self.node(name).dir.join("notify.runs").display()
            ),
            Some(m) => format!(
                "notify_master \"{} {} notify {m} http://10.213.{i}.2:5000 {alloc} {VIP} {instance}\"",
                python.display(),
                moto_script("lab.py")
            ),
        };
        let node = self.node_mut(name);
        node.notify = line;
        node.write_configs();
    }

    /// Node `name`'s notify_master through the notify wrapper
    /// (`vip-watchdog notify --config <the watchdog's> --instance VI_1
    /// [--timeout T] -- lab.py notify MODE ...`); `timeout` None keeps the
    /// wrapper's default.
    /// The watchdog then listens on the shipped port, 127.0.0.1:9842 in
    /// the node's namespace, where the wrapper reports.
    pub fn set_notify_wrapped(&mut self, name: &str, timeout: Option<&str>, mode: &str) {
        self.set_notify(name, Some(mode));
        let config = self.node(name).dir.join("watchdog-true.toml");
        let timeout = timeout.map_or(String::new(), |t| format!(" --timeout {t}"));
        let node = self.node_mut(name);
        node.listen = "127.0.0.1:9842".into();
        node.notify = node.notify.replacen(
            "notify_master \"",
            &format!(
                "notify_master \"{} notify --config {} --instance VI_1{timeout} -- ",
                watchdog_bin().display(),
                config.display()
            ),
            1,
        );
        node.write_configs();
    }

    /// Puts tests/moto/faults.py between node `name`'s watchdog and the
    /// emulator, with `plan` (JSON, see faults.py); call after `set_vip`.
    /// The receiver gets "fault ACTION KIND" for each fault injected.
    pub fn add_fault_proxy(&mut self, name: &str, plan: &str) -> Receiver<String> {
        let i = if name == "a" { 1 } else { 2 };
        let direct = format!("endpoint = \"http://10.213.{i}.2:5000\"");
        let node = self.node_mut(name);
        assert!(
            node.cloud_toml.contains(&direct),
            "add_fault_proxy after set_vip: {}",
            node.cloud_toml
        );
        node.cloud_toml = node
            .cloud_toml
            .replace(&direct, &format!("endpoint = \"http://10.213.{i}.2:5001\""));
        let mut cmd = in_ns(&self.cloud().ns);
        cmd.arg(venv_python()).args([
            &moto_script("faults.py"),
            &format!("10.213.{i}.2"),
            "5001",
            "http://127.0.0.1:5000",
            plan,
        ]);
        let log = self.dir.join(format!("faults-{name}.log"));
        let (child, lines) = spawn_until(cmd, "ready", "the fault proxy", log);
        self.cloud.as_mut().expect("cloud").children.push(child);
        lines
    }

    /// Replaces the plan of node `name`'s fault proxy (see faults.py).
    pub fn set_faults(&self, name: &str, plan: &str) {
        let i = if name == "a" { 1 } else { 2 };
        run(in_ns(&self.cloud().ns).args([
            "curl",
            "-sf",
            "--max-time",
            "5",
            "-X",
            "POST",
            "--data-binary",
            plan,
            &format!("http://10.213.{i}.2:5001/__plan"),
        ]));
    }

    /// Polls the emulator every 10 ms (for at most `seconds`); the receiver
    /// gets "EPOCH ENI" each time the EIP's ENI changes (see `moves`).
    pub fn start_observer(&mut self, seconds: u32) -> Receiver<String> {
        let python = venv_python();
        let ns = self.cloud().ns.clone();
        let alloc = self.allocation_id();
        let mut cmd = in_ns(&ns);
        cmd.arg(&python).args([
            &moto_script("lab.py"),
            "observe",
            "http://127.0.0.1:5000",
            &alloc,
            &seconds.to_string(),
        ]);
        let (child, lines) =
            spawn_until(cmd, "ready", "the observer", self.dir.join("observer.log"));
        self.cloud.as_mut().expect("cloud").children.push(child);
        lines
    }

    /// A real Prometheus in the cloud namespace, scraping both watchdogs
    /// (and, as job `label-clash`, node a's build_info with a target label
    /// `node`, to show what that does)
    /// every second (they must listen on 0.0.0.0:9842: set `listen` before
    /// starting them) with the repo's alert rules evaluated every second, and
    /// sending its alerts to a receiver whose notifications the test awaits.
    pub fn start_prometheus(&mut self) -> Prometheus {
        self.start_prometheus_scraping("  - job_name: vip-watchdog\n    static_configs:\n      - targets: ['10.213.1.1:9842', '10.213.2.1:9842']\n  - job_name: label-clash\n    static_configs:\n      - targets: ['10.213.1.1:9842']\n        labels:\n          node: from-the-target\n    metric_relabel_configs:\n      - source_labels: [__name__]\n        regex: vip_watchdog_build_info\n        action: keep\n")
    }

    /// Prometheus in the cloud namespace, which reaches both nodes
    /// (10.213.1.1 and 10.213.2.1), with the alert rules, scraping every
    /// second with `scrape_configs` (YAML list items, indented 2).
    pub fn start_prometheus_scraping(&mut self, scrape_configs: &str) -> Prometheus {
        let python = venv_python();
        let ns = self.cloud().ns.clone();
        let root = repo();
        let dir = self.dir.join("prometheus");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    runbook_base: https://runbook.lab/vip-watchdog\nrule_files:\n  - {}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:9093']\nscrape_configs:\n{scrape_configs}",
                root.join("alerts/vip-watchdog.rules.yml").display()
            ),
        )
        .unwrap();
        let mut receiver = in_ns(&ns);
        receiver
            .arg(&python)
            .arg(root.join("tests/prom/alert_receiver.py"))
            .args(["127.0.0.1", "9093"]);
        let (receiver, alerts) = spawn_until(
            receiver,
            "ready",
            "the alert receiver",
            dir.join("alerts.log"),
        );
        let mut prom = in_ns(&ns);
        prom.args(["prometheus"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .args([
                "--web.listen-address=127.0.0.1:9090",
                "--rules.alert.resend-delay=1s",
            ]);
        let (prom, _) = spawn_until(
            prom,
            "Server is ready to receive web requests",
            "prometheus",
            dir.join("prometheus.log"),
        );
        let cloud = self.cloud.as_mut().expect("cloud");
        cloud.children.push(receiver);
        cloud.children.push(prom);
        Prometheus {
            ns,
            alerts,
            backlog: Default::default(),
        }
    }

    /// The watchdogs' [cloud] and [[vip]] tables: the shipped defaults but
    /// for what the lab needs (endpoints, a state directory per node) and
    /// the overrides.
    pub fn set_vip(&mut self, mode: &str, dry_run: bool) {
        let alloc = self.allocation_id();
        let lines = |o: &[(&'static str, String)]| {
            o.iter()
                .map(|(k, v)| format!("{k} = {v}\n"))
                .collect::<String>()
        };
        let (cloud_extra, vip_extra) = (lines(&self.cloud_overrides), lines(&self.vip_overrides));
        for (n, i) in [(&mut self.a, 1), (&mut self.b, 2)] {
            n.cloud_toml = format!(
                r#"[cloud]
endpoint = "http://10.213.{i}.2:5000"
imds_endpoint = "http://127.0.0.1:8081"
state_dir = "{state}"
dry_run = {dry_run}
{cloud_extra}
[[vip]]
kind = "eip"
name = "web"
allocation_id = "{alloc}"
private_ip = "{VIP}"
vrrp_instance = "VI_1"
mode = "{mode}"
{vip_extra}"#,
                state = n.dir.join("state").display(),
            );
        }
    }

    /// HAProxy and Keepalived on both nodes. Keepalived starts once both
    /// HAProxys answer: a failing check at start would let the lower
    /// priority node win the first election for a moment.
    pub fn start_services(&mut self) {
        for n in self.nodes_mut() {
            n.start_haproxy();
        }
        for n in [&self.a, &self.b] {
            run(in_ns(&n.ns).args([
                "curl",
                "-sf",
                "-o",
                "/dev/null",
                "--retry",
                "50",
                "--retry-connrefused",
                "--retry-max-time",
                "10",
                "http://127.0.0.1:8080/health",
            ]));
        }
        for n in self.nodes_mut() {
            n.start_keepalived();
        }
    }

    /// A client in the cloud namespace asking, every 10 ms, the node that
    /// holds the EIP on the private IP (`client::Client`), for
    /// `max` at most; the observer's lines are passed on to the receiver.
    pub fn start_client(&mut self, max: Duration) -> (client::Client, Receiver<String>) {
        let observer = self.start_observer(max.as_secs() as u32 + 60);
        let gateways = vec![
            (self.eni("a"), "10.213.1.1".to_owned()),
            (self.eni("b"), "10.213.2.1".to_owned()),
        ];
        client::Client::start(&self.cloud().ns, observer, gateways, max)
    }

    /// Keepalived's own log lines, for a failure message.
    pub fn keepalived_logs(&self) -> String {
        [&self.a, &self.b]
            .iter()
            .map(|n| {
                let text =
                    std::fs::read_to_string(n.dir.join("keepalived.log")).unwrap_or_default();
                format!("--- keepalived {} ---\n{text}", n.name)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The observer's next move (see `Lab::start_observer`): when (Unix time)
/// and to which ENI ("-" for none).
pub fn next_move(observer: &Receiver<String>, timeout: Duration) -> (f64, String) {
    let line = observer
        .recv_timeout(timeout)
        .unwrap_or_else(|_| panic!("the observer saw no move of the EIP within {timeout:?}"));
    let (at, eni) = line.split_once(' ').expect("EPOCH ENI");
    (at.parse().expect("an epoch"), eni.to_owned())
}

/// An RFC 3339 time (as /v1/status and the logs write them) in Unix seconds.
pub fn unix(rfc3339: &str) -> f64 {
    humantime::parse_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339:?} is not RFC 3339: {e}"))
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// SIGTERM, then SIGKILL if the process has not exited within `grace`.
fn stop_child(mut child: Child, grace: Duration) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = child.wait();
        let _ = tx.send(());
    });
    if rx.recv_timeout(grace).is_err() {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = rx.recv_timeout(grace);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in [&self.a, &self.b] {
            if n.postgres {
                let _ = Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(Node::pg_bin("pg_ctl"))
                    .arg("-D")
                    .arg(n.pg_data())
                    .args(["-m", "immediate", "-w", "stop"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        for n in self.nodes_mut() {
            // Keepalived first, so that it stops and reaps its own children.
            for child in [n.keepalived.take(), n.haproxy.take()]
                .into_iter()
                .flatten()
            {
                stop_child(child, Duration::from_secs(3));
            }
        }
        if let Some(cloud) = self.cloud.as_mut() {
            for mut child in cloud.children.drain(..) {
                let _ = child.kill();
                let _ = child.wait();
            }
            kill_namespace(&cloud.ns);
        }
        for n in [&self.a, &self.b] {
            kill_namespace(&n.ns);
        }
        if std::thread::panicking() {
            eprintln!("{}", self.keepalived_logs());
            eprintln!("lab files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub const SETTLE: Duration = Duration::from_secs(30);
pub const FAILOVER: Duration = Duration::from_secs(20);
