//! The present state at start-up, from sources that report it.
//!
//! Lines buffered in the FIFO describe the past, and a reload does not re-send
//! a MASTER state, so at start-up the watchdog asks:
//!
//! 1. Keepalived's JSON dump: the JSON signal (asked of `keepalived
//!    --signum=JSON`) to the main process, which writes
//!    `$TMPDIR/keepalived.json` without other side effects. The file is
//!    never removed (it is Keepalived's: under the packaged unit `/tmp` is
//!    read-only to the watchdog, and the sticky bit forbids removing root's
//!    file anyway). Instead the file's identity (inode, change time, size)
//!    is noted before the signal, and only a file with another identity
//!    that parses is taken: Keepalived 2.2.7 renames a new file into place
//!    and then writes it, later versions write and then rename, and both
//!    give a new identity. Needs the right to signal Keepalived (root or
//!    CAP_KILL) and to read the file (mode 0644 under Keepalived's default
//!    umask).
//! 2. Failing that, each configured instance's `vips` on the host's
//!    interfaces (no privilege needed): all present with Keepalived running
//!    means MASTER; absent means not MASTER, but BACKUP and FAULT cannot be
//!    told apart, so the state stays `unknown`.
//!
//! An instance that neither source settles stays `unknown`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::config::{JsonDumpConfig, KeepalivedConfig};
use crate::core::input::Event;
use crate::core::words::{Source, VrrpState};
use crate::keepalived::process::Proc;

/// Keepalived installs its signal handlers early, but a real-time signal that
/// arrives before them kills it: never signal a process younger than this.
const MIN_AGE_BEFORE_SIGNAL: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("cannot learn the {name} signal number from `{binary} --signum={name}`: {detail}")]
    Signum {
        binary: PathBuf,
        name: String,
        detail: String,
    },
    #[error(
        "not permitted to signal keepalived pid {pid} (run as root or as keepalived's user, or set keepalived.json_dump = false)"
    )]
    NotPermitted { pid: i32 },
    #[error("cannot signal keepalived pid {pid}: {errno}")]
    Signal { pid: i32, errno: nix::Error },
    #[error("no complete dump newer than the signal at {path} within {timeout:?}{last}")]
    Timeout {
        path: PathBuf,
        timeout: Duration,
        last: String,
    },
    #[error("the dump does not parse: {0}")]
    Parse(String),
}

/// One instance as the dump reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Dumped {
    pub name: String,
    pub state: VrrpState,
    pub raw_state: i64,
    pub priority: u8,
    pub since: Option<SystemTime>,
    /// What the running Keepalived has for the instance's advert (absent
    /// fields: None), for the release's cross-check (`armed.rs`).
    pub running: Running,
}

/// An instance's advert fields as the running Keepalived has them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Running {
    pub vrid: Option<u8>,
    pub interface: Option<String>,
    /// Each virtual address as Keepalived formats it ("10.0.0.5 dev eth0
    /// scope global"); none listed when the instance has none.
    pub vips: Vec<String>,
    pub version: Option<u8>,
    /// Seconds.
    pub advert_int: Option<f64>,
    /// 0 none, 1 PASS, 2 AH; and the password's 8 bytes.
    pub auth_type: Option<u8>,
    pub auth_data: Option<String>,
}

#[derive(Deserialize)]
struct DumpEntry {
    data: DumpData,
}

#[derive(Deserialize)]
struct DumpData {
    iname: String,
    state: i64,
    effective_priority: i64,
    last_transition: Option<f64>,
    vrid: Option<u8>,
    ifp_ifname: Option<String>,
    #[serde(default)]
    vips: Vec<String>,
    version: Option<u8>,
    adver_int: Option<f64>,
    auth_type: Option<u8>,
    auth_data: Option<String>,
}

/// Parses `keepalived.json` (a list of `{"data": {...}, "stats": {...}}`).
pub fn parse_json_dump(text: &str) -> Result<Vec<Dumped>, DumpError> {
    let entries: Vec<DumpEntry> =
        serde_json::from_str(text).map_err(|e| DumpError::Parse(e.to_string()))?;
    entries
        .into_iter()
        .map(|e| {
            let d = e.data;
            let state = state_of(d.state);
            let priority = priority_of(&d.iname, "effective_priority", d.effective_priority)?;
            // A time that is no time (negative, NaN, past the year 2^64 s)
            // is no time: the state counts from now, never invented.
            let since = d
                .last_transition
                .filter(|t| *t > 0.0)
                .and_then(|t| Duration::try_from_secs_f64(t).ok())
                .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d));
            Ok(Dumped {
                name: d.iname,
                state,
                raw_state: d.state,
                priority,
                since,
                running: Running {
                    vrid: d.vrid,
                    interface: d.ifp_ifname,
                    vips: d.vips,
                    version: d.version,
                    advert_int: d.adver_int,
                    auth_type: d.auth_type,
                    auth_data: d.auth_data,
                },
            })
        })
        .collect()
}

/// A priority field of an instance in Keepalived's JSON dump: 0-255.
pub fn priority_of(instance: &str, field: &str, value: i64) -> Result<u8, DumpError> {
    u8::try_from(value).map_err(|_| {
        DumpError::Parse(format!(
            "instance {instance:?}: {field} {value} is not 0-255"
        ))
    })
}

/// An instance's `state` in Keepalived's JSON dump.
pub fn state_of(raw: i64) -> VrrpState {
    match raw {
        1 => VrrpState::Backup,
        2 => VrrpState::Master,
        3 => VrrpState::Fault,
        // 0 is INIT: Keepalived has not settled yet.
        _ => VrrpState::Unknown,
    }
}

async fn json_signal(cfg: &JsonDumpConfig) -> Result<i32, DumpError> {
    match cfg.signal {
        Some(s) => Ok(s),
        None => signum(cfg, "JSON").await,
    }
}

/// The number of Keepalived's signal `name` (JSON, DATA, ...), asked of
/// `keepalived --signum=NAME`.
pub async fn signum(cfg: &JsonDumpConfig, name: &str) -> Result<i32, DumpError> {
    let err = |detail: String| DumpError::Signum {
        binary: cfg.binary.clone(),
        name: name.to_owned(),
        detail,
    };
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::process::Command::new(&cfg.binary)
            .arg(format!("--signum={name}"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| err("no answer within 5s".into()))?
    .map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse::<i32>() {
        Ok(n) if out.status.success() && (1..=64).contains(&n) => Ok(n),
        _ => Err(err(format!(
            "{}, printed {:?} (a keepalived built without JSON support cannot be asked)",
            out.status,
            text.trim()
        ))),
    }
}

fn send_signal(pid: i32, signal: i32) -> Result<(), DumpError> {
    // nix's `Signal` has no real-time signals, and JSON is one of them.
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    #[allow(unsafe_code)]
    let rc = unsafe { nix::libc::kill(pid, signal) };
    if rc == 0 {
        return Ok(());
    }
    match nix::Error::last() {
        nix::Error::EPERM => Err(DumpError::NotPermitted { pid }),
        errno => Err(DumpError::Signal { pid, errno }),
    }
}

/// Asks Keepalived for its JSON dump and reads it.
pub async fn request_json_dump(
    cfg: &JsonDumpConfig,
    main: &Proc,
) -> Result<Vec<Dumped>, DumpError> {
    let signal = json_signal(cfg).await?;
    request_dump(main, signal, &cfg.file, cfg.timeout, parse_json_dump).await
}

/// Sends `signal` to Keepalived's main process and reads the dump it writes
/// at `file`: the first file there with a new identity that `parse` takes.
pub async fn request_dump<T>(
    main: &Proc,
    signal: i32,
    file: &std::path::Path,
    timeout: Duration,
    parse: impl Fn(&str) -> Result<T, DumpError>,
) -> Result<T, DumpError> {
    if let Ok(age) = SystemTime::now().duration_since(main.started)
        && let Some(wait) = MIN_AGE_BEFORE_SIGNAL.checked_sub(age)
    {
        tokio::time::sleep(wait).await;
    }
    let before = crate::host::file::identity(file);
    send_signal(main.pid, signal)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let now = crate::host::file::identity(file);
        if now.is_some() && now != before {
            match std::fs::read_to_string(file) {
                Ok(text) => match parse(&text) {
                    Ok(d) => return Ok(d),
                    Err(e) => last = format!("; last read: {e}"),
                },
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    last = format!(
                        "; last read: {e} (Keepalived writes it 0600 by default: add `umask 0133` to keepalived.conf's global_defs)"
                    )
                }
                Err(e) => last = format!("; last read: {e}"),
            }
        } else if now.is_some() {
            last = "; the file there is the one from before the signal".into();
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DumpError::Timeout {
                path: file.to_owned(),
                timeout,
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every address configured on this host's interfaces.
pub fn host_addresses() -> Result<HashSet<IpAddr>, nix::Error> {
    Ok(nix::ifaddrs::getifaddrs()?
        .filter_map(|ifa| {
            let a = ifa.address?;
            a.as_sockaddr_in()
                .map(|s| IpAddr::V4(s.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
        })
        .collect())
}

/// What each configured instance's `vips` say, given the host's addresses
/// (or why they could not be listed: then nothing is settled).
pub fn from_addresses(
    cfg: &KeepalivedConfig,
    present: Result<&HashSet<IpAddr>, &nix::Error>,
    why: &str,
) -> Vec<Event> {
    cfg.instances
        .iter()
        .map(|inst| {
            let (state, source, reason) = if let Err(e) = present {
                (
                    VrrpState::Unknown,
                    Source::None,
                    format!("{why}; cannot list addresses: {e}"),
                )
            } else if inst.vips.is_empty() {
                (
                    VrrpState::Unknown,
                    Source::None,
                    format!("{why}; no vips configured to look for"),
                )
            } else if inst
                .vips
                .iter()
                .all(|v| present.is_ok_and(|p| p.contains(v)))
            {
                (
                    VrrpState::Master,
                    Source::Addresses,
                    format!("{why}; all vips present on this host with keepalived running"),
                )
            } else if inst
                .vips
                .iter()
                .any(|v| present.is_ok_and(|p| p.contains(v)))
            {
                (
                    VrrpState::Unknown,
                    Source::Addresses,
                    format!("{why}; only some vips present on this host"),
                )
            } else {
                (
                    VrrpState::Unknown,
                    Source::Addresses,
                    format!("{why}; vips absent: not MASTER, but BACKUP and FAULT look alike"),
                )
            };
            Event::Learned {
                instance: inst.name.clone(),
                state,
                priority: None,
                since: None,
                source,
                reason,
            }
        })
        .collect()
}

/// The start-up events for a running Keepalived, from the best source that
/// answers. Also returns the reason the JSON dump was not used, if any.
pub async fn learn(cfg: &KeepalivedConfig, main: &Proc) -> (Vec<Event>, Option<String>) {
    let failure = match &cfg.json_dump {
        None => "keepalived.json_dump is off".to_owned(),
        Some(dump) => match request_json_dump(dump, main).await {
            Ok(instances) => {
                let listed = instances.iter().map(|d| d.name.clone()).collect();
                let events = instances
                    .into_iter()
                    .map(|d| Event::Learned {
                        reason: format!(
                            "keepalived's JSON dump says state {} ({})",
                            d.raw_state,
                            d.state.as_str()
                        ),
                        instance: d.name,
                        state: d.state,
                        priority: Some(d.priority),
                        since: d.since,
                        source: Source::JsonDump,
                    })
                    .chain([Event::KeepalivedListed(listed)])
                    .collect();
                return (events, None);
            }
            Err(e) => format!("JSON dump unavailable: {e}"),
        },
    };
    let events = from_addresses(cfg, host_addresses().as_ref(), &failure);
    (events, Some(failure))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InstanceConfig;

    /// Trimmed from a real keepalived 2.2.7 dump.
    const DUMP: &str = r#"[{"data":{"iname":"VI_1","ifp_ifname":"vx0","master_priority":0,
        "last_transition":1795321537.23047,"vrid":51,"base_priority":150,"effective_priority":150,
        "state":2,"wantstate":2,"vips":["10.9.0.100 dev vx0 scope global set"]},
        "stats":{"advert_rcvd":0}},
        {"data":{"iname":"VI_2","state":1,"effective_priority":90,"last_transition":0}},
        {"data":{"iname":"VI_3","state":3,"effective_priority":0}},
        {"data":{"iname":"VI_4","state":0,"effective_priority":100}}]"#;

    #[test]
    fn json_dump_states_map_and_missing_times_stay_unknown() {
        let got = parse_json_dump(DUMP).expect("real dump parses");
        let summary: Vec<(&str, VrrpState, u8, bool)> = got
            .iter()
            .map(|d| (d.name.as_str(), d.state, d.priority, d.since.is_some()))
            .collect();
        assert_eq!(
            summary,
            [
                ("VI_1", VrrpState::Master, 150, true),
                ("VI_2", VrrpState::Backup, 90, false),
                ("VI_3", VrrpState::Fault, 0, false),
                ("VI_4", VrrpState::Unknown, 100, false),
            ]
        );
        let since = got[0]
            .since
            .unwrap()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(since.as_millis(), 1_795_321_537_230);
    }

    #[test]
    fn partial_or_wrong_dumps_are_errors() {
        for bad in [
            "",
            "[{\"data\":{\"iname\":\"VI_1\",\"sta",
            "{}",
            "[{\"data\":{\"iname\":\"VI_1\",\"state\":2}}]",
            "[{\"data\":{\"iname\":\"VI_1\",\"state\":2,\"effective_priority\":300}}]",
        ] {
            assert!(parse_json_dump(bad).is_err(), "{bad:?} must not parse");
        }
    }

    /// Found by the fuzz harness (benches/fuzz.rs): a `last_transition` too
    /// large for a Duration or a SystemTime panicked; it is no time now.
    #[test]
    fn an_impossible_transition_time_is_no_time() {
        for t in ["1e300", "1.8e19", "-5", "0"] {
            let text = format!(
                "[{{\"data\":{{\"iname\":\"VI_1\",\"state\":2,\"effective_priority\":150,\"last_transition\":{t}}}}}]"
            );
            let got = parse_json_dump(&text).expect("parses");
            assert_eq!(got[0].since, None, "{t}");
        }
    }

    #[test]
    fn addresses_settle_master_only_when_all_vips_are_present() {
        let cfg = KeepalivedConfig {
            fifo: "/f".into(),
            pid_file: "/p".into(),
            vrrp_process: crate::config::VrrpProcess::Off,
            process_name: "keepalived".into(),
            process_check_interval: Duration::from_millis(250),
            json_dump: None,
            release_on_crash: None,
            drain_file: "/run/vip-watchdog/drain".into(),
            instances: vec![
                InstanceConfig {
                    name: "all".into(),
                    vips: vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()],
                },
                InstanceConfig {
                    name: "some".into(),
                    vips: vec!["10.0.0.1".parse().unwrap(), "10.0.0.3".parse().unwrap()],
                },
                InstanceConfig {
                    name: "none".into(),
                    vips: vec!["10.0.0.4".parse().unwrap()],
                },
                InstanceConfig {
                    name: "unset".into(),
                    vips: vec![],
                },
            ],
        };
        let present: HashSet<IpAddr> = ["10.0.0.1", "10.0.0.2"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let got: Vec<(String, VrrpState, Source)> = from_addresses(&cfg, Ok(&present), "test")
            .into_iter()
            .map(|e| match e {
                Event::Learned {
                    instance,
                    state,
                    source,
                    ..
                } => (instance, state, source),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                ("all".into(), VrrpState::Master, Source::Addresses),
                ("some".into(), VrrpState::Unknown, Source::Addresses),
                ("none".into(), VrrpState::Unknown, Source::Addresses),
                ("unset".into(), VrrpState::Unknown, Source::None),
            ]
        );
    }

    #[test]
    fn host_addresses_include_loopback() {
        let a = host_addresses().expect("getifaddrs works");
        assert!(a.contains(&"127.0.0.1".parse::<IpAddr>().unwrap()));
    }

    /// A process standing in for Keepalived: on SIGUSR2 it runs `on_signal`
    /// (a shell command); prints "ready" once its trap is set.
    fn stand_in(on_signal: &str, env: &[(&str, &str)]) -> std::process::Child {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("trap '{on_signal}' USR2; echo ready; while :; do sleep 0.05; done"),
            ])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        child
    }

    /// The dump is Keepalived's file: never removed (the packaged unit
    /// cannot, and must not), and only a dump written after the signal is
    /// taken, never the one that was there before.
    #[tokio::test]
    async fn the_dump_is_never_removed_and_only_a_newer_one_is_taken() {
        let dir = std::env::temp_dir().join(format!("vw-dump-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keepalived.json");
        let stale = r#"[{"data":{"iname":"VI_1","state":1,"effective_priority":100}}]"#;
        let fresh = r#"[{"data":{"iname":"VI_1","state":2,"effective_priority":150}}]"#;
        std::fs::write(&file, stale).unwrap();
        let cfg = JsonDumpConfig {
            file: file.clone(),
            signal: Some(nix::libc::SIGUSR2),
            binary: "keepalived".into(),
            timeout: Duration::from_secs(5),
        };
        let f = file.display().to_string();
        // Written as Keepalived 2.4 does: a new file renamed into place.
        let mut writer = stand_in(
            "printf %s \"$DUMP\" > \"$F.tmp\" && mv \"$F.tmp\" \"$F\"",
            &[("DUMP", fresh), ("F", &f)],
        );
        let main = Proc {
            pid: writer.id() as i32,
            started: SystemTime::UNIX_EPOCH,
        };
        let got = request_json_dump(&cfg, &main).await.expect("the new dump");
        assert_eq!(got[0].state, VrrpState::Master);
        writer.kill().unwrap();
        writer.wait().unwrap();

        // A Keepalived that writes nothing: the old file is neither taken
        // nor removed.
        std::fs::write(&file, stale).unwrap();
        let mut silent = stand_in(":", &[]);
        let quick = JsonDumpConfig {
            timeout: Duration::from_millis(300),
            ..cfg
        };
        let main = Proc {
            pid: silent.id() as i32,
            started: SystemTime::UNIX_EPOCH,
        };
        let e = request_json_dump(&quick, &main)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("from before the signal"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            stale,
            "never removed"
        );
        silent.kill().unwrap();
        silent.wait().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
