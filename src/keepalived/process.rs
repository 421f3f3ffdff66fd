//! Watching Keepalived's processes.
//!
//! A crashed Keepalived writes nothing to the FIFO and leaves its addresses
//! on the interface, so neither can be trusted alone. This task reads the pid
//! files and `/proc/PID/stat` every `process_check_interval` and tells the
//! owner when the main or the VRRP process is gone or was replaced. A pid
//! counts only when `/proc/PID/comm` is the configured process name and the
//! process is not a zombie, so a recycled pid is not mistaken for Keepalived.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span};

use crate::config::KeepalivedConfig;
use crate::core::model::Event;

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
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProcError {
    #[error("pid file {0} is absent")]
    NoPidFile(PathBuf),
    #[error("pid file {path} does not hold a pid: {text:?}")]
    BadPidFile { path: PathBuf, text: String },
    #[error("process {0} does not exist")]
    NoProcess(i32),
    #[error("process {0} is a zombie")]
    Zombie(i32),
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

pub fn read_pid_file(path: &Path) -> Result<i32, ProcError> {
    let text = std::fs::read_to_string(path).map_err(|_| ProcError::NoPidFile(path.into()))?;
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
    /// Field 22: clock ticks after boot at which the process started.
    pub start_ticks: u64,
}

/// Parses `/proc/PID/stat`; `comm` may hold spaces and parentheses.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); field 22 is rest[19].
    let state = rest.first()?.chars().next()?;
    let start_ticks = rest.get(19)?.parse().ok()?;
    Some(Stat {
        comm,
        state,
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

/// The live process `pid`, if it is a running `expected` process.
pub fn inspect(pid: i32, expected: &str) -> Result<Proc, ProcError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|_| ProcError::NoProcess(pid))?;
    let stat = parse_stat(&text).ok_or(ProcError::BadStat(pid))?;
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
    if stat.comm != expected {
        return Err(ProcError::NotThatProcess {
            pid,
            comm: stat.comm,
            expected: expected.into(),
        });
    }
    let started = boot_time()
        .map(|b| b + Duration::from_millis(stat.start_ticks * 1000 / clock_ticks()))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(Proc { pid, started })
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

/// Looks once at Keepalived's processes.
pub fn observe(config: &KeepalivedConfig) -> Observation {
    let name = &config.process_name;
    let main = match read_pid_file(&config.pid_file).and_then(|pid| inspect(pid, name)) {
        Ok(p) => p,
        Err(e) => {
            return Observation::Gone {
                reason: format!("keepalived is not running: {e}"),
                paused: paused(&e),
                exited: paused(&e).is_none(),
            };
        }
    };
    let vrrp = match &config.vrrp_pid_file {
        None => None,
        Some(path) => match read_pid_file(path).and_then(|pid| inspect(pid, name)) {
            Ok(p) => Some(p),
            Err(e) => {
                return Observation::Gone {
                    reason: format!(
                        "keepalived pid {} runs but its VRRP process does not: {e}",
                        main.pid
                    ),
                    paused: paused(&e).map(|_| main.pid),
                    exited: false,
                };
            }
        },
    };
    Observation::Running { main, vrrp }
}

/// The events that take the model from `prev` to `now`.
pub fn diff(prev: Option<&Observation>, now: &Observation) -> Vec<Event> {
    let running = |main: &Proc, vrrp: &Option<Proc>| Event::KeepalivedRunning {
        pid: main.pid,
        vrrp_pid: vrrp.as_ref().map(|v| v.pid),
        started: vrrp.as_ref().map_or(main.started, |v| v.started),
    };
    match (prev, now) {
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

/// Watches until cancelled, starting from the observation made at start-up.
pub async fn run(
    config: KeepalivedConfig,
    mut last: Observation,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(config.process_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            let now = observe(&config);
            let mut batch = diff(Some(&last), &now);
            if let (true, Observation::Running { main, .. }) = (resumed(&last, &now), &now) {
                // A resumed Keepalived writes no line for the state it kept:
                // learn it again. Its age counts from the resume, so that a
                // MASTER that was frozen claims nothing before the adverts
                // have settled who is MASTER now.
                let (learned, _) = crate::keepalived::startup::learn(&config, main).await;
                batch.extend(learned.into_iter().map(|e| match e {
                    Event::Learned {
                        instance,
                        state,
                        priority,
                        source,
                        reason,
                        ..
                    } => Event::Learned {
                        instance,
                        state,
                        priority,
                        since: None,
                        source,
                        reason: format!("{reason}; keepalived resumed after being stopped, so its age counts from now"),
                    },
                    other => other,
                }));
            }
            for event in batch {
                if events.send(event).await.is_err() {
                    return Ok(());
                }
            }
            last = now;
        }
    }
    .instrument(info_span!("process_watch"))
    .await
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
