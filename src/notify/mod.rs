//! Notify scripts, for people who keep them.
//!
//! ```text
//! report.rs    what the wrapper tells the watchdog about one run (pure)
//! wrapper.rs   `vip-watchdog notify -- SCRIPT`: clean environment, timeout
//!              that kills the process group, the report
//! ```
//!
//! The watchdog takes reports on `POST /v1/notify` (its Unix socket,
//! `http.local_socket`, http/local.rs) and
//! turns them into `Event::NotifyRun`: a run that ended, succeeded or not,
//! ends the notify script's `grace` at once (the view asked for after the
//! report decides); a run that succeeded asks the cloud at once, so that
//! the failover-latency sample ends when the cloud changed.

pub mod gate;
pub mod report;
pub mod wrapper;
