//! How often the cloud is asked: the verifier's pace and the owner's asks.
//! Pure: the clock and the jitter's draw are passed in.

use std::time::Duration;

use crate::core::clock::Mono;

/// The least time between two describes of the verifier, whatever asks,
/// but for a watch.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// The time between two describes while a wrapped notify run is watched
/// (`Ask::Watch`): a script's move is seen within it, not at the script's
/// exit (the AWS CLI takes up to a second to exit after its last call).
pub const WATCH_GAP: Duration = Duration::from_millis(200);

/// What the owner asks of the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// A describe as soon as the gap allows.
    Now,
    /// Something hints that the cloud changed or is about to: a describe
    /// as soon as the gap allows, then the fast pace for a while.
    Hint,
    /// A notify script reported that it moved the VIP: a describe at once,
    /// even within `MIN_GAP` of the last one, so that the moment the cloud
    /// changed is seen when it happened. At most one such a `MIN_GAP`.
    Confirm,
    /// A wrapped notify run is in flight: a describe every `WATCH_GAP`
    /// until `until` (its timeout, or the report of its end, which asks
    /// again with the time it ended).
    Watch { until: Mono },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pace {
    pub interval: Duration,
    pub jitter: Duration,
    pub fast_interval: Duration,
    pub fast_for: Duration,
}

impl Pace {
    /// When the next describe is due after one sent at `last`, by the pace
    /// alone; `spread` in [0, 1) draws the jitter. While a watch lasts
    /// (`watch_until`), every `WATCH_GAP`.
    pub fn next_watched(
        &self,
        last: Mono,
        fast_until: Option<Mono>,
        watch_until: Option<Mono>,
        spread: f64,
    ) -> Mono {
        if watch_until.is_some_and(|w| last + WATCH_GAP <= w) {
            return last + WATCH_GAP;
        }
        self.next(last, fast_until, spread)
    }

    /// When the next describe is due after one sent at `last`, by the pace
    /// alone; `spread` in [0, 1) draws the jitter.
    pub fn next(&self, last: Mono, fast_until: Option<Mono>, spread: f64) -> Mono {
        let next_fast = last + self.fast_interval.max(MIN_GAP);
        if fast_until.is_some_and(|f| next_fast <= f) {
            next_fast + self.fast_interval.mul_f64(0.1 * spread)
        } else {
            last + self.interval + self.jitter.mul_f64(spread)
        }
    }

    /// When a `Confirm` may be sent, at `now`, after the last one at
    /// `last_confirm` and the last describe at `last`: at once, unless
    /// another `Confirm` went within `MIN_GAP` (then as any ask).
    pub fn confirm(now: Mono, last: Option<Mono>, last_confirm: Option<Mono>, spread: f64) -> Mono {
        match last_confirm {
            Some(c) if now.since(c) < MIN_GAP => Self::asked(now, last, spread),
            _ => now,
        }
    }

    /// When a describe that was asked for may be sent, at `now`, after one
    /// sent at `last`.
    pub fn asked(now: Mono, last: Option<Mono>, spread: f64) -> Mono {
        match last {
            Some(l) => now.max(l + MIN_GAP + MIN_GAP.mul_f64(0.25 * spread)),
            None => now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Mono {
        Mono::from_millis(1_000_000 + ms)
    }

    /// (case, last describe, fast until, watch until, next describe), in ms;
    /// the jitter's draw is 0.
    #[test]
    fn the_next_describe_table() {
        let pace = Pace {
            interval: Duration::from_secs(30),
            jitter: Duration::from_secs(3),
            fast_interval: Duration::from_secs(1),
            fast_for: Duration::from_secs(20),
        };
        #[allow(clippy::type_complexity)]
        let rows: [(&str, u64, Option<u64>, Option<u64>, u64); 6] = [
            ("the verify interval", 0, None, None, 30_000),
            ("fast after a hint", 0, Some(20_000), None, 1_000),
            (
                "a wrapped run watched: every WATCH_GAP",
                0,
                None,
                Some(5_000),
                200,
            ),
            (
                "a watch beats the fast pace",
                0,
                Some(20_000),
                Some(5_000),
                200,
            ),
            ("the watch's last describe", 4_800, None, Some(5_000), 5_000),
            (
                "a watch that ended: the pace again",
                4_900,
                Some(20_000),
                Some(5_000),
                5_900,
            ),
        ];
        for (case, last, fast, watch, want) in rows {
            let got = pace.next_watched(t(last), fast.map(t), watch.map(t), 0.0);
            assert_eq!(got, t(want), "{case}");
        }
    }
}
