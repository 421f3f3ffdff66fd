//! `check-config --keepalived-config`: keepalived.conf read against the
//! watchdog's config (instances, addresses, what a crash would release).

use std::fmt::Write as _;
use std::path::Path;

use crate::config::Config;
use crate::core::target::VipTarget;
use crate::keepalived::conf::{Item, Keepalived, read};

/// Each way keepalived.conf and the watchdog's config disagree, one line
/// each; empty when they agree. `notes` are not mistakes (an instance the
/// watchdog is not told of).
pub fn cross_check(config: &Config, k: &Keepalived) -> (Vec<String>, Vec<String>) {
    let mut problems = vec![];
    let mut notes = vec![];
    let fifo = &config.keepalived.fifo;
    match &k.fifo {
        None => problems.push(format!(
            "no vrrp_notify_fifo (or notify_fifo) in global_defs: Keepalived writes no events for the watchdog; add `vrrp_notify_fifo {}`",
            fifo.display()
        )),
        Some((p, at)) if p != fifo => problems.push(format!(
            "{at}: the notify FIFO is {}, but the watchdog reads {} (keepalived.fifo): they must be the same file",
            p.display(),
            fifo.display()
        )),
        Some(_) => {}
    }
    let defined = || k.instances.keys().cloned().collect::<Vec<_>>().join(", ");
    let mut named: Vec<(String, String)> = config
        .keepalived
        .instances
        .iter()
        .map(|i| (i.name.clone(), "[[keepalived.instance]]".to_owned()))
        .collect();
    for v in &config.vips {
        if !named.iter().any(|(n, _)| *n == v.vrrp_instance) {
            named.push((v.vrrp_instance.clone(), format!("vip {:?}", v.name)));
        }
    }
    for (name, by) in &named {
        if !k.instances.contains_key(name) {
            problems.push(format!(
                "vrrp_instance {name:?} (named by {by}) is not defined in keepalived.conf (defined: {})",
                defined()
            ));
        }
    }
    for v in &config.vips {
        let Some(inst) = k.instances.get(&v.vrrp_instance) else {
            continue;
        };
        let at = inst
            .at
            .as_ref()
            .map_or(String::new(), |a| format!(" ({a})"));
        if let Some(m) = &v.address {
            if inst.addresses.contains(&m.ip) {
                problems.push(format!(
                    "vip {:?}: private IP {} is in vrrp_instance {}'s virtual_ipaddress{at}, but manage_address = true: Keepalived would remove it the moment it stops, before the VIP is elsewhere; take it out of virtual_ipaddress",
                    v.name, m.ip, v.vrrp_instance
                ));
            }
            continue;
        }
        match &v.target {
            VipTarget::EipOnEni { private_ip, .. } | VipTarget::PrivateIp { private_ip }
                if !inst.addresses.contains(private_ip) =>
            {
                problems.push(format!(
                    "vip {:?}: private IP {private_ip} is not in vrrp_instance {}'s virtual_ipaddress{at}: Keepalived would not put it on the MASTER, and the watchdog never claims without it",
                    v.name, v.vrrp_instance
                ))
            }
            VipTarget::Route {
                destination, host, ..
            } => {
                let routed = inst.routes.contains(destination);
                let carried = host.is_some_and(|h| inst.addresses.contains(&h));
                if !routed && !carried {
                    problems.push(format!(
                        "vip {:?}: route destination {destination} is in neither vrrp_instance {}'s virtual_ipaddress nor its virtual_routes{at}: the MASTER would not serve it",
                        v.name, v.vrrp_instance
                    ));
                }
            }
            _ => {}
        }
    }
    // The peer's reports against Keepalived's master-down time: a report
    // kept for longer than the peer takes to fail over outlives the state
    // it reports.
    if let Some(peer) = &config.peer {
        for (name, _) in &named {
            let Some(inst) = k.instances.get(name) else {
                continue;
            };
            let advert = inst.advert_int.unwrap_or(1.0);
            let priority = f64::from(inst.priority.unwrap_or(100));
            let master_down = 3.0 * advert + (256.0 - priority) / 256.0 * advert;
            if peer.max_age.as_secs_f64() > master_down {
                problems.push(format!(
                    "peer.max_age {} is longer than vrrp_instance {name}'s master-down time ({master_down:.2} s: 3 x advert_int {advert} s + skew): a peer report would outlive the state it reports; set peer.max_age to at most {master_down:.2}s",
                    humantime::format_duration(peer.max_age)
                ));
            }
        }
    }
    // `vip-watchdog switchover` needs every named instance to track the
    // drain file with weight 0.
    let drain = &config.keepalived.drain_file;
    let drains: Vec<&String> = k
        .track_files
        .iter()
        .filter(|(_, (f, w))| f == drain && *w == 0)
        .map(|(n, _)| n)
        .collect();
    for (name, _) in &named {
        let Some(inst) = k.instances.get(name) else {
            continue;
        };
        if !inst.track_files.iter().any(|t| drains.contains(&t)) {
            notes.push(format!(
                "vrrp_instance {name:?} does not track {} (vrrp_track_file with weight 0): `vip-watchdog switchover` cannot drain it (docs/operations.md has the lines)",
                drain.display()
            ));
        }
    }
    for name in k.instances.keys() {
        if !named.iter().any(|(n, _)| n == name) {
            notes.push(format!(
                "vrrp_instance {name:?} is not in [[keepalived.instance]]: the watchdog reports it once Keepalived names it, and no [[vip]] follows it"
            ));
        }
    }
    (problems, notes)
}

/// With `release_on_crash`, what a crash while MASTER of each instance the
/// config names would send, or why nothing could be.
fn release_notes(config: &Config, path: &Path, items: &[Item]) -> Vec<String> {
    let Some(conf) = &config.keepalived.release_on_crash else {
        return vec![];
    };
    let mut notes = vec![];
    if conf != path {
        notes.push(format!(
            "release_on_crash reads {} (keepalived.config_file); checked here: {}",
            conf.display(),
            path.display()
        ));
    }
    if let Some(why) = crate::keepalived::armed::unreproducible(items) {
        notes.push(format!(
            "release_on_crash cannot release any instance ({why}): a crash while MASTER fails over on Keepalived's own detection"
        ));
        return notes;
    }
    for name in config.vrrp_instances() {
        notes.push(
            match crate::keepalived::vrrp::Advert::from_items(items, &name) {
                Ok(a) => format!(
                    "release_on_crash: if Keepalived crashes while MASTER of {name:?}, the watchdog sends its priority-0 advert: {} (once checked against the running Keepalived's -f and JSON dump)",
                    a.describe()
                ),
                Err(e) => format!(
                    "release_on_crash cannot release {name:?} ({e}): a crash while MASTER fails over on Keepalived's own detection"
                ),
            },
        );
    }
    notes
}

/// `check-config`'s report on keepalived.conf at `path`: the lines to
/// print, and whether they agree.
pub fn report(config: &Config, path: &Path) -> (String, bool) {
    let mut out = String::new();
    match read(path) {
        Err(e) => {
            let _ = writeln!(out, "keepalived.conf: {e}");
            (out, false)
        }
        Ok(items) => {
            let k = Keepalived::from_items(&items);
            let (problems, mut notes) = cross_check(config, &k);
            notes.extend(release_notes(config, path, &items));
            for p in &problems {
                let _ = writeln!(out, "keepalived.conf: MISMATCH: {p}");
            }
            for n in &notes {
                let _ = writeln!(out, "keepalived.conf: note: {n}");
            }
            let _ = writeln!(
                out,
                "{}: {}",
                path.display(),
                if problems.is_empty() {
                    "agrees with the watchdog's config"
                } else {
                    "DISAGREES with the watchdog's config"
                }
            );
            (out, problems.is_empty())
        }
    }
}
