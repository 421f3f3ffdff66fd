//! `vip-watchdog notify --timeout 20s -- SCRIPT ARGS...`: Keepalived's
//! `notify_master` for people who keep their notify scripts.
//!
//! It runs the script with a clean environment (PATH, HOME, the AWS
//! settings of the watchdog's config), in its own process group, its output
//! forwarded to stderr and its tail to the watchdog; it kills the whole
//! group at the timeout, and tells the running watchdog how the run ended
//! (`POST /v1/notify` on `http.local_socket`). It never blocks
//! Keepalived beyond the timeout plus the report's one second, and when the
//! config cannot be read or the watchdog does not answer it just runs the
//! script, as Keepalived would have.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::{CloudConfig, Config};
use crate::core::words::Outcome;
use crate::notify::report::{Report, tail};

/// PATH for the script: Keepalived gives it none.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long the report to the watchdog may take.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the watchdog may take to say whether to run the script; after
/// it, the script runs (as without a watchdog).
pub const GATE_TIMEOUT: Duration = Duration::from_secs(1);
/// After the script ends, how long its output pipes may stay open (held by
/// a process that left its group).
const DRAIN: Duration = Duration::from_millis(200);

/// The script's environment: nothing inherited.
pub fn environment(
    cloud: Option<&CloudConfig>,
    home: &Path,
    instance: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("PATH", PATH.to_owned()),
        ("HOME", home.display().to_string()),
        ("LANG", "C.UTF-8".to_owned()),
    ];
    if let Some(c) = cloud {
        if let Some(r) = &c.region {
            env.push(("AWS_REGION", r.clone()));
            env.push(("AWS_DEFAULT_REGION", r.clone()));
        }
        if let Some(e) = &c.endpoint {
            env.push(("AWS_ENDPOINT_URL_EC2", e.clone()));
        }
        if let Some(e) = &c.imds_endpoint {
            env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT", e.clone()));
        }
    }
    if let Some(i) = instance {
        env.push(("VIP_WATCHDOG_INSTANCE", i.to_owned()));
    }
    env
}

/// The wrapper's exit status for a run: the script's own, 124 at the
/// timeout (as timeout(1)), 127 when it could not start, 128+N for signal N.
pub fn exit_status(outcome: Outcome, code: Option<i32>, signal: Option<i32>) -> u8 {
    match (outcome, code, signal) {
        (Outcome::TimedOut, ..) => 124,
        (Outcome::NotStarted, ..) => 127,
        (_, Some(c), _) => u8::try_from(c).unwrap_or(1),
        (_, None, Some(s)) => u8::try_from(128 + s).unwrap_or(1),
        _ => 1,
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Run {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration: Duration,
    pub output: String,
}

/// Runs `command` with `env` in a new process group; kills the group at
/// `timeout`. Output goes to this process's stderr, line by line, prefixed.
pub async fn run_script(
    command: &[OsString],
    env: &[(&'static str, String)],
    timeout: Duration,
) -> Run {
    use std::os::unix::process::ExitStatusExt;
    let started = Instant::now();
    let Some((program, args)) = command.split_first() else {
        return Run {
            outcome: Outcome::NotStarted,
            exit_code: None,
            signal: None,
            duration: Duration::ZERO,
            output: "no script given".into(),
        };
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let output = format!("cannot start {}: {e}", Path::new(program).display());
            eprintln!("vip-watchdog notify: {output}");
            return Run {
                outcome: Outcome::NotStarted,
                exit_code: None,
                signal: None,
                duration: started.elapsed(),
                output,
            };
        }
    };
    let pgid = child.id().map(|p| p as i32);
    let out = tokio::spawn(forward(child.stdout.take()));
    let err = tokio::spawn(forward(child.stderr.take()));
    let (outcome, status) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => (Outcome::Succeeded, Some(status)),
        Ok(Ok(status)) => (Outcome::Failed, Some(status)),
        Ok(Err(e)) => {
            eprintln!("vip-watchdog notify: waiting for the script: {e}");
            (Outcome::Failed, None)
        }
        Err(_) => {
            if let Some(pgid) = pgid {
                // The whole group: a script's children (aws, curl) too.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait().await;
            eprintln!(
                "vip-watchdog notify: the script ran past its timeout of {}: its process group was killed",
                humantime::format_duration(timeout)
            );
            (Outcome::TimedOut, None)
        }
    };
    let duration = started.elapsed();
    let mut output = String::new();
    for task in [out, err] {
        if let Ok(Ok(text)) = tokio::time::timeout(DRAIN, task).await {
            output.push_str(&text);
        }
    }
    Run {
        outcome,
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        duration,
        output: tail(&output).to_owned(),
    }
}

/// Copies a pipe to stderr as it comes; returns the tail of what it read.
async fn forward<R: AsyncRead + Unpin>(pipe: Option<R>) -> String {
    use std::io::Write as _;
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept: Vec<u8> = vec![];
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let _ = std::io::stderr().write_all(&buf[..n]);
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * crate::notify::report::MAX_OUTPUT {
                    kept.drain(..kept.len() - crate::notify::report::MAX_OUTPUT);
                }
            }
        }
    }
    tail(&String::from_utf8_lossy(&kept)).to_owned()
}

/// Tells the watchdog (on its socket, `socket`); an error says why it did
/// not hear.
pub async fn report(socket: &Path, report: &Report) -> Result<(), String> {
    let client =
        crate::http::local::client(socket, REPORT_TIMEOUT).map_err(|e| crate::error_chain(&e))?;
    let body = serde_json::to_vec(report).map_err(|e| e.to_string())?;
    crate::http::expect_success(
        client
            .post(crate::http::local::url("/v1/notify"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body),
    )
    .await
}

/// Asks the watchdog whether to run the script (notify/gate.rs); `None`
/// when it does not answer in time, or not clearly.
pub async fn ask_gate(
    http: &crate::config::HttpConfig,
    instance: Option<&str>,
    timeout: Duration,
) -> Result<crate::notify::gate::Gate, String> {
    let client = crate::http::local::client(&http.local_socket, GATE_TIMEOUT)
        .map_err(|e| crate::error_chain(&e))?;
    let mut url = crate::http::local::url(&format!(
        "/v1/notify/gate?timeout_ms={}",
        timeout.as_millis()
    ));
    if let Some(i) = instance {
        url = format!("{url}&instance={}", urlencode(i));
    }
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| crate::error_chain(&e))?;
    if !resp.status().is_success() {
        return Err(format!("{}", resp.status()));
    }
    let body = resp.bytes().await.map_err(|e| crate::error_chain(&e))?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// Percent-encodes a query value (instance names are printable ASCII).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The options of `vip-watchdog notify`.
pub struct Options {
    pub config: PathBuf,
    pub web: crate::config::WebFlags,
    pub timeout: Duration,
    pub instance: Option<String>,
    pub command: Vec<OsString>,
}

/// The home of the user this runs as (Keepalived's `script_user`).
fn home() -> PathBuf {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map_or_else(|| PathBuf::from("/"), |u| u.dir)
}

/// The whole of `vip-watchdog notify`; returns the exit status.
pub async fn main(o: Options) -> u8 {
    let config = match Config::load_with(&o.config, &o.web) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!(
                "vip-watchdog notify: {e}; running the script without the watchdog's AWS settings, and not reporting"
            );
            None
        }
    };
    if let Some(c) = &config {
        match ask_gate(&c.http, o.instance.as_deref(), o.timeout).await {
            Ok(g) if !g.run => {
                eprintln!("vip-watchdog notify: not running the script: {}", g.why);
                let r = Report {
                    instance: o.instance.clone(),
                    outcome: Outcome::Skipped,
                    exit_code: None,
                    duration_ms: 0,
                    output: g.why,
                };
                let socket = &c.http.local_socket;
                if let Err(e) = report(socket, &r).await {
                    eprintln!(
                        "vip-watchdog notify: the watchdog did not take the report at {}: {e}",
                        socket.display()
                    );
                }
                return 0;
            }
            Ok(_) => {}
            Err(e) => eprintln!(
                "vip-watchdog notify: the watchdog did not say whether to run ({e}): running the script"
            ),
        }
    }
    let env = environment(
        config.as_ref().and_then(|c| c.cloud.as_ref()),
        &home(),
        o.instance.as_deref(),
    );
    let run = run_script(&o.command, &env, o.timeout).await;
    let status = exit_status(run.outcome, run.exit_code, run.signal);
    if let Some(c) = config {
        let r = Report {
            instance: o.instance,
            outcome: run.outcome,
            exit_code: run.exit_code,
            duration_ms: run.duration.as_millis() as u64,
            output: run.output,
        };
        let socket = &c.http.local_socket;
        if let Err(e) = report(socket, &r).await {
            eprintln!(
                "vip-watchdog notify: the watchdog did not take the report at {}: {e} (the script ran: {})",
                socket.display(),
                run.outcome.as_str()
            );
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_follow_timeout_1() {
        let rows = [
            (Outcome::Succeeded, Some(0), None, 0),
            (Outcome::Failed, Some(3), None, 3),
            (Outcome::Failed, None, Some(9), 137),
            (Outcome::TimedOut, None, Some(9), 124),
            (Outcome::NotStarted, None, None, 127),
            (Outcome::Failed, None, None, 1),
        ];
        for (o, code, sig, want) in rows {
            assert_eq!(exit_status(o, code, sig), want, "{o:?} {code:?} {sig:?}");
        }
    }

    #[test]
    fn the_environment_is_clean_and_carries_the_aws_settings() {
        let text = "[node]\npair = \"edge\"\n[keepalived]\nfifo = \"/run/f\"\n[[keepalived.instance]]\nname = \"VI_1\"\n[probe]\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\n[cloud]\nregion = \"eu-west-1\"\nendpoint = \"http://10.0.0.9:5000\"\nimds_endpoint = \"http://127.0.0.1:8081\"\n[[vip]]\nkind = \"eip\"\nallocation_id = \"eipalloc-1\"\nprivate_ip = \"10.0.0.100\"\nvrrp_instance = \"VI_1\"\n";
        let c = Config::parse(text).expect("config");
        let env = environment(c.cloud.as_ref(), Path::new("/root"), Some("VI_1"));
        let keys: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "PATH",
                "HOME",
                "LANG",
                "AWS_REGION",
                "AWS_DEFAULT_REGION",
                "AWS_ENDPOINT_URL_EC2",
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                "VIP_WATCHDOG_INSTANCE"
            ]
        );
        assert!(env.contains(&("HOME", "/root".into())));
        assert!(env.contains(&("AWS_ENDPOINT_URL_EC2", "http://10.0.0.9:5000".into())));
        let bare = environment(None, Path::new("/"), None);
        assert_eq!(bare.len(), 3);
    }

    fn sh(script: &str) -> Vec<OsString> {
        ["/bin/sh", "-c", script].map(OsString::from).to_vec()
    }

    #[tokio::test]
    async fn a_run_is_timed_killed_with_its_group_and_its_output_kept() {
        let env = environment(None, Path::new("/"), None);
        let ok = run_script(
            &sh("echo moved; echo warn >&2"),
            &env,
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(ok.outcome, Outcome::Succeeded);
        assert!(
            ok.output.contains("moved") && ok.output.contains("warn"),
            "{ok:?}"
        );
        let failed = run_script(&sh("exit 3"), &env, Duration::from_secs(10)).await;
        assert_eq!(
            (failed.outcome, failed.exit_code),
            (Outcome::Failed, Some(3))
        );
        let clean = run_script(
            &sh("test -z \"$SHELL_SECRET\" && echo $PATH"),
            &env,
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(clean.output.trim(), PATH);
        // A child that would outlive the script: the group is killed.
        let dir = std::env::temp_dir().join(format!("vip-watchdog-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let hung = run_script(&sh(&script), &env, Duration::from_millis(300)).await;
        assert_eq!(hung.outcome, Outcome::TimedOut);
        assert!(hung.duration < Duration::from_secs(5), "{hung:?}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The child got SIGKILL with its group: it is gone, a zombie, or
        // dying with SIGKILL pending (group-wide: ShdPnd, bit 9).
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .and_then(|v| u64::from_str_radix(v, 16).ok())
                .unwrap_or(0)
        };
        let killed = (field("ShdPnd:") | field("SigPnd:")) & (1 << 8) != 0;
        assert!(
            status.is_empty() || status.contains("State:\tZ") || killed,
            "the script's child still runs: {status}"
        );
        let missing = run_script(
            &[OsString::from("/nonexistent/script")],
            &env,
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(missing.outcome, Outcome::NotStarted);
        assert!(
            missing.output.contains("/nonexistent/script"),
            "{missing:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
