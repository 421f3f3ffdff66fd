//! The file as written: serde structs with the defaults. Spans are kept so
//! that validation can name the line of each error.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::LogFormat;

// ---- the file as written ---------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) node: Spanned<RawNode>,
    #[serde(default)]
    pub(super) http: RawHttp,
    #[serde(default)]
    pub(super) log: RawLog,
    pub(super) keepalived: Spanned<RawKeepalived>,
    pub(super) probe: Spanned<RawProbe>,
    pub(super) cloud: Option<Spanned<RawCloud>>,
    pub(super) peer: Option<Spanned<RawPeer>>,
    #[serde(default, rename = "vip")]
    pub(super) vips: Vec<Spanned<RawVip>>,
}

pub(super) fn dur(d: Duration) -> Spanned<Dur> {
    Spanned::new(0..0, Dur(d))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCloud {
    pub(super) region: Option<String>,
    pub(super) endpoint: Option<Spanned<String>>,
    pub(super) imds_endpoint: Option<Spanned<String>>,
    pub(super) instance_id: Option<String>,
    pub(super) interface_id: Option<Spanned<String>>,
    #[serde(default = "default_call_timeout")]
    pub(super) call_timeout: Spanned<Dur>,
    #[serde(default = "default_verify_interval")]
    pub(super) verify_interval: Spanned<Dur>,
    #[serde(default = "default_verify_jitter")]
    pub(super) verify_jitter: Spanned<Dur>,
    #[serde(default = "default_fast_verify_interval")]
    pub(super) fast_verify_interval: Spanned<Dur>,
    #[serde(default = "default_fast_verify_for")]
    pub(super) fast_verify_for: Spanned<Dur>,
    #[serde(default = "default_state_dir")]
    pub(super) state_dir: String,
    #[serde(default = "default_convergence_timeout")]
    pub(super) convergence_timeout: Spanned<Dur>,
    #[serde(default)]
    pub(super) dry_run: bool,
    #[serde(default = "yes")]
    pub(super) permission_check: bool,
    #[serde(default = "default_permission_check_interval")]
    pub(super) permission_check_interval: Spanned<Dur>,
    #[serde(default)]
    pub(super) state_tags: bool,
    #[serde(default = "default_state_tag_interval")]
    pub(super) state_tag_interval: Spanned<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    pub(super) listen: Spanned<SocketAddr>,
    pub(super) address: Spanned<SocketAddr>,
    pub(super) secret_file: Spanned<PathBuf>,
    #[serde(default = "default_peer_heartbeat")]
    pub(super) heartbeat: Spanned<Dur>,
    #[serde(default = "default_peer_max_age")]
    pub(super) max_age: Spanned<Dur>,
    #[serde(default = "default_peer_replay_window")]
    pub(super) replay_window: Spanned<Dur>,
}

fn default_peer_heartbeat() -> Spanned<Dur> {
    dur(Duration::from_secs(1))
}

fn default_peer_max_age() -> Spanned<Dur> {
    dur(Duration::from_secs(3))
}

fn default_peer_replay_window() -> Spanned<Dur> {
    dur(Duration::from_secs(30))
}

pub(super) fn yes() -> bool {
    true
}
pub(super) fn default_state_tag_interval() -> Spanned<Dur> {
    dur(Duration::from_secs(60))
}
pub(super) fn default_permission_check_interval() -> Spanned<Dur> {
    dur(Duration::from_secs(3600))
}
pub(super) fn default_call_timeout() -> Spanned<Dur> {
    dur(Duration::from_secs(5))
}
pub(super) fn default_verify_interval() -> Spanned<Dur> {
    dur(Duration::from_secs(30))
}
pub(super) fn default_verify_jitter() -> Spanned<Dur> {
    dur(Duration::from_secs(3))
}
pub(super) fn default_fast_verify_interval() -> Spanned<Dur> {
    dur(Duration::from_secs(1))
}
pub(super) fn default_fast_verify_for() -> Spanned<Dur> {
    dur(Duration::from_secs(20))
}
pub(super) fn default_state_dir() -> String {
    "/var/lib/vip-watchdog".into()
}
pub(super) fn default_convergence_timeout() -> Spanned<Dur> {
    dur(Duration::from_secs(20))
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub(super) enum VipKind {
    Eip,
    #[serde(rename = "private_ip")]
    PrivateIp,
    Route,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawAssociate {
    Eni,
    Instance,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawMode {
    Heal,
    Own,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVip {
    pub(super) kind: Spanned<VipKind>,
    pub(super) name: Option<Spanned<String>>,
    /// kind = "eip"
    pub(super) allocation_id: Option<Spanned<String>>,
    pub(super) private_ip: Option<Spanned<IpAddr>>,
    pub(super) associate: Option<Spanned<RawAssociate>>,
    /// kind = "route"
    pub(super) destination: Option<Spanned<String>>,
    pub(super) route_tables: Option<Spanned<Vec<String>>>,
    pub(super) vrrp_instance: Spanned<String>,
    #[serde(default = "default_mode")]
    pub(super) mode: RawMode,
    #[serde(default = "default_grace")]
    pub(super) grace: Spanned<Dur>,
    #[serde(default = "default_min_master_age")]
    pub(super) min_master_age: Spanned<Dur>,
    #[serde(default = "default_max_claims")]
    pub(super) max_claims: NonZeroU32,
    #[serde(default = "default_claim_window")]
    pub(super) claim_window: Spanned<Dur>,
    #[serde(default = "default_backoff_base")]
    pub(super) backoff_base: Spanned<Dur>,
    #[serde(default = "default_backoff_max")]
    pub(super) backoff_max: Spanned<Dur>,
    /// Make before break: the watchdog adds the private IP (instead of
    /// Keepalived) and removes it only once the cloud shows the VIP
    /// elsewhere.
    pub(super) manage_address: Option<Spanned<bool>>,
    pub(super) interface: Option<Spanned<String>>,
    #[serde(default = "default_address_hold")]
    pub(super) address_hold: Spanned<Dur>,
    /// Make before break (the default) or break before make (roles).
    pub(super) handover: Option<Spanned<RawHandover>>,
    pub(super) fence_wait: Option<Spanned<Dur>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawHandover {
    MakeBeforeBreak,
    BreakBeforeMake,
}

pub(super) fn default_mode() -> RawMode {
    RawMode::Heal
}
pub(super) fn default_grace() -> Spanned<Dur> {
    dur(Duration::from_secs(10))
}
pub(super) fn default_min_master_age() -> Spanned<Dur> {
    dur(Duration::from_secs(3))
}
/// Break before make: how long a silent old holder is waited for.
pub(super) const DEFAULT_FENCE_WAIT: Duration = Duration::from_secs(30);

pub(super) fn default_address_hold() -> Spanned<Dur> {
    dur(Duration::from_secs(30))
}
pub(super) fn default_max_claims() -> NonZeroU32 {
    NonZeroU32::new(3).expect("3 is not zero")
}
pub(super) fn default_claim_window() -> Spanned<Dur> {
    dur(Duration::from_secs(600))
}
pub(super) fn default_backoff_base() -> Spanned<Dur> {
    dur(Duration::from_secs(10))
}
pub(super) fn default_backoff_max() -> Spanned<Dur> {
    dur(Duration::from_secs(300))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) name: Option<Spanned<String>>,
    pub(super) pair: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    #[serde(default = "default_listen")]
    pub(super) listen: SocketAddr,
    pub(super) web_config_file: Option<PathBuf>,
    #[serde(default = "default_local_socket")]
    pub(super) local_socket: Spanned<PathBuf>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9842))
}

pub(super) fn default_local_socket() -> Spanned<PathBuf> {
    Spanned::new(0..0, "/run/vip-watchdog/local.sock".into())
}

impl Default for RawHttp {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            web_config_file: None,
            local_socket: default_local_socket(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    pub(super) format: LogFormat,
    pub(super) level: Spanned<String>,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: Spanned::new(0..0, "info".into()),
        }
    }
}

/// A duration written as `"1s"`, `"500ms"`, `"1m 30s"`.
#[derive(Deserialize, Clone, Copy)]
#[serde(transparent)]
pub(super) struct Dur(#[serde(with = "humantime_serde")] pub(super) Duration);

pub(super) fn default_fifo() -> Spanned<PathBuf> {
    Spanned::new(0..0, "/run/vip-watchdog/keepalived.fifo".into())
}
pub(super) fn default_pid_file() -> Spanned<PathBuf> {
    Spanned::new(0..0, "/run/keepalived.pid".into())
}
pub(super) fn default_process_name() -> Spanned<String> {
    Spanned::new(0..0, "keepalived".into())
}
pub(super) fn default_check_interval() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_millis(250)))
}
pub(super) fn default_true() -> bool {
    true
}
pub(super) fn default_json_file() -> Spanned<PathBuf> {
    Spanned::new(0..0, "/tmp/keepalived.json".into())
}
pub(super) fn default_keepalived_conf() -> Spanned<PathBuf> {
    Spanned::new(0..0, "/etc/keepalived/keepalived.conf".into())
}
pub(super) fn default_drain_file() -> Spanned<PathBuf> {
    Spanned::new(0..0, "/run/vip-watchdog/drain".into())
}
pub(super) fn default_binary() -> PathBuf {
    "keepalived".into()
}
pub(super) fn default_json_timeout() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(2)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeepalived {
    #[serde(default = "default_fifo")]
    pub(super) fifo: Spanned<PathBuf>,
    #[serde(default = "default_pid_file")]
    pub(super) pid_file: Spanned<PathBuf>,
    /// Unset: the main process's child; `""`: the main process only.
    #[serde(default)]
    pub(super) vrrp_pid_file: Option<Spanned<PathBuf>>,
    #[serde(default = "default_process_name")]
    pub(super) process_name: Spanned<String>,
    #[serde(default = "default_check_interval")]
    pub(super) process_check_interval: Spanned<Dur>,
    #[serde(default = "default_true")]
    pub(super) json_dump: bool,
    #[serde(default = "default_json_file")]
    pub(super) json_file: Spanned<PathBuf>,
    pub(super) json_signal: Option<Spanned<i32>>,
    #[serde(default = "default_binary")]
    pub(super) binary: PathBuf,
    #[serde(default = "default_json_timeout")]
    pub(super) json_timeout: Spanned<Dur>,
    #[serde(default = "default_true")]
    pub(super) release_on_crash: bool,
    #[serde(default = "default_keepalived_conf")]
    pub(super) config_file: Spanned<PathBuf>,
    #[serde(default = "default_drain_file")]
    pub(super) drain_file: Spanned<PathBuf>,
    #[serde(default, rename = "instance")]
    pub(super) instances: Vec<Spanned<RawInstance>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInstance {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) vips: Vec<IpAddr>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub(super) enum ProbeKind {
    Http,
    Tcp,
    Exec,
    Postgres,
}

/// One more check of the probe (`[[probe.also]]`): all must pass.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    pub(super) kind: ProbeKind,
    pub(super) url: Option<Spanned<String>>,
    pub(super) expect_status: Option<Spanned<u16>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) address: Option<Spanned<String>>,
    pub(super) command: Option<Spanned<Vec<String>>>,
    pub(super) shell: Option<Spanned<bool>>,
    pub(super) dsn: Option<Spanned<String>>,
}

pub(super) fn default_interval() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(1)))
}
pub(super) fn default_timeout() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_millis(500)))
}
pub(super) fn default_rise_fall() -> NonZeroU32 {
    NonZeroU32::new(2).expect("2 is not zero")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    pub(super) kind: ProbeKind,
    pub(super) url: Option<Spanned<String>>,
    pub(super) expect_status: Option<Spanned<u16>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) address: Option<Spanned<String>>,
    pub(super) command: Option<Spanned<Vec<String>>>,
    pub(super) shell: Option<Spanned<bool>>,
    pub(super) dsn: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) also: Vec<Spanned<RawCheck>>,
    #[serde(default = "default_interval")]
    pub(super) interval: Spanned<Dur>,
    #[serde(default = "default_timeout")]
    pub(super) timeout: Spanned<Dur>,
    #[serde(default = "default_rise_fall")]
    pub(super) rise: NonZeroU32,
    #[serde(default = "default_rise_fall")]
    pub(super) fall: NonZeroU32,
}
