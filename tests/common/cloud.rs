//! The cloud: moto in a namespace of its own, the EIP, routes, notify
//! scripts, the fault proxy and the observer of the EIP's moves.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::Value;

use super::{Lab, SECOND_VIP, VIP, client, in_ns, ip, repo, run, spawn_until, watchdog_bin};

/// moto's EC2 server in a namespace of its own, linked to both nodes.
pub struct CloudLab {
    pub ns: String,
    pub(super) children: Vec<Child>,
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

/// The observer's next move (see `Lab::start_observer`): when (Unix time)
/// and to which ENI ("-" for none).
pub fn next_move(observer: &Receiver<String>, timeout: Duration) -> (f64, String) {
    let line = observer
        .recv_timeout(timeout)
        .unwrap_or_else(|_| panic!("the observer saw no move of the EIP within {timeout:?}"));
    let (at, eni) = line.split_once(' ').expect("EPOCH ENI");
    (at.parse().expect("an epoch"), eni.to_owned())
}

impl Lab {
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

    pub(super) fn cloud(&self) -> &CloudLab {
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

    /// Active-active: a second VRRP instance, VI_2, whose MASTER
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

    pub(super) fn lab_py(&self, args: &[&str]) -> String {
        let ns = &self.cloud().ns;
        run(in_ns(ns)
            .arg(venv_python())
            .arg(moto_script("lab.py"))
            .args(args))
    }

    /// Both watchdogs' VIP as the secondary private IP itself (`kind =
    /// "private_ip"`, the lab's VIP on a's ENI at set-up), at the shipped
    /// defaults but for `mode`.
    pub fn set_private_ip_vip(&mut self, mode: &str) {
        self.set_vip(mode, false);
        let alloc = self.allocation_id();
        for n in [&mut self.a, &mut self.b] {
            let eip = format!("kind = \"eip\"\nname = \"web\"\nallocation_id = \"{alloc}\"\n");
            assert!(n.cloud_toml.contains(&eip), "{}", n.cloud_toml);
            n.cloud_toml = n
                .cloud_toml
                .replace(&eip, "kind = \"private_ip\"\nname = \"web\"\n");
        }
    }

    /// Which nodes' ENIs carry the lab's VIP as a private IP: "a", "b",
    /// "a b" (both, which EC2 never leaves), or "-".
    pub fn private_ip_on(&self) -> String {
        let enis = self.lab_py(&["holders", "http://127.0.0.1:5000", VIP]);
        enis.split_whitespace()
            .map(|eni| {
                ["a", "b"]
                    .into_iter()
                    .find(|n| self.eni(n) == eni)
                    .map_or_else(|| eni.to_owned(), str::to_owned)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Assigns the lab's VIP to node `name`'s ENI (AllowReassignment), as an
    /// operator or a stray script would, behind the watchdogs' backs.
    pub fn assign_private_ip(&self, name: &str) {
        let eni = self.eni(name);
        self.lab_py(&["assign", "http://127.0.0.1:5000", VIP, &eni]);
    }

    /// Moves the lab's EIP (and its private IP) to node `name`, as its
    /// notify script would: a stray run, an operator, behind the
    /// watchdogs' backs.
    pub fn steal_eip_for(&self, name: &str) {
        let alloc = self.allocation_id();
        let instance = self.instance_id(name);
        self.lab_py(&[
            "notify",
            "ok",
            "http://127.0.0.1:5000",
            &alloc,
            VIP,
            &instance,
        ]);
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

    /// Node `name`'s notify_master: "ok", "fail", "twice" run the typical
    /// notify script (tests/moto/lab.py notify); "baseline" is the typical
    /// bash script with the AWS CLI (tests/moto/notify_baseline.sh)
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
        let alloc = self.allocation_id();
        self.start_observer_of(&alloc, seconds)
    }

    /// `start_observer` for the lab's VIP as a private IP: "EPOCH ENIS",
    /// the ENIs that carry it, comma-separated ("-" for none).
    pub fn start_private_ip_observer(&mut self, seconds: u32) -> Receiver<String> {
        self.start_observer_of(VIP, seconds)
    }

    fn start_observer_of(&mut self, target: &str, seconds: u32) -> Receiver<String> {
        let python = venv_python();
        let ns = self.cloud().ns.clone();
        let mut cmd = in_ns(&ns);
        cmd.arg(&python).args([
            &moto_script("lab.py"),
            "observe",
            "http://127.0.0.1:5000",
            target,
            &seconds.to_string(),
        ]);
        let (child, lines) =
            spawn_until(cmd, "ready", "the observer", self.dir.join("observer.log"));
        self.cloud.as_mut().expect("cloud").children.push(child);
        lines
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
}
