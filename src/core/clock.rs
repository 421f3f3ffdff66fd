//! Two clocks, each for what it is good at.
//!
//! Ages, windows, grace and back-off are measured on `Mono`, a monotonic
//! clock that never steps: a wall clock stepped at boot (NTP, an RTC in
//! the wrong time zone) must neither meet `min_master_age` at once nor
//! clear damping. The wall clock (`SystemTime`) is for display, for logs,
//! and for reading the times Keepalived writes itself (its JSON dump).
//! A `Stamp` is one moment on both clocks.
//!
//! Pure: the runtime reads the clocks (`crate::clock`) and passes stamps in.

use std::ops::Add;
use std::time::{Duration, SystemTime};

/// Monotonic time since an origin the runtime chose (its start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mono(Duration);

impl Mono {
    pub const fn from_duration(d: Duration) -> Self {
        Self(d)
    }

    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }

    /// How long after `earlier` this is; zero when it is not after.
    pub fn since(self, earlier: Mono) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// `d` before this, or the origin.
    pub fn before(self, d: Duration) -> Mono {
        Self(self.0.saturating_sub(d))
    }
}

impl Add<Duration> for Mono {
    type Output = Mono;
    fn add(self, d: Duration) -> Mono {
        Mono(self.0.saturating_add(d))
    }
}

/// One moment, read on both clocks at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub mono: Mono,
    pub wall: SystemTime,
}

impl Stamp {
    /// The wall time `m` corresponds to, seen from this moment (for display).
    pub fn wall_of(&self, m: Mono) -> SystemTime {
        if m >= self.mono {
            self.wall + m.since(self.mono)
        } else {
            self.wall
                .checked_sub(self.mono.since(m))
                .unwrap_or(SystemTime::UNIX_EPOCH)
        }
    }

    /// The monotonic time of a wall time `w` that another clock reported
    /// (Keepalived's `last_transition`, a saved file): as long before now as
    /// the wall clock says. A time in the future (the wall clock stepped
    /// back since) counts as now: an age is never invented.
    pub fn mono_of(&self, w: SystemTime) -> Mono {
        match self.wall.duration_since(w) {
            Ok(ago) => self.mono.before(ago),
            Err(_) => self.mono,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(mono_ms: u64, wall_secs: u64) -> Stamp {
        Stamp {
            mono: Mono::from_millis(mono_ms),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(wall_secs),
        }
    }

    #[test]
    fn converting_between_clocks_never_invents_an_age() {
        let now = stamp(100_000, 1_000_000);
        let wall = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        // (wall time reported, its monotonic time seen from `now`)
        let rows = [
            (wall(1_000_000), Mono::from_millis(100_000)),
            (wall(999_990), Mono::from_millis(90_000)),
            // Older than the origin: the origin.
            (wall(900_000), Mono::from_millis(0)),
            // In the future (the wall clock stepped back): now.
            (wall(1_000_500), Mono::from_millis(100_000)),
        ];
        for (w, m) in rows {
            assert_eq!(now.mono_of(w), m, "{w:?}");
        }
        assert_eq!(now.wall_of(Mono::from_millis(103_000)), wall(1_000_003));
        assert_eq!(now.wall_of(Mono::from_millis(97_000)), wall(999_997));
    }
}
