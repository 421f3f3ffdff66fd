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

#[test]
fn the_image_builds_runs_as_non_root_and_reports_healthy() {
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
    // Awaits its "http listening" line (within 20 s), then asks its
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
            Ok(l) if l.contains("http listening") => break true,
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
