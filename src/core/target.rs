//! What a VIP is in the cloud, and where the cloud says a route VIP is.
//! Pure data and pure functions.
//!
//! - `EipOnEni`: an Elastic IP on this node's ENI and a secondary private
//!   IP (`kind = "eip"`, the default `associate = "eni"`).
//! - `EipOnInstance`: an Elastic IP associated by instance ID, on the
//!   instance's primary ENI and primary private IP (`associate =
//!   "instance"`, single-ENI instances only).
//! - `PrivateIp`: a secondary private IP on this node's ENI, no Elastic IP
//!   (`kind = "private_ip"`, an internal VIP).
//! - `Route`: a destination CIDR whose route, in every listed route table,
//!   must target this node's ENI (`kind = "route"`).

use std::net::IpAddr;

use serde::Serialize;

use crate::core::words::{Holder, RouteState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VipTarget {
    EipOnEni {
        allocation_id: String,
        private_ip: IpAddr,
    },
    EipOnInstance {
        allocation_id: String,
    },
    PrivateIp {
        private_ip: IpAddr,
    },
    Route {
        /// The destination, normalised (`192.168.100.10/32`).
        destination: String,
        /// For a single-address destination, that address: the OS must
        /// carry it before this node claims (rule 6).
        host: Option<IpAddr>,
        route_tables: Vec<String>,
    },
}

impl VipTarget {
    /// `kind` as in the config, and the `kind` label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::EipOnEni { .. } => "eip",
            Self::EipOnInstance { .. } => "eip_instance",
            Self::PrivateIp { .. } => "private_ip",
            Self::Route { .. } => "route",
        }
    }

    pub fn allocation_id(&self) -> Option<&str> {
        match self {
            Self::EipOnEni { allocation_id, .. } | Self::EipOnInstance { allocation_id } => {
                Some(allocation_id)
            }
            Self::PrivateIp { .. } | Self::Route { .. } => None,
        }
    }

    /// The address the OS must carry for traffic to be served here, if any.
    pub fn host_address(&self) -> Option<IpAddr> {
        match self {
            Self::EipOnEni { private_ip, .. } | Self::PrivateIp { private_ip } => Some(*private_ip),
            Self::EipOnInstance { .. } => None,
            Self::Route { host, .. } => *host,
        }
    }

    /// What the VIP is, in a few words for logs and `check-config`.
    pub fn describe(&self) -> String {
        match self {
            Self::EipOnEni {
                allocation_id,
                private_ip,
            } => format!("EIP {allocation_id} on this node's ENI, private IP {private_ip}"),
            Self::EipOnInstance { allocation_id } => {
                format!("EIP {allocation_id} on this instance (by instance ID)")
            }
            Self::PrivateIp { private_ip } => {
                format!("secondary private IP {private_ip} on this node's ENI")
            }
            Self::Route {
                destination,
                route_tables,
                ..
            } => format!(
                "route {destination} to this node's ENI in {}",
                route_tables.join(", ")
            ),
        }
    }
}

/// One route table's route for a route VIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteView {
    pub route_table: String,
    pub state: RouteState,
    /// The route's target (ENI, instance, gateway ID), when it has one.
    pub target: Option<String>,
}

impl RouteView {
    /// From a route's fields, for the node whose ENI is `mine`.
    pub fn of(
        route_table: &str,
        eni: Option<&str>,
        instance: Option<&str>,
        other: Option<&str>,
        blackhole: bool,
        mine: &str,
    ) -> RouteView {
        let (state, target) = match (eni, instance, other) {
            _ if blackhole => (RouteState::Blackhole, eni.or(instance).or(other)),
            (Some(e), ..) if e == mine => (RouteState::Here, Some(e)),
            (Some(e), ..) => (RouteState::Elsewhere, Some(e)),
            (None, Some(i), _) => (RouteState::Instance, Some(i)),
            (None, None, Some(o)) => (RouteState::Other, Some(o)),
            (None, None, None) => (RouteState::Other, None),
        };
        RouteView {
            route_table: route_table.to_owned(),
            state,
            target: target.map(str::to_owned),
        }
    }

    pub fn missing(route_table: &str) -> RouteView {
        RouteView {
            route_table: route_table.to_owned(),
            state: RouteState::Missing,
            target: None,
        }
    }
}

impl Holder {
    /// Where a route VIP is: here only when every table's route targets
    /// this node's ENI; elsewhere when any targets something else or is a
    /// blackhole (the first such target is named); nowhere when the rest
    /// are missing. A VIP with no table is nowhere.
    pub fn of_routes(views: &[RouteView]) -> Holder {
        if !views.is_empty() && views.iter().all(|v| v.state == RouteState::Here) {
            return Holder::Here;
        }
        match views
            .iter()
            .find(|v| !matches!(v.state, RouteState::Here | RouteState::Missing))
        {
            Some(v) => Holder::Elsewhere {
                network_interface_id: v.target.clone(),
                private_ip: None,
            },
            None => Holder::Nowhere,
        }
    }
}

/// A CIDR block, normalised (host bits cleared), and its address when it
/// names one address (/32, /128). `None` when it is not one.
pub fn normalize_cidr(text: &str) -> Option<(String, Option<IpAddr>)> {
    let (addr, prefix) = text.trim().split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > bits {
        return None;
    }
    let network = match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(u32::from(32 - prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(u32::from(128 - prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    Some((
        format!("{network}/{prefix}"),
        (prefix == bits).then_some(addr),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks_are_normalised_or_refused() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let rows = [
            (
                "192.168.100.10/32",
                Some(("192.168.100.10/32", ip("192.168.100.10"))),
            ),
            ("192.168.100.10/24", Some(("192.168.100.0/24", None))),
            ("0.0.0.0/0", Some(("0.0.0.0/0", None))),
            (
                "2001:db8::1/128",
                Some(("2001:db8::1/128", ip("2001:db8::1"))),
            ),
            ("192.168.100.10", None),
            ("192.168.100.10/33", None),
            ("300.1.1.1/32", None),
            ("/32", None),
        ];
        for (text, want) in rows {
            let got = normalize_cidr(text);
            assert_eq!(got.as_ref().map(|(c, h)| (c.as_str(), *h)), want, "{text}");
        }
    }

    #[test]
    fn a_route_is_read_from_its_fields() {
        use RouteState::*;
        let rows = [
            ((Some("eni-me"), None, None, false), Here, Some("eni-me")),
            (
                (Some("eni-peer"), None, None, false),
                Elsewhere,
                Some("eni-peer"),
            ),
            // EC2 shows both for a route created with an instance ID.
            (
                (Some("eni-me"), Some("i-me"), None, false),
                Here,
                Some("eni-me"),
            ),
            (
                (None, Some("i-peer"), None, false),
                Instance,
                Some("i-peer"),
            ),
            (
                (Some("eni-gone"), None, None, true),
                Blackhole,
                Some("eni-gone"),
            ),
            (
                (Some("eni-me"), None, None, true),
                Blackhole,
                Some("eni-me"),
            ),
            ((None, None, Some("igw-1"), false), Other, Some("igw-1")),
        ];
        for ((eni, inst, other, bh), state, target) in rows {
            let v = RouteView::of("rtb-1", eni, inst, other, bh, "eni-me");
            assert_eq!(
                (v.state, v.target.as_deref()),
                (state, target),
                "{eni:?} {inst:?} {other:?} {bh}"
            );
        }
    }

    #[test]
    fn a_route_vip_is_here_only_when_every_table_points_here() {
        let v = |t: &str, s: RouteState, target: Option<&str>| RouteView {
            route_table: t.into(),
            state: s,
            target: target.map(str::to_owned),
        };
        use RouteState::*;
        let elsewhere = |id: &str| Holder::Elsewhere {
            network_interface_id: Some(id.into()),
            private_ip: None,
        };
        let rows = [
            (
                vec![v("a", Here, Some("eni-me")), v("b", Here, Some("eni-me"))],
                Holder::Here,
            ),
            (
                vec![
                    v("a", Here, Some("eni-me")),
                    v("b", Elsewhere, Some("eni-peer")),
                ],
                elsewhere("eni-peer"),
            ),
            (
                vec![v("a", Here, Some("eni-me")), v("b", Missing, None)],
                Holder::Nowhere,
            ),
            (
                vec![v("a", Missing, None), v("b", Blackhole, Some("eni-gone"))],
                elsewhere("eni-gone"),
            ),
            (vec![v("a", Instance, Some("i-peer"))], elsewhere("i-peer")),
            (vec![], Holder::Nowhere),
        ];
        for (views, want) in rows {
            assert_eq!(Holder::of_routes(&views), want, "{views:?}");
        }
    }
}
