//! What the cloud side's turn says: notes for the logs and the metrics,
//! orders to hand over, and a step's result.

use std::time::{Duration, SystemTime};

use crate::core::address::Change as AddressChange;
use crate::core::change::Change;
use crate::core::clock::Mono;
use crate::core::decide::Verdict;
use crate::core::message::{AddressJob, Claim, Evidence};
use crate::core::pace::Ask;
use crate::core::seen::{Action, CloudError};
use crate::core::target::RouteView;
use crate::core::words::{ClaimOutcome, Holder, Mover};

/// What the cloud side saw or decided in a turn, for the logs
/// (`owner/log.rs`) and the metrics (`metrics/turn.rs`). Not kept in the
/// decision history (the `Change`s are).
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// What the cloud said about `action` for `vip`; `before`: what it said
    /// last.
    Permission {
        vip: String,
        action: Action,
        allowed: bool,
        before: Option<bool>,
        evidence: Evidence,
        detail: String,
    },
    /// A change of a managed private IP on this host ended.
    AddressDone {
        vip: String,
        change: AddressChange,
        error: Option<String>,
    },
    /// A describe failed: no action without the cloud's view.
    DescribeFailed { error: CloudError },
    /// This node's ENI's source/destination check.
    SourceDestCheck {
        eni: String,
        on: bool,
        before: Option<bool>,
        has_routes: bool,
    },
    /// EC2 says a VIP's allocation ID does not exist (or exists again).
    AllocationUnknown {
        vip: String,
        allocation_id: String,
        unknown: bool,
    },
    /// A route VIP's route in one table changed state.
    Route { vip: String, route: RouteView },
    /// A cloud answer older than the view held: ignored.
    OutOfOrder { vip: String },
    /// The cloud shows the VIP here, on the MASTER: a failover's end.
    ArrivedHere {
        vip: String,
        latency: Duration,
        moved_by: Mover,
        seen_at: SystemTime,
    },
    /// The VIP was moved away from this MASTER (`fight`: not the first time
    /// in this mastership).
    MovedAway {
        vip: String,
        holder: Holder,
        fight: bool,
    },
    /// A view of the VIP; `changed`: its holder is not the last one seen.
    Seen {
        vip: String,
        holder: Holder,
        here: bool,
        at: SystemTime,
        changed: bool,
    },
    /// A claim ended.
    ClaimDone {
        vip: String,
        outcome: ClaimOutcome,
        detail: String,
    },
    /// The verdict for a VIP is not the last one.
    Verdict {
        vip: String,
        verdict: Verdict,
        why: String,
    },
    /// What the holder's state tag says changed (rule 14): `value` as the
    /// cloud carries it, `reading` what it counts for.
    HolderTag {
        vip: String,
        value: Option<String>,
        reading: Option<crate::core::state_tag::Reading>,
    },
    /// Claim rule 14 began (`on`) or stopped holding back this MASTER's
    /// take-back: a split brain seen in the cloud.
    SplitInCloud { vip: String, on: bool },
    /// Whether the cloud shows the VIP where VRRP says it belongs.
    Converged { vip: String, converged: bool },
}

/// A claim to hand to the executor, and why in words.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimOrder {
    pub claim: Claim,
    pub why: String,
}

/// A change of a managed private IP to hand to the host's address task.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressOrder {
    pub job: AddressJob,
    pub why: &'static str,
}

/// What one `step` decided.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    pub changes: Vec<Change>,
    pub notes: Vec<Note>,
    pub claims: Vec<ClaimOrder>,
    pub addresses: Vec<AddressOrder>,
    pub asks: Vec<Ask>,
    /// When a verdict may change by itself (a grace or back-off ends).
    pub wake: Option<Mono>,
}
