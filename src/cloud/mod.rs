//! The cloud side, in one place.
//!
//! ```text
//! mod.rs           the narrow Cloud trait, Address, ErrorKind (metric label and retry policy)
//! aws.rs, imds.rs  aws-sdk-ec2 behind the trait; this node's identity from IMDSv2
//! call.rs          one call: timeout, metrics, retries
//! messages.rs      what flows between the owner and the cloud tasks (Claim, CloudEvent)
//! side.rs          the owner's cloud side: feeds the pure rules, hands claims over, metrics, status
//! executor.rs      the one task that performs claims, re-checked before each mutating call
//! verifier.rs      the task that asks where the VIPs are, paced by hints
//! permissions.rs   the DryRun permission checker and `check-cloud`
//! damping_store.rs damping kept across restarts, written atomically
//! ```
//!
//! The way of a claim: side (verdict) -> executor (calls) -> CloudEvent back
//! to the owner -> side -> the pure rules.

pub mod aws;
pub mod call;
pub mod damping_store;
pub mod executor;
pub mod imds;
pub mod messages;
pub mod permissions;
pub mod side;
pub mod verifier;

use std::future::Future;
use std::net::IpAddr;

/// What the cloud says about one Elastic IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub allocation_id: String,
    pub public_ip: Option<String>,
    pub association_id: Option<String>,
    pub network_interface_id: Option<String>,
    pub private_ip: Option<IpAddr>,
}

impl Address {
    /// Where this address is for the node whose ENI is `mine` and whose
    /// VIP is on `my_ip`.
    pub fn holder(&self, mine: &str, my_ip: IpAddr) -> crate::core::holder::Holder {
        crate::core::holder::Holder::of(
            self.association_id.is_some() || self.network_interface_id.is_some(),
            self.network_interface_id.as_deref(),
            self.private_ip,
            mine,
            my_ip,
        )
    }
}

/// Why a cloud call failed, as a caller branches on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `RequestLimitExceeded` and other throttling: retry with back-off.
    Throttled,
    /// 5xx: retry with back-off.
    Server,
    /// No answer within the call's timeout: retry with back-off.
    Timeout,
    /// The request did not reach the API (DNS, connect): retry with back-off.
    Transport,
    /// `AuthFailure`, `UnauthorizedOperation`: do not retry.
    Auth,
    /// An ID that does not exist: do not retry.
    NotFound,
    /// `Resource.AlreadyAssociated`, `InvalidAssociationID.NotFound`: a race
    /// with the peer; information, not a crash. Do not retry blindly.
    Conflict,
    /// Other 4xx, or an answer that does not make sense: do not retry.
    Client,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        Self::Throttled,
        Self::Server,
        Self::Timeout,
        Self::Transport,
        Self::Auth,
        Self::NotFound,
        Self::Conflict,
        Self::Client,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::Server => "server_error",
            Self::Timeout => "timeout",
            Self::Transport => "transport",
            Self::Auth => "auth",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Client => "client_error",
        }
    }

    /// Whether a read is asked again after this error, with back-off.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::Throttled | Self::Server | Self::Timeout | Self::Transport
        )
    }

    /// Whether a mutating call is sent again at once after this error: only
    /// when the API refused it before acting (throttling).
    pub fn retryable_mutating(self) -> bool {
        self == Self::Throttled
    }

    /// A mutating call that ended so may or may not have been applied: the
    /// executor asks the cloud before anything else.
    pub fn uncertain(self) -> bool {
        matches!(self, Self::Server | Self::Timeout | Self::Transport)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {code}: {message}")]
pub struct CloudError {
    pub operation: &'static str,
    pub kind: ErrorKind,
    /// The API's error code, e.g. `RequestLimitExceeded`, or a short word.
    pub code: String,
    pub message: String,
}

impl CloudError {
    /// What a permission evidence says of it: the refusal's code and message
    /// for an auth error (`UnauthorizedOperation`, `AuthFailure`), else None.
    pub fn refusal(&self) -> Option<String> {
        (self.kind == ErrorKind::Auth).then(|| format!("{}: {}", self.code, self.message))
    }
}

/// Classifies an EC2 error code (and HTTP status, when there was one).
pub fn classify(code: &str, status: Option<u16>) -> ErrorKind {
    match code {
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "RequestThrottled" => {
            ErrorKind::Throttled
        }
        "AuthFailure"
        | "UnauthorizedOperation"
        | "Blocked"
        | "OptInRequired"
        | "SignatureDoesNotMatch"
        | "InvalidClientTokenId" => ErrorKind::Auth,
        "Resource.AlreadyAssociated"
        | "InvalidAssociationID.NotFound"
        | "PrivateIpAddressInUse" => ErrorKind::Conflict,
        c if c.ends_with(".NotFound") || c.ends_with(".Malformed") => ErrorKind::NotFound,
        "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable" => {
            ErrorKind::Server
        }
        _ => match status {
            Some(s) if s >= 500 => ErrorKind::Server,
            Some(429) => ErrorKind::Throttled,
            _ => ErrorKind::Client,
        },
    }
}

/// The EC2 actions (IAM `ec2:<Action>`) a node needs to watch and claim a VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Action {
    DescribeAddresses,
    DescribeNetworkInterfaces,
    AssignPrivateIpAddresses,
    AssociateAddress,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Self::DescribeAddresses,
        Self::DescribeNetworkInterfaces,
        Self::AssignPrivateIpAddresses,
        Self::AssociateAddress,
    ];

    /// The API operation, as in the `operation` label of the call metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DescribeAddresses => "DescribeAddresses",
            Self::DescribeNetworkInterfaces => "DescribeNetworkInterfaces",
            Self::AssignPrivateIpAddresses => "AssignPrivateIpAddresses",
            Self::AssociateAddress => "AssociateAddress",
        }
    }

    /// The operation label of this action's `DryRun` call, kept apart from
    /// the real calls so that the API budget and the claim metrics stay true.
    pub fn dry_run_operation(self) -> &'static str {
        match self {
            Self::DescribeAddresses => "DryRun:DescribeAddresses",
            Self::DescribeNetworkInterfaces => "DryRun:DescribeNetworkInterfaces",
            Self::AssignPrivateIpAddresses => "DryRun:AssignPrivateIpAddresses",
            Self::AssociateAddress => "DryRun:AssociateAddress",
        }
    }

    /// A describe is one call for every VIP of the node; IAM cannot scope it
    /// to a resource. The others are checked per VIP.
    pub fn per_vip(self) -> bool {
        matches!(
            self,
            Self::AssignPrivateIpAddresses | Self::AssociateAddress
        )
    }

    /// Whether EC2's API takes `DryRun` for it. AssignPrivateIpAddresses does
    /// not: its permission is learnt from the first real call only.
    pub fn has_dry_run(self) -> bool {
        self != Self::AssignPrivateIpAddresses
    }
}

/// What a `DryRun` call, with the parameters of a real claim, says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DryRunAnswer {
    /// `DryRunOperation`: the call would have been allowed. (A refusal,
    /// `UnauthorizedOperation` or `AuthFailure`, is an `ErrorKind::Auth`
    /// error, as for a real call.)
    Allowed,
    /// The endpoint performed the call as if `DryRun` were absent. EC2 never
    /// does; an emulator or a proxy in between may.
    Ignored,
}

/// The resources a claim of one VIP acts on, as IAM sees them (IAM scopes
/// AssociateAddress by Elastic IP and network interface, not by private IP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimTarget {
    pub allocation_id: String,
    pub eni: String,
}

/// The EC2 calls the reconciler makes, and no more.
pub trait Cloud: Send + Sync + 'static {
    /// One call for every VIP of the node.
    fn describe_addresses(
        &self,
        allocation_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Address>, CloudError>> + Send;

    /// The private IPs the cloud assigns to an ENI.
    fn private_ips(
        &self,
        eni: &str,
    ) -> impl Future<Output = Result<Vec<IpAddr>, CloudError>> + Send;

    /// Assigns `ip` to `eni`, moving it from another ENI if needed.
    fn assign_private_ip(
        &self,
        eni: &str,
        ip: IpAddr,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Associates the EIP with (`eni`, `ip`), moving it if needed. Returns
    /// the association ID.
    fn associate(
        &self,
        allocation_id: &str,
        eni: &str,
        ip: IpAddr,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// `action` with `DryRun`, on `target`'s resources: mutates nothing
    /// where `DryRun` is honoured. A refusal is an `Auth` error, as for a
    /// real call. No private IP is passed: on the BACKUP the VIP's private IP
    /// is on the peer's ENI, and a request that names it could be refused
    /// for that rather than for want of permission.
    fn dry_run(
        &self,
        action: Action,
        target: &ClaimTarget,
    ) -> impl Future<Output = Result<DryRunAnswer, CloudError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_table() {
        let cases: [(&str, Option<u16>, ErrorKind, bool); 12] = [
            (
                "RequestLimitExceeded",
                Some(503),
                ErrorKind::Throttled,
                true,
            ),
            ("Throttling", Some(400), ErrorKind::Throttled, true),
            ("InternalError", Some(500), ErrorKind::Server, true),
            ("Whatever", Some(503), ErrorKind::Server, true),
            ("AuthFailure", Some(401), ErrorKind::Auth, false),
            ("UnauthorizedOperation", Some(403), ErrorKind::Auth, false),
            (
                "InvalidAllocationID.NotFound",
                Some(400),
                ErrorKind::NotFound,
                false,
            ),
            (
                "InvalidNetworkInterfaceID.NotFound",
                Some(400),
                ErrorKind::NotFound,
                false,
            ),
            (
                "InvalidAssociationID.NotFound",
                Some(400),
                ErrorKind::Conflict,
                false,
            ),
            (
                "Resource.AlreadyAssociated",
                Some(400),
                ErrorKind::Conflict,
                false,
            ),
            ("InvalidParameterValue", Some(400), ErrorKind::Client, false),
            ("IncorrectInstanceState", None, ErrorKind::Client, false),
        ];
        for (code, status, kind, retry) in cases {
            assert_eq!(classify(code, status), kind, "{code}");
            assert_eq!(kind.retryable(), retry, "{code}");
        }
    }
}
