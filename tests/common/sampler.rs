//! An outside observer of the hosts' addresses: whether each node's eth0
//! carries the lab's VIP, sampled every 10 ms from outside the watchdogs
//! (`ip` in each namespace), for break-before-make checks.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::VIP;

/// One sample: Unix time, and whether the old and the new holder carry
/// the VIP.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostSample {
    pub at: f64,
    pub old: bool,
    pub new: bool,
}

/// Samples both nodes every 10 ms until `stop` or `max` (a bounded loop).
/// The new holder is looked at first, then the old: a sample that shows
/// both is a real overlap (had the old one let go before the new one
/// added it, it would have shown the old one without), never an artefact
/// of the two looks being a few milliseconds apart.
pub struct AddressSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<HostSample>>,
}

fn carries(ns: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "-4", "addr", "show", "dev", "eth0"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout).contains(&format!(" {VIP}/32"))
}

impl AddressSampler {
    pub fn start(old_ns: &str, new_ns: &str, max: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (old, new, flag) = (old_ns.to_owned(), new_ns.to_owned(), stop.clone());
        let handle = std::thread::spawn(move || {
            let begin = Instant::now();
            let mut out = vec![];
            let mut next = begin;
            while !flag.load(Ordering::SeqCst) && begin.elapsed() < max {
                let in_new = carries(&new);
                let in_old = carries(&old);
                let at = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .expect("after 1970")
                    .as_secs_f64();
                out.push(HostSample {
                    at,
                    old: in_old,
                    new: in_new,
                });
                next += Duration::from_millis(10);
                // The pacing of the sampling, not a wait for an event.
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                } else {
                    next = Instant::now();
                }
            }
            out
        });
        Self { stop, handle }
    }

    /// Stops sampling; every sample, oldest first.
    pub fn stop(self) -> Vec<HostSample> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("the sampler does not panic")
    }
}
