//! Damping kept across restarts: without it, every restart of the watchdog
//! would grant a fresh `max_claims`.
//!
//! One JSON file in the state directory (`cloud.state_dir`, systemd's
//! `StateDirectory=vip-watchdog` by default), written whole to a temporary
//! file and renamed over the old one, so a crash leaves the old file or the
//! new, never half of one. Times are written on the wall clock (the only
//! one that survives a restart) and read back as ages: a time in the future
//! (the clock stepped back since) counts as now, so a step never shortens a
//! back-off by being read. A missing file is a first start; an unreadable
//! or corrupt one is one error line and the default (no damping), so a bad
//! file never stops a failover.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::core::clock::Stamp;
use crate::core::decide::Damping;

pub const FILE: &str = "damping.json";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
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
    pub fn load(&mut self, now: Stamp) -> Result<BTreeMap<String, Damping>, StoreError> {
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
        Ok(file
            .vips
            .into_iter()
            .map(|(vip, e)| {
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
        vips: impl IntoIterator<Item = (&'a String, &'a Damping)>,
    ) -> Result<bool, StoreError> {
        let file = File {
            version: 1,
            vips: vips
                .into_iter()
                .map(|(vip, d)| {
                    let e = Entry {
                        counted: d.counted.iter().map(|m| secs(now.wall_of(*m))).collect(),
                        backoff_until: d.backoff_until.map(|m| secs(now.wall_of(m))),
                        fights: d.fights,
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
            "cloud.state_dir is empty: damping is kept in memory only, and a restart forgets it"
        );
        return (None, BTreeMap::new());
    };
    let mut store = Store::new(dir);
    match store.load(crate::clock::now()) {
        Ok(d) => {
            if !d.is_empty() {
                tracing::info!(path = %store.path().display(), "damping carried over from before the restart");
            }
            (Some(store), d)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot use the saved damping state; starting without damping (it is rewritten at the next change)");
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
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            changed = rx.changed() => if changed.is_err() { return Ok(()) },
        }
        let damping = rx.borrow_and_update().clone();
        match store.save(crate::clock::now(), damping.iter()) {
            Ok(_) => failing = false,
            Err(e) => {
                if !failing {
                    tracing::error!(error = %e, "cannot save the damping state: a restart would forget it");
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::Mono;

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

    /// Saved by one process, read by the next (its monotonic clock starts
    /// anew), with the wall clock moved on, stepped forward or stepped back.
    #[test]
    fn damping_survives_a_restart_as_ages() {
        let d = dir("restart");
        let vip = "web".to_owned();
        let saved = damping(&[900, 950], Some(1_030));
        let mut store = Store::new(&d);
        // First process: mono 1000 s at wall 1_000_000.
        assert!(
            store
                .save(stamp(1_000, 1_000_000), [(&vip, &saved)])
                .unwrap()
        );
        assert!(
            !store
                .save(stamp(1_001, 1_000_001), [(&vip, &saved)])
                .unwrap(),
            "unchanged: not rewritten"
        );
        // (case, the next process's now, counted as monos, back-off end)
        let rows = [
            (
                "restarted 10 s later",
                stamp(5, 1_000_010),
                vec![0, 0],
                Some(25),
            ),
            (
                "restarted at once",
                stamp(100, 1_000_000),
                vec![0, 50],
                Some(130),
            ),
            (
                "clock stepped back an hour",
                stamp(100, 996_400),
                vec![100, 100],
                Some(3_730),
            ),
        ];
        for (case, now, counted, backoff) in rows {
            let got = Store::new(&d).load(now).unwrap();
            assert_eq!(got.get("web"), Some(&damping(&counted, backoff)), "{case}");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_file_is_a_first_start_a_corrupt_one_an_error_naming_it() {
        let d = dir("corrupt");
        let mut store = Store::new(&d);
        assert_eq!(store.load(stamp(1, 1)).unwrap(), BTreeMap::new());
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
            let e = Store::new(&d).load(stamp(1, 1)).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("damping.json"), "{e}");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
