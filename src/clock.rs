//! The runtime's clocks: `now()` reads the monotonic clock (tokio's, so that
//! tests with a paused clock control it) and the wall clock at once.

use std::sync::OnceLock;

use crate::core::clock::{Mono, Stamp};

static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();

/// This moment on both clocks; the monotonic one counts from the first call.
pub fn now() -> Stamp {
    let origin = *ORIGIN.get_or_init(tokio::time::Instant::now);
    Stamp {
        mono: Mono::from_duration(tokio::time::Instant::now().duration_since(origin)),
        wall: std::time::SystemTime::now(),
    }
}

/// How long from now until `m` (zero when it has passed).
pub fn until(m: Mono) -> std::time::Duration {
    m.since(now().mono)
}
