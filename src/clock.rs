//! The runtime's clocks: `now()` reads the monotonic clock (tokio's, so that
//! tests with a paused clock control it) and the wall clock at once.

use std::sync::OnceLock;

use crate::core::clock::{Mono, Stamp};

static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();

/// How far before the first call the monotonic clock's origin lies: a time
/// from before this process (a saved damping entry, Keepalived's
/// `last_transition`) keeps its real age up to this far back instead of
/// being capped at the process start.
pub const BEFORE_START: std::time::Duration = std::time::Duration::from_secs(400 * 86_400);

/// This moment on both clocks; the monotonic one counts from
/// `BEFORE_START` before the first call.
pub fn now() -> Stamp {
    let origin = *ORIGIN.get_or_init(tokio::time::Instant::now);
    Stamp {
        mono: Mono::from_duration(
            BEFORE_START + tokio::time::Instant::now().duration_since(origin),
        ),
        wall: std::time::SystemTime::now(),
    }
}

/// How long from now until `m` (zero when it has passed).
pub fn until(m: Mono) -> std::time::Duration {
    m.since(now().mono)
}
