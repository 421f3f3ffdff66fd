//! The VRRP advertisement a Keepalived sends when it stops: priority 0.
//!
//! A MASTER's Keepalived that stops gracefully sends one advert with
//! priority 0 (RFC 3768 6.4.3, RFC 5798 6.4.3), and its peer takes over
//! after Skew_Time (`(256 - priority) / 256` s) instead of waiting out
//! Master_Down_Interval (three adverts and the skew, about 3.6 s at
//! `advert_int 1`). A Keepalived that crashes sends nothing. The watchdog
//! sends that advert on its behalf (`keepalived/release.rs`), so that a
//! crash fails over as fast as a graceful stop.
//!
//! Pure: keepalived.conf's items in, an [`Advert`] or an [`AdvertError`]
//! naming the key and line out; [`Advert::encode`] gives the VRRP packet
//! (after the IP header, which the kernel writes). The peer's Keepalived
//! drops an advert whose version, VRID, interval, authentication or address
//! list differ from its own (`bogus VRRP packet`), so every one of them is
//! read from keepalived.conf, and anything this module cannot reproduce
//! exactly (IPsec-AH authentication, IPv6 instances, more addresses than
//! Keepalived advertises) is refused rather than guessed.

use std::net::{IpAddr, Ipv4Addr};

use crate::keepalived::conf::{At, Item};

/// Where VRRP over IPv4 multicasts (`vrrp_mcast_group4` overrides it).
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IP protocol number of VRRP.
pub const PROTOCOL: i32 = 112;
/// The TTL every VRRP packet carries (RFC 3768 5.2.3).
pub const TTL: u32 = 255;
/// The most addresses Keepalived puts in one advert; it moves the rest to
/// `virtual_ipaddress_excluded`, which this module does not model.
pub const MAX_ADDRESSES: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// VRRPv2: the interval in whole seconds, and the authentication.
    V2 { advert_secs: u8, auth: Auth },
    /// VRRPv3: the interval in centiseconds (12 bits).
    V3 { advert_centis: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `auth_type PASS`: the first 8 bytes of `auth_pass`, zero-padded.
    Pass([u8; 8]),
}

/// What one instance's priority-0 advert needs, from keepalived.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    pub instance: String,
    pub version: Version,
    pub vrid: u8,
    pub interface: String,
    /// `unicast_src_ip` (or `mcast_src_ip`); else the interface's first
    /// IPv4 address, as Keepalived picks it.
    pub source: Option<Ipv4Addr>,
    /// The unicast peers, or the multicast group.
    pub destinations: Vec<Ipv4Addr>,
    /// `virtual_ipaddress`, in order: the peer checks the list.
    pub addresses: Vec<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvertError {
    #[error("vrrp_instance {0:?} is not in keepalived.conf")]
    NoInstance(String),
    #[error("{at}: vrrp_instance {instance:?} has no {key}")]
    Missing {
        instance: String,
        key: &'static str,
        at: At,
    },
    #[error("{at}: {key} {value:?}: {why}")]
    Bad {
        key: &'static str,
        value: String,
        why: &'static str,
        at: At,
    },
    #[error("{at}: {what}: the advert the peer expects cannot be reproduced")]
    Unsupported { what: String, at: At },
}

fn first(item: &Item) -> Option<&str> {
    item.words.get(1).map(String::as_str)
}

fn bad(key: &'static str, item: &Item, why: &'static str) -> AdvertError {
    AdvertError::Bad {
        key,
        value: item.words.get(1..).unwrap_or_default().join(" "),
        why,
        at: item.at.clone(),
    }
}

fn ipv4(key: &'static str, item: &Item, word: Option<&str>) -> Result<Ipv4Addr, AdvertError> {
    let w = word.ok_or_else(|| bad(key, item, "an IPv4 address is missing"))?;
    match w.split('/').next().unwrap_or(w).parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Ok(a),
        Ok(IpAddr::V6(_)) => Err(AdvertError::Unsupported {
            what: format!("{key} {w} is IPv6 (VRRP over IPv6)"),
            at: item.at.clone(),
        }),
        Err(_) => Err(AdvertError::Bad {
            key,
            value: w.into(),
            why: "not an IPv4 address",
            at: item.at.clone(),
        }),
    }
}

impl Advert {
    /// The advert for `instance`, read from keepalived.conf's `items`.
    pub fn from_items(items: &[Item], instance: &str) -> Result<Advert, AdvertError> {
        let block_of = |item: &Item| item.block.as_deref().unwrap_or_default().to_vec();
        let globals: Vec<Item> = items
            .iter()
            .filter(|i| i.words.first().map(String::as_str) == Some("global_defs"))
            .flat_map(block_of)
            .collect();
        let inst = items
            .iter()
            .rfind(|i| {
                i.words.first().map(String::as_str) == Some("vrrp_instance")
                    && first(i) == Some(instance)
            })
            .ok_or_else(|| AdvertError::NoInstance(instance.into()))?;
        let mut version = 2u8;
        let mut group = MULTICAST_V4;
        for g in &globals {
            match g.words.first().map(String::as_str).unwrap_or_default() {
                "vrrp_version" => version = parse_version(g)?,
                "vrrp_mcast_group4" => group = ipv4("vrrp_mcast_group4", g, first(g))?,
                _ => {}
            }
        }
        // A block of one address a line (its first word).
        let list = |key, lines: &[Item]| -> Result<Vec<Ipv4Addr>, AdvertError> {
            lines
                .iter()
                .map(|l| ipv4(key, l, l.words.first().map(String::as_str)))
                .collect()
        };
        let mut interface = None;
        let mut vrid = None;
        let mut advert_int: Option<(f64, &Item)> = None;
        let mut source = None;
        let mut peers = vec![];
        let mut addresses = vec![];
        let mut auth: Option<(String, Option<String>, At)> = None;
        for item in inst.block.as_deref().unwrap_or_default() {
            let lines = item.block.as_deref().unwrap_or_default();
            match item.words.first().map(String::as_str).unwrap_or_default() {
                "interface" => {
                    interface = Some(
                        first(item)
                            .ok_or_else(|| bad("interface", item, "a name is missing"))?
                            .to_owned(),
                    )
                }
                "virtual_router_id" => {
                    vrid = Some(
                        first(item)
                            .and_then(|w| w.parse::<u8>().ok())
                            .filter(|&v| v >= 1)
                            .ok_or_else(|| bad("virtual_router_id", item, "not 1 to 255"))?,
                    )
                }
                "version" => version = parse_version(item)?,
                "advert_int" => {
                    let secs = first(item)
                        .and_then(|w| w.parse::<f64>().ok())
                        .filter(|s| s.is_finite() && *s > 0.0)
                        .ok_or_else(|| bad("advert_int", item, "not a positive number"))?;
                    advert_int = Some((secs, item));
                }
                "unicast_src_ip" => source = Some(ipv4("unicast_src_ip", item, first(item))?),
                "mcast_src_ip" if source.is_none() => {
                    source = Some(ipv4("mcast_src_ip", item, first(item))?)
                }
                "unicast_peer" => peers.extend(list("unicast_peer", lines)?),
                "virtual_ipaddress" => addresses.extend(list("virtual_ipaddress", lines)?),
                "authentication" => {
                    let mut kind = None;
                    let mut pass = None;
                    for l in lines {
                        match l.words.first().map(String::as_str).unwrap_or_default() {
                            "auth_type" => kind = first(l).map(str::to_owned),
                            "auth_pass" => pass = first(l).map(str::to_owned),
                            _ => {}
                        }
                    }
                    auth = Some((kind.unwrap_or_default(), pass, item.at.clone()));
                }
                _ => {}
            }
        }
        let missing = |key| AdvertError::Missing {
            instance: instance.into(),
            key,
            at: inst.at.clone(),
        };
        let interface = interface.ok_or_else(|| missing("interface"))?;
        let vrid = vrid.ok_or_else(|| missing("virtual_router_id"))?;
        if addresses.len() > MAX_ADDRESSES {
            return Err(AdvertError::Unsupported {
                what: format!(
                    "{} addresses in virtual_ipaddress (Keepalived advertises at most {MAX_ADDRESSES})",
                    addresses.len()
                ),
                at: inst.at.clone(),
            });
        }
        let secs = advert_int.map_or(1.0, |(s, _)| s);
        let version = match version {
            2 => {
                if secs.fract() != 0.0 || secs > 255.0 {
                    let item = advert_int.map(|(_, i)| i).expect("only a set advert_int");
                    return Err(bad(
                        "advert_int",
                        item,
                        "VRRPv2 needs whole seconds, 1 to 255",
                    ));
                }
                let auth = match auth {
                    None => Auth::None,
                    Some((kind, pass, at)) => match kind.as_str() {
                        "PASS" => {
                            let pass = pass.ok_or(AdvertError::Missing {
                                instance: instance.into(),
                                key: "auth_pass",
                                at,
                            })?;
                            let mut data = [0u8; 8];
                            for (d, b) in data.iter_mut().zip(pass.bytes()) {
                                *d = b;
                            }
                            Auth::Pass(data)
                        }
                        other => {
                            return Err(AdvertError::Unsupported {
                                what: format!("auth_type {other:?} (only PASS or none)"),
                                at,
                            });
                        }
                    },
                };
                Version::V2 {
                    advert_secs: secs as u8,
                    auth,
                }
            }
            _ => {
                let centis = (secs * 100.0).round();
                if !(1.0..=4095.0).contains(&centis) {
                    let item = advert_int.map(|(_, i)| i).expect("only a set advert_int");
                    return Err(bad("advert_int", item, "VRRPv3 allows 0.01 to 40.95 s"));
                }
                Version::V3 {
                    advert_centis: centis as u16,
                }
            }
        };
        let destinations = if peers.is_empty() { vec![group] } else { peers };
        Ok(Advert {
            instance: instance.into(),
            version,
            vrid,
            interface,
            source,
            destinations,
            addresses,
        })
    }

    /// The VRRP packet with priority 0, from `source` to `destination`
    /// (VRRPv3's checksum covers both).
    pub fn encode(&self, source: Ipv4Addr, destination: Ipv4Addr) -> Vec<u8> {
        let count = u8::try_from(self.addresses.len()).unwrap_or(u8::MAX);
        let mut p = Vec::with_capacity(16 + 4 * self.addresses.len());
        match &self.version {
            Version::V2 { advert_secs, .. } => {
                let auth_type = match &self.version {
                    Version::V2 {
                        auth: Auth::Pass(_),
                        ..
                    } => 1,
                    _ => 0,
                };
                p.extend_from_slice(&[0x21, self.vrid, 0, count, auth_type, *advert_secs, 0, 0]);
            }
            Version::V3 { advert_centis } => {
                let [hi, lo] = (advert_centis & 0x0fff).to_be_bytes();
                p.extend_from_slice(&[0x31, self.vrid, 0, count, hi, lo, 0, 0]);
            }
        }
        for a in &self.addresses {
            p.extend_from_slice(&a.octets());
        }
        let sum = match &self.version {
            Version::V2 { auth, .. } => {
                p.extend_from_slice(match auth {
                    Auth::Pass(data) => data,
                    Auth::None => &[0; 8],
                });
                checksum(&[&p])
            }
            Version::V3 { .. } => {
                let len = u16::try_from(p.len()).unwrap_or(u16::MAX).to_be_bytes();
                let pseudo: Vec<u8> = source
                    .octets()
                    .into_iter()
                    .chain(destination.octets())
                    .chain([0, PROTOCOL as u8, len[0], len[1]])
                    .collect();
                checksum(&[&pseudo, &p])
            }
        };
        p[6..8].copy_from_slice(&sum.to_be_bytes());
        p
    }

    /// One line for the logs: what is sent where.
    pub fn describe(&self) -> String {
        let version = match &self.version {
            Version::V2 { .. } => 2,
            Version::V3 { .. } => 3,
        };
        let to: Vec<String> = self.destinations.iter().map(|d| d.to_string()).collect();
        format!(
            "VRRPv{version} VRID {} on {} to {}",
            self.vrid,
            self.interface,
            to.join(", ")
        )
    }
}

fn parse_version(item: &Item) -> Result<u8, AdvertError> {
    match first(item) {
        Some("2") => Ok(2),
        Some("3") => Ok(3),
        _ => Err(bad("version", item, "VRRP version 2 or 3")),
    }
}

/// The Internet checksum (RFC 1071) over the concatenation of `parts`.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn items(text: &str) -> Vec<Item> {
        crate::keepalived::conf::parse_with(Path::new("/k.conf"), &|_| Ok(text.to_owned()), &|_| {
            Ok(vec![])
        })
        .expect("parses")
    }

    const LAB: &str = "global_defs {\n router_id a\n}\nvrrp_instance VI_1 {\n state BACKUP\n interface eth0\n virtual_router_id 51\n priority 150\n advert_int 1\n unicast_src_ip 10.0.0.1\n unicast_peer {\n  10.0.0.2\n }\n virtual_ipaddress {\n  10.0.0.100/32 dev eth0\n  10.0.0.101\n }\n}\n";

    #[test]
    fn the_lab_instance_gives_a_v2_unicast_advert() {
        let a = Advert::from_items(&items(LAB), "VI_1").unwrap();
        assert_eq!(
            a,
            Advert {
                instance: "VI_1".into(),
                version: Version::V2 {
                    advert_secs: 1,
                    auth: Auth::None
                },
                vrid: 51,
                interface: "eth0".into(),
                source: Some(Ipv4Addr::new(10, 0, 0, 1)),
                destinations: vec![Ipv4Addr::new(10, 0, 0, 2)],
                addresses: vec![Ipv4Addr::new(10, 0, 0, 100), Ipv4Addr::new(10, 0, 0, 101)],
            }
        );
        assert_eq!(a.describe(), "VRRPv2 VRID 51 on eth0 to 10.0.0.2");
    }

    #[test]
    fn v2_packet_fields_and_checksum() {
        let a = Advert::from_items(&items(LAB), "VI_1").unwrap();
        let p = a.encode(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.len(), 8 + 2 * 4 + 8);
        assert_eq!(&p[..6], &[0x21, 51, 0, 2, 0, 1]);
        assert_eq!(&p[8..16], &[10, 0, 0, 100, 10, 0, 0, 101]);
        assert_eq!(&p[16..], &[0; 8]);
        // A packet with its checksum in place sums to zero.
        assert_eq!(checksum(&[&p]), 0);
        // Worked by hand: 0x2133 + 0x0002 + 0x0001 + 0x0a00 + 0x0064 +
        // 0x0a00 + 0x0065 = 0x35ff, complemented.
        assert_eq!(u16::from_be_bytes([p[6], p[7]]), !0x35ffu16);
    }

    #[test]
    fn v2_pass_authentication_is_carried() {
        let text = LAB.replace(
            " advert_int 1\n",
            " advert_int 1\n authentication {\n  auth_type PASS\n  auth_pass secret123456\n }\n",
        );
        let a = Advert::from_items(&items(&text), "VI_1").unwrap();
        let p = a.encode(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p[4], 1);
        assert_eq!(&p[16..], b"secret12");
        assert_eq!(checksum(&[&p]), 0);
    }

    #[test]
    fn v3_checksum_covers_the_pseudo_header_and_multicast_is_the_default() {
        let text = "global_defs {\n vrrp_version 3\n}\nvrrp_instance V {\n interface eth1\n virtual_router_id 7\n advert_int 0.5\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n";
        let a = Advert::from_items(&items(text), "V").unwrap();
        assert_eq!(a.version, Version::V3 { advert_centis: 50 });
        assert_eq!(a.destinations, vec![MULTICAST_V4]);
        assert_eq!(a.source, None);
        let (src, dst) = (Ipv4Addr::new(192, 0, 2, 10), MULTICAST_V4);
        let p = a.encode(src, dst);
        assert_eq!(&p[..6], &[0x31, 7, 0, 1, 0, 50]);
        assert_eq!(p.len(), 12);
        let pseudo = [192, 0, 2, 10, 224, 0, 0, 18, 0, 112, 0, 12];
        assert_eq!(checksum(&[&pseudo, &p]), 0);
        assert_ne!(checksum(&[&p]), 0, "the pseudo-header is part of the sum");
    }

    #[test]
    fn what_cannot_be_reproduced_is_refused_naming_key_and_line() {
        let at = |line| At {
            file: PathBuf::from("/k.conf"),
            line,
        };
        let cases: Vec<(&str, String, AdvertError)> = vec![
            (
                "no such instance",
                LAB.to_owned(),
                AdvertError::NoInstance("VI_2".into()),
            ),
            (
                "no interface",
                LAB.replace(" interface eth0\n", ""),
                AdvertError::Missing {
                    instance: "VI_1".into(),
                    key: "interface",
                    at: at(4),
                },
            ),
            (
                "no virtual_router_id",
                LAB.replace(" virtual_router_id 51\n", ""),
                AdvertError::Missing {
                    instance: "VI_1".into(),
                    key: "virtual_router_id",
                    at: at(4),
                },
            ),
            (
                "VRID out of range",
                LAB.replace("virtual_router_id 51", "virtual_router_id 256"),
                AdvertError::Bad {
                    key: "virtual_router_id",
                    value: "256".into(),
                    why: "not 1 to 255",
                    at: at(7),
                },
            ),
            (
                "fractional v2 interval",
                LAB.replace("advert_int 1", "advert_int 0.5"),
                AdvertError::Bad {
                    key: "advert_int",
                    value: "0.5".into(),
                    why: "VRRPv2 needs whole seconds, 1 to 255",
                    at: at(9),
                },
            ),
            (
                "IPsec-AH",
                LAB.replace(
                    " advert_int 1\n",
                    " advert_int 1\n authentication {\n  auth_type AH\n  auth_pass x\n }\n",
                ),
                AdvertError::Unsupported {
                    what: "auth_type \"AH\" (only PASS or none)".into(),
                    at: at(10),
                },
            ),
            (
                "IPv6 peer",
                LAB.replace("  10.0.0.2\n", "  fe80::2\n"),
                AdvertError::Unsupported {
                    what: "unicast_peer fe80::2 is IPv6 (VRRP over IPv6)".into(),
                    at: at(12),
                },
            ),
            (
                "not an address",
                LAB.replace("  10.0.0.101\n", "  ten.0.0.101\n"),
                AdvertError::Bad {
                    key: "virtual_ipaddress",
                    value: "ten.0.0.101".into(),
                    why: "not an IPv4 address",
                    at: at(16),
                },
            ),
        ];
        for (name, text, want) in cases {
            let instance = if name == "no such instance" {
                "VI_2"
            } else {
                "VI_1"
            };
            assert_eq!(
                Advert::from_items(&items(&text), instance),
                Err(want),
                "{name}"
            );
        }
    }

    #[test]
    fn a_brace_on_a_line_of_its_own_is_read_as_keepalived_reads_it() {
        let text = LAB.replace(" virtual_ipaddress {\n", " virtual_ipaddress\n {\n");
        // The block is virtual_ipaddress's, as for Keepalived: the advert
        // lists the same addresses as with the brace on the keyword's line.
        let a = Advert::from_items(&items(&text), "VI_1").unwrap();
        assert_eq!(a, Advert::from_items(&items(LAB), "VI_1").unwrap());
        assert_eq!(a.addresses.len(), 2, "{a:?}");
    }

    #[test]
    fn more_addresses_than_keepalived_advertises_are_refused() {
        let many: String = (1..=21).map(|i| format!("  10.0.1.{i}\n")).collect();
        let text = LAB.replace("  10.0.0.100/32 dev eth0\n  10.0.0.101\n", &many);
        let e = Advert::from_items(&items(&text), "VI_1").unwrap_err();
        assert!(e.to_string().contains("21 addresses"), "{e}");
    }
}
