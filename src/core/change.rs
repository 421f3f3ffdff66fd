//! What a turn changed: for the logs, the counters and the history shown
//! as "decisions".

use std::net::IpAddr;

use serde::Serialize;

use crate::core::words::{Health, Source, VrrpState};

/// What `observe` changed; also the history shown as "decisions".
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Change {
    /// The state read at start-up from a source that reports the present.
    /// Not a transition: it is not counted as one.
    Learned {
        instance: String,
        state: VrrpState,
        priority: Option<u8>,
        source: Source,
        reason: String,
    },
    Vrrp {
        instance: String,
        from: VrrpState,
        to: VrrpState,
        priority: Option<u8>,
        source: Source,
        reason: String,
    },
    Priority {
        instance: String,
        from: Option<u8>,
        to: u8,
    },
    /// `MASTER_RX_LOWER_PRI`: another node also claims MASTER.
    OtherMasterSeen {
        instance: String,
    },
    Group {
        group: String,
        from: VrrpState,
        to: VrrpState,
    },
    Lvs {
        kind: &'static str,
        service: String,
        up: bool,
    },
    Keepalived {
        running: bool,
        detail: String,
    },
    /// A look at Keepalived's processes failed without evidence: counted;
    /// `first` in an episode of such looks, which is logged.
    ProcessCheckFailed {
        reason: String,
        first: bool,
    },
    Probe {
        from: Health,
        to: Health,
        detail: String,
    },
    /// The cloud's view of a VIP changed.
    VipSeen {
        vip: String,
        holder: crate::core::words::Holder,
    },
    /// The reconciler's verdict for a VIP changed.
    VipVerdict {
        vip: String,
        verdict: &'static str,
        why: String,
    },
    /// A FIFO line named one instance, group or LVS server too many
    /// (`MAX_NEW_NAMES`) and was dropped; `dropped` counts them so far.
    NameDropped {
        kind: &'static str,
        name: String,
        dropped: u64,
    },
    /// A claim finished.
    ClaimDone {
        vip: String,
        outcome: crate::core::words::ClaimOutcome,
        detail: String,
    },
    /// Addresses appeared on or left this host's interfaces.
    HostAddresses {
        added: Vec<IpAddr>,
        removed: Vec<IpAddr>,
    },
    /// Keepalived and the config disagree on an instance: `known_to` is
    /// "keepalived" (Keepalived reports it, the config does not name it)
    /// or "config" (the config names it, Keepalived's JSON dump does not
    /// list it).
    InstanceMismatch {
        instance: String,
        known_to: &'static str,
    },
    /// What the peer reports changed (its Keepalived, probe or an
    /// instance's state), or it was heard first: not every heartbeat.
    Peer {
        node: String,
        summary: String,
    },
    /// This node and the peer are both MASTER of `instance` (`on`), or no
    /// longer (`!on`): one change per episode each way.
    SplitBrain {
        instance: String,
        on: bool,
        mine: String,
        peers: String,
    },
    /// Keepalived crashed while MASTER of `instance`: its priority-0
    /// advert was sent on its behalf (`sent`: what went where) or not
    /// (`error`).
    Released {
        instance: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        sent: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A notify script ran (as the notify wrapper reported).
    /// A wrapped notify run began: the cloud is watched until it ends.
    NotifyStarted {
        instance: Option<String>,
        timeout: std::time::Duration,
    },
    NotifyRun {
        instance: Option<String>,
        outcome: crate::core::words::Outcome,
        exit_code: Option<i32>,
        duration_ms: u64,
        output: String,
    },
}
