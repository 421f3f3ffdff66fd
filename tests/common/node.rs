//! One node of the lab: its namespace, configs, HAProxy, Keepalived,
//! PostgreSQL and the watchdog started in it.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::{VIP, Watchdog, in_ns, ip, is, repo, run, watchdog_bin};

pub struct Node {
    pub name: &'static str,
    /// The watchdog's `[node] pair`: "lab" unless `Lab::set_pair`.
    pub pair: String,
    pub ns: String,
    pub dir: PathBuf,
    pub addr: String,
    pub(super) peer: String,
    pub(super) priority: u8,
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
    /// More sections of haproxy.cfg (`Lab::add_apiserver`).
    pub extra_haproxy: String,
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
    pub(super) fn template(&self, file: &str, extra: &[(&str, &str)]) -> String {
        let path = repo().join("lab").join(file);
        let mut text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let priority = self.priority.to_string();
        let fifo = self.fifo().display().to_string();
        let dir = self.dir.display().to_string();
        let common = [
            ("@NAME@", self.name),
            ("@PAIR@", self.pair.as_str()),
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
            ("@EXTRA_HAPROXY@", self.extra_haproxy.as_str()),
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

    /// Drops (or stops dropping) incoming VRRP in this node's namespace.
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
    pub(super) fn pg_bin(name: &str) -> PathBuf {
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

    pub(super) fn pg_data(&self) -> PathBuf {
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

    /// The server dies as with its host (immediate shutdown).
    pub fn pg_kill(&mut self) {
        self.pg_ctl(&["-w", "-m", "immediate", "stop"]);
        self.postgres = false;
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
            is(e, "http_listening")
        });
        wd.address = ev["address"].as_str().expect("address field").to_owned();
        wd
    }
}
