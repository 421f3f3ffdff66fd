//! The cloud side, in one place.
//!
//! ```text
//! mod.rs           the narrow Cloud trait, Address, ErrorKind (metric label and retry policy)
//! aws.rs, imds.rs  aws-sdk-ec2 behind the trait; this node's identity from IMDSv2
//! call.rs          one call: timeout, metrics, retries
//! throttle.rs      one back-off for the whole process when EC2 throttles
//! executor.rs      the one task that performs claims, re-checked before each mutating call
//! verifier.rs      the task that asks where the VIPs are, paced by hints
//! permissions.rs   the DryRun permission checker and `check-cloud`
//! state_tag.rs     the task writing this node's state tags (rule 14)
//! damping_store.rs damping kept across restarts, written atomically
//! ```
//!
//! The way of a claim: the core's plan (`core::turn`) -> the owner hands it
//! to the executor (calls) -> a CloudEvent back to the owner -> the core.
//! The data these tasks exchange is the core's (`core/seen.rs`,
//! `core/message.rs`); this module re-exports what the cloud says.

pub mod aws;
pub mod call;
pub mod damping_store;
pub mod executor;
pub mod imds;
pub mod permissions;
pub mod state_tag;
pub mod throttle;
pub mod verifier;

use std::future::Future;

pub use crate::core::seen::{
    Action, Address, CloudError, ErrorKind, Me, PrivateIpSeen, Route, RouteTable, Seen, classify,
    view_of,
};
use std::net::IpAddr;

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
    /// Empty for a VIP without an Elastic IP (`private_ip`).
    pub allocation_id: String,
    pub eni: String,
    /// Associated by instance ID: the DryRun names the instance, not the ENI.
    pub instance: Option<String>,
    /// The actions this VIP's kind needs (`Action::needed`): only these are
    /// asked for it.
    pub actions: &'static [Action],
}

fn unsupported<T>(operation: &'static str) -> Result<T, CloudError> {
    Err(CloudError {
        operation,
        kind: ErrorKind::Client,
        code: "Unsupported".into(),
        message: "not supported by this cloud".into(),
    })
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

    /// Associates the EIP with `instance` (its primary ENI and private IP),
    /// moving it if needed. Returns the association ID.
    fn associate_instance(
        &self,
        _allocation_id: &str,
        _instance: &str,
    ) -> impl Future<Output = Result<String, CloudError>> + Send {
        async { unsupported("AssociateAddress") }
    }

    /// One call for every route table of the node's route VIPs.
    fn describe_route_tables(
        &self,
        _ids: &[String],
    ) -> impl Future<Output = Result<Vec<RouteTable>, CloudError>> + Send {
        async { unsupported("DescribeRouteTables") }
    }

    /// Points `destination` in `table` at `eni`: `ReplaceRoute`, or
    /// `CreateRoute` when `create` (the route is missing). Never deletes.
    fn set_route(
        &self,
        _table: &str,
        _destination: &str,
        _eni: &str,
        create: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send {
        async move {
            unsupported(if create {
                "CreateRoute"
            } else {
                "ReplaceRoute"
            })
        }
    }

    /// Where each of `ips` is: the ENIs of `eni`'s VPC that carry it (one
    /// DescribeNetworkInterfaces for them all; a private IP is unique in a
    /// VPC, not in an account).
    fn describe_private_ips(
        &self,
        _eni: &str,
        _ips: &[IpAddr],
    ) -> impl Future<Output = Result<Vec<PrivateIpSeen>, CloudError>> + Send {
        async { unsupported("DescribeNetworkInterfaces") }
    }

    /// Writes `tags` on every one of `resources` (state tags,
    /// `core::state_tag`): one CreateTags.
    fn create_tags(
        &self,
        _resources: &[String],
        _tags: &[(String, String)],
    ) -> impl Future<Output = Result<(), CloudError>> + Send {
        async { unsupported("CreateTags") }
    }

    /// Whether the ENI's source/destination check is on (then the instance
    /// drops traffic for a routed address that is not its own).
    fn source_dest_check(
        &self,
        _eni: &str,
    ) -> impl Future<Output = Result<bool, CloudError>> + Send {
        async { unsupported("DescribeNetworkInterfaces") }
    }
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
