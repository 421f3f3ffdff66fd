//! Watching Keepalived's processes.
//!
//! A crashed Keepalived writes nothing to the FIFO and leaves its addresses
//! on the interface, so neither can be trusted alone. The process watch
//! (`watch.rs`) looks here at the main pid file and `/proc` every
//! `process_check_interval` and tells the
//! owner when the main or the VRRP process is gone or was replaced.
//!
//! - The main process is the one `pid_file` names (Keepalived 2.x's default
//!   is `/run/keepalived.pid`). A pid counts only when `/proc/PID/comm` is
//!   the configured process name and the process is not a zombie, so a
//!   recycled pid is not mistaken for Keepalived.
//! - The VRRP process is found as the main process's child (by default): the
//!   one that `vrrp.pid` beside the main pid file names, else the only
//!   child, else the child named `keepalived_vrrp` (`process_names`). This
//!   follows Keepalived's own pid-file defaults, pid directories
//!   (`/run/keepalived/`) and renamed processes without a second path to
//!   configure. `vrrp_pid_file` names a pid file instead; `""` watches the
//!   main process only.
//! - Only positive evidence is an exit: the last known main process gone
//!   from `/proc` (or a zombie, or another program under its pid) and the
//!   pid file absent or naming such a dead process. Any other failure (a
//!   pid file or `/proc` that cannot be read: EMFILE, EACCES, a half-written
//!   file) is `Unknown`: logged and counted by the owner, never a
//!   transition.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::{KeepalivedConfig, VrrpProcess};
use crate::core::input::Event;

/// The name `process_names` gives Keepalived's VRRP process.
pub const VRRP_PROCESS_NAME: &str = "keepalived_vrrp";
/// The pid file Keepalived writes for its VRRP process, beside its main one.
pub const VRRP_PID_FILE_NAME: &str = "vrrp.pid";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub started: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    Running {
        main: Proc,
        vrrp: Option<Proc>,
    },
    /// `paused` is the main process's pid when it exists but is stopped or
    /// frozen: it may be resumed as it was. `exited`: no Keepalived process
    /// exists at all (not paused, and no main process left to respawn its
    /// VRRP process).
    Gone {
        reason: String,
        paused: Option<i32>,
        exited: bool,
    },
    /// The look failed without evidence either way (a file or `/proc` that
    /// could not be read): nothing is concluded from it.
    Unknown {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProcError {
    #[error("pid file {0} is absent")]
    NoPidFile(PathBuf),
    #[error("cannot read pid file {path}: {error}")]
    UnreadablePidFile { path: PathBuf, error: String },
    #[error("pid file {path} does not hold a pid: {text:?}")]
    BadPidFile { path: PathBuf, text: String },
    #[error("process {0} does not exist")]
    NoProcess(i32),
    #[error("cannot read /proc/{pid}/stat: {error}")]
    UnreadableStat { pid: i32, error: String },
    #[error("process {0} is a zombie")]
    Zombie(i32),
    #[error("keepalived pid {0} has no child process")]
    NoVrrpChild(i32),
    #[error("process {pid} is {comm:?}, not {expected:?}")]
    NotThatProcess {
        pid: i32,
        comm: String,
        expected: String,
    },
    #[error("cannot parse /proc/{0}/stat")]
    BadStat(i32),
    #[error("process {pid} is stopped (state {state}): a stopped Keepalived sends no adverts")]
    Stopped { pid: i32, state: char },
    #[error("process {0} is frozen (its cgroup's freezer): a frozen Keepalived sends no adverts")]
    Frozen(i32),
}

/// What an error says about the process it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Positive evidence that the process is gone (or never started).
    Dead,
    /// It exists, stopped or frozen.
    Paused,
    /// Nothing can be concluded.
    Unknown,
}

impl ProcError {
    pub fn evidence(&self) -> Evidence {
        match self {
            Self::NoPidFile(_)
            | Self::NoProcess(_)
            | Self::NoVrrpChild(_)
            | Self::Zombie(_)
            | Self::NotThatProcess { .. } => Evidence::Dead,
            Self::Stopped { .. } | Self::Frozen(_) => Evidence::Paused,
            Self::UnreadablePidFile { .. }
            | Self::BadPidFile { .. }
            | Self::UnreadableStat { .. }
            | Self::BadStat(_) => Evidence::Unknown,
        }
    }
}

pub fn read_pid_file(path: &Path) -> Result<i32, ProcError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ProcError::NoPidFile(path.into())
        } else {
            ProcError::UnreadablePidFile {
                path: path.into(),
                error: e.to_string(),
            }
        }
    })?;
    match text.trim().parse::<i32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => Err(ProcError::BadPidFile {
            path: path.into(),
            text: text.chars().take(40).collect(),
        }),
    }
}

/// Fields of `/proc/PID/stat` this module needs.
#[derive(Debug, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub state: char,
    /// Field 4: the parent's pid.
    pub ppid: i32,
    /// Field 22: clock ticks after boot at which the process started.
    pub start_ticks: u64,
}

/// Parses `/proc/PID/stat`; `comm` may hold spaces and parentheses.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state), rest[1] field 4 (ppid); field 22 is rest[19].
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let start_ticks = rest.get(19)?.parse().ok()?;
    Some(Stat {
        comm,
        state,
        ppid,
        start_ticks,
    })
}

fn boot_time() -> Option<SystemTime> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let secs: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// Whether `pid`'s cgroup (v2) is frozen: `frozen 1` in its cgroup.events.
fn frozen(pid: i32) -> bool {
    let Ok(cgroup) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .and_then(|path| {
            std::fs::read_to_string(format!("/sys/fs/cgroup{}/cgroup.events", path.trim())).ok()
        })
        .is_some_and(|events| cgroup_frozen(&events))
}

/// Parses cgroup v2's `cgroup.events`.
pub fn cgroup_frozen(events: &str) -> bool {
    events.lines().any(|l| l.trim() == "frozen 1")
}

fn read_stat(pid: i32) -> Result<Stat, ProcError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| {
        // ENOENT: no such process; ESRCH: it went while being read.
        if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ESRCH) {
            ProcError::NoProcess(pid)
        } else {
            ProcError::UnreadableStat {
                pid,
                error: e.to_string(),
            }
        }
    })?;
    parse_stat(&text).ok_or(ProcError::BadStat(pid))
}

/// The live process `pid`, if it is a running process named one of
/// `expected` (any name when empty).
fn inspect_named(pid: i32, expected: &[&str]) -> Result<(Proc, Stat), ProcError> {
    let stat = read_stat(pid)?;
    if matches!(stat.state, 'Z' | 'X' | 'x') {
        return Err(ProcError::Zombie(pid));
    }
    // SIGSTOP (T) or a tracer (t): alive, but silent.
    if matches!(stat.state, 'T' | 't') {
        return Err(ProcError::Stopped {
            pid,
            state: stat.state,
        });
    }
    if frozen(pid) {
        return Err(ProcError::Frozen(pid));
    }
    if !expected.is_empty() && !expected.contains(&stat.comm.as_str()) {
        return Err(ProcError::NotThatProcess {
            pid,
            comm: stat.comm,
            expected: expected.join(" or "),
        });
    }
    let started = boot_time()
        .map(|b| b + Duration::from_millis(stat.start_ticks * 1000 / clock_ticks()))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok((Proc { pid, started }, stat))
}

/// The live process `pid`, if it is a running `expected` process.
pub fn inspect(pid: i32, expected: &str) -> Result<Proc, ProcError> {
    inspect_named(pid, &[expected]).map(|(p, _)| p)
}

/// The pids of `pid`'s children: `/proc/PID/task/PID/children`, or a scan
/// of `/proc` where the kernel lacks that file.
fn children(pid: i32) -> Result<Vec<i32>, String> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return Ok(text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect());
    }
    let dir = std::fs::read_dir("/proc").map_err(|e| format!("cannot list /proc: {e}"))?;
    Ok(dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&child| read_stat(child).is_ok_and(|s| s.ppid == pid))
        .collect())
}

/// What a child search found.
#[derive(Debug, PartialEq, Eq)]
pub enum ChildPick {
    Found(i32),
    /// No live child at all.
    None,
    /// Several, and none of them identifiable as the VRRP process.
    Ambiguous(Vec<i32>),
}

/// Which of a main process's live children (pid, comm) is its VRRP
/// process: the one its `vrrp.pid` names, else the only one, else the one
/// named `keepalived_vrrp`. Pure.
pub fn pick_vrrp_child(children: &[(i32, String)], vrrp_pid_file: Option<i32>) -> ChildPick {
    if let Some(pid) = vrrp_pid_file
        && children.iter().any(|(c, _)| *c == pid)
    {
        return ChildPick::Found(pid);
    }
    match children {
        [] => ChildPick::None,
        [(only, _)] => ChildPick::Found(*only),
        _ => children
            .iter()
            .find(|(_, comm)| comm == VRRP_PROCESS_NAME)
            .map_or_else(
                || ChildPick::Ambiguous(children.iter().map(|(p, _)| *p).collect()),
                |(p, _)| ChildPick::Found(*p),
            ),
    }
}

/// The main process's VRRP process, found among its children: `Ok(None)`
/// when it has none.
fn vrrp_child(config: &KeepalivedConfig, main: &Proc) -> Result<Option<Proc>, ProcError> {
    let pids = children(main.pid).map_err(|error| ProcError::UnreadableStat {
        pid: main.pid,
        error,
    })?;
    let mut live = vec![];
    for pid in pids {
        match inspect_named(pid, &[]) {
            Ok((p, stat)) => live.push((p, stat.comm)),
            Err(e) if e.evidence() == Evidence::Dead => {}
            Err(e) => return Err(e),
        }
    }
    let beside = config
        .pid_file
        .parent()
        .map(|d| d.join(VRRP_PID_FILE_NAME))
        .and_then(|f| read_pid_file(&f).ok());
    let named: Vec<(i32, String)> = live.iter().map(|(p, c)| (p.pid, c.clone())).collect();
    Ok(match pick_vrrp_child(&named, beside) {
        ChildPick::Found(pid) => live.into_iter().map(|(p, _)| p).find(|p| p.pid == pid),
        ChildPick::None => None,
        // Several children, none of them known as the VRRP process: the
        // main process stands for them (a crash takes them all).
        ChildPick::Ambiguous(_) => Some(main.clone()),
    })
}

/// The pid of a process that exists but is stopped or frozen.
fn paused(e: &ProcError) -> Option<i32> {
    match e {
        ProcError::Stopped { pid, .. } | ProcError::Frozen(pid) => Some(*pid),
        _ => None,
    }
}

/// Whether `now` is the very process that `before` saw stopped or frozen,
/// resumed (not a new Keepalived, which reports its state on the FIFO).
pub fn resumed(before: &Observation, now: &Observation) -> bool {
    matches!(
        (before, now),
        (Observation::Gone { paused: Some(p), .. }, Observation::Running { main, .. }) if *p == main.pid
    )
}

/// Whether `now` runs the very main process (same pid, same start) last
/// seen running before the watch lost it: its state must be learned again,
/// as no FIFO line re-announces it.
pub fn same_again(last_running: Option<&Proc>, before: &Observation, now: &Observation) -> bool {
    match (last_running, before, now) {
        (Some(last), Observation::Gone { paused: None, .. }, Observation::Running { main, .. }) => {
            last == main
        }
        _ => false,
    }
}

/// `pid`'s command line (NUL-separated words) and working directory.
pub fn command_line(pid: i32) -> std::io::Result<(Vec<String>, Option<PathBuf>)> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline"))?;
    let words = raw
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
    Ok((words, cwd))
}

/// Looks once at Keepalived's processes. `last_main` is the main process
/// the previous look saw running: the pid file alone never says it exited.
pub fn observe(config: &KeepalivedConfig, last_main: Option<&Proc>) -> Observation {
    let name = config.process_name.as_str();
    let main = match read_pid_file(&config.pid_file).and_then(|pid| inspect(pid, name)) {
        Ok(p) => p,
        Err(e) => {
            let evidence = e.evidence();
            if evidence == Evidence::Unknown {
                return Observation::Unknown {
                    reason: format!("cannot tell whether keepalived runs: {e}"),
                };
            }
            // The pid file says nothing runs: an exit only when the last
            // main process is gone too.
            if let Some(last) = last_main
                && Some(last.pid) != paused(&e)
            {
                match inspect(last.pid, name) {
                    Ok(p) if p.started == last.started => {
                        return Observation::Unknown {
                            reason: format!("keepalived pid {} still runs, but {e}", last.pid),
                        };
                    }
                    Err(le) if le.evidence() == Evidence::Unknown => {
                        return Observation::Unknown {
                            reason: format!("cannot tell whether keepalived runs: {le}"),
                        };
                    }
                    _ => {}
                }
            }
            return Observation::Gone {
                reason: format!("keepalived is not running: {e}"),
                paused: paused(&e),
                exited: evidence == Evidence::Dead,
            };
        }
    };
    let vrrp = match &config.vrrp_process {
        VrrpProcess::Off => Ok(None),
        VrrpProcess::Child => vrrp_child(config, &main)
            .and_then(|child| child.map(Some).ok_or(ProcError::NoVrrpChild(main.pid))),
        VrrpProcess::PidFile(path) => read_pid_file(path)
            .and_then(|pid| inspect(pid, name))
            .map(Some),
    };
    match vrrp {
        Ok(vrrp) => Observation::Running { main, vrrp },
        Err(e) if e.evidence() == Evidence::Unknown => Observation::Unknown {
            reason: format!("cannot tell whether keepalived's VRRP process runs: {e}"),
        },
        Err(e) => {
            let what = match &e {
                ProcError::NoVrrpChild(_) => "it has no VRRP process".to_owned(),
                e => format!("its VRRP process does not: {e}"),
            };
            Observation::Gone {
                reason: format!("keepalived pid {} runs but {what}", main.pid),
                paused: paused(&e).map(|_| main.pid),
                exited: false,
            }
        }
    }
}

/// The events that take the model from `prev` to `now`.
pub fn diff(prev: Option<&Observation>, now: &Observation) -> Vec<Event> {
    let running = |main: &Proc, vrrp: &Option<Proc>| Event::KeepalivedRunning {
        pid: main.pid,
        vrrp_pid: vrrp.as_ref().map(|v| v.pid),
        started: vrrp.as_ref().map_or(main.started, |v| v.started),
    };
    match (prev, now) {
        (_, Observation::Unknown { reason }) => vec![Event::KeepalivedUnknown {
            reason: reason.clone(),
        }],
        (Some(p), n) if p == n => vec![],
        (_, Observation::Gone { reason, exited, .. }) => {
            // A repeated Gone with another wording changes nothing, unless
            // the main process that outlived its VRRP process is gone now.
            if let Some(Observation::Gone { exited: was, .. }) = prev
                && (*was || !*exited)
            {
                return vec![];
            }
            vec![Event::KeepalivedGone {
                reason: reason.clone(),
                replaced_at: None,
                exited: *exited,
            }]
        }
        (
            Some(Observation::Running { main: pm, vrrp: pv }),
            Observation::Running { main, vrrp },
        ) => {
            // The same processes, or a VRRP process appearing (start-up).
            let replaced = if pm.pid != main.pid {
                Some(format!(
                    "keepalived pid {} was replaced by pid {}",
                    pm.pid, main.pid
                ))
            } else {
                match (pv, vrrp) {
                    (Some(old), Some(new)) if old.pid != new.pid => Some(format!(
                        "keepalived's VRRP process {} was replaced by {}",
                        old.pid, new.pid
                    )),
                    (Some(old), None) => Some(format!(
                        "keepalived's VRRP process {} is no longer watched",
                        old.pid
                    )),
                    _ => None,
                }
            };
            let mut events = vec![];
            if let Some(reason) = replaced {
                // Evidence from before the new process started is void.
                let replaced_at = vrrp.as_ref().map_or(main.started, |v| v.started);
                events.push(Event::KeepalivedGone {
                    reason,
                    replaced_at: Some(replaced_at),
                    exited: false,
                });
            }
            events.push(running(main, vrrp));
            events
        }
        (_, Observation::Running { main, vrrp }) => vec![running(main, vrrp)],
    }
}

/// Why the state of a running Keepalived must be learned again, if it
/// must: no FIFO line will re-announce a state it kept. `last` is the last
/// observation that was not `Unknown`; `last_running` the main process last
/// seen running.
pub fn relearn(
    last: &Observation,
    last_running: Option<&Proc>,
    now: &Observation,
) -> Option<&'static str> {
    if !matches!(now, Observation::Running { .. }) {
        return None;
    }
    if resumed(last, now) {
        Some("keepalived resumed after being stopped, so its age counts from now")
    } else if same_again(last_running, last, now) {
        Some("the same keepalived process was seen again, so its age counts from now")
    } else if matches!(last, Observation::Unknown { .. }) {
        Some("keepalived could not be looked at until now, so its age counts from now")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, started: u64) -> Proc {
        Proc {
            pid,
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(started),
        }
    }

    fn running(main: Proc, vrrp: Option<Proc>) -> Observation {
        Observation::Running { main, vrrp }
    }

    fn gone() -> Observation {
        Observation::Gone {
            reason: "keepalived is not running".into(),
            paused: None,
            exited: true,
        }
    }

    /// The main process runs; its VRRP process does not.
    fn child_gone() -> Observation {
        Observation::Gone {
            reason: "keepalived pid 1 runs but its VRRP process does not".into(),
            paused: None,
            exited: false,
        }
    }

    #[test]
    fn stat_parsing() {
        let line = "4242 (keep (a) lived) S 1 4242 4242 0 -1 4194624 1 0 0 0 0 0 0 0 20 0 1 0 123456 12345 100 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                comm: "keep (a) lived".into(),
                state: 'S',
                ppid: 1,
                start_ticks: 123456
            })
        );
        assert_eq!(parse_stat("4242 keepalived S"), None);
        assert_eq!(parse_stat("4242 (keepalived) S 1 2"), None);
    }

    #[test]
    fn this_process_is_inspected_and_a_wrong_name_is_refused() {
        let me = std::process::id() as i32;
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let got = inspect(me, comm.trim()).expect("this test process is running");
        assert!(got.started <= SystemTime::now());
        assert!(matches!(
            inspect(me, "keepalived"),
            Err(ProcError::NotThatProcess { .. })
        ));
        assert_eq!(inspect(i32::MAX, "x"), Err(ProcError::NoProcess(i32::MAX)));
    }

    /// A Keepalived stopped with SIGSTOP (or frozen) is alive but sends no
    /// adverts: it does not count as running. waitpid(WUNTRACED) awaits the
    /// stop; nothing sleeps.
    #[test]
    fn a_stopped_process_is_not_running() {
        use nix::sys::signal::{Signal, kill};
        use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        kill(pid, Signal::SIGSTOP).unwrap();
        let st = waitpid(pid, Some(WaitPidFlag::WUNTRACED)).unwrap();
        assert!(matches!(st, WaitStatus::Stopped(..)), "{st:?}");
        assert_eq!(
            inspect(pid.as_raw(), "sleep"),
            Err(ProcError::Stopped {
                pid: pid.as_raw(),
                state: 'T'
            })
        );
        kill(pid, Signal::SIGKILL).unwrap();
        child.wait().unwrap();
    }

    /// Only the very process seen stopped, running again, is resumed: a new
    /// Keepalived reports its own state on the FIFO.
    #[test]
    fn resumed_table() {
        let paused = |pid| Observation::Gone {
            reason: "stopped".into(),
            paused: Some(pid),
            exited: false,
        };
        let rows = [
            (paused(1), running(p(1, 10), Some(p(2, 11))), true),
            (paused(1), running(p(3, 20), Some(p(4, 21))), false),
            (gone(), running(p(1, 10), None), false),
            (running(p(1, 10), None), running(p(1, 10), None), false),
            (paused(1), paused(1), false),
        ];
        for (before, now, want) in rows {
            assert_eq!(resumed(&before, &now), want, "{before:?} -> {now:?}");
        }
    }

    /// Which error is evidence of what: only a process that is certainly
    /// gone is an exit; a failed read concludes nothing.
    #[test]
    fn evidence_table() {
        let rows = [
            (ProcError::NoPidFile("/run/k.pid".into()), Evidence::Dead),
            (ProcError::NoProcess(7), Evidence::Dead),
            (ProcError::Zombie(7), Evidence::Dead),
            (ProcError::NoVrrpChild(7), Evidence::Dead),
            (
                ProcError::NotThatProcess {
                    pid: 7,
                    comm: "bash".into(),
                    expected: "keepalived".into(),
                },
                Evidence::Dead,
            ),
            (ProcError::Stopped { pid: 7, state: 'T' }, Evidence::Paused),
            (ProcError::Frozen(7), Evidence::Paused),
            (
                ProcError::UnreadablePidFile {
                    path: "/run/k.pid".into(),
                    error: "Too many open files (os error 24)".into(),
                },
                Evidence::Unknown,
            ),
            (
                ProcError::BadPidFile {
                    path: "/run/k.pid".into(),
                    text: String::new(),
                },
                Evidence::Unknown,
            ),
            (
                ProcError::UnreadableStat {
                    pid: 7,
                    error: "Permission denied (os error 13)".into(),
                },
                Evidence::Unknown,
            ),
            (ProcError::BadStat(7), Evidence::Unknown),
        ];
        for (error, want) in rows {
            assert_eq!(error.evidence(), want, "{error}");
        }
    }

    #[test]
    fn vrrp_child_table() {
        let kids = |v: &[(i32, &str)]| -> Vec<(i32, String)> {
            v.iter().map(|(p, c)| (*p, (*c).to_owned())).collect()
        };
        let rows = [
            ("no child", kids(&[]), None, ChildPick::None),
            (
                "the only child",
                kids(&[(10, "keepalived")]),
                None,
                ChildPick::Found(10),
            ),
            (
                "vrrp.pid names one of several",
                kids(&[(10, "keepalived"), (11, "keepalived")]),
                Some(11),
                ChildPick::Found(11),
            ),
            (
                "vrrp.pid names no child (stale after a crash): the only child",
                kids(&[(12, "keepalived")]),
                Some(11),
                ChildPick::Found(12),
            ),
            (
                "process_names: keepalived_vrrp among several",
                kids(&[(10, "keepalived_ipvs"), (11, "keepalived_vrrp")]),
                None,
                ChildPick::Found(11),
            ),
            (
                "several, none identifiable",
                kids(&[(10, "keepalived"), (11, "keepalived")]),
                None,
                ChildPick::Ambiguous(vec![10, 11]),
            ),
        ];
        for (what, children, pid_file, want) in rows {
            assert_eq!(pick_vrrp_child(&children, pid_file), want, "{what}");
        }
    }

    #[test]
    fn relearn_table() {
        let paused = Observation::Gone {
            reason: "stopped".into(),
            paused: Some(1),
            exited: false,
        };
        let unknown = Observation::Unknown {
            reason: "EMFILE".into(),
        };
        let a = p(1, 10);
        let rows: Vec<(&str, Observation, Option<Proc>, Observation, bool)> = vec![
            (
                "resumed",
                paused,
                Some(a.clone()),
                running(a.clone(), None),
                true,
            ),
            (
                "same pid and start after a Gone",
                gone(),
                Some(a.clone()),
                running(a.clone(), None),
                true,
            ),
            (
                "a new keepalived after a Gone reports on the FIFO",
                gone(),
                Some(a.clone()),
                running(p(1, 99), None),
                false,
            ),
            (
                "first known look after failed ones",
                unknown,
                None,
                running(a.clone(), None),
                true,
            ),
            (
                "unchanged",
                running(a.clone(), None),
                Some(a.clone()),
                running(a.clone(), None),
                false,
            ),
            (
                "not running",
                running(a.clone(), None),
                Some(a.clone()),
                gone(),
                false,
            ),
        ];
        for (what, last, last_running, now, want) in rows {
            assert_eq!(
                relearn(&last, last_running.as_ref(), &now).is_some(),
                want,
                "{what}"
            );
        }
    }

    /// A process tree the test owns: `sh` (standing in for Keepalived's
    /// main process) with one `sleep` child (its VRRP process), and a pid
    /// file naming `sh`. Killed when dropped.
    struct Tree {
        dir: PathBuf,
        child: std::process::Child,
    }

    impl Tree {
        fn start(tag: &str) -> Tree {
            use std::os::unix::process::CommandExt as _;
            let dir = std::env::temp_dir().join(format!("vw-proc-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut child = std::process::Command::new("sh")
                .args(["-c", "sleep 60 & echo started; read x"])
                // `read` blocks on this pipe, with no child of its own.
                .stdin(std::process::Stdio::piped())
                .process_group(0)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // The line is written after the fork: the child exists.
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.take().unwrap()),
                &mut line,
            )
            .unwrap();
            assert_eq!(line.trim(), "started");
            std::fs::write(dir.join("keepalived.pid"), format!("{}\n", child.id())).unwrap();
            Tree { dir, child }
        }

        fn config(&self, vrrp_process: VrrpProcess) -> KeepalivedConfig {
            KeepalivedConfig {
                fifo: self.dir.join("fifo"),
                pid_file: self.dir.join("keepalived.pid"),
                vrrp_process,
                process_name: "sh".into(),
                process_check_interval: Duration::from_millis(250),
                json_dump: None,
                release_on_crash: None,
                drain_file: "/run/vip-watchdog/drain".into(),
                instances: vec![],
            }
        }

        fn pid(&self) -> i32 {
            self.child.id() as i32
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(self.pid()),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// The VRRP process is found as the main process's child, with no pid
    /// file of its own; a `vrrp.pid` beside the main one is honoured.
    #[test]
    fn the_vrrp_process_is_the_main_process_child() {
        let tree = Tree::start("child");
        let cfg = tree.config(VrrpProcess::Child);
        let Observation::Running {
            main,
            vrrp: Some(vrrp),
        } = observe(&cfg, None)
        else {
            panic!("running with a VRRP child: {:?}", observe(&cfg, None));
        };
        assert_eq!(main.pid, tree.pid());
        // Its child (still `sh` if it has not yet exec'd `sleep`).
        assert_eq!(read_stat(vrrp.pid).unwrap().ppid, tree.pid());
        assert_ne!(vrrp.pid, tree.pid());
        // Watching the main process only.
        assert!(matches!(
            observe(&tree.config(VrrpProcess::Off), None),
            Observation::Running { vrrp: None, .. }
        ));
        // The VRRP child killed, the main process alive: gone, not exited.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(vrrp.pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        // The kill takes effect at once or a moment later (the target may
        // be on another CPU); a zombie counts as dead. Bounded.
        let until = std::time::Instant::now() + Duration::from_secs(5);
        let look = loop {
            match observe(&cfg, Some(&main)) {
                Observation::Running { .. } if std::time::Instant::now() < until => continue,
                other => break other,
            }
        };
        assert!(
            matches!(&look, Observation::Gone { exited: false, paused: None, reason } if reason.contains("no VRRP process")),
            "{look:?}"
        );
    }

    /// Only positive evidence is an exit: an unreadable or half-written pid
    /// file, or an absent one while the last main process still runs, is
    /// `Unknown`; the pid file absent and the main process gone is an exit.
    #[test]
    fn only_positive_evidence_is_an_exit() {
        let mut tree = Tree::start("evidence");
        let cfg = tree.config(VrrpProcess::Off);
        let Observation::Running { main, .. } = observe(&cfg, None) else {
            panic!("running");
        };
        let pid_file = cfg.pid_file.clone();
        // Half-written (Keepalived creates it, then writes the pid).
        std::fs::write(&pid_file, "").unwrap();
        assert!(matches!(
            observe(&cfg, Some(&main)),
            Observation::Unknown { .. }
        ));
        // Unreadable (EISDIR standing in for EMFILE or EACCES).
        std::fs::remove_file(&pid_file).unwrap();
        std::fs::create_dir(&pid_file).unwrap();
        let look = observe(&cfg, Some(&main));
        assert!(
            matches!(&look, Observation::Unknown { reason } if reason.contains("cannot read pid file")),
            "{look:?}"
        );
        std::fs::remove_dir(&pid_file).unwrap();
        // Absent while the last main process runs (a graceful stop removes
        // its pid files before it exits): not yet an exit.
        let look = observe(&cfg, Some(&main));
        assert!(
            matches!(&look, Observation::Unknown { reason } if reason.contains("still runs")),
            "{look:?}"
        );
        // Absent and the main process gone: an exit.
        tree.child.kill().unwrap();
        tree.child.wait().unwrap();
        assert!(matches!(
            observe(&cfg, Some(&main)),
            Observation::Gone { exited: true, .. }
        ));
        // A pid file naming a dead process after a crash: an exit too.
        std::fs::write(&pid_file, format!("{}\n", main.pid)).unwrap();
        assert!(matches!(
            observe(&cfg, Some(&main)),
            Observation::Gone { exited: true, .. }
        ));
    }

    #[test]
    fn cgroup_events_table() {
        for (text, frozen) in [
            ("populated 1\nfrozen 0\n", false),
            ("populated 1\nfrozen 1\n", true),
            ("populated 1\n", false),
            ("", false),
        ] {
            assert_eq!(cgroup_frozen(text), frozen, "{text:?}");
        }
    }

    #[test]
    fn diff_table() {
        let gone_as = |replaced_at: Option<u64>, exited| Event::KeepalivedGone {
            reason: String::new(),
            replaced_at: replaced_at.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
            exited,
        };
        let gone_event = |replaced_at: Option<u64>| gone_as(replaced_at, replaced_at.is_none());
        let run_event = |pid, vrrp_pid, started: u64| Event::KeepalivedRunning {
            pid,
            vrrp_pid,
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(started),
        };
        // (what, previous, now, expected events with reasons blanked)
        let cases: Vec<(&str, Option<Observation>, Observation, Vec<Event>)> = vec![
            (
                "a failed look is reported, not a transition",
                Some(running(p(1, 10), Some(p(2, 11)))),
                Observation::Unknown {
                    reason: "EMFILE".into(),
                },
                vec![Event::KeepalivedUnknown {
                    reason: "EMFILE".into(),
                }],
            ),
            (
                "first look, running",
                None,
                running(p(1, 10), Some(p(2, 11))),
                vec![run_event(1, Some(2), 11)],
            ),
            ("first look, gone", None, gone(), vec![gone_event(None)]),
            (
                "unchanged",
                Some(running(p(1, 10), None)),
                running(p(1, 10), None),
                vec![],
            ),
            (
                "still gone",
                Some(gone()),
                Observation::Gone {
                    reason: "other words".into(),
                    paused: None,
                    exited: true,
                },
                vec![],
            ),
            (
                "the VRRP process crashed, the main one runs",
                Some(running(p(1, 10), Some(p(2, 11)))),
                child_gone(),
                vec![gone_as(None, false)],
            ),
            (
                "then the main process is gone too: no Keepalived left",
                Some(child_gone()),
                gone(),
                vec![gone_event(None)],
            ),
            (
                "gone, then the main process's pid seen again is not news",
                Some(gone()),
                child_gone(),
                vec![],
            ),
            (
                "crash",
                Some(running(p(1, 10), Some(p(2, 11)))),
                gone(),
                vec![gone_event(None)],
            ),
            (
                "comes back",
                Some(gone()),
                running(p(5, 50), Some(p(6, 51))),
                vec![run_event(5, Some(6), 51)],
            ),
            (
                "VRRP child respawned between two looks",
                Some(running(p(1, 10), Some(p(2, 11)))),
                running(p(1, 10), Some(p(7, 40))),
                vec![gone_event(Some(40)), run_event(1, Some(7), 40)],
            ),
            (
                "keepalived restarted between two looks",
                Some(running(p(1, 10), Some(p(2, 11)))),
                running(p(8, 60), Some(p(9, 61))),
                vec![gone_event(Some(61)), run_event(8, Some(9), 61)],
            ),
            (
                "VRRP process appears after the main one",
                Some(running(p(1, 10), None)),
                running(p(1, 10), Some(p(2, 11))),
                vec![run_event(1, Some(2), 11)],
            ),
        ];
        for (what, prev, now, want) in cases {
            let got: Vec<Event> = diff(prev.as_ref(), &now)
                .into_iter()
                .map(|e| match e {
                    Event::KeepalivedGone {
                        replaced_at,
                        exited,
                        ..
                    } => Event::KeepalivedGone {
                        reason: String::new(),
                        replaced_at,
                        exited,
                    },
                    other => other,
                })
                .collect();
            assert_eq!(got, want, "{what}");
        }
    }
}
