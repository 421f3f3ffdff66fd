//! The [[vip]] tables: kind and target, a managed private IP, and each VIP
//! against the instances and the cloud.

use super::*;
use crate::core::handover::Handover;

/// A [[vip]] key: its name, where it is written (if it is), the kinds it
/// belongs to, and what it is, for the error under another kind.
type ForeignKey<'a> = (
    &'a str,
    Option<std::ops::Range<usize>>,
    &'a [VipKind],
    &'a str,
);

impl Validator<'_> {
    /// What the VIP is in the cloud, from its kind's keys; `None` after an
    /// error (each named).
    fn target(&mut self, v: &RawVip, table: &Spanned<()>) -> Option<VipTarget> {
        let kind = *v.kind.get_ref();
        // Each kind's own keys are mistakes under another kind.
        let foreign: [ForeignKey; 5] = [
            (
                "vip.allocation_id",
                v.allocation_id.as_ref().map(|s| s.span()),
                &[VipKind::Eip],
                "an EIP's key",
            ),
            (
                "vip.associate",
                v.associate.as_ref().map(|s| s.span()),
                &[VipKind::Eip],
                "an EIP's key",
            ),
            (
                "vip.private_ip",
                v.private_ip.as_ref().map(|s| s.span()),
                &[VipKind::Eip, VipKind::PrivateIp],
                "an EIP's key",
            ),
            (
                "vip.destination",
                v.destination.as_ref().map(|s| s.span()),
                &[VipKind::Route],
                "a route VIP's destination",
            ),
            (
                "vip.route_tables",
                v.route_tables.as_ref().map(|s| s.span()),
                &[VipKind::Route],
                "a route VIP's route tables",
            ),
        ];
        let kind_name = match kind {
            VipKind::Eip => "eip",
            VipKind::PrivateIp => "private_ip",
            VipKind::Route => "route",
        };
        for (key, span, owners, what) in foreign {
            if let Some(span) = span
                && !owners.contains(&kind)
            {
                self.err(
                    key,
                    &Spanned::new(span, ()),
                    format!("is not a key of kind = {kind_name:?} ({what})"),
                );
            }
        }
        match kind {
            VipKind::Eip => {
                let Some(alloc) = &v.allocation_id else {
                    self.err("vip.allocation_id", table, "missing: kind = \"eip\" needs the Elastic IP's allocation ID (eipalloc-...)");
                    return None;
                };
                if !alloc.get_ref().starts_with("eipalloc-") {
                    self.err(
                        "vip.allocation_id",
                        alloc,
                        "must be an allocation ID (eipalloc-...)",
                    );
                    return None;
                }
                let allocation_id = alloc.get_ref().clone();
                match (v.associate.as_ref().map(|a| *a.get_ref()), &v.private_ip) {
                    (None | Some(RawAssociate::Eni), Some(ip)) => Some(VipTarget::EipOnEni {
                        allocation_id,
                        private_ip: *ip.get_ref(),
                    }),
                    (None | Some(RawAssociate::Eni), None) => {
                        self.err("vip.private_ip", table, "missing: an EIP on the ENI needs the secondary private IP it is associated with (or associate = \"instance\" for a single-ENI instance)");
                        None
                    }
                    (Some(RawAssociate::Instance), Some(ip)) => {
                        self.err("vip.private_ip", ip, "not used with associate = \"instance\": EC2 associates the EIP with the instance's primary private IP");
                        None
                    }
                    (Some(RawAssociate::Instance), None) => {
                        Some(VipTarget::EipOnInstance { allocation_id })
                    }
                }
            }
            VipKind::PrivateIp => {
                let Some(ip) = &v.private_ip else {
                    self.err("vip.private_ip", table, "missing: kind = \"private_ip\" needs the secondary private IP that follows the MASTER (an address of the nodes' subnet)");
                    return None;
                };
                if !ip.get_ref().is_ipv4() {
                    self.err(
                        "vip.private_ip",
                        ip,
                        "must be an IPv4 address: EC2 moves IPv6 addresses with other calls",
                    );
                    return None;
                }
                Some(VipTarget::PrivateIp {
                    private_ip: *ip.get_ref(),
                })
            }
            VipKind::Route => {
                let Some(d) = &v.destination else {
                    self.err("vip.destination", table, "missing: kind = \"route\" needs the destination CIDR whose route follows the MASTER (e.g. \"192.168.100.10/32\")");
                    return None;
                };
                let Some((destination, host)) = crate::core::target::normalize_cidr(d.get_ref())
                else {
                    self.err(
                        "vip.destination",
                        d,
                        format!(
                            "{:?} is not a CIDR block (address/prefix, e.g. \"192.168.100.10/32\")",
                            d.get_ref()
                        ),
                    );
                    return None;
                };
                let Some(tables) = &v.route_tables else {
                    self.err("vip.route_tables", table, "missing: kind = \"route\" needs the route tables (rtb-...) whose route must target this node");
                    return None;
                };
                let route_tables = tables.get_ref().clone();
                if route_tables.is_empty() {
                    self.err(
                        "vip.route_tables",
                        tables,
                        "must list at least one route table (rtb-...)",
                    );
                    return None;
                }
                if let Some(bad) = route_tables.iter().find(|t| !t.starts_with("rtb-")) {
                    self.err(
                        "vip.route_tables",
                        tables,
                        format!("{bad:?} is not a route table ID (rtb-...)"),
                    );
                    return None;
                }
                let mut seen = std::collections::BTreeSet::new();
                if let Some(dup) = route_tables.iter().find(|t| !seen.insert(*t)) {
                    self.err(
                        "vip.route_tables",
                        tables,
                        format!("{dup:?} is listed twice"),
                    );
                    return None;
                }
                Some(VipTarget::Route {
                    destination,
                    host,
                    route_tables,
                })
            }
        }
    }

    /// `manage_address` and its keys; `None` when off (or after an error,
    /// each named).
    fn managed_address(
        &mut self,
        v: &RawVip,
        target: &VipTarget,
        table: &Spanned<()>,
    ) -> Option<crate::config::ManagedAddress> {
        let hold = v.address_hold.get_ref().0;
        if hold < Duration::from_secs(1) {
            self.err(
                "vip.address_hold",
                &v.address_hold,
                "must be at least 1s: the old MASTER keeps serving on the private IP until the cloud shows the VIP elsewhere, and a describe takes about that",
            );
        }
        let Some(manage) = v.manage_address.as_ref().filter(|m| *m.get_ref()) else {
            if let Some(i) = &v.interface {
                self.err(
                    "vip.interface",
                    i,
                    "is used only with manage_address = true (Keepalived's virtual_ipaddress names the interface otherwise)",
                );
            }
            return None;
        };
        let Some(ip) = target.host_address() else {
            self.err(
                "vip.manage_address",
                manage,
                "needs a private IP this host carries: kind = \"eip\" with private_ip, or kind = \"route\" with a single-address destination (/32, /128)",
            );
            return None;
        };
        let Some(interface) = &v.interface else {
            self.err(
                "vip.interface",
                table,
                "missing: manage_address = true needs the interface to add the private IP to (e.g. \"eth0\")",
            );
            return None;
        };
        let name = interface.get_ref();
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
            self.err(
                "vip.interface",
                interface,
                format!("{name:?} is not an interface name (1 to 15 characters, no '/' or space)"),
            );
            return None;
        }
        Some(crate::config::ManagedAddress {
            ip,
            interface: name.clone(),
            hold,
        })
    }

    /// `handover` and `fence_wait`: break before make needs the address in
    /// this watchdog's hands and the peer channel.
    fn handover(
        &mut self,
        v: &RawVip,
        address: Option<&crate::config::ManagedAddress>,
        peer: Option<&PeerConfig>,
    ) -> Handover {
        let bbm = v
            .handover
            .as_ref()
            .filter(|h| *h.get_ref() == RawHandover::BreakBeforeMake);
        let Some(h) = bbm else {
            if let Some(f) = &v.fence_wait {
                self.err(
                    "vip.fence_wait",
                    f,
                    "is used only with handover = \"break_before_make\"",
                );
            }
            return Handover::MakeBeforeBreak;
        };
        if address.is_none() {
            self.err(
                "vip.handover",
                h,
                "break_before_make needs manage_address = true (and the private IP out of Keepalived's virtual_ipaddress): Keepalived adds its addresses on the new MASTER before anything can know the old one let go",
            );
        }
        let fence_wait = v
            .fence_wait
            .as_ref()
            .map_or(DEFAULT_FENCE_WAIT, |f| f.get_ref().0);
        match peer {
            None => self.err(
                "vip.handover",
                h,
                "break_before_make needs a [peer] table: the old holder's watchdog reports that it let go over the peer channel (without one, every failover would wait fence_wait)",
            ),
            Some(p) if fence_wait < Duration::from_secs(5) || fence_wait <= p.max_age => {
                // The default is this short only next to a longer max_age.
                let at = v.fence_wait.as_ref().map_or(h.span(), |f| f.span());
                self.err(
                    "vip.fence_wait",
                    &Spanned::new(at, ()),
                    format!(
                        "must be at least 5s and longer than peer.max_age ({}): the peer is taken as down only after its reports stopped being fresh",
                        humantime::format_duration(p.max_age)
                    ),
                );
            }
            Some(_) => {}
        }
        Handover::BreakBeforeMake { fence_wait }
    }

    pub(super) fn vips(
        &mut self,
        raw: Vec<Spanned<RawVip>>,
        keepalived: &KeepalivedConfig,
        cloud: Option<&CloudConfig>,
        peer: Option<&PeerConfig>,
    ) -> Vec<VipConfig> {
        let mut out: Vec<VipConfig> = vec![];
        for spanned in raw {
            let table = Spanned::new(spanned.span(), ());
            let v = spanned.into_inner();
            if cloud.is_none() {
                self.err("vip", &table, "a [[vip]] needs a [cloud] table");
            }
            let target = self.target(&v, &table);
            if !keepalived
                .instances
                .iter()
                .any(|i| &i.name == v.vrrp_instance.get_ref())
            {
                self.err(
                    "vip.vrrp_instance",
                    &v.vrrp_instance,
                    format!(
                        "{:?} is not a [[keepalived.instance]]: list it there so its state is tracked from the start",
                        v.vrrp_instance.get_ref()
                    ),
                );
            }
            let min_master_age = v.min_master_age.get_ref().0;
            if min_master_age < Duration::from_secs(1) {
                self.err(
                    "vip.min_master_age",
                    &v.min_master_age,
                    "must be at least 1s: a node that is MASTER for under a second at boot must never claim",
                );
            }
            let (base, max) = (v.backoff_base.get_ref().0, v.backoff_max.get_ref().0);
            if base.is_zero() || max < base {
                self.err(
                    "vip.backoff_max",
                    &v.backoff_max,
                    "must be at least vip.backoff_base, which must be more than 0",
                );
            }
            let Some(target) = target else { continue };
            let address = self.managed_address(&v, &target, &table);
            let handover = self.handover(&v, address.as_ref(), peer);
            let name = match v.name {
                Some(n) => {
                    self.label("vip.name", &n);
                    n.into_inner()
                }
                None => match &target {
                    VipTarget::Route { destination, .. } => destination.clone(),
                    VipTarget::PrivateIp { private_ip } => private_ip.to_string(),
                    t => t.allocation_id().unwrap_or_default().to_owned(),
                },
            };
            let same = |o: &VipConfig| {
                o.name == name
                    || (o.target.allocation_id().is_some()
                        && o.target.allocation_id() == target.allocation_id())
                    || matches!((&o.target, &target), (
                        VipTarget::Route { destination: a, .. },
                        VipTarget::Route { destination: b, .. },
                    ) if a == b)
                    // One private IP moved by two VIPs would be moved twice.
                    || matches!((&o.target, &target), (
                        VipTarget::EipOnEni { private_ip: a, .. } | VipTarget::PrivateIp { private_ip: a },
                        VipTarget::EipOnEni { private_ip: b, .. } | VipTarget::PrivateIp { private_ip: b },
                    ) if a == b)
            };
            if out.iter().any(same) {
                self.err("vip", &table, format!("VIP {name:?} is listed twice"));
            }
            out.push(VipConfig {
                name,
                target,
                vrrp_instance: v.vrrp_instance.into_inner(),
                policy: crate::core::decide::VipPolicy {
                    mode: match v.mode {
                        RawMode::Heal => crate::core::words::Mode::Heal,
                        RawMode::Own => crate::core::words::Mode::Own,
                    },
                    grace: v.grace.get_ref().0,
                    min_master_age,
                    max_claims: v.max_claims.get(),
                    claim_window: v.claim_window.get_ref().0,
                    backoff_base: base,
                    backoff_max: max,
                    dry_run: cloud.is_some_and(|c| c.dry_run),
                },
                address,
                handover,
            });
        }
        out
    }
}
