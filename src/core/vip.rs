//! A VIP as the rules see it: what it is in the cloud, the VRRP instance it
//! follows, its policy, and the private IP this node carries for it.

#[derive(Debug, Clone, PartialEq)]
pub struct VipConfig {
    /// A short name for logs and the `vip` label; defaults to the
    /// allocation ID, or the route's destination.
    pub name: String,
    /// What the VIP is in the cloud: an EIP (on the ENI, or by instance
    /// ID), or a route.
    pub target: crate::core::target::VipTarget,
    pub vrrp_instance: String,
    pub policy: crate::core::decide::VipPolicy,
    /// `manage_address = true`: the private IP this watchdog adds and
    /// removes (make before break); `None`: Keepalived (or the operator)
    /// owns it.
    pub address: Option<ManagedAddress>,
    /// How the VIP changes hands (`core::handover`).
    pub handover: crate::core::handover::Handover,
}

/// A private IP the watchdog carries on this host (`manage_address`).
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedAddress {
    pub ip: std::net::IpAddr,
    /// The interface it is added to, as a /32 (IPv4) or /128 (IPv6).
    pub interface: String,
    /// How long a node that is no longer MASTER keeps serving on it while
    /// the cloud still shows the VIP here.
    pub hold: std::time::Duration,
}
