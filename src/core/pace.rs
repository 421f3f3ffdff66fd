//! How often the cloud is asked: the verifier's pace and the owner's asks.
//! Pure: the clock and the jitter's draw are passed in.

use std::time::Duration;

use crate::core::clock::Mono;

/// The least time between two describes of the verifier, whatever asks.
pub const MIN_GAP: Duration = Duration::from_secs(1);

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
