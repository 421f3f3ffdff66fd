//! The lab: two namespaces joined by a veth pair, and its clean-up.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{
    CloudLab, NS_PREFIX, Node, SETTLE, SUBNET, VIP, Watchdog, in_ns, ip, pid_alive,
    require_prerequisites, run,
};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct Lab {
    pub a: Node,
    pub b: Node,
    pub(super) dir: PathBuf,
    pub(super) id: String,
    pub cloud: Option<CloudLab>,
    /// Keys of the [[vip]] table (`min_master_age`, `grace`, `max_claims`,
    /// ...) and of the [cloud] table (`verify_interval`, ...) that differ
    /// from the shipped defaults; none by default: tests run what users
    /// run. A test or benchmark that sets one says why.
    pub vip_overrides: Vec<(&'static str, String)>,
    pub cloud_overrides: Vec<(&'static str, String)>,
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
            pair: "lab".into(),
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
            extra_haproxy: String::new(),
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

    /// Names the pair (`[node] pair` of both watchdogs) other than "lab",
    /// for a test with two labs side by side.
    pub fn set_pair(&mut self, name: &str) {
        for n in self.nodes_mut() {
            n.pair = name.into();
            n.write_configs();
        }
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

    /// `handover = "break_before_make"` at the shipped fence_wait: the new
    /// holder adds the private IP and claims only once the old one let go.
    /// Needs `set_manage_address` and the peer channel. Call before
    /// `set_vip`.
    pub fn set_break_before_make(&mut self) {
        self.vip_overrides
            .push(("handover", "\"break_before_make\"".into()));
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
