//! SIGHUP: the real binary re-reads its config file. A valid change is
//! applied in the same process (the status shows the new node name, the
//! HTTP server listens again); an invalid file is refused, logged and
//! counted, and the running config goes on.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

fn config(dir: &std::path::Path, name: &str) -> String {
    format!(
        "[node]\nname = \"{name}\"\npair = \"p\"\n[http]\nlisten = \"127.0.0.1:0\"\nlocal_socket = \"{d}/local.sock\"\n[log]\nformat = \"json\"\n[keepalived]\nfifo = \"{d}/k.fifo\"\npid_file = \"{d}/k.pid\"\nvrrp_pid_file = \"\"\njson_dump = false\n[probe]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n",
        d = dir.display()
    )
}

/// The next log line that is `event` (docs/events.md), within 10 s.
fn next(events: &Receiver<Value>, event: &str) -> Value {
    loop {
        let e = events
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no {event:?} within 10 s"));
        if common::is(&e, event) {
            return e;
        }
    }
}

fn get(address: &str, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", &format!("http://{address}{path}")])
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sighup_applies_a_valid_config_and_refuses_an_invalid_one() {
    let dir = std::env::temp_dir().join(format!("vip-watchdog-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("watchdog.toml");
    std::fs::write(&path, config(&dir, "first")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vip-watchdog"))
        .args(["run", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the watchdog starts");
    let (tx, events) = channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    let pid = Pid::from_raw(child.id() as i32);
    let listening = next(&events, "http_listening");
    let address = listening["address"].as_str().unwrap().to_owned();
    let status: Value = serde_json::from_str(&get(&address, "/v1/status")).unwrap();
    assert_eq!(status["node"], "first");

    // Valid and changed: applied in the same process.
    std::fs::write(&path, config(&dir, "second")).unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    next(&events, "reload_applied");
    let listening = next(&events, "http_listening");
    let address = listening["address"].as_str().unwrap().to_owned();
    let status: Value = serde_json::from_str(&get(&address, "/v1/status")).unwrap();
    assert_eq!(status["node"], "second", "{status}");

    // Invalid: refused, logged with the error, counted; nothing restarts.
    std::fs::write(
        &path,
        config(&dir, "third").replace("kind = \"tcp\"", "kind = \"icmp\""),
    )
    .unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    let refused = next(&events, "reload_refused");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("icmp")),
        "{refused}"
    );
    let metrics = get(&address, "/metrics");
    let count = |result: &str| {
        vip_watchdog::metrics::value(
            &metrics,
            "vip_watchdog_config_reloads_total",
            &[("result", result)],
        )
    };
    assert_eq!(
        (count("applied"), count("failed")),
        (Some(1.0), Some(1.0)),
        "{metrics}"
    );
    let status: Value = serde_json::from_str(&get(&address, "/v1/status")).unwrap();
    assert_eq!(status["node"], "second", "the running config goes on");
    assert!(child.try_wait().unwrap().is_none(), "still running");

    kill(pid, Signal::SIGTERM).unwrap();
    let exit = child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(exit.success(), "{exit}");
}
