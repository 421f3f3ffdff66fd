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

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const VIP: &str = "10.213.0.100";
const SUBNET: &str = "10.213.0";
const NS_PREFIX: &str = "vwt";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Fails with a clear message when the lab cannot be built here.
pub fn require_prerequisites() {
    let mut missing = vec![];
    if !nix::unistd::Uid::effective().is_root() {
        missing.push("root (network namespaces)".to_owned());
    }
    for tool in ["keepalived", "haproxy", "ip", "curl", "promtool", "setpriv"] {
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

fn run(cmd: &mut Command) -> String {
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

    /// Waits for `vrrp state changed` of VI_1 to `to`; returns the event.
    pub fn wait_state(&self, to: &str, timeout: Duration) -> Value {
        self.wait_for(&format!("VI_1 -> {to} in {}", self.ns), timeout, |e| {
            e["message"] == "vrrp state changed" && e["vrrp_instance"] == "VI_1" && e["to"] == to
        })
    }

    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> String {
        run(Command::new("ip").args([
            "netns",
            "exec",
            &self.ns,
            "curl",
            "-sS",
            "--max-time",
            "5",
            &format!("http://{}{path}", self.address),
        ]))
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

/// The value of the series `name` whose labels include all of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, v) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        let all = labels
            .iter()
            .all(|(k, val)| rest.contains(&format!("{k}=\"{val}\"")));
        (n == name && all).then(|| v.parse().ok())?
    })
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
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab").join(file);
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

    fn write_configs(&self) {
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
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "haproxy", "-db", "-f"])
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
        let log = std::fs::File::create(self.dir.join("keepalived.log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "keepalived",
                "--dont-fork",
                "--vrrp",
                "--log-console",
                "-f",
            ])
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

    pub fn has_vip(&self) -> bool {
        ip(&["-n", &self.ns, "-o", "addr", "show", "dev", "eth0"]).contains(&format!(" {VIP}/32"))
    }

    pub fn watchdog_config(&self, json_dump: bool) -> PathBuf {
        let json_dump = json_dump.to_string();
        let text = self.template(
            "watchdog.toml.in",
            &[
                ("@LISTEN@", "127.0.0.1:0"),
                ("@LOG_FORMAT@", "json"),
                ("@JSON_DUMP@", json_dump.as_str()),
            ],
        );
        let path = self.dir.join(format!("watchdog-{json_dump}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Starts the watchdog in this node's namespace; returns once it listens.
    pub fn start_watchdog(&self, json_dump: bool) -> Watchdog {
        self.start_watchdog_as(json_dump, None)
    }

    /// Starts the watchdog, as `uid` (with no groups) when given.
    pub fn start_watchdog_as(&self, json_dump: bool, uid: Option<u32>) -> Watchdog {
        let config = self.watchdog_config(json_dump);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]);
        if let Some(uid) = uid {
            cmd.args([
                "setpriv",
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "--",
            ]);
        }
        let mut child = cmd
            .args([env!("CARGO_BIN_EXE_vip-watchdog"), "run", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
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
        };
        let lab = Lab {
            a: node("a", 1, 2, 150),
            b: node("b", 2, 1, 100),
            dir,
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

    /// HAProxy and Keepalived on both nodes.
    pub fn start_services(&mut self) {
        for n in self.nodes_mut() {
            n.start_haproxy();
        }
        for n in self.nodes_mut() {
            n.start_keepalived();
        }
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
        for n in self.nodes_mut() {
            // Keepalived first, so that it stops and reaps its own children.
            for child in [n.keepalived.take(), n.haproxy.take()]
                .into_iter()
                .flatten()
            {
                stop_child(child, Duration::from_secs(3));
            }
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
