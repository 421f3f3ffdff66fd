//! Damping kept across restarts: without it, every restart of the watchdog
//! would grant a fresh `max_claims`.
//!
//! One JSON file in the state directory (`cloud.state_dir`, systemd's
//! `StateDirectory=vip-watchdog` by default), written whole to a temporary
//! file and renamed over the old one, so a crash leaves the old file or the
//! new, never half of one. Times are written twice: on the boot clock
//! (`CLOCK_BOOTTIME`, with the kernel's boot id), which no wall-clock step
//! moves, and on the wall clock, the only one that survives a reboot. They
//! are read back as ages: within the same boot from the boot clock, so an
//! entry keeps its real age across a restart and a clock step and a restart
//! never lengthens damping; after a reboot from the wall clock, where a time
//! in the future (the clock stepped back since) counts as now, so a step
//! never shortens a back-off by being read. A missing file is a first start; an unreadable
//! or corrupt one is one error line and the default (no damping), so a bad
//! file never stops a failover.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::core::clock::{Mono, Stamp};
use crate::core::decide::Damping;

pub const FILE: &str = "damping.json";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    /// The kernel's boot id when the `*_boot` times were written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    boot_id: Option<String>,
    vips: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// Unix seconds of each counted claim.
    counted: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backoff_until: Option<f64>,
    #[serde(default)]
    fights: u32,
    /// The same times on the boot clock (seconds since boot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    counted_boot: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backoff_until_boot: Option<f64>,
}

/// This boot and the boot clock's reading, taken with a `Stamp`.
#[derive(Debug, Clone, PartialEq)]
pub struct Boot {
    pub id: String,
    pub now: Duration,
}

impl Boot {
    /// The kernel's boot id and `CLOCK_BOOTTIME`, or `None` when either
    /// cannot be read (then the wall clock alone is used).
    pub fn read() -> Option<Boot> {
        Self::at(&Self::read_id()?)
    }

    /// The kernel's boot id: the same for the whole life of a process.
    pub fn read_id() -> Option<String> {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        Some(id.trim().to_owned())
    }

    /// `CLOCK_BOOTTIME` now, in boot `id`.
    pub fn at(id: &str) -> Option<Boot> {
        let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
        Some(Boot {
            id: id.to_owned(),
            now: Duration::new(
                u64::try_from(t.tv_sec()).ok()?,
                u32::try_from(t.tv_nsec()).ok()?,
            ),
        })
    }

    /// The boot-clock time of `m`, seen from `now`.
    fn of(&self, now: Stamp, m: Mono) -> f64 {
        if m >= now.mono {
            (self.now + m.since(now.mono)).as_secs_f64()
        } else {
            self.now.saturating_sub(now.mono.since(m)).as_secs_f64()
        }
    }

    /// The monotonic time of boot-clock time `t`, seen from `now` (after
    /// `now` for a time past the boot clock's now: a back-off's end).
    fn mono(&self, now: Stamp, t: f64) -> Mono {
        let t = if t.is_finite() && t > 0.0 {
            Duration::from_secs_f64(t.min(1e11))
        } else {
            Duration::ZERO
        };
        match self.now.checked_sub(t) {
            Some(ago) => now.mono.before(ago),
            None => now.mono + (t - self.now),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a damping state file: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} has version {version}; this watchdog reads version 1")]
    Version { path: PathBuf, version: u32 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn wall(s: f64) -> SystemTime {
    if s.is_finite() && s > 0.0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s.min(1e11))
    } else {
        SystemTime::UNIX_EPOCH
    }
}

pub struct Store {
    path: PathBuf,
    last: Option<String>,
}

impl Store {
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(FILE),
            last: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The damping of each VIP as saved, seen from `now`; empty for a first
    /// start.
    pub fn load(
        &mut self,
        now: Stamp,
        boot: Option<&Boot>,
    ) -> Result<BTreeMap<String, Damping>, StoreError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let file: File = serde_json::from_str(&text).map_err(|source| StoreError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        if file.version != 1 {
            return Err(StoreError::Version {
                path: self.path.clone(),
                version: file.version,
            });
        }
        self.last = Some(text);
        // The same boot: the boot clock gives each time its real age.
        let same_boot = boot.filter(|b| file.boot_id.as_deref() == Some(b.id.as_str()));
        Ok(file
            .vips
            .into_iter()
            .map(|(vip, e)| {
                if let Some(b) = same_boot
                    && e.counted_boot.len() == e.counted.len()
                    && e.backoff_until.is_some() == e.backoff_until_boot.is_some()
                {
                    let d = Damping {
                        counted: e
                            .counted_boot
                            .iter()
                            .map(|t| {
                                // Never after now: an age is never invented.
                                let m = b.mono(now, *t);
                                if m > now.mono { now.mono } else { m }
                            })
                            .collect(),
                        fights: e.fights,
                        backoff_until: e.backoff_until_boot.map(|t| b.mono(now, t)),
                    };
                    return (vip, d);
                }
                let d = Damping {
                    counted: e
                        .counted
                        .into_iter()
                        .map(|s| now.mono_of(wall(s)))
                        .collect(),
                    fights: e.fights,
                    backoff_until: e.backoff_until.map(|s| {
                        // A back-off ends as far from now as it did when saved.
                        let end = wall(s);
                        match end.duration_since(now.wall) {
                            Ok(left) => now.mono + left,
                            Err(_) => now.mono,
                        }
                    }),
                };
                (vip, d)
            })
            .collect())
    }

    /// Writes the damping of each VIP when it differs from what was last
    /// written; atomically (temporary file, fsync, rename).
    pub fn save<'a>(
        &mut self,
        now: Stamp,
        boot: Option<&Boot>,
        vips: impl IntoIterator<Item = (&'a String, &'a Damping)>,
    ) -> Result<bool, StoreError> {
        // Whole milliseconds: the boot and monotonic clocks drift apart by
        // nanoseconds between saves, which must not rewrite the file.
        let ms = |t: f64| (t * 1000.0).round() / 1000.0;
        let file = File {
            version: 1,
            boot_id: boot.map(|b| b.id.clone()),
            vips: vips
                .into_iter()
                .map(|(vip, d)| {
                    let e = Entry {
                        counted: d
                            .counted
                            .iter()
                            .map(|m| ms(secs(now.wall_of(*m))))
                            .collect(),
                        backoff_until: d.backoff_until.map(|m| ms(secs(now.wall_of(m)))),
                        fights: d.fights,
                        counted_boot: boot
                            .map(|b| d.counted.iter().map(|m| ms(b.of(now, *m))).collect())
                            .unwrap_or_default(),
                        backoff_until_boot: boot
                            .and_then(|b| d.backoff_until.map(|m| ms(b.of(now, m)))),
                    };
                    (vip.clone(), e)
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&file).expect("plain data serialises");
        if self.last.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = self.path.with_extension("json.tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|source| StoreError::Write {
            path: self.path.clone(),
            source,
        })?;
        self.last = Some(text);
        Ok(true)
    }
}

/// Loads the damping saved in `dir` at start-up: a missing file is a first
/// start; an unreadable or corrupt one is one error line and no damping.
pub fn load(dir: Option<&Path>) -> (Option<Store>, BTreeMap<String, Damping>) {
    let Some(dir) = dir else {
        tracing::info!(
            event = "damping_memory_only",
            "cloud.state_dir is empty: damping is kept in memory only, and a restart forgets it"
        );
        return (None, BTreeMap::new());
    };
    let mut store = Store::new(dir);
    match store.load(crate::clock::now(), Boot::read().as_ref()) {
        Ok(d) => {
            if !d.is_empty() {
                tracing::info!(event = "damping_restored", path = %store.path().display(), "damping carried over from before the restart");
            }
            (Some(store), d)
        }
        Err(e) => {
            tracing::error!(event = "damping_state_unusable", error = %e, "cannot use the saved damping state; starting without damping (it is rewritten at the next change)");
            (Some(store), BTreeMap::new())
        }
    }
}

/// Writes the damping whenever the owner publishes a change.
pub async fn run(
    mut store: Store,
    mut rx: tokio::sync::watch::Receiver<BTreeMap<String, Damping>>,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let mut failing = false;
    let boot_id = Boot::read_id();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            changed = rx.changed() => if changed.is_err() { return Ok(()) },
        }
        let damping = rx.borrow_and_update().clone();
        let boot = boot_id.as_deref().and_then(Boot::at);
        match store.save(crate::clock::now(), boot.as_ref(), damping.iter()) {
            Ok(_) => failing = false,
            Err(e) => {
                if !failing {
                    tracing::error!(event = "damping_save_failed", error = %e, "cannot save the damping state: a restart would forget it");
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(mono_s: u64, wall_s: u64) -> Stamp {
        Stamp {
            mono: Mono::from_millis(mono_s * 1000),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(wall_s),
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "vip-watchdog-damping-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn damping(counted: &[u64], backoff: Option<u64>) -> Damping {
        Damping {
            counted: counted
                .iter()
                .map(|s| Mono::from_millis(s * 1000))
                .collect(),
            fights: 2,
            backoff_until: backoff.map(|s| Mono::from_millis(s * 1000)),
        }
    }

    fn boot(id: &str, secs: u64) -> Boot {
        Boot {
            id: id.into(),
            now: Duration::from_secs(secs),
        }
    }

    /// Saved by one process, read by the next (its monotonic clock starts
    /// anew), with the wall clock moved on, stepped forward or stepped back,
    /// in the same boot and after a reboot. Each entry keeps its real age:
    /// a restart never lengthens damping (it once re-armed a whole window
    /// from the restart, as an age was capped at the process start).
    #[test]
    fn damping_survives_a_restart_as_ages() {
        let d = dir("restart");
        let vip = "web".to_owned();
        // Two claims 100 s and 50 s before the save, a back-off ending 30 s
        // after it.
        let saved = damping(&[900, 950], Some(1_030));
        let mut store = Store::new(&d);
        // First process: mono 1000 s at wall 1_000_000, 5000 s after boot.
        let at_save = stamp(1_000, 1_000_000);
        assert!(
            store
                .save(at_save, Some(&boot("b1", 5_000)), [(&vip, &saved)])
                .unwrap()
        );
        assert!(
            !store
                .save(
                    stamp(1_001, 1_000_001),
                    Some(&boot("b1", 5_001)),
                    [(&vip, &saved)]
                )
                .unwrap(),
            "unchanged: not rewritten"
        );
        // The next process's monotonic clock reads 100_000 s (its origin
        // lies far before its start, crate::clock::BEFORE_START).
        let next = |wall: u64| stamp(100_000, wall);
        let real_ages = (vec![100_000 - 110, 100_000 - 60], Some(100_000 + 20));
        // (case, the next process's now, its boot, counted as monos, back-off end)
        let rows = [
            (
                "same boot, restarted 10 s later",
                next(1_000_010),
                Some(boot("b1", 5_010)),
                real_ages.clone(),
            ),
            (
                "same boot, wall clock stepped back an hour",
                next(996_410),
                Some(boot("b1", 5_010)),
                real_ages.clone(),
            ),
            (
                "same boot, wall clock stepped forward a day",
                next(1_086_410),
                Some(boot("b1", 5_010)),
                real_ages.clone(),
            ),
            (
                "rebooted, 10 s later by the wall clock",
                next(1_000_010),
                Some(boot("b2", 30)),
                real_ages.clone(),
            ),
            (
                "no boot clock: the wall clock",
                next(1_000_010),
                None,
                real_ages.clone(),
            ),
            (
                "rebooted, wall clock stepped back an hour: never shortened",
                next(996_410),
                Some(boot("b2", 30)),
                (vec![100_000, 100_000], Some(100_000 + 3_620)),
            ),
        ];
        for (case, now, b, (counted, backoff)) in rows {
            let got = Store::new(&d).load(now, b.as_ref()).unwrap();
            assert_eq!(got.get("web"), Some(&damping(&counted, backoff)), "{case}");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_file_is_a_first_start_a_corrupt_one_an_error_naming_it() {
        let d = dir("corrupt");
        let mut store = Store::new(&d);
        assert_eq!(store.load(stamp(1, 1), None).unwrap(), BTreeMap::new());
        std::fs::create_dir_all(&d).unwrap();
        for (text, want) in [
            ("{not json", "is not a damping state file"),
            (r#"{"version": 2, "vips": {}}"#, "has version 2"),
            (
                r#"{"version": 1, "vips": {}, "extra": 1}"#,
                "unknown field `extra`",
            ),
        ] {
            std::fs::write(d.join(FILE), text).unwrap();
            let e = Store::new(&d)
                .load(stamp(1, 1), None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.contains("damping.json"), "{e}");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
