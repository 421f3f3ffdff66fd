//! What the owner task receives: every input of a turn, as data.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::core::clock::Stamp;
use crate::core::message::CloudEvent;
use crate::core::peer::Report as PeerReport;
use crate::core::words::{FifoLine, Health, Outcome, Source, VrrpState};

/// Everything that can happen to the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A valid FIFO line, stamped when it was read.
    Line { line: FifoLine, at: Stamp },
    /// A state read at start-up from a source that reports the present.
    Learned {
        instance: String,
        state: VrrpState,
        priority: Option<u8>,
        since: Option<SystemTime>,
        source: Source,
        reason: String,
    },
    /// Keepalived's processes are running.
    /// `started` is when the watched process (the VRRP one when watched)
    /// started.
    KeepalivedRunning {
        pid: i32,
        vrrp_pid: Option<i32>,
        started: SystemTime,
    },
    /// Keepalived (or its VRRP process) is gone. When a new process already
    /// replaced it, `replaced_at` is that process's start: evidence that
    /// arrived after it comes from the new process and is kept. `exited`:
    /// no Keepalived process is left at all (not paused, no main process to
    /// respawn its VRRP process).
    KeepalivedGone {
        reason: String,
        replaced_at: Option<SystemTime>,
        exited: bool,
    },
    /// A look at Keepalived's processes failed without evidence either way
    /// (a pid file or `/proc` that could not be read): nothing changes.
    KeepalivedUnknown { reason: String },
    /// The local probe crossed its rise or fall threshold.
    Probe { health: Health, detail: String },
    /// The addresses on this host's interfaces, as listed now.
    HostAddresses(BTreeSet<IpAddr>),
    /// The notify wrapper is about to run a notify script for `instance`
    /// (every instance when `None`), for at most `timeout`.
    NotifyStarted {
        instance: Option<String>,
        timeout: std::time::Duration,
    },
    /// The notify wrapper reported a run of a notify script.
    NotifyRun(NotifyReport),
    /// The instances Keepalived's JSON dump listed at start-up.
    KeepalivedListed(BTreeSet<String>),
    /// An authenticated report from the peer's watchdog.
    Peer(PeerReport),
    /// A cloud task's answer: the executor, the verifier, the permission
    /// checker, the host's address task. Applied by the core's cloud side,
    /// not the model.
    Cloud(CloudEvent),
    /// A crashed MASTER's priority-0 advert was sent on its behalf (what
    /// went where), or could not be (why).
    Released {
        instance: String,
        outcome: Result<String, String>,
    },
}

/// One run, as the wrapper reports it (`POST /v1/notify`, JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyReport {
    /// The VRRP instance the run was for (`--instance`); `None`: every VIP.
    pub instance: Option<String>,
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    /// The tail of the script's output (stdout and stderr).
    #[serde(default)]
    pub output: String,
}

impl From<CloudEvent> for Event {
    fn from(e: CloudEvent) -> Self {
        Event::Cloud(e)
    }
}
