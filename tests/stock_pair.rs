//! A stock Debian pair, as users run it: two Debian 12 hosts booted with
//! systemd (podman `--systemd=always` containers of the image
//! scripts/test.sh makes once, `ensure_booted_image`), each with Debian's
//! keepalived and haproxy packages and units untouched (no `-p`/`-r`, no
//! TMPDIR), the `.deb` built from this tree installed with `dpkg -i`, the
//! example config with only the site keys changed, and `systemctl enable
//! --now vip-watchdog`. keepalived.conf (the site's file) has the two
//! lines docs/operations.md asks for: the notify FIFO, and `umask 0133` so
//! that the watchdog's user can read Keepalived's JSON dump (Keepalived's
//! own default writes it 0600). The EC2 emulator (moto, patched by
//! tests/moto/launch.py) runs on this host, on the test's own podman
//! network's gateway address. The only addition to the packaged unit is a
//! drop-in with the emulator's test credentials, as a host without an
//! instance role would have.
//!
//! Shown: the VRRP process is found with Debian's default pid files; the
//! state after `systemctl restart vip-watchdog` is learned from Keepalived's
//! JSON dump under the unit's sandbox; `systemctl reload vip-watchdog` keeps
//! the state and the counters; HAProxy stopped, Keepalived stopped and
//! Keepalived crashed each move the EIP in `own` mode; `systemctl restart
//! keepalived` is followed; `check-config --host` run as the service runs
//! finds Keepalived, its config, the capabilities and a readable dump; a
//! crash sends the priority-0 advert, and with a deliberately wrong
//! `config_file` (taken by `systemctl reload`) sends none and says why; no
//! look at Keepalived's processes fails.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const IMAGE: &str = "localhost/vip-watchdog-booted:12-2";
/// tests/moto/lab.py's VPC: node a is .11, node b .12, the VIP .100.
const SUBNET: &str = "10.213.0.0/24";
const GATEWAY: &str = "10.213.0.1";
const VIP: &str = "10.213.0.100";
/// Long enough for a failover and the claim at the shipped defaults
/// (min_master_age 3 s, describes every second after a transition).
const FAILOVER: Duration = Duration::from_secs(40);

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--storage-driver", "vfs"]);
    c
}

fn out(cmd: &mut Command) -> (bool, String) {
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let (ok, text) = out(cmd);
    assert!(ok, "{shown}: {text}");
    text
}

/// Everything the test made, removed even when it fails.
struct Pair {
    tag: String,
    moto: Option<Child>,
    dir: PathBuf,
}

impl Drop for Pair {
    fn drop(&mut self) {
        if let Some(m) = self.moto.as_mut() {
            let _ = m.kill();
            let _ = m.wait();
        }
        for host in ["a", "b"] {
            let _ = out(podman().args(["rm", "-f", "-t", "0", &self.name(host)]));
        }
        let _ = out(podman().args(["network", "rm", "-f", &self.tag]));
    }
}

impl Pair {
    fn name(&self, host: &str) -> String {
        format!("{}-{host}", self.tag)
    }

    fn exec(&self, host: &str, args: &[&str]) -> String {
        ok(podman().arg("exec").arg(self.name(host)).args(args))
    }

    fn try_exec(&self, host: &str, args: &[&str]) -> (bool, String) {
        out(podman().arg("exec").arg(self.name(host)).args(args))
    }

    fn write(&self, host: &str, path: &str, text: &str) {
        let local = self.dir.join(format!("{host}-{}", path.replace('/', "_")));
        std::fs::write(&local, text).unwrap();
        ok(podman()
            .arg("cp")
            .arg(&local)
            .arg(format!("{}:{path}", self.name(host))));
    }

    fn status(&self, host: &str) -> Option<Value> {
        let (ok, text) = self.try_exec(
            host,
            &[
                "curl",
                "-sf",
                "--max-time",
                "2",
                "http://127.0.0.1:9842/v1/status",
            ],
        );
        if !ok {
            return None;
        }
        serde_json::from_str(&text).ok()
    }

    fn metrics(&self, host: &str) -> String {
        self.exec(
            host,
            &[
                "curl",
                "-sf",
                "--max-time",
                "2",
                "http://127.0.0.1:9842/metrics",
            ],
        )
    }

    fn journal(&self, host: &str) -> String {
        self.try_exec(
            host,
            &[
                "journalctl",
                "--no-pager",
                "-n",
                "60",
                "-u",
                "vip-watchdog",
                "-u",
                "keepalived",
            ],
        )
        .1
    }

    /// Polls `host`'s status (one `podman exec` at a time, bounded) until
    /// `pred` holds; fails naming `what`, with the last status and the
    /// journals.
    fn wait_status(&self, host: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + FAILOVER;
        let mut last = None;
        while Instant::now() < until {
            if let Some(s) = self.status(host) {
                if pred(&s) {
                    return s;
                }
                last = Some(s);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "{host}: {what} not within {FAILOVER:?}; last status: {}\n{}",
            last.map(|s| s.to_string()).unwrap_or_default(),
            self.journal(host)
        );
    }

    /// Polls `host`'s /metrics (one `podman exec` at a time, bounded)
    /// until `pred` holds on the exposition, and returns it; fails naming
    /// `what`, with the journals.
    fn wait_metrics(&self, host: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_metrics_within(host, what, FAILOVER, pred)
    }

    fn wait_metrics_within(
        &self,
        host: &str,
        what: &str,
        within: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let until = Instant::now() + within;
        loop {
            let m = self.metrics(host);
            if pred(&m) {
                return m;
            }
            assert!(
                Instant::now() < until,
                "{host}: {what} not within {within:?}; last exposition:\n{m}\n{}",
                self.journal(host)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `systemctl reload vip-watchdog`; fails with the unit's status and
    /// systemd's view of it when the reload is refused.
    /// Kills every Keepalived process of `host` at once, as a crash (an
    /// OOM kill of the unit) does: through the unit's cgroup.kill, one
    /// kernel operation. `systemctl kill` signals the processes one after
    /// the other, and the VRRP child, told of its parent's death first,
    /// may still stop gracefully (a STOP line, its own priority-0 advert):
    /// no crash then.
    fn crash_keepalived(&self, host: &str) {
        self.exec(
            host,
            &[
                "sh",
                "-c",
                // This container's own unit: its cgroup path names the
                // container (libpod-ID), and the other container's is
                // visible too.
                "id=$(sed -n 's|.*/\\(libpod-[0-9a-f]*\\)/.*|\\1|p' /proc/$(cat /run/keepalived.pid)/cgroup | head -n 1); \
                 d=$(find /sys/fs/cgroup -maxdepth 6 -type f -name cgroup.kill -path \"*/$id/*/keepalived.service/*\" | head -n 1); \
                 [ -n \"$id\" ] && [ -n \"$d\" ] || { echo \"no cgroup for keepalived ($id)\" >&2; exit 1; }; \
                 echo 1 > \"$d\"",
            ],
        );
    }

    fn reload(&self, host: &str) {
        let (reloaded, text) = self.try_exec(
            host,
            &["timeout", "60", "systemctl", "reload", "vip-watchdog"],
        );
        assert!(
            reloaded,
            "{host}: systemctl reload: {text}\n{}\n{}",
            self.try_exec(host, &["systemctl", "status", "--no-pager", "vip-watchdog"])
                .1,
            self.try_exec(
                host,
                &[
                    "sh",
                    "-c",
                    "journalctl --no-pager -n 3000 | grep -E 'systemd\\[1\\]|WARN|ERROR|shutting' | tail -100"
                ]
            )
            .1
        );
    }

    /// Waits until the emulator shows the EIP on `eni`.
    fn wait_eip(&self, python: &PathBuf, alloc: &str, eni: &str, what: &str) {
        let until = Instant::now() + FAILOVER;
        let mut last = String::new();
        while Instant::now() < until {
            last = common::run(Command::new(python).args([
                &common::moto_script("lab.py"),
                "where",
                &format!("http://{GATEWAY}:5000"),
                alloc,
            ]))
            .trim()
            .to_owned();
            if last == eni {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "{what}: the EIP is on {last}, not {eni}\n--- a:\n{}\n--- b:\n{}",
            self.journal("a"),
            self.journal("b")
        );
    }
}

fn instance(status: &Value) -> &Value {
    status["instances"]
        .as_array()
        .and_then(|l| l.iter().find(|i| i["name"] == "VI_1"))
        .unwrap_or(&Value::Null)
}

fn state_is(state: &'static str) -> impl Fn(&Value) -> bool {
    move |s| instance(s)["state"] == state
}

fn keepalived_conf(name: &str, priority: u32, me: &str, peer: &str) -> String {
    format!(
        "global_defs {{\n    router_id {name}\n    vrrp_notify_fifo /run/vip-watchdog/keepalived.fifo\n    umask 0133\n    script_user root\n    enable_script_security\n}}\n\
         vrrp_script chk_haproxy {{\n    script \"/usr/bin/curl -sf --max-time 1 http://127.0.0.1:8080/health\"\n    interval 1\n    timeout 2\n    fall 1\n    rise 1\n}}\n\
         vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    priority {priority}\n    advert_int 1\n    unicast_src_ip {me}\n    unicast_peer {{\n        {peer}\n    }}\n    virtual_ipaddress {{\n        {VIP}/24\n    }}\n    track_script {{\n        chk_haproxy\n    }}\n}}\n"
    )
}

/// The example config with the site's keys changed, nothing else.
fn watchdog_conf(name: &str, ids: &Value) -> String {
    let example = std::fs::read_to_string(common::repo().join("examples/vip-watchdog.toml"))
        .expect("examples/vip-watchdog.toml");
    let node = &ids["nodes"][name];
    let swaps = [
        ("name = \"lb-a\"", format!("name = \"{name}\"")),
        (
            "# region = \"eu-west-1\"",
            format!("region = \"{}\"", ids["region"].as_str().unwrap()),
        ),
        (
            "# instance_id = \"i-0123456789abcdef0\"",
            format!(
                "instance_id = \"{}\"",
                node["instance_id"].as_str().unwrap()
            ),
        ),
        (
            "# interface_id = \"eni-0123456789abcdef0\"",
            format!("interface_id = \"{}\"", node["eni"].as_str().unwrap()),
        ),
        (
            "# endpoint = \"https://ec2.eu-west-1.amazonaws.com\"",
            format!("endpoint = \"http://{GATEWAY}:5000\""),
        ),
        (
            "allocation_id = \"eipalloc-0123456789abcdef0\"",
            format!(
                "allocation_id = \"{}\"",
                ids["allocation_id"].as_str().unwrap()
            ),
        ),
        (
            "private_ip = \"10.0.0.100\"",
            format!("private_ip = \"{VIP}\""),
        ),
        ("vips = [\"10.0.0.100\"]", format!("vips = [\"{VIP}\"]")),
        ("mode = \"heal\" ", "mode = \"own\"  ".to_owned()),
    ];
    let mut text = example;
    for (from, to) in swaps {
        assert!(text.contains(from), "the example config has no {from:?}");
        text = text.replacen(from, &to, 1);
    }
    text
}

#[test]
fn a_stock_debian_pair_under_the_packaged_unit_fails_over_and_keeps_its_state() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "booting containers needs root: run ./scripts/test.sh as root"
    );
    common::require_tools(&["podman", "runc"]);
    let (exists, _) = out(podman().args(["image", "exists", IMAGE]));
    assert!(
        exists,
        "the booted image {IMAGE} is missing: ./scripts/test.sh makes it (ensure_booted_image in scripts/lib.sh)"
    );
    let python = common::venv_python();

    // The package, from the debug binary the tests built.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_vip-watchdog"));
    let built = ok(Command::new(common::repo().join("scripts/package.sh"))
        .arg("--dev")
        .env(
            "CARGO_TARGET_DIR",
            bin.parent().and_then(|p| p.parent()).expect("target dir"),
        ));
    let deb = built
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with(".deb"))
        .map(|l| common::repo().join(l.trim()))
        .expect("scripts/package.sh names the .deb");

    // A leftover of a run that was killed holds the subnet: remove it.
    for line in ok(podman().args(["ps", "-a", "--format", "{{.Names}}"])).lines() {
        if line.starts_with("vw-stock-") {
            let _ = out(podman().args(["rm", "-f", "-t", "0", line]));
        }
    }
    for line in ok(podman().args(["network", "ls", "--format", "{{.Name}}"])).lines() {
        if line.starts_with("vw-stock-") {
            let _ = out(podman().args(["network", "rm", "-f", line]));
        }
    }
    let tag = format!("vw-stock-{}", std::process::id());
    let dir = std::env::temp_dir().join(&tag);
    std::fs::create_dir_all(&dir).unwrap();
    let mut pair = Pair {
        tag: tag.clone(),
        moto: None,
        dir: dir.clone(),
    };
    ok(podman().args([
        "network",
        "create",
        "--subnet",
        SUBNET,
        "--gateway",
        GATEWAY,
        &tag,
    ]));
    for (host, ip) in [("a", "10.213.0.11"), ("b", "10.213.0.12")] {
        ok(podman().args([
            "run",
            "-d",
            "--name",
            &pair.name(host),
            "--hostname",
            host,
            "--runtime",
            "runc",
            "--systemd=always",
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=16384:16384",
            "--cap-add",
            "SYS_ADMIN,NET_ADMIN,NET_RAW",
            "--network",
            &tag,
            "--ip",
            ip,
            IMAGE,
            "/sbin/init",
        ]));
    }
    for host in ["a", "b"] {
        // Bounded by systemd's own start-up; "degraded" is a booted host
        // whose optional units failed, as on any container host.
        let (_, state) = pair.try_exec(
            host,
            &["timeout", "60", "systemctl", "is-system-running", "--wait"],
        );
        assert!(
            matches!(state.trim(), "running" | "degraded"),
            "{host} did not boot: {state}"
        );
    }

    // The emulator, on the gateway address the containers reach.
    let mut moto = Command::new(&python);
    moto.args([&common::moto_script("launch.py"), GATEWAY, "5000"])
        .env("MOTO_RECORDER_FILEPATH", dir.join("moto_recording"))
        .current_dir(&dir);
    let (moto, _) = common::spawn_until(moto, "Running on", "moto", dir.join("moto.log"));
    pair.moto = Some(moto);
    let ids: Value = serde_json::from_str(&common::run(Command::new(&python).args([
        &common::moto_script("lab.py"),
        "setup",
        &format!("http://{GATEWAY}:5000"),
    ])))
    .expect("setup prints JSON");
    let alloc = ids["allocation_id"].as_str().unwrap().to_owned();
    let eni = |n: &str| ids["nodes"][n]["eni"].as_str().unwrap().to_owned();

    let haproxy = std::fs::read_to_string(common::repo().join("lab/haproxy.cfg")).unwrap();
    for (host, priority, me, peer) in [
        ("a", 150, "10.213.0.11", "10.213.0.12"),
        ("b", 100, "10.213.0.12", "10.213.0.11"),
    ] {
        ok(podman()
            .arg("cp")
            .arg(&deb)
            .arg(format!("{}:/root/vip-watchdog.deb", pair.name(host))));
        pair.exec(host, &["dpkg", "-i", "/root/vip-watchdog.deb"]);
        pair.write(
            host,
            "/etc/haproxy/haproxy.cfg",
            &haproxy
                .replace("@NAME@", host)
                .replace("@EXTRA_HAPROXY@", ""),
        );
        pair.write(
            host,
            "/etc/keepalived/keepalived.conf",
            &keepalived_conf(host, priority, me, peer),
        );
        pair.write(
            host,
            "/etc/vip-watchdog/vip-watchdog.toml",
            &watchdog_conf(host, &ids),
        );
        pair.exec(
            host,
            &["mkdir", "-p", "/etc/systemd/system/vip-watchdog.service.d"],
        );
        pair.write(
            host,
            "/etc/systemd/system/vip-watchdog.service.d/credentials.conf",
            "[Service]\nEnvironment=AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing\n",
        );
        pair.exec(host, &["systemctl", "daemon-reload"]);
        pair.exec(host, &["systemctl", "restart", "haproxy"]);
        let (started, text) =
            pair.try_exec(host, &["systemctl", "enable", "--now", "vip-watchdog"]);
        assert!(
            started,
            "{host}: vip-watchdog did not start: {text}\n{}",
            pair.journal(host)
        );
        pair.exec(host, &["systemctl", "restart", "keepalived"]);
    }
    // The unit as shipped: no pid arguments to Keepalived.
    let unit = pair.exec("a", &["systemctl", "cat", "keepalived"]);
    assert!(!unit.contains(" -p ") && !unit.contains("--pid"), "{unit}");

    let s = pair.wait_status("a", "MASTER with its VRRP process found", |s| {
        state_is("master")(s) && s["keepalived"]["vrrp_pid"].is_number()
    });
    let vrrp_pid = pair.exec("a", &["cat", "/run/vrrp.pid"]);
    assert_eq!(
        s["keepalived"]["vrrp_pid"].as_i64(),
        vrrp_pid.trim().parse::<i64>().ok(),
        "the VRRP process is the one Keepalived's own /run/vrrp.pid names: {s}"
    );
    pair.wait_status("b", "BACKUP", state_is("backup"));
    pair.wait_eip(&python, &alloc, &eni("a"), "at start");

    // Restarted while Keepalived is MASTER: the state is learned from the
    // JSON dump under the unit's sandbox, not from addresses.
    pair.exec("a", &["systemctl", "restart", "vip-watchdog"]);
    pair.wait_status(
        "a",
        "MASTER learned from the JSON dump after a restart",
        |s| state_is("master")(s) && instance(s)["source"] == "json_dump",
    );

    // A reload with a changed config keeps the state and the counters.
    let transitions = |m: &str| {
        common::metric(
            m,
            "vip_watchdog_vrrp_transitions_total",
            &[("vrrp_instance", "VI_1"), ("to", "master")],
        )
    };
    let before = transitions(&pair.metrics("a"));
    pair.exec(
        "a",
        &[
            "sed",
            "-i",
            "s/^verify_interval = \"30s\"/verify_interval = \"31s\"/",
            "/etc/vip-watchdog/vip-watchdog.toml",
        ],
    );
    // `systemctl reload`, twice in this test: a reload once sent systemd
    // STOPPING=1 (the notify task restarted with the others), and systemd
    // then took the service for stopping and killed it after
    // TimeoutStopSec.
    pair.reload("a");
    let reloads = |m: &str| {
        common::metric(
            m,
            "vip_watchdog_config_reloads_total",
            &[("result", "applied")],
        )
    };
    let after = pair.wait_metrics("a", "the reload applied", |m| reloads(m) == Some(1.0));
    assert_eq!(transitions(&after), before, "a reload keeps the counters");
    assert_eq!(
        common::metric(&after, "vip_watchdog_config_last_reload_successful", &[]),
        Some(1.0)
    );
    pair.wait_status("a", "MASTER from the JSON dump after a reload", |s| {
        state_is("master")(s) && instance(s)["source"] == "json_dump"
    });

    // HAProxy stopped: a goes FAULT, b claims.
    pair.exec("a", &["systemctl", "stop", "haproxy"]);
    pair.wait_eip(&python, &alloc, &eni("b"), "HAProxy stopped on a");
    pair.exec("a", &["systemctl", "start", "haproxy"]);
    pair.wait_eip(&python, &alloc, &eni("a"), "HAProxy started again on a");

    // Keepalived stopped: b claims; started again, a takes it back.
    pair.exec("a", &["systemctl", "stop", "keepalived"]);
    pair.wait_eip(&python, &alloc, &eni("b"), "Keepalived stopped on a");
    pair.exec("a", &["systemctl", "start", "keepalived"]);
    pair.wait_eip(&python, &alloc, &eni("a"), "Keepalived started again on a");

    // Keepalived restarted: followed (a new pid, MASTER again).
    let old = pair.wait_status("a", "MASTER", state_is("master"))["keepalived"]["pid"].clone();
    pair.exec("a", &["systemctl", "restart", "keepalived"]);
    pair.wait_status("a", "MASTER of a new Keepalived after its restart", |s| {
        state_is("master")(s) && s["keepalived"]["pid"] != old && s["keepalived"]["running"] == true
    });
    pair.wait_eip(&python, &alloc, &eni("a"), "after Keepalived's restart");

    // check-config --host as the service runs (its user, its two
    // capabilities), and as root: both find the running Keepalived, its
    // FIFO, the capabilities and a dump the service user can read (root,
    // Keepalived's own user, needs no CAP_KILL to signal it).
    for (how, kill) in [
        (
            &[
                "systemd-run",
                "--quiet",
                "--pipe",
                "--wait",
                "--property=User=vip-watchdog",
                "--property=AmbientCapabilities=CAP_KILL CAP_NET_RAW",
            ][..],
            true,
        ),
        (&[][..], false),
    ] {
        let mut args = how.to_vec();
        args.extend([
            "vip-watchdog",
            "check-config",
            "--host",
            "--config",
            "/etc/vip-watchdog/vip-watchdog.toml",
        ]);
        let (passed, text) = pair.try_exec("a", &args);
        assert!(passed, "{how:?}: {text}");
        for want in [
            "host: ok: Keepalived runs: main pid",
            "host: ok: Keepalived reads /etc/keepalived/keepalived.conf",
            "host: ok: CAP_NET_RAW held",
            "is readable by the service user vip-watchdog",
            "VI_1 master",
        ] {
            assert!(text.contains(want), "{how:?}: {want:?} not in:\n{text}");
        }
        assert_eq!(
            text.contains("host: ok: CAP_KILL held"),
            kill,
            "{how:?}: {text}"
        );
    }

    // The notify wrapper, as Keepalived runs it (root), reaches the
    // watchdog on its default socket, in the unit's RuntimeDirectory, which
    // only the service user (and root) may use.
    let socket = pair.exec(
        "a",
        &["stat", "-c", "%a %U %F", "/run/vip-watchdog/local.sock"],
    );
    assert_eq!(socket.trim(), "600 vip-watchdog socket", "{socket}");
    let runs = |m: &str| {
        common::metric(
            m,
            "vip_watchdog_notify_runs_total",
            &[("outcome", "succeeded")],
        )
    };
    assert_eq!(runs(&pair.metrics("a")), Some(0.0));
    let (ran, text) = pair.try_exec(
        "a",
        &[
            "vip-watchdog",
            "notify",
            "--instance",
            "VI_1",
            "--",
            "/bin/true",
        ],
    );
    assert!(ran, "{text}");
    assert!(
        !text.contains("did not"),
        "the wrapper reached the watchdog: {text}"
    );
    pair.wait_metrics("a", "the wrapper's report", |m| runs(m) == Some(1.0));

    let armed = |m: &str| {
        common::metric(
            m,
            "vip_watchdog_vrrp_release_armed",
            &[("vrrp_instance", "VI_1")],
        )
    };
    let releases = |m: &str, outcome: &str| {
        common::metric(
            m,
            "vip_watchdog_vrrp_releases_total",
            &[("vrrp_instance", "VI_1"), ("outcome", outcome)],
        )
    };
    pair.wait_metrics("a", "the release armed", |m| armed(m) == Some(1.0));

    // Crashed: every Keepalived process killed at once; the priority-0
    // advert is sent on its behalf, b claims. The service is still the one
    // the reloads left running.
    pair.crash_keepalived("a");
    pair.wait_eip(&python, &alloc, &eni("b"), "Keepalived crashed on a");
    let m = pair.wait_metrics("a", "the release sent", |m| {
        releases(m, "sent") == Some(1.0)
    });
    assert_eq!(releases(&m, "failed"), Some(0.0));

    // A deliberately wrong config_file (a copy Keepalived does not read),
    // taken by `systemctl reload`: the release disarms, and a crash sends
    // nothing and says why.
    pair.exec("a", &["systemctl", "start", "keepalived"]);
    pair.wait_eip(&python, &alloc, &eni("a"), "Keepalived started again on a");
    pair.exec(
        "a",
        &[
            "cp",
            "/etc/keepalived/keepalived.conf",
            "/etc/keepalived/copy.conf",
        ],
    );
    pair.exec(
        "a",
        &[
            "sed",
            "-i",
            "s|^config_file = \"/etc/keepalived/keepalived.conf\"|config_file = \"/etc/keepalived/copy.conf\"|",
            "/etc/vip-watchdog/vip-watchdog.toml",
        ],
    );
    pair.reload("a");
    pair.wait_metrics("a", "the second reload applied", |m| {
        reloads(m) == Some(2.0)
    });
    pair.wait_metrics("a", "the release disarmed", |m| armed(m) == Some(0.0));
    pair.wait_status("a", "MASTER", state_is("master"));
    pair.crash_keepalived("a");
    pair.wait_eip(
        &python,
        &alloc,
        &eni("b"),
        "Keepalived crashed on a, wrongly configured",
    );
    let m = pair.wait_metrics("a", "the release refused", |m| {
        releases(m, "failed") == Some(1.0)
    });
    assert_eq!(releases(&m, "sent"), Some(1.0), "no second advert");
    let journal = pair.journal("a");
    assert!(
        journal.contains("reads /etc/keepalived/keepalived.conf, not keepalived.config_file /etc/keepalived/copy.conf"),
        "the refusal says why: {journal}"
    );
    // Each line reaches the journal with its level as PRIORITY (the unit's
    // stderr is the journal): the disarming is a warning, the arming news.
    let at = |priority: &str| {
        pair.exec(
            "a",
            &[
                "journalctl",
                "--no-pager",
                "-o",
                "cat",
                "-u",
                "vip-watchdog",
                "-p",
                priority,
            ],
        )
    };
    let (warnings, news) = (at("warning..warning"), at("info..info"));
    assert!(
        warnings.contains("release_disarmed") && !warnings.contains("release_armed"),
        "journalctl -p warning: {warnings}"
    );
    assert!(
        news.contains("release_armed") && !news.contains("release_disarmed"),
        "journalctl -p info: {news}"
    );
    assert!(
        !warnings
            .lines()
            .chain(news.lines())
            .any(|l| l.starts_with('<')),
        "journald strips the priority prefix: {warnings}"
    );

    let m = pair.metrics("a");
    assert_eq!(
        common::metric(
            &m,
            "vip_watchdog_keepalived_process_check_errors_total",
            &[]
        ),
        Some(0.0),
        "every look at Keepalived's processes concluded something"
    );

    // Keepalived's own health under both units, at the defaults: b's
    // watchdog has read the JSON dump's counters and the data dump's
    // script status (a minute apart) from Keepalived's /tmp.
    // Two rounds a minute apart, from b's start.
    let rounds = Duration::from_secs(150);
    let m = pair.wait_metrics_within(
        "b",
        "Keepalived's counters and script status",
        rounds,
        |m| {
            common::metric(
                m,
                "vip_watchdog_keepalived_scripts_last_read_timestamp_seconds",
                &[],
            )
            .is_some()
                && common::metric(
                    m,
                    "vip_watchdog_keepalived_stats_last_read_timestamp_seconds",
                    &[],
                )
                .is_some()
        },
    );
    assert_eq!(
        common::metric(
            &m,
            "vip_watchdog_keepalived_vrrp_script_status",
            &[("script", "chk_haproxy")]
        ),
        Some(1.0),
        "{m}"
    );
    let received = common::metric(
        &m,
        "vip_watchdog_keepalived_vrrp_adverts_received_total",
        &[("vrrp_instance", "VI_1")],
    );
    assert!(
        received.is_some_and(|r| r > 0.0),
        "b heard a's adverts: {m}"
    );
}
