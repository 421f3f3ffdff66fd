//! Shipping: the Debian package built by scripts/package.sh (the debug
//! binary the tests built, stripped), installed with dpkg on this machine,
//! run, its systemd unit checked by systemd-analyze, its conffile's mode
//! kept by dpkg-statoverride, checked by lintian, then purged; and the
//! notify protocol of its `Type=notify` unit, spoken to a socket the test
//! binds as systemd would.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Purges the package even when the test fails half-way, and removes the
/// system user that purge keeps (as Debian does) when this test created
/// it: other tests find the host as it was.
struct Installed {
    user_existed: bool,
}

impl Installed {
    fn new() -> Self {
        Installed {
            user_existed: run(Command::new("id").arg("vip-watchdog")).0,
        }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "vip-watchdog"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !self.user_existed {
            for (tool, args) in [
                ("deluser", ["--quiet", "--system", "vip-watchdog"]),
                ("delgroup", ["--quiet", "--system", "vip-watchdog"]),
            ] {
                let _ = Command::new(tool)
                    .args(args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

#[test]
fn the_debian_package_installs_runs_passes_systemd_analyze_and_purges() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "dpkg -i needs root: run ./scripts/test.sh as root"
    );
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_vip-watchdog"));
    let (ok, out) = run(Command::new(repo().join("scripts/package.sh"))
        .arg("--dev")
        .env(
            "CARGO_TARGET_DIR",
            bin.parent().and_then(Path::parent).expect("target dir"),
        ));
    assert!(ok, "scripts/package.sh --dev: {out}");
    assert!(
        out.contains("usr/lib/systemd/system/vip-watchdog.service"),
        "the unit is in the package: {out}"
    );
    let deb = std::fs::read_dir(repo().join("dist"))
        .expect("dist/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb in dist/");
    let _installed = Installed::new();
    let (ok, out) = run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(ok, "dpkg -i: {out}");

    let (ok, out) = run(Command::new("/usr/bin/vip-watchdog").arg("--version"));
    assert!(
        ok && out.starts_with("vip-watchdog ") && out.contains("revision"),
        "{out}"
    );
    let (ok, out) = run(Command::new("/usr/bin/vip-watchdog").args([
        "check-config",
        "--config",
        "/etc/vip-watchdog/vip-watchdog.toml",
        "--keepalived-config",
        "/nonexistent/keepalived.conf",
    ]));
    assert!(
        out.contains("/etc/vip-watchdog/vip-watchdog.toml: OK"),
        "the installed conffile is valid: {out}"
    );
    assert!(
        !ok && out.contains("/nonexistent/keepalived.conf: cannot read"),
        "{out}"
    );
    let (_, conffiles) = run(Command::new("dpkg-query").args([
        "--showformat=${Conffiles}",
        "--show",
        "vip-watchdog",
    ]));
    assert!(
        conffiles.contains("/etc/vip-watchdog/vip-watchdog.toml"),
        "a conffile: {conffiles}"
    );
    for f in [
        "/usr/share/man/man1/vip-watchdog.1.gz",
        "/usr/share/bash-completion/completions/vip-watchdog",
        "/usr/share/zsh/vendor-completions/_vip-watchdog",
        "/usr/share/vip-watchdog/alerts/vip-watchdog.rules.yml",
        "/usr/share/vip-watchdog/dashboards/vip-watchdog.json",
        "/usr/share/vip-watchdog/iam/route.json",
        "/usr/share/doc/vip-watchdog/copyright",
    ] {
        assert!(Path::new(f).exists(), "{f} is installed");
    }
    let (ok, out) = run(Command::new("id").arg("vip-watchdog"));
    assert!(ok, "the service user exists: {out}");

    // The config's mode is dpkg's (statoverride), kept at every upgrade;
    // an administrator's own override survives a reinstall.
    let conf = "/etc/vip-watchdog/vip-watchdog.toml";
    let overridden = || run(Command::new("dpkg-statoverride").args(["--list", conf])).1;
    assert_eq!(overridden().trim(), format!("root vip-watchdog 640 {conf}"));
    let mode = || {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(conf).expect("the conffile").mode() & 0o7777
    };
    assert_eq!(mode(), 0o640);
    for args in [
        &["--remove", conf][..],
        &["--update", "--add", "root", "vip-watchdog", "0600", conf][..],
    ] {
        let (ok, out) = run(Command::new("dpkg-statoverride").args(args));
        assert!(ok, "dpkg-statoverride {args:?}: {out}");
    }
    let (ok, out) = run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(ok, "dpkg -i again (an upgrade): {out}");
    assert_eq!(mode(), 0o600, "the administrator's mode is kept");
    assert!(overridden().contains(" 600 "), "{}", overridden());

    // Lintian (Debian's package checker): no error or warning left, each
    // overridden tag with its reason in debian/lintian-overrides.
    let (ok, out) = run(Command::new("lintian")
        .args(["--fail-on", "error,warning", "--display-info"])
        .arg(&deb));
    println!("lintian:\n{out}");
    assert!(
        ok && !out
            .lines()
            .any(|l| l.starts_with("E: ") || l.starts_with("W: ")),
        "lintian: {out}"
    );
    assert!(
        Path::new("/usr/share/doc/vip-watchdog/changelog.Debian.gz").exists(),
        "a changelog"
    );

    let unit = "/usr/lib/systemd/system/vip-watchdog.service";
    let (ok, out) = run(Command::new("systemd-analyze").args(["verify", unit]));
    assert!(ok && out.trim().is_empty(), "systemd-analyze verify: {out}");
    let (_, out) = run(Command::new("systemd-analyze").args(["security", "--offline=true", unit]));
    let score: f64 = out
        .lines()
        .find_map(|l| l.split("vip-watchdog.service: ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {out}"));
    println!("systemd-analyze security: exposure {score} (0 best, 10 worst)");
    assert!(score <= 2.5, "exposure {score}: {out}");

    let (ok, out) = run(Command::new("dpkg").args(["--purge", "vip-watchdog"]));
    assert!(ok, "dpkg --purge: {out}");
    for gone in ["/usr/bin/vip-watchdog", "/etc/vip-watchdog", unit] {
        assert!(!Path::new(gone).exists(), "{gone} is left after purge");
    }
    let (ok, out) = run(Command::new("id").arg("vip-watchdog"));
    assert!(
        ok,
        "the service user is kept by purge, as Debian does: {out}"
    );
    let (_, out) = run(Command::new("dpkg-statoverride").args(["--list", conf]));
    assert!(out.trim().is_empty(), "purge removes the override: {out}");
}

/// READY=1 once serving, WATCHDOG=1 while the owner publishes, STOPPING=1
/// on SIGTERM, to `NOTIFY_SOCKET`, as systemd reads them.
#[test]
fn the_notify_protocol_says_ready_pings_and_stopping() {
    let dir =
        std::env::temp_dir().join(format!("vip-watchdog-notify-proto-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("notify.sock");
    let listener = UnixDatagram::bind(&socket).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let config = dir.join("watchdog.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"n\"\npair = \"p\"\n[http]\nlisten = \"127.0.0.1:0\"\nlocal_socket = \"{d}/local.sock\"\n[log]\nformat = \"json\"\n[keepalived]\nfifo = \"{d}/k.fifo\"\npid_file = \"{d}/k.pid\"\nvrrp_pid_file = \"\"\njson_dump = false\n[probe]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    // systemd sets WATCHDOG_PID to the service's pid: the shell's, which
    // exec keeps.
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_vip-watchdog"))
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the watchdog starts");
    let mut said = vec![];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline && !said.iter().any(|s: &String| s.contains("WATCHDOG=1")) {
        let n = listener
            .recv(&mut buf)
            .expect("a notify message within 10 s");
        said.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let n = listener.recv(&mut buf).expect("STOPPING=1 after SIGTERM");
    said.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    let status = child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}");
    assert!(said[0].contains("READY=1"), "{said:?}");
    assert!(said.iter().any(|s| s.contains("WATCHDOG=1")), "{said:?}");
    assert!(said.last().unwrap().contains("STOPPING=1"), "{said:?}");
}
