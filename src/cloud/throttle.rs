//! One back-off for the whole process. EC2 throttles per account and
//! region: when it answers `RequestLimitExceeded`, every caller of this
//! process pauses, not only the one that was refused. AWS asks clients to
//! back off exponentially with jitter; each throttled answer doubles the
//! ceiling (`BASE` up to `CAP`) and draws the pause between half the
//! ceiling and all of it ("equal jitter": callers spread out, and the rate
//! falls with every doubling, which full jitter's short draws would undo).
//! Reads (describes, DryRun checks) pause for all of the draw; mutating
//! calls (the claim) for a quarter of it, so that when the storm ends the
//! claim goes first, within `CAP / 4`. Any other answer from EC2 ends the
//! back-off.
//!
//! Each call still retries on its own (`call.rs`); this pause comes before
//! every attempt, so a storm's request rate falls as it lasts instead of
//! holding.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The first ceiling: a throttled answer pauses every caller for up to this.
pub const BASE: Duration = Duration::from_millis(500);
/// The highest ceiling: claims wait at most a quarter of it once a storm
/// ends.
pub const CAP: Duration = Duration::from_secs(6);

#[derive(Debug, Default)]
struct State {
    /// Throttled answers in a row.
    level: u32,
    /// Until when reads and mutating calls pause.
    reads_until: Option<Instant>,
    writes_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Throttle {
    state: Mutex<State>,
}

impl Throttle {
    /// The pause an attempt waits for now: `None` when there is none.
    fn pause(&self, mutating: bool, now: Instant) -> Option<Duration> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let until = if mutating {
            st.writes_until
        } else {
            st.reads_until
        };
        until.filter(|u| *u > now).map(|u| u - now)
    }

    /// Waits until callers of this kind may send again.
    pub async fn wait(&self, mutating: bool) {
        while let Some(d) = self.pause(mutating, Instant::now()) {
            tokio::time::sleep(d).await;
        }
    }

    /// EC2 throttled an answer: the ceiling doubles and every caller
    /// pauses. Returns the level (throttled answers in a row).
    pub fn throttled(&self) -> u32 {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.level = st.level.saturating_add(1);
        let ceiling = BASE.saturating_mul(1 << (st.level - 1).min(16)).min(CAP);
        let pause = ceiling / 2 + (ceiling / 2).mul_f64(fastrand::f64());
        // The latest draw decides: its ceiling is the highest yet.
        let now = Instant::now();
        st.reads_until = Some(now + pause);
        st.writes_until = Some(now + pause / 4);
        st.level
    }

    /// EC2 answered without throttling: the back-off ends. Returns the
    /// level before (0: there was none).
    pub fn answered(&self) -> u32 {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let was = st.level;
        *st = State::default();
        was
    }

    pub fn level(&self) -> u32 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_throttled_answer_pauses_reads_and_a_quarter_as_long_mutating_calls() {
        let t = Throttle::default();
        assert_eq!(t.pause(false, Instant::now()), None);
        for level in 1..=8u32 {
            assert_eq!(t.throttled(), level);
            let now = Instant::now();
            let ceiling = BASE.saturating_mul(1 << (level - 1)).min(CAP);
            let reads = t.pause(false, now).unwrap_or_default();
            let writes = t.pause(true, now).unwrap_or_default();
            assert!(
                reads >= ceiling / 2 && reads <= ceiling,
                "level {level}: {reads:?} against {ceiling:?}"
            );
            assert_eq!(writes, reads / 4, "level {level}");
        }
        assert_eq!(t.answered(), 8);
        assert_eq!(t.pause(false, Instant::now()), None);
        assert_eq!(t.level(), 0);
    }

    /// Equal jitter: over many draws at one level the pauses spread over
    /// the upper half of the ceiling, and the ceiling is capped.
    #[tokio::test(start_paused = true)]
    async fn pauses_spread_over_the_ceiling_and_are_capped() {
        let mut longest = Duration::ZERO;
        let mut shortest = CAP;
        for _ in 0..200 {
            let t = Throttle::default();
            for _ in 0..20 {
                t.throttled();
            }
            let p = t.pause(false, Instant::now()).unwrap_or_default();
            longest = longest.max(p);
            shortest = shortest.min(p);
        }
        assert!(longest <= CAP && longest > CAP * 9 / 10, "{longest:?}");
        assert!(
            shortest >= CAP / 2 && shortest < CAP * 6 / 10,
            "{shortest:?}"
        );
    }
}
