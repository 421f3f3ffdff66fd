//! The container image: the Dockerfile built with buildah from a base made
//! locally (debootstrap; scripts/test.sh makes it once: no image registry
//! is reachable here), the binary these tests built standing in for the
//! Rust builder stage (`--build-arg BINARY`), then run with podman: a
//! non-root user, OCI labels, a HEALTHCHECK on /healthz that passes, and a
//! clear stop without a mounted config.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BASE: &str = "localhost/debian:12-minbase";
const IMAGE: &str = "localhost/vip-watchdog:test";

fn tool(name: &str) -> Command {
    let mut c = Command::new(name);
    c.args(["--storage-driver", "vfs"]);
    c
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let (ok, out, err) = run(cmd);
    assert!(ok, "{shown}: {out}{err}");
    out
}

/// podman as the tests run it here: runc and explicit limits (this host
/// refuses podman's defaults), and no health-check timer (it needs systemd
/// as PID 1: the test runs the health command itself).
fn podman_run() -> Command {
    let mut c = tool("podman");
    c.args([
        "run",
        "--runtime",
        "runc",
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
        "--no-healthcheck",
        "--network",
        "host",
    ]);
    c
}

/// Builds the image once per test run (both tests use it).
fn image() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(build_image);
}

fn build_image() {
    let (have_base, _, err) = run(tool("podman").args(["image", "exists", BASE]));
    assert!(
        have_base,
        "{BASE} is missing: ./scripts/test.sh makes it (debootstrap + podman import) {err}"
    );
    // The binary these tests built, in an image of its own.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_vip-watchdog"));
    let c = ok(tool("buildah").args(["from", "scratch"]))
        .trim()
        .to_owned();
    ok(tool("buildah")
        .args(["copy", &c])
        .arg(&bin)
        .arg("/vip-watchdog"));
    ok(tool("buildah").args([
        "commit",
        "--quiet",
        &c,
        "localhost/vip-watchdog-binary:test",
    ]));
    ok(tool("buildah").args(["rm", &c]));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    ok(tool("buildah")
        .args([
            "bud",
            "--isolation",
            "chroot",
            "--format",
            "docker",
            "--build-arg",
            &format!("BASE={BASE}"),
            "--build-arg",
            "BINARY=localhost/vip-watchdog-binary:test",
            "--build-arg",
            "REVISION=test",
            "-t",
            IMAGE,
            "-f",
        ])
        .arg(repo.join("Dockerfile"))
        .arg(repo));
}

#[test]
fn the_image_builds_runs_as_non_root_and_reports_healthy() {
    image();
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(tool("podman").args(["image", "inspect", IMAGE]))).unwrap();
    let config = &inspect[0]["Config"];
    assert_eq!(config["User"], "10001:10001", "{config}");
    assert_eq!(
        config["Labels"]["org.opencontainers.image.title"],
        "vip-watchdog"
    );
    assert_eq!(
        config["Labels"]["org.opencontainers.image.revision"],
        "test"
    );
    let health = inspect[0]["Healthcheck"]["Test"].to_string();
    assert!(health.contains("\"health\""), "a HEALTHCHECK: {inspect}");
    let size = inspect[0]["Size"].as_u64().unwrap_or(0);
    println!(
        "image {IMAGE}: {:.1} MB (the debootstrap minbase and the unstripped debug binary)",
        size as f64 / 1e6
    );

    // Runs the binary; whoami is the image's user.
    let out = ok(podman_run().args(["--rm", IMAGE, "--version"]));
    assert!(out.starts_with("vip-watchdog "), "{out}");
    let out = ok(podman_run().args(["--rm", "--entrypoint", "id", IMAGE, "-u"]));
    assert_eq!(out.trim(), "10001");

    // No config mounted: a clear stop, exit 2.
    let (fine, out, err) = run(podman_run().args(["--rm", IMAGE]));
    assert!(!fine, "{out}");
    assert!(
        err.contains("cannot read /etc/vip-watchdog/vip-watchdog.toml"),
        "{err}"
    );

    // A config mounted: it runs, and its HEALTHCHECK command passes.
    let dir = std::env::temp_dir().join(format!("vip-watchdog-container-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("vip-watchdog.toml"),
        "[node]\nname = \"c\"\npair = \"p\"\n[http]\nlisten = \"127.0.0.1:19842\"\n[keepalived]\nfifo = \"/run/vip-watchdog/keepalived.fifo\"\npid_file = \"/run/keepalived.pid\"\nvrrp_pid_file = \"\"\njson_dump = false\n[probe]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let name = format!("vip-watchdog-test-{}", std::process::id());
    ok(podman_run()
        .args(["-d", "--name", &name, "-v"])
        .arg(format!("{}:/etc/vip-watchdog:ro", dir.display()))
        .arg(IMAGE));
    // Awaits its http_listening event (within 20 s), then asks its
    // health command once.
    let mut follow = tool("podman")
        .args(["logs", "-f", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podman logs -f");
    let (tx, lines) = std::sync::mpsc::channel();
    for pipe in [
        Box::new(follow.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(follow.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
    }
    let listening = loop {
        match lines.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(l) if l.contains("http_listening") => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    let _ = follow.kill();
    let _ = follow.wait();
    let answered = run(tool("podman").args([
        "exec",
        &name,
        "/usr/bin/vip-watchdog",
        "health",
        "--config",
        "/etc/vip-watchdog/vip-watchdog.toml",
    ]));
    let logs = ok(tool("podman").args(["logs", &name]));
    let _ = run(tool("podman").args(["rm", "-f", &name]));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(listening, "no \"http listening\" within 20 s:\n{logs}");
    assert!(answered.0, "health: {} {}\n{logs}", answered.1, answered.2);
    assert!(answered.1.contains("healthy"), "{}", answered.1);
}

/// GET `path` of the watchdog at `address` on this host's loopback; None
/// when it does not answer 200.
fn get(address: &str, path: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(address).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200").then(|| body.to_owned())
}

/// What the container test made, removed when dropped (even on failure).
struct Beside {
    dir: PathBuf,
    ns: String,
    container: String,
    keepalived: Option<std::process::Child>,
}

impl Beside {
    /// Keepalived as Debian's unit starts it (`keepalived --dont-fork`, no
    /// path arguments: /run/keepalived.pid, /run/vrrp.pid,
    /// /tmp/keepalived.json, /etc/keepalived/keepalived.conf), in a network
    /// namespace of the test's own and a mount namespace where this test's
    /// directories are its /run, /tmp and /etc/keepalived: the host's
    /// directories of the documented run line, without touching this
    /// machine's own.
    fn start_keepalived(&mut self) {
        // /tmp last: the test's directories may be under it.
        let d = self.dir.display();
        let script = format!(
            "mount --bind {d}/etc-keepalived /etc/keepalived && mount --bind {d}/run /run && mount --bind {d}/tmp /tmp && exec keepalived --dont-fork"
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("keepalived starts");
        self.keepalived = Some(child);
    }

    /// SIGTERM to Keepalived (its main process), then its exit.
    fn stop_keepalived(&mut self) {
        if let Some(mut child) = self.keepalived.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
    }

    fn pid_file(&self, name: &str) -> i64 {
        std::fs::read_to_string(self.dir.join("run").join(name))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(-1)
    }
}

impl Drop for Beside {
    fn drop(&mut self) {
        let _ = run(tool("podman").args(["rm", "-f", &self.container]));
        self.stop_keepalived();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const STATUS: &str = "127.0.0.1:19843";

/// Polls /v1/status until `pred` holds (bounded: 30 s).
fn wait_status(
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
    name: &str,
) -> serde_json::Value {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut last = None;
    while std::time::Instant::now() < until {
        if let Some(s) = get(STATUS, "/v1/status").and_then(|t| serde_json::from_str(&t).ok()) {
            if pred(&s) {
                return s;
            }
            last = Some(s);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let logs = run(tool("podman").args(["logs", name]));
    panic!(
        "{what} not within 30 s; last status: {last:?}\n{}{}",
        logs.1, logs.2
    );
}

fn master(s: &serde_json::Value) -> bool {
    s["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == "VI_1"))
        .is_some_and(|i| i["state"] == "master")
}

/// The documented container (docs/container.md's run line, the host's
/// directories being this test's) next to a stock-configured Keepalived
/// that is restarted twice: the watchdog follows each new Keepalived
/// (through the mounted /run directory, never single pid files), and the
/// JSON dump works through the mounted /tmp, asked with a signal across
/// `--pid host` (CAP_KILL).
#[test]
fn the_documented_container_follows_keepalived_restarted_twice() {
    image();
    let id = std::process::id();
    let dir = std::env::temp_dir().join(format!("vip-watchdog-beside-{id}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut host = Beside {
        dir: dir.clone(),
        ns: format!("vwbeside-{id}"),
        container: format!("vip-watchdog-beside-{id}"),
        keepalived: None,
    };
    for sub in [
        "run/vip-watchdog",
        "tmp",
        "etc-keepalived",
        "etc-vip-watchdog",
        "state",
    ] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    ok(Command::new("ip").args(["netns", "add", &host.ns]));
    for args in [
        &["link", "add", "d0", "type", "veth", "peer", "name", "d1"][..],
        &["link", "set", "d1", "up"],
        &["addr", "add", "10.213.9.1/24", "dev", "d0"],
        &["link", "set", "d0", "up"],
        &["link", "set", "lo", "up"],
    ] {
        ok(Command::new("ip").args(["-n", &host.ns]).args(args));
    }
    std::fs::write(
        dir.join("etc-keepalived/keepalived.conf"),
        "global_defs {\n    router_id beside\n    vrrp_notify_fifo /run/vip-watchdog/keepalived.fifo\n    umask 0133\n}\n\
         vrrp_instance VI_1 {\n    state BACKUP\n    interface d0\n    virtual_router_id 61\n    priority 100\n    advert_int 1\n    unicast_src_ip 10.213.9.1\n    unicast_peer {\n        10.213.9.2\n    }\n    virtual_ipaddress {\n        10.213.9.100/24\n    }\n}\n",
    )
    .unwrap();
    let signum = ok(Command::new("keepalived").arg("--signum=JSON"));
    std::fs::write(
        dir.join("etc-vip-watchdog/vip-watchdog.toml"),
        format!(
            "[node]\nname = \"beside\"\npair = \"p\"\n[http]\nlisten = \"{STATUS}\"\n[keepalived]\nfifo = \"/run/vip-watchdog/keepalived.fifo\"\npid_file = \"/host/run/keepalived.pid\"\njson_file = \"/host/tmp/keepalived.json\"\njson_signal = {}\n[[keepalived.instance]]\nname = \"VI_1\"\nvips = [\"10.213.9.100\"]\n[probe]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n",
            signum.trim()
        ),
    )
    .unwrap();

    // docs/container.md's line, the host's directories being the test's.
    let d = dir.display();
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/container.md"))
            .unwrap();
    let line = [
        "--network host --pid host",
        "--user 0:0 --cap-drop all --cap-add KILL --cap-add NET_RAW",
        "-v /etc/vip-watchdog:/etc/vip-watchdog:ro",
        "-v /run/vip-watchdog:/run/vip-watchdog",
        "-v /var/lib/vip-watchdog:/var/lib/vip-watchdog",
        "-v /run:/host/run:ro",
        "-v /tmp:/host/tmp:ro",
        "-v /etc/keepalived:/etc/keepalived:ro",
    ];
    for part in line {
        assert!(
            doc.contains(part),
            "docs/container.md's run line has no {part:?}"
        );
    }
    // podman_run() holds this host's runtime flags and `--network host`.
    let mut podman = podman_run();
    podman.args([
        "-d",
        "--name",
        &host.container,
        "--pid",
        "host",
        "--user",
        "0:0",
        "--cap-drop",
        "all",
        "--cap-add",
        "KILL",
        "--cap-add",
        "NET_RAW",
    ]);
    for (from, to) in [
        (format!("{d}/etc-vip-watchdog"), "/etc/vip-watchdog:ro"),
        (format!("{d}/run/vip-watchdog"), "/run/vip-watchdog"),
        (format!("{d}/state"), "/var/lib/vip-watchdog"),
        (format!("{d}/run"), "/host/run:ro"),
        (format!("{d}/tmp"), "/host/tmp:ro"),
        (format!("{d}/etc-keepalived"), "/etc/keepalived:ro"),
    ] {
        podman.arg("-v").arg(format!("{from}:{to}"));
    }
    ok(podman.arg(IMAGE));
    let name = host.container.clone();
    wait_status("the watchdog answers", |_| true, &name);

    // Keepalived started after the watchdog, as the units order them.
    host.start_keepalived();
    let mut seen = vec![];
    for round in 0..3 {
        if round > 0 {
            host.stop_keepalived();
            host.start_keepalived();
        }
        let s = wait_status(
            &format!("MASTER of Keepalived start {round}"),
            |s| {
                master(s)
                    && s["keepalived"]["running"] == true
                    && s["keepalived"]["pid"].as_i64() == Some(host.pid_file("keepalived.pid"))
                    && !seen.contains(&s["keepalived"]["pid"].as_i64())
            },
            &name,
        );
        assert_eq!(
            s["keepalived"]["vrrp_pid"].as_i64(),
            Some(host.pid_file("vrrp.pid")),
            "round {round}: the VRRP process is Keepalived's own /run/vrrp.pid: {s}"
        );
        seen.push(s["keepalived"]["pid"].as_i64());
    }
    // The watchdog restarted: the state is learned from the dump, asked
    // across --pid host and read through the mounted /tmp.
    ok(tool("podman").args(["restart", &name]));
    wait_status(
        "MASTER learned from the JSON dump",
        |s| {
            master(s)
                && s["instances"][0]["source"] == "json_dump"
                && s["keepalived"]["pid"].as_i64() == seen[2]
        },
        &name,
    );
    let m = get(STATUS, "/metrics").expect("/metrics");
    let errors = vip_watchdog::metrics::value(
        &m,
        "vip_watchdog_keepalived_process_check_errors_total",
        &[],
    );
    assert_eq!(
        errors,
        Some(0.0),
        "every look at Keepalived concluded something"
    );
    drop(host);
}
