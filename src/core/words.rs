//! The shared vocabulary: the states, sources, reasons and places every
//! other module speaks of. A leaf: it imports nothing of this crate.
//!
//! `Holder` (where the cloud says an address is, from this node's point of
//! view) is built from the fields of a cloud answer, compared on (ENI,
//! private IP), never on the instance.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

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

/// A VRRP instance's state as far as the watchdog knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VrrpState {
    /// No source has reported it (yet), or the report could not be trusted.
    Unknown,
    Backup,
    Master,
    Fault,
    /// Keepalived stopped the instance, or Keepalived itself is gone.
    Stop,
    /// The instance was removed from Keepalived's configuration on reload.
    Deleted,
}

impl VrrpState {
    pub const ALL: [VrrpState; 6] = [
        Self::Unknown,
        Self::Backup,
        Self::Master,
        Self::Fault,
        Self::Stop,
        Self::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Backup => "backup",
            Self::Master => "master",
            Self::Fault => "fault",
            Self::Stop => "stop",
            Self::Deleted => "deleted",
        }
    }
}

impl fmt::Display for VrrpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a state came from: the evidence behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Nothing has reported this instance.
    None,
    /// A line Keepalived wrote to the notify FIFO after the watchdog started.
    Fifo,
    /// Keepalived's JSON state dump, read at start-up.
    JsonDump,
    /// The instance's virtual addresses present on (or absent from) the host.
    Addresses,
    /// The watchdog saw Keepalived's process end.
    ProcessWatch,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Fifo => "fifo",
            Self::JsonDump => "json_dump",
            Self::Addresses => "addresses",
            Self::ProcessWatch => "process_watch",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not enough probe results yet to reach `rise` or `fall`.
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A notify script moves the VIP; the watchdog heals after `grace`.
    Heal,
    /// The watchdog moves the VIP; no notify script needed.
    Own,
}

impl Mode {
    /// As written in the config, and the `mode` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Heal => "heal",
            Mode::Own => "own",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealReason {
    /// Not associated anywhere: the notify script did not run or failed.
    Missed,
    /// On another ENI and never here during this mastership: the notify
    /// script failed, ran on the wrong node, or raced.
    Elsewhere,
    /// It was here during this mastership and something moved it away.
    Stolen,
    /// On this ENI but on another private IP.
    Drifted,
}

impl HealReason {
    pub const ALL: [HealReason; 4] = [Self::Missed, Self::Elsewhere, Self::Stolen, Self::Drifted];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missed => "missed",
            Self::Elsewhere => "elsewhere",
            Self::Stolen => "stolen",
            Self::Drifted => "drifted",
        }
    }

    /// In words, for the logs and the status.
    pub fn words(self) -> &'static str {
        match self {
            Self::Missed => "not associated (notify missed or failed)",
            Self::Elsewhere => "on another ENI (notify failed or raced)",
            Self::Stolen => "taken away during this mastership",
            Self::Drifted => "on this ENI but another private IP",
        }
    }
}

/// Who moved the VIP here, for the failover-latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mover {
    /// A claim of this watchdog's, sent in this mastership before the view.
    Watchdog,
    /// Anything else: the notify script, normally.
    NotifyScript,
}

impl Mover {
    pub const ALL: [Mover; 2] = [Self::Watchdog, Self::NotifyScript];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Watchdog => "watchdog",
            Self::NotifyScript => "notify_script",
        }
    }
}

/// How a claim ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimOutcome {
    /// The cloud showed the VIP here.
    Converged,
    /// A call failed, or the cloud did not show it in time.
    Failed,
    /// Events overtook it (the verdict no longer stood): no further call.
    Dropped,
}

/// Where one route table's route for a route VIP points, from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteState {
    /// Active, targeting this node's ENI.
    Here,
    /// Active, targeting another ENI.
    Elsewhere,
    /// Targeting an instance (not an ENI): EC2 resolves it to the
    /// instance's primary ENI; fails with several ENIs. Not here.
    Instance,
    /// `blackhole`: the target ENI or instance is gone. Traffic is dropped.
    Blackhole,
    /// Targeting something else (a gateway, a peering connection).
    Other,
    /// No route for the destination in this table.
    Missing,
}

impl RouteState {
    pub const ALL: [RouteState; 6] = [
        Self::Here,
        Self::Elsewhere,
        Self::Instance,
        Self::Blackhole,
        Self::Other,
        Self::Missing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Here => "here",
            Self::Elsewhere => "elsewhere",
            Self::Instance => "instance",
            Self::Blackhole => "blackhole",
            Self::Other => "other",
            Self::Missing => "missing",
        }
    }
}

/// How one run of a notify script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Exit status 0.
    Succeeded,
    /// A non-zero exit status, or killed by a signal it was not sent.
    Failed,
    /// Still running at the timeout: its process group was killed.
    TimedOut,
    /// It could not be started (not found, not executable).
    NotStarted,
    /// Not run: the local watchdog said the peer is a healthy MASTER that
    /// the cloud shows holding the VIP (running it would steal the VIP).
    Skipped,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Self::Succeeded,
        Self::Failed,
        Self::TimedOut,
        Self::NotStarted,
        Self::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::NotStarted => "not_started",
            Self::Skipped => "skipped",
        }
    }

    /// Whether the script ran and may not have moved the VIP: the watchdog
    /// heals without waiting for the rest of `grace`. A skipped run did
    /// not fail: nothing was tried.
    pub fn failed(self) -> bool {
        matches!(self, Self::Failed | Self::TimedOut | Self::NotStarted)
    }
}

/// What a VRRP line says about an instance or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineState {
    Master,
    Backup,
    Fault,
    Stop,
    Deleted,
    /// A MASTER heard an advert with a lower priority: another node also
    /// thinks it is MASTER (a split-brain hint, not a guarantee).
    MasterRxLowerPri,
    /// A MASTER's effective priority changed (with `notify_priority_changes`).
    MasterPriority,
    /// A BACKUP's effective priority changed.
    BackupPriority,
}

impl LineState {
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "MASTER" => Self::Master,
            "BACKUP" => Self::Backup,
            "FAULT" => Self::Fault,
            "STOP" => Self::Stop,
            "DELETED" => Self::Deleted,
            "MASTER_RX_LOWER_PRI" => Self::MasterRxLowerPri,
            "MASTER_PRIORITY" => Self::MasterPriority,
            "BACKUP_PRIORITY" => Self::BackupPriority,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "MASTER",
            Self::Backup => "BACKUP",
            Self::Fault => "FAULT",
            Self::Stop => "STOP",
            Self::Deleted => "DELETED",
            Self::MasterRxLowerPri => "MASTER_RX_LOWER_PRI",
            Self::MasterPriority => "MASTER_PRIORITY",
            Self::BackupPriority => "BACKUP_PRIORITY",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrrpTarget {
    Instance,
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LvsKind {
    /// A virtual server (`VS`).
    VirtualServer,
    /// A real server behind a virtual server (`RS`).
    RealServer,
}

impl LvsKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VirtualServer => "vs",
            Self::RealServer => "rs",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FifoLine {
    Vrrp {
        target: VrrpTarget,
        name: String,
        state: LineState,
        priority: u8,
    },
    Lvs {
        kind: LvsKind,
        /// The service as Keepalived wrote it: `[ip]:proto:port` for a VS,
        /// `[rs]:proto:port [vs]:proto:port` for an RS.
        service: String,
        up: bool,
    },
}

impl fmt::Display for FifoLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FifoLine::Vrrp {
                target,
                name,
                state,
                priority,
            } => {
                let t = match target {
                    VrrpTarget::Instance => "INSTANCE",
                    VrrpTarget::Group => "GROUP",
                };
                write!(f, "{t} \"{name}\" {} {priority}", state.as_str())
            }
            FifoLine::Lvs { kind, service, up } => {
                let k = match kind {
                    LvsKind::VirtualServer => "VS",
                    LvsKind::RealServer => "RS",
                };
                write!(f, "{k} {service} {}", if *up { "UP" } else { "DOWN" })
            }
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
