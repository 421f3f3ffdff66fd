//! What the cloud says, as data: an address's association, a route table's
//! routes, this node's identity, a call's error and its kind, the actions
//! this node needs. No SDK: `cloud/aws.rs` fills these in.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::core::target::{RouteView, VipTarget};
use crate::core::words::Holder;

/// What the cloud says about one Elastic IP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    pub allocation_id: String,
    pub public_ip: Option<String>,
    pub association_id: Option<String>,
    pub network_interface_id: Option<String>,
    pub private_ip: Option<IpAddr>,
    /// The instance, when associated with one (EC2 also reports it for an
    /// ENI association of an attached ENI).
    pub instance_id: Option<String>,
    /// Its state tags (`core::state_tag`), by what follows the key's prefix.
    pub state_tags: BTreeMap<String, String>,
}

/// What the cloud says about one route table: its routes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteTable {
    pub id: String,
    pub routes: Vec<Route>,
    /// Its state tags (`core::state_tag`), by what follows the key's prefix.
    pub state_tags: BTreeMap<String, String>,
}

/// One route of a route table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Route {
    /// `DestinationCidrBlock` (or the IPv6 one), normalised.
    pub destination: String,
    pub network_interface_id: Option<String>,
    pub instance_id: Option<String>,
    /// Any other target: a gateway, a NAT gateway, a peering connection.
    pub other_target: Option<String>,
    /// `State` is `blackhole`.
    pub blackhole: bool,
}

/// What the cloud says about one secondary private IP asked for: the ENIs
/// (in this node's VPC) that carry it, none when it is unassigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateIpSeen {
    pub ip: IpAddr,
    pub network_interface_ids: Vec<String>,
    /// The state tags (`core::state_tag`) of the ENIs that carry it, by
    /// what follows the key's prefix.
    pub state_tags: BTreeMap<String, String>,
}

impl PrivateIpSeen {
    /// Where the private IP is for the node whose ENI is `mine`: here only
    /// when this ENI alone carries it (a move in progress, on both ENIs,
    /// is not yet here); elsewhere, naming another ENI that carries it.
    pub fn holder(&self, mine: &str) -> Holder {
        match self.network_interface_ids.iter().find(|e| *e != mine) {
            Some(other) => Holder::Elsewhere {
                network_interface_id: Some(other.clone()),
                private_ip: Some(self.ip),
            },
            None if self.network_interface_ids.is_empty() => Holder::Nowhere,
            None => Holder::Here,
        }
    }
}

/// One describe's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Addresses(Vec<Address>),
    RouteTables(Vec<RouteTable>),
    /// DescribeNetworkInterfaces by private IP: one entry per IP asked.
    PrivateIps(Vec<PrivateIpSeen>),
}

/// This node, as the cloud knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    pub instance_id: String,
    pub eni: String,
}

/// Where `target` is for `me`, by `seen`, with each route table's route for
/// a route VIP; `None` when `seen` does not cover it (another kind's
/// answer, an allocation ID or a route table not in it).
pub fn view_of(target: &VipTarget, seen: &Seen, me: &Me) -> Option<(Holder, Vec<RouteView>)> {
    match (target, seen) {
        (
            VipTarget::EipOnEni {
                allocation_id,
                private_ip,
            },
            Seen::Addresses(addrs),
        ) => addrs
            .iter()
            .find(|a| &a.allocation_id == allocation_id)
            .map(|a| (a.holder(&me.eni, *private_ip), vec![])),
        (VipTarget::EipOnInstance { allocation_id }, Seen::Addresses(addrs)) => addrs
            .iter()
            .find(|a| &a.allocation_id == allocation_id)
            .map(|a| (a.instance_holder(&me.instance_id), vec![])),
        (VipTarget::PrivateIp { private_ip }, Seen::PrivateIps(ips)) => ips
            .iter()
            .find(|p| p.ip == *private_ip)
            .map(|p| (p.holder(&me.eni), vec![])),
        (
            VipTarget::Route {
                destination,
                route_tables,
                ..
            },
            Seen::RouteTables(tables),
        ) => {
            let mut views = vec![];
            for id in route_tables {
                let table = tables.iter().find(|t| &t.id == id)?;
                views.push(
                    match table.routes.iter().find(|r| &r.destination == destination) {
                        Some(r) => RouteView::of(
                            id,
                            r.network_interface_id.as_deref(),
                            r.instance_id.as_deref(),
                            r.other_target.as_deref(),
                            r.blackhole,
                            &me.eni,
                        ),
                        None => RouteView::missing(id),
                    },
                );
            }
            Some((Holder::of_routes(&views), views))
        }
        _ => None,
    }
}

impl Address {
    /// Where this address is for an EIP associated by instance ID: compared
    /// on the instance, as that association is made.
    pub fn instance_holder(&self, mine: &str) -> Holder {
        match self.instance_id.as_deref() {
            Some(i) if i == mine => Holder::Here,
            _ if self.association_id.is_none() && self.network_interface_id.is_none() => {
                Holder::Nowhere
            }
            _ => Holder::Elsewhere {
                network_interface_id: self
                    .network_interface_id
                    .clone()
                    .or_else(|| self.instance_id.clone()),
                private_ip: self.private_ip,
            },
        }
    }

    /// Where this address is for the node whose ENI is `mine` and whose
    /// VIP is on `my_ip`.
    pub fn holder(&self, mine: &str, my_ip: IpAddr) -> Holder {
        Holder::of(
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
    DescribeRouteTables,
    ReplaceRoute,
    CreateRoute,
}

impl Action {
    /// The actions of an Elastic IP's claim, asked with `DryRun` by the
    /// permission checker. A route VIP's are learnt from real calls: a
    /// route `DryRun` that an endpoint ignored would move the route.
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
            Self::DescribeRouteTables => "DescribeRouteTables",
            Self::ReplaceRoute => "ReplaceRoute",
            Self::CreateRoute => "CreateRoute",
        }
    }

    /// Every action, EIP and route.
    pub const EVERY: [Action; 7] = [
        Self::DescribeAddresses,
        Self::DescribeNetworkInterfaces,
        Self::AssignPrivateIpAddresses,
        Self::AssociateAddress,
        Self::DescribeRouteTables,
        Self::ReplaceRoute,
        Self::CreateRoute,
    ];

    /// Every `operation` label the call metrics can carry: each action,
    /// and the `DryRun` of those the permission checker asks.
    pub fn operations() -> impl Iterator<Item = &'static str> {
        Self::EVERY.into_iter().map(Self::as_str).chain(
            Self::EVERY
                .into_iter()
                .filter(|a| a.has_dry_run())
                .map(Self::dry_run_operation),
        )
    }

    /// The actions a VIP of this kind needs.
    pub fn needed(target: &VipTarget) -> &'static [Action] {
        match target {
            VipTarget::EipOnEni { .. } => &Self::ALL,
            VipTarget::EipOnInstance { .. } => &[Self::DescribeAddresses, Self::AssociateAddress],
            VipTarget::PrivateIp { .. } => &[
                Self::DescribeNetworkInterfaces,
                Self::AssignPrivateIpAddresses,
            ],
            VipTarget::Route { .. } => &[
                Self::DescribeRouteTables,
                Self::DescribeNetworkInterfaces,
                Self::ReplaceRoute,
                Self::CreateRoute,
            ],
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
            Self::DescribeRouteTables => "DryRun:DescribeRouteTables",
            Self::ReplaceRoute => "DryRun:ReplaceRoute",
            Self::CreateRoute => "DryRun:CreateRoute",
        }
    }

    /// A describe is one call for every VIP of the node; IAM cannot scope it
    /// to a resource. The others are checked per VIP.
    pub fn per_vip(self) -> bool {
        matches!(
            self,
            Self::AssignPrivateIpAddresses
                | Self::AssociateAddress
                | Self::ReplaceRoute
                | Self::CreateRoute
        )
    }

    /// Whether the permission checker asks it with `DryRun`.
    /// AssignPrivateIpAddresses has no `DryRun` in EC2's API; route changes
    /// have one, but are learnt from real calls (see `ALL`).
    pub fn has_dry_run(self) -> bool {
        matches!(
            self,
            Self::DescribeAddresses | Self::DescribeNetworkInterfaces | Self::AssociateAddress
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private IP VIP's holder, by the ENIs a describe names.
    #[test]
    fn private_ip_holder_table() {
        let me = Me {
            instance_id: "i-a".into(),
            eni: "eni-a".into(),
        };
        let ip: IpAddr = "10.0.1.100".parse().unwrap();
        let target = VipTarget::PrivateIp { private_ip: ip };
        let elsewhere = |eni: &str| Holder::Elsewhere {
            network_interface_id: Some(eni.into()),
            private_ip: Some(ip),
        };
        let cases: &[(&str, &[&str], Option<Holder>)] = &[
            ("on no ENI: nowhere", &[], Some(Holder::Nowhere)),
            ("on this ENI alone: here", &["eni-a"], Some(Holder::Here)),
            (
                "on the peer's ENI: elsewhere",
                &["eni-b"],
                Some(elsewhere("eni-b")),
            ),
            (
                "on both (a move under way): not yet here",
                &["eni-a", "eni-b"],
                Some(elsewhere("eni-b")),
            ),
        ];
        for (name, enis, want) in cases {
            let seen = Seen::PrivateIps(vec![PrivateIpSeen {
                ip,
                network_interface_ids: enis.iter().map(|e| e.to_string()).collect(),
                state_tags: BTreeMap::new(),
            }]);
            let got = view_of(&target, &seen, &me).map(|(h, _)| h);
            assert_eq!(&got, want, "{name}");
        }
        // An answer about another IP, or of another kind, says nothing.
        let other = Seen::PrivateIps(vec![PrivateIpSeen {
            ip: "10.0.1.101".parse().unwrap(),
            network_interface_ids: vec!["eni-a".into()],
            state_tags: BTreeMap::new(),
        }]);
        assert_eq!(view_of(&target, &other, &me), None, "another IP");
        assert_eq!(
            view_of(&target, &Seen::Addresses(vec![]), &me),
            None,
            "another kind's answer"
        );
    }
}
