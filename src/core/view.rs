//! What `/v1/status` shows of each VIP, built by the core from its state.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::Serialize;

use crate::core::words::{Holder, Mode};

/// One VIP: the cloud's view, the verdict and why, damping.
#[derive(Debug, Clone, Serialize)]
pub struct VipView {
    pub name: String,
    /// `eip`, `eip_instance` or `route`.
    pub kind: &'static str,
    pub allocation_id: Option<String>,
    pub private_ip: Option<IpAddr>,
    /// A route VIP's destination.
    pub destination: Option<String>,
    /// A route VIP's route in each of its tables.
    pub routes: Vec<crate::core::target::RouteView>,
    pub vrrp_instance: String,
    pub mode: Mode,
    pub dry_run: bool,
    /// Whether this host carries the address a claim needs on an interface
    /// (the private IP, or a single-address route destination; true when
    /// none is needed): without it, traffic would be black-holed.
    pub private_ip_on_host: bool,
    /// false when EC2 says the allocation ID does not exist.
    pub allocation_known: bool,
    pub cloud: Option<Holder>,
    /// When the request of the cloud's last answer was sent.
    pub observed_at: Option<String>,
    pub verdict: Option<&'static str>,
    pub why: Option<String>,
    pub claim_in_flight: bool,
    /// The present mastership: whether the VIP was here, moves away seen.
    pub mastership: Option<MastershipView>,
    /// Failed or undone claims in the claim window, against `max_claims`.
    pub counted_claims: usize,
    pub max_claims: u32,
    pub fights: u32,
    pub backoff_until: Option<String>,
    /// The actions a claim needs, as far as the cloud has answered.
    pub permissions: Vec<PermissionView>,
    /// What the peer's fresh report says of the VIP's instance, as the
    /// rules read it this turn (rules 10 and 11; the notify gate reads it
    /// too). Not in the JSON: the report itself is, under `peer`.
    #[serde(skip)]
    pub peer: crate::core::peer::PeerView,
    /// With `manage_address = true`: what the address rules last said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<AddressStatus>,
    /// The peer's last report says it is MASTER of the instance but came
    /// before this node's MASTER line (`PeerKnown::pending_master`): the
    /// notify gate waits a moment for a newer one.
    #[serde(skip)]
    pub peer_pending: bool,
    /// Whether this host carries the VIP's private IP (`None`: it has none,
    /// or the host's addresses are not known yet); the peer report says it.
    #[serde(skip)]
    pub address_on_host: Option<bool>,
    /// With `handover = "break_before_make"`: whether the old holder let
    /// go, and what this node waits for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handover: Option<HandoverStatus>,
    /// With `cloud.state_tags = true`: what the holder's state tag, in the
    /// last view, counts for (claim rule 14).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_tag: Option<HolderTagStatus>,
}

/// `/v1/status` for the holder's state tag (`core::state_tag`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HolderTagStatus {
    /// `master` (a healthy MASTER's fresh tag: rule 14 holds a take-back),
    /// `nothing` (another state, unhealthy, stale or unreadable), `none`
    /// (the VIP is not elsewhere, or its holder wrote no tag).
    pub says: &'static str,
    pub writer: Option<String>,
    pub why: Option<String>,
    /// Until when a `master` tag counts, unless refreshed.
    pub counts_until: Option<String>,
}

/// `/v1/status` for a break-before-make VIP (`core::handover`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandoverStatus {
    /// `break_before_make`.
    pub mode: &'static str,
    /// `reported`, `fenced`, `waiting`; `not_master` while this node is
    /// not MASTER (nothing to wait for).
    pub peer: &'static str,
    pub why: Option<String>,
    /// When a silent peer is taken as down.
    pub fence_until: Option<String>,
}

/// `/v1/status` for a `manage_address` VIP's private IP.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddressStatus {
    pub interface: String,
    /// The address rules' last reason (`core::address`).
    pub why: &'static str,
    /// A change handed to the address task and not yet seen through.
    pub in_flight: Option<crate::core::address::Change>,
    /// While this node is not MASTER and still carries it: when
    /// `address_hold` ends.
    pub hold_until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MastershipView {
    pub held: bool,
    pub moves_away: u32,
}

/// `/v1/status` for one permission of one VIP.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PermissionView {
    /// The EC2 action, e.g. `AssociateAddress`.
    pub action: &'static str,
    pub allowed: bool,
    /// What showed it: `dry_run` or `call`.
    pub evidence: &'static str,
    pub at: String,
    pub detail: String,
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
