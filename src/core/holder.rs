//! Where the cloud says an address is, from this node's point of view.
//! Pure: built from the fields of a cloud answer, compared on (ENI, private
//! IP), never on the instance.

use std::net::IpAddr;

use serde::Serialize;

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = |ip: &Option<IpAddr>| ip.map_or("none".to_owned(), |i| i.to_string());
        match self {
            Holder::Here => write!(f, "here, on this node's ENI and private IP"),
            Holder::HereOtherIp { private_ip } => {
                write!(f, "on this node's ENI but private IP {}", ip(private_ip))
            }
            Holder::Elsewhere {
                network_interface_id,
                private_ip,
            } => write!(
                f,
                "on another ENI, {} (private IP {})",
                network_interface_id.as_deref().unwrap_or("unknown"),
                ip(private_ip)
            ),
            Holder::Nowhere => write!(f, "nowhere (not associated)"),
        }
    }
}

/// Where the cloud says an address is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "where", rename_all = "snake_case")]
pub enum Holder {
    /// Associated with this node's ENI on the configured private IP.
    Here,
    /// Associated with this node's ENI, but on another private IP.
    HereOtherIp { private_ip: Option<IpAddr> },
    /// Associated with another ENI.
    Elsewhere {
        network_interface_id: Option<String>,
        private_ip: Option<IpAddr>,
    },
    /// Not associated.
    Nowhere,
}

impl Holder {
    /// Where an address associated with (`eni`, `private_ip`) is, for the
    /// node whose ENI is `mine` and whose VIP is `my_ip`; `associated` is
    /// false when the address has no association at all.
    pub fn of(
        associated: bool,
        eni: Option<&str>,
        private_ip: Option<IpAddr>,
        mine: &str,
        my_ip: IpAddr,
    ) -> Holder {
        match eni {
            None if !associated => Holder::Nowhere,
            Some(e) if e == mine && private_ip == Some(my_ip) => Holder::Here,
            Some(e) if e == mine => Holder::HereOtherIp { private_ip },
            e => Holder::Elsewhere {
                network_interface_id: e.map(str::to_owned),
                private_ip,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_compares_eni_and_private_ip_never_instance() {
        let vip: IpAddr = "10.0.0.50".parse().unwrap();
        let other: IpAddr = "10.0.0.10".parse().unwrap();
        let rows = [
            (false, None, None, Holder::Nowhere),
            (true, Some("eni-me"), Some(vip), Holder::Here),
            (
                true,
                Some("eni-me"),
                Some(other),
                Holder::HereOtherIp {
                    private_ip: Some(other),
                },
            ),
            (
                true,
                Some("eni-peer"),
                Some(vip),
                Holder::Elsewhere {
                    network_interface_id: Some("eni-peer".into()),
                    private_ip: Some(vip),
                },
            ),
            // Associated, but to no ENI we were told of: elsewhere.
            (
                true,
                None,
                None,
                Holder::Elsewhere {
                    network_interface_id: None,
                    private_ip: None,
                },
            ),
        ];
        for (associated, eni, ip, want) in rows {
            assert_eq!(Holder::of(associated, eni, ip, "eni-me", vip), want);
        }
    }

    #[test]
    fn holders_read_as_words() {
        let ip = Some("10.0.0.5".parse().unwrap());
        let table = [
            (Holder::Here, "here, on this node's ENI and private IP"),
            (
                Holder::HereOtherIp { private_ip: ip },
                "on this node's ENI but private IP 10.0.0.5",
            ),
            (
                Holder::Elsewhere {
                    network_interface_id: Some("eni-peer".into()),
                    private_ip: ip,
                },
                "on another ENI, eni-peer (private IP 10.0.0.5)",
            ),
            (
                Holder::Elsewhere {
                    network_interface_id: None,
                    private_ip: None,
                },
                "on another ENI, unknown (private IP none)",
            ),
            (Holder::Nowhere, "nowhere (not associated)"),
        ];
        for (h, words) in table {
            assert_eq!(h.to_string(), words);
        }
    }
}
