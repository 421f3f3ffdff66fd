//! `check-config --host`: this host as the watchdog will find it, not only
//! the files. Each check is one line, `ok` or `PROBLEM` with what to do:
//!
//! H1. Keepalived's processes: the pid file names a live Keepalived, and its
//!     VRRP process is found (what the process watch will see).
//! H2. The running Keepalived reads `keepalived.config_file` (its `-f`), and
//!     the notify FIFO its config names is `keepalived.fifo`.
//! H3. The capabilities each enabled feature needs are held by this process
//!     (run it as the unit runs the service to learn what the service
//!     holds): CAP_KILL for the JSON dump of a Keepalived of another user,
//!     CAP_NET_RAW for `release_on_crash`, CAP_NET_ADMIN for
//!     `manage_address`.
//! H4. The JSON dump can be asked for and read now, and the service user
//!     can read the file Keepalived writes (its mode and owner).
//! H5. With route VIPs, `net.ipv4.ip_forward` is on: as MASTER this node
//!     is their next hop and forwards their traffic (the source/destination
//!     check, the other half, is EC2's: `check-cloud`).
//!
//! The verdicts are pure (`capabilities_needed`, `readable_by`), the looks
//! are here; nothing is changed on the host but the dump Keepalived
//! writes when asked.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::Config;
use crate::keepalived::armed;
use crate::keepalived::process::{Observation, command_line, observe};

/// The capabilities this module knows, as bit numbers (linux/capability.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Kill = 5,
    NetAdmin = 12,
    NetRaw = 13,
}

impl Cap {
    pub fn name(self) -> &'static str {
        match self {
            Cap::Kill => "CAP_KILL",
            Cap::NetAdmin => "CAP_NET_ADMIN",
            Cap::NetRaw => "CAP_NET_RAW",
        }
    }
}

/// Rule H3: each capability the enabled features need, with the feature.
/// `same_user`: Keepalived runs as this process's user (no CAP_KILL needed
/// to signal it).
pub fn capabilities_needed(config: &Config, same_user: bool) -> Vec<(Cap, &'static str)> {
    let mut needed = vec![];
    if config.keepalived.json_dump.is_some() && !same_user {
        needed.push((
            Cap::Kill,
            "keepalived.json_dump (signalling Keepalived for its dump)",
        ));
    }
    if config.keepalived.release_on_crash.is_some() {
        needed.push((
            Cap::NetRaw,
            "keepalived.release_on_crash (the priority-0 advert)",
        ));
    }
    if config.vips.iter().any(|v| v.address.is_some()) {
        needed.push((
            Cap::NetAdmin,
            "manage_address (adding and removing the private IP)",
        ));
    }
    needed
}

/// The effective capability set of `status` (the text of /proc/PID/status).
pub fn effective(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// Rule H4: whether a user (`uid`, in groups `gids`) can read a file of
/// `mode` owned by `owner`:`group`. Root reads anything.
pub fn readable_by(uid: u32, gids: &[u32], mode: u32, owner: u32, group: u32) -> bool {
    uid == 0
        || (uid == owner && mode & 0o400 != 0)
        || (uid != owner && gids.contains(&group) && mode & 0o040 != 0)
        || (uid != owner && !gids.contains(&group) && mode & 0o004 != 0)
}

/// The lines of the host check, and whether every check passed.
pub async fn check(config: &Config, service_user: &str) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    let mut line = |good: bool, text: String| {
        ok &= good;
        let tag = if good { "ok" } else { "PROBLEM" };
        let _ = writeln!(out, "host: {tag}: {text}");
    };
    let k = &config.keepalived;
    // Rule H1.
    let observed = observe(k, None);
    let main = match &observed {
        Observation::Running { main, vrrp } => {
            line(
                true,
                format!(
                    "Keepalived runs: main pid {} (pid file {}), VRRP process {}",
                    main.pid,
                    k.pid_file.display(),
                    vrrp.as_ref().map_or(
                        "not looked for (vrrp_pid_file = \"\")".into(),
                        |v| format!("pid {}", v.pid)
                    )
                ),
            );
            Some(main.clone())
        }
        Observation::Gone { reason, .. } => {
            line(false, format!("Keepalived is not running: {reason}"));
            None
        }
        Observation::Unknown { reason } => {
            line(
                false,
                format!("Keepalived's processes cannot be looked at: {reason}"),
            );
            None
        }
    };
    // Rule H2.
    let mut keepalived_uid = None;
    if let Some(main) = &main {
        keepalived_uid = std::fs::metadata(format!("/proc/{}", main.pid))
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m));
        match command_line(main.pid) {
            Ok((words, cwd)) => {
                let running = armed::config_file_of(&words);
                if let Some(conf) = &k.release_on_crash {
                    line(
                        armed::same_file(&running, cwd.as_deref(), conf),
                        format!(
                            "Keepalived reads {}; keepalived.config_file is {}",
                            running.display(),
                            conf.display()
                        ),
                    );
                }
                match crate::keepalived::conf::read(&running) {
                    Ok(items) => {
                        let named = crate::keepalived::conf::Keepalived::from_items(&items).fifo;
                        match named {
                            Some((fifo, at)) => line(
                                fifo == k.fifo,
                                format!(
                                    "the running Keepalived's notify FIFO is {} ({at}); keepalived.fifo is {}",
                                    fifo.display(),
                                    k.fifo.display()
                                ),
                            ),
                            None => line(
                                false,
                                format!(
                                    "{} names no vrrp_notify_fifo: Keepalived writes no events for the watchdog",
                                    running.display()
                                ),
                            ),
                        }
                    }
                    Err(e) => line(false, format!("the running Keepalived's config: {e}")),
                }
            }
            Err(e) => line(false, format!("Keepalived's command line: {e}")),
        }
    }
    // Rule H3.
    let me = nix::unistd::getuid().as_raw();
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| effective(&s));
    let same_user = keepalived_uid == Some(me);
    for (cap, feature) in capabilities_needed(config, same_user) {
        let held = caps.is_some_and(|c| c & (1 << cap as u64) != 0);
        line(
            held,
            format!(
                "{} {} for {feature}{}",
                cap.name(),
                if held { "held" } else { "NOT held" },
                if held {
                    ""
                } else {
                    " (the packaged unit grants it; run this check as the service runs)"
                }
            ),
        );
    }
    // Rule H4.
    if let (Some(dump), Some(main)) = (&k.json_dump, &main) {
        match crate::keepalived::startup::request_json_dump(dump, main).await {
            Ok(d) => {
                let names: Vec<String> = d
                    .iter()
                    .map(|i| format!("{} {}", i.name, i.state.as_str()))
                    .collect();
                line(
                    true,
                    format!(
                        "the JSON dump {} answers: {}",
                        dump.file.display(),
                        names.join(", ")
                    ),
                );
            }
            Err(e) => line(false, format!("the JSON dump: {e}")),
        }
        readable_line(&dump.file, service_user, &mut line);
    }
    // Rule H5.
    let routed = config.route_vips();
    if !routed.is_empty() {
        let path = Path::new(crate::host::forwarding::IP_FORWARD);
        match crate::host::forwarding::read(path) {
            Ok(on) => line(
                on,
                format!(
                    "net.ipv4.ip_forward is {} for the route VIPs ({}){}",
                    if on { "on" } else { "OFF" },
                    routed.join(", "),
                    if on {
                        ""
                    } else {
                        ": as MASTER this node would drop their traffic; sysctl -w net.ipv4.ip_forward=1, and net.ipv4.ip_forward = 1 in /etc/sysctl.d/"
                    }
                ),
            ),
            Err(e) => line(
                false,
                format!("net.ipv4.ip_forward for the route VIPs: {e}"),
            ),
        }
    }
    (out, ok)
}

/// Rule H4's second half: whether `user` can read `file`.
fn readable_line(file: &Path, user: &str, line: &mut impl FnMut(bool, String)) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(Some(u)) = nix::unistd::User::from_name(user) else {
        line(
            true,
            format!("no user {user:?} on this host: the dump's permissions not checked for it"),
        );
        return;
    };
    let Ok(m) = std::fs::metadata(file) else {
        return;
    };
    let mut gids = vec![u.gid.as_raw()];
    if let Ok(cname) = std::ffi::CString::new(user)
        && let Ok(groups) = nix::unistd::getgrouplist(&cname, u.gid)
    {
        gids.extend(groups.iter().map(|g| g.as_raw()));
    }
    let can = readable_by(u.uid.as_raw(), &gids, m.mode(), m.uid(), m.gid());
    line(
        can,
        format!(
            "{} (mode {:04o}) {} by the service user {user}{}",
            file.display(),
            m.mode() & 0o7777,
            if can {
                "is readable"
            } else {
                "is NOT readable"
            },
            if can {
                ""
            } else {
                ": add `umask 0133` to keepalived.conf's global_defs"
            }
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_h4_who_reads_a_file() {
        let rows = [
            // (uid, gids, mode, owner, group, readable)
            (0, vec![0], 0o600, 1, 1, true),
            (1000, vec![1000], 0o600, 0, 0, false),
            (1000, vec![1000], 0o644, 0, 0, true),
            (1000, vec![1000, 50], 0o640, 0, 50, true),
            (1000, vec![1000], 0o640, 0, 50, false),
            (1000, vec![1000], 0o400, 1000, 1000, true),
            (1000, vec![1000], 0o044, 1000, 1000, false),
        ];
        for (uid, gids, mode, owner, group, want) in rows {
            assert_eq!(
                readable_by(uid, &gids, mode, owner, group),
                want,
                "uid {uid} gids {gids:?} mode {mode:o} owner {owner}:{group}"
            );
        }
    }

    #[test]
    fn rule_h3_effective_capabilities_are_read() {
        let status = "Name:\tvip-watchdog\nCapInh:\t0000000000000000\nCapEff:\t0000000000002020\n";
        let caps = effective(status).unwrap();
        assert!(caps & (1 << Cap::Kill as u64) != 0);
        assert!(caps & (1 << Cap::NetRaw as u64) != 0);
        assert!(caps & (1 << Cap::NetAdmin as u64) == 0);
        assert_eq!(effective("Name:\tx\n"), None);
    }
}
