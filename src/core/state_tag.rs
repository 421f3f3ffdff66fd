//! State tags: a second path between the two watchdogs of a pair, through
//! the EC2 API, for when neither VRRP nor the peer channel gets through (a
//! security group that blocks both: the commonest split brain on EC2).
//!
//! With `[cloud] state_tags = true` each watchdog writes, on the resources
//! its VIPs live on (the Elastic IP's allocation, the route tables, its own
//! ENI for a private-IP VIP), one tag per VRRP instance, keyed by its own
//! ENI and the instance's name (the same on both nodes, as the peer channel
//! already needs):
//!
//! ```text
//! vip-watchdog:eni-0a1b2c3d/VI_1 = "master healthy 2026-12-04T19:00:00Z node-a"
//! ```
//!
//! (the VRRP state of the instance as this watchdog knows it, whether
//! Keepalived runs and the probe is up, when it was written, the node's
//! name), at once when that changes and every `state_tag_interval`
//! otherwise. The describes the watchdog already makes carry every tag of
//! those resources (DescribeAddresses, DescribeRouteTables, and
//! DescribeNetworkInterfaces for the ENI that holds a private IP): reading
//! costs no call.
//!
//! What a tag may do (claim rule 14, `decide.rs`): hold back this MASTER's
//! taking back of a VIP that was moved away from it, while the ENI that
//! holds it carries a tag saying a healthy MASTER wrote it within
//! `counts_for` (twice the interval). Nothing else: a first claim of a
//! mastership (a failover) never waits for a tag, so a node that died, or
//! lost the API, with "master" on its ENI holds back no failover; and its
//! tag, no longer refreshed, counts for nothing after `counts_for`. A tag
//! that cannot be read, or that is dated more than `FUTURE_SKEW` ahead of
//! this node's clock, counts for nothing either.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::core::clock::{Mono, Stamp};
use crate::core::seen::{Me, Seen};
use crate::core::target::VipTarget;
use crate::core::words::{Holder, VrrpState};

/// Every state tag's key begins with this; the rest is the writer's ENI,
/// `/`, and the VRRP instance.
pub const KEY_PREFIX: &str = "vip-watchdog:";

/// How far ahead of this node's wall clock a tag may be dated and still be
/// read (clocks of a pair on EC2 agree to well under a second).
pub const FUTURE_SKEW: Duration = Duration::from_secs(5);

/// Keeps the characters EC2 allows in a tag, at most `max` of them.
fn tag_chars(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_.:/=+-@".contains(*c))
        .take(max)
        .collect()
}

/// What follows the prefix in the key of the node whose ENI is `eni`, for
/// `instance`: how `Seen`'s `state_tags` are keyed.
pub fn suffix(eni: &str, instance: &str) -> String {
    tag_chars(&format!("{eni}/{instance}"), 128 - KEY_PREFIX.len())
}

/// The tag key of the node whose ENI is `eni`, for `instance`.
pub fn key(eni: &str, instance: &str) -> String {
    format!("{KEY_PREFIX}{}", suffix(eni, instance))
}

/// What follows the prefix of a state tag's key; `None` for another key.
pub fn suffix_of_key(key: &str) -> Option<&str> {
    key.strip_prefix(KEY_PREFIX).filter(|e| !e.is_empty())
}

/// What one tag says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagState {
    pub state: VrrpState,
    /// Keepalived runs and the probe is up.
    pub healthy: bool,
    pub written: SystemTime,
    pub node: String,
}

/// The tag value for `state` (EC2 allows letters, digits, spaces and
/// `_ . : / = + - @` in a value, 256 characters at most).
pub fn encode(state: VrrpState, healthy: bool, written: SystemTime, node: &str) -> String {
    let node = tag_chars(node, 128);
    format!(
        "{} {} {} {node}",
        state.as_str(),
        if healthy { "healthy" } else { "unhealthy" },
        humantime::format_rfc3339_seconds(written)
    )
    .trim_end()
    .to_owned()
}

/// Reads a tag value; the error names what was wrong.
pub fn parse(value: &str) -> Result<TagState, String> {
    let mut f = value.split_whitespace();
    let state = f.next().ok_or("the value is empty")?;
    let state = VrrpState::ALL
        .into_iter()
        .find(|s| s.as_str() == state)
        .ok_or_else(|| format!("{state:?} is not a VRRP state"))?;
    let healthy = match f.next() {
        Some("healthy") => true,
        Some("unhealthy") => false,
        Some(other) => return Err(format!("{other:?} is neither healthy nor unhealthy")),
        None => return Err("no health after the state".into()),
    };
    let written = f.next().ok_or("no time after the health")?;
    let written = humantime::parse_rfc3339(written)
        .map_err(|e| format!("{written:?} is not an RFC 3339 time: {e}"))?;
    Ok(TagState {
        state,
        healthy,
        written,
        node: f.collect::<Vec<_>>().join(" "),
    })
}

/// What the holder's tag says, as rule 14 reads it from a view asked for
/// at `sent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// A healthy MASTER wrote it; it counts until `until`.
    Master { until: Mono, node: String },
    /// It counts for nothing, and why (another state, unhealthy, stale,
    /// dated ahead, unreadable).
    Nothing(String),
}

/// The beginning of claim rule 14's verdict.
pub const SPLIT_IN_CLOUD: &str = "split brain seen in the cloud";

/// Whether two readings say the same, whatever their ends (a refreshed tag
/// says nothing new).
pub fn same_reading(a: Option<&Reading>, b: Option<&Reading>) -> bool {
    match (a, b) {
        (Some(Reading::Master { node: x, .. }), Some(Reading::Master { node: y, .. })) => x == y,
        (Some(Reading::Nothing(x)), Some(Reading::Nothing(y))) => {
            // A stale tag's age grows at every look.
            x == y || (x.starts_with("stale") && y.starts_with("stale"))
        }
        (None, None) => true,
        _ => false,
    }
}

/// Reads `value`, a tag seen in a view asked for at `sent`: a healthy
/// MASTER's tag counts for `counts_for` from when it was written.
pub fn read(value: &str, sent: Stamp, counts_for: Duration) -> Reading {
    let tag = match parse(value) {
        Ok(t) => t,
        Err(e) => return Reading::Nothing(format!("unreadable ({e})")),
    };
    if tag.state != VrrpState::Master || !tag.healthy {
        return Reading::Nothing(format!(
            "{} {}",
            tag.state,
            if tag.healthy { "healthy" } else { "unhealthy" }
        ));
    }
    let age = match sent.wall.duration_since(tag.written) {
        Ok(age) => age,
        Err(e) if e.duration() <= FUTURE_SKEW => Duration::ZERO,
        Err(e) => {
            return Reading::Nothing(format!(
                "dated {} s ahead of this node's clock",
                e.duration().as_secs()
            ));
        }
    };
    if age >= counts_for {
        return Reading::Nothing(format!(
            "stale: written {} s ago, counts for {} s",
            age.as_secs(),
            counts_for.as_secs()
        ));
    }
    // Rounded up to a whole second (a tag's time has no more): every view
    // of the same tag gives the same end, so a decision that waits for it
    // stays the same, and a view asked for at or after that end reads the
    // tag as stale.
    let end = (sent.mono + (counts_for - age)).as_duration();
    let until = end.as_secs() + u64::from(end.subsec_nanos() > 0);
    Reading::Master {
        until: Mono::from_duration(Duration::from_secs(until)),
        node: tag.node,
    }
}

/// The state tags of the resource `target` lives on, in `seen` (keyed by
/// `suffix`); empty when `seen` does not cover it.
fn tags_of<'a>(target: &VipTarget, seen: &'a Seen) -> Vec<&'a BTreeMap<String, String>> {
    match (target, seen) {
        (
            VipTarget::EipOnEni { allocation_id, .. } | VipTarget::EipOnInstance { allocation_id },
            Seen::Addresses(addrs),
        ) => addrs
            .iter()
            .filter(|a| &a.allocation_id == allocation_id)
            .map(|a| &a.state_tags)
            .collect(),
        (VipTarget::PrivateIp { private_ip }, Seen::PrivateIps(ips)) => ips
            .iter()
            .filter(|p| p.ip == *private_ip)
            .map(|p| &p.state_tags)
            .collect(),
        (VipTarget::Route { route_tables, .. }, Seen::RouteTables(tables)) => tables
            .iter()
            .filter(|t| route_tables.contains(&t.id))
            .map(|t| &t.state_tags)
            .collect(),
        _ => vec![],
    }
}

/// The tag the holder of `target` wrote for `instance`, as `seen` carries
/// it: `None` when the VIP is not on another ENI or that ENI's node wrote
/// none.
pub fn holder_tag<'a>(
    target: &VipTarget,
    instance: &str,
    seen: &'a Seen,
    holder: &Holder,
) -> Option<&'a str> {
    let Holder::Elsewhere {
        network_interface_id: Some(eni),
        ..
    } = holder
    else {
        return None;
    };
    let suffix = suffix(eni, instance);
    tags_of(target, seen)
        .into_iter()
        .find_map(|t| t.get(&suffix))
        .map(String::as_str)
}

/// The resources this node tags for `target`: the allocation, each route
/// table, or its own ENI (DescribeNetworkInterfaces returns the tags of the
/// ENI that holds a private IP).
pub fn resources(target: &VipTarget, me: &Me) -> Vec<String> {
    match target {
        VipTarget::EipOnEni { allocation_id, .. } | VipTarget::EipOnInstance { allocation_id } => {
            vec![allocation_id.clone()]
        }
        VipTarget::Route { route_tables, .. } => route_tables.clone(),
        VipTarget::PrivateIp { .. } => vec![me.eni.clone()],
    }
}

/// What this node writes: for each resource its VIPs live on, the state of
/// each VRRP instance of a VIP on it, keyed by `key`.
pub fn wanted<'a>(
    vips: impl IntoIterator<Item = (&'a VipTarget, &'a str, VrrpState)>,
    me: &Me,
) -> BTreeMap<String, BTreeMap<String, VrrpState>> {
    let mut out: BTreeMap<String, BTreeMap<String, VrrpState>> = BTreeMap::new();
    for (target, instance, state) in vips {
        for r in resources(target, me) {
            out.entry(r)
                .or_default()
                .insert(key(&me.eni, instance), state);
        }
    }
    out
}

/// One CreateTags call: the resources, and the tags (key, value) for each.
pub type TagCall = (Vec<String>, Vec<(String, String)>);

/// The CreateTags calls that write `wanted` at `at`: one for each set of
/// tags, naming every resource that gets that set (one call in all when
/// every VIP follows one instance).
pub fn calls(
    wanted: &BTreeMap<String, BTreeMap<String, VrrpState>>,
    healthy: bool,
    at: SystemTime,
    node: &str,
) -> Vec<TagCall> {
    let mut by_tags: BTreeMap<&BTreeMap<String, VrrpState>, Vec<String>> = BTreeMap::new();
    for (resource, tags) in wanted {
        by_tags.entry(tags).or_default().push(resource.clone());
    }
    by_tags
        .into_iter()
        .map(|(tags, resources)| {
            let tags = tags
                .iter()
                .map(|(k, s)| (k.clone(), encode(*s, healthy, at, node)))
                .collect();
            (resources, tags)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    fn sent() -> Stamp {
        Stamp {
            mono: Mono::from_millis(1_000_000),
            wall: at("2026-12-04T19:00:00Z"),
        }
    }

    const FOR: Duration = Duration::from_secs(120);

    #[test]
    fn encode_then_parse_round_trips() {
        let v = encode(
            VrrpState::Master,
            true,
            at("2026-12-04T18:59:30Z"),
            "node-a",
        );
        assert_eq!(v, "master healthy 2026-12-04T18:59:30Z node-a");
        let t = parse(&v).unwrap();
        assert_eq!(
            (t.state, t.healthy, t.written, t.node.as_str()),
            (
                VrrpState::Master,
                true,
                at("2026-12-04T18:59:30Z"),
                "node-a"
            )
        );
        // Characters EC2 refuses in a value are left out of the name.
        let v = encode(
            VrrpState::Backup,
            false,
            at("2026-12-04T18:59:30Z"),
            "a#b(c)",
        );
        assert_eq!(v, "backup unhealthy 2026-12-04T18:59:30Z abc");
    }

    /// Each way a tag is read: one row per case, what it counts for.
    #[test]
    fn reading_table() {
        let m = |secs: u64| Mono::from_millis(1_000_000 + secs * 1000);
        let rows: [(&str, &str, Option<Mono>, &str); 10] = [
            (
                "fresh healthy master",
                "master healthy 2026-12-04T18:59:00Z a",
                Some(m(60)),
                "",
            ),
            (
                "written just now",
                "master healthy 2026-12-04T19:00:00Z a",
                Some(m(120)),
                "",
            ),
            (
                "a little ahead: counts from now",
                "master healthy 2026-12-04T19:00:03Z a",
                Some(m(120)),
                "",
            ),
            (
                "too far ahead",
                "master healthy 2026-12-04T19:00:10Z a",
                None,
                "dated 10 s ahead",
            ),
            (
                "stale",
                "master healthy 2026-12-04T18:58:00Z a",
                None,
                "stale: written 120 s ago",
            ),
            (
                "unhealthy master",
                "master unhealthy 2026-12-04T18:59:50Z a",
                None,
                "master unhealthy",
            ),
            (
                "backup",
                "backup healthy 2026-12-04T18:59:50Z a",
                None,
                "backup healthy",
            ),
            (
                "not a state",
                "boss healthy 2026-12-04T18:59:50Z a",
                None,
                "\"boss\" is not a VRRP state",
            ),
            (
                "no time",
                "master healthy",
                None,
                "no time after the health",
            ),
            (
                "bad time",
                "master healthy yesterday a",
                None,
                "not an RFC 3339 time",
            ),
        ];
        for (case, value, until, why) in rows {
            match read(value, sent(), FOR) {
                Reading::Master { until: u, node } => {
                    assert_eq!(Some(u), until, "{case}");
                    assert_eq!(node, "a", "{case}");
                }
                Reading::Nothing(w) => {
                    assert_eq!(until, None, "{case}: {w}");
                    assert!(w.contains(why), "{case}: {w:?} should say {why:?}");
                }
            }
        }
    }

    /// The end is rounded up to a whole second: the same for every view of
    /// one tag, and a view asked for at that end reads it as stale (so the
    /// take-back that waited for the end logs why).
    #[test]
    fn a_tags_end_is_a_whole_second_and_a_view_then_reads_it_stale() {
        let tag = "master healthy 2026-12-04T18:59:00Z a";
        let at_ms = |mono: u64, wall: &str| Stamp {
            mono: Mono::from_millis(mono),
            wall: humantime::parse_rfc3339_weak(wall).unwrap(),
        };
        let ends: Vec<_> = [
            at_ms(1_000_300, "2026-12-04 19:00:00.000"),
            at_ms(1_010_700, "2026-12-04 19:00:10.400"),
        ]
        .into_iter()
        .map(|s| match read(tag, s, FOR) {
            Reading::Master { until, .. } => until,
            other => panic!("{other:?}"),
        })
        .collect();
        assert_eq!(ends, [Mono::from_millis(1_061_000); 2]);
        let then = read(tag, at_ms(1_061_000, "2026-12-04 19:01:00.700"), FOR);
        assert!(
            matches!(&then, Reading::Nothing(w) if w.starts_with("stale")),
            "{then:?}"
        );
    }

    #[test]
    fn the_holder_tag_is_the_one_its_eni_wrote() {
        use crate::core::seen::{Address, PrivateIpSeen};
        let ip: std::net::IpAddr = "10.0.0.50".parse().unwrap();
        let tags: BTreeMap<String, String> = [
            (
                "eni-a/VI_1".to_owned(),
                "backup healthy 2026-12-04T18:59:00Z a".to_owned(),
            ),
            (
                "eni-b/VI_1".to_owned(),
                "master healthy 2026-12-04T18:59:00Z b".to_owned(),
            ),
            (
                "eni-c/VI_2".to_owned(),
                "master healthy 2026-12-04T18:59:00Z c".to_owned(),
            ),
        ]
        .into();
        let eip = VipTarget::EipOnEni {
            allocation_id: "eipalloc-1".into(),
            private_ip: ip,
        };
        let seen = Seen::Addresses(vec![Address {
            allocation_id: "eipalloc-1".into(),
            state_tags: tags.clone(),
            ..Address::default()
        }]);
        let on = |eni: &str| Holder::Elsewhere {
            network_interface_id: Some(eni.into()),
            private_ip: Some(ip),
        };
        assert_eq!(
            holder_tag(&eip, "VI_1", &seen, &on("eni-b")),
            Some("master healthy 2026-12-04T18:59:00Z b")
        );
        assert_eq!(
            holder_tag(&eip, "VI_1", &seen, &on("eni-c")),
            None,
            "another instance's"
        );
        assert_eq!(
            holder_tag(&eip, "VI_1", &seen, &on("eni-d")),
            None,
            "no tag"
        );
        assert_eq!(holder_tag(&eip, "VI_1", &seen, &Holder::Nowhere), None);
        assert_eq!(holder_tag(&eip, "VI_1", &seen, &Holder::Here), None);
        let pip = VipTarget::PrivateIp { private_ip: ip };
        let seen = Seen::PrivateIps(vec![PrivateIpSeen {
            ip,
            network_interface_ids: vec!["eni-b".into()],
            state_tags: tags,
        }]);
        assert!(holder_tag(&pip, "VI_1", &seen, &on("eni-b")).is_some());
        assert_eq!(
            holder_tag(&eip, "VI_1", &seen, &on("eni-b")),
            None,
            "another kind's view"
        );
    }

    #[test]
    fn what_is_written_and_where() {
        let me = Me {
            instance_id: "i-a".into(),
            eni: "eni-a".into(),
        };
        let ip: std::net::IpAddr = "10.0.0.50".parse().unwrap();
        let eip = VipTarget::EipOnEni {
            allocation_id: "eipalloc-1".into(),
            private_ip: ip,
        };
        let pip = VipTarget::PrivateIp { private_ip: ip };
        let pip2 = VipTarget::PrivateIp {
            private_ip: "10.0.0.51".parse().unwrap(),
        };
        let eip2 = VipTarget::EipOnEni {
            allocation_id: "eipalloc-2".into(),
            private_ip: ip,
        };
        let vips = [
            (&eip, "VI_1", VrrpState::Master),
            (&pip, "VI_1", VrrpState::Master),
            (&pip2, "VI_2", VrrpState::Backup),
            (&eip2, "VI_1", VrrpState::Master),
        ];
        let w = wanted(vips, &me);
        let at = humantime::parse_rfc3339("2026-12-04T19:00:00Z").unwrap();
        let m = "master healthy 2026-12-04T19:00:00Z a".to_owned();
        let b = "backup healthy 2026-12-04T19:00:00Z a".to_owned();
        assert_eq!(
            calls(&w, true, at, "a"),
            vec![
                (
                    vec!["eipalloc-1".to_owned(), "eipalloc-2".to_owned()],
                    vec![("vip-watchdog:eni-a/VI_1".to_owned(), m.clone())]
                ),
                (
                    vec!["eni-a".to_owned()],
                    vec![
                        ("vip-watchdog:eni-a/VI_1".to_owned(), m),
                        ("vip-watchdog:eni-a/VI_2".to_owned(), b)
                    ]
                ),
            ]
        );
        assert_eq!(key("eni-a", "VI 1#"), "vip-watchdog:eni-a/VI1");
        assert_eq!(suffix_of_key("vip-watchdog:eni-a/VI_1"), Some("eni-a/VI_1"));
        assert_eq!(suffix_of_key("vip-watchdog:"), None);
        assert_eq!(suffix_of_key("Name"), None);
    }
}
