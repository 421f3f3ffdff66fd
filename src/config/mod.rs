//! The configuration file: TOML, parsed once into the types below.
//!
//! Unknown keys are rejected. Every error names the key and, where the file
//! has one, the line. `Config::describe` prints what was understood, with
//! every default filled in (`check-config` shows it).
//!
//! ```text
//! mod.rs        the typed configuration, its errors, load and parse
//! raw.rs        the file as written (serde), with the defaults
//! validate/     raw -> typed, each error naming its key and line
//! web.rs        the web config file (TLS, basic auth, headers)
//! describe.rs   what was understood, one key a line
//! ```

pub use crate::core::vip::{ManagedAddress, VipConfig};

mod describe;
mod raw;
mod validate;
pub mod web;

use raw::RawConfig;
use validate::Validator;

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub node: NodeConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub keepalived: KeepalivedConfig,
    pub probe: ProbeConfig,
    /// Present when there are VIPs to reconcile.
    pub cloud: Option<CloudConfig>,
    pub vips: Vec<VipConfig>,
    /// The channel to the other watchdog of the pair, when configured.
    pub peer: Option<PeerConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    /// Where this watchdog takes its peer's reports.
    pub listen: SocketAddr,
    /// Where the peer takes this watchdog's reports.
    pub address: SocketAddr,
    pub secret_file: PathBuf,
    /// The shared secret, read at load (empty until then).
    pub secret: Secret,
    /// A report is pushed on every change and at least this often.
    pub heartbeat: Duration,
    /// A report older than this is no knowledge of the peer.
    pub max_age: Duration,
    /// A message whose timestamp is further than this from this host's
    /// clock is refused as stale; nonces are remembered this long.
    pub replay_window: Duration,
}

/// Bytes that are never printed.
#[derive(Clone, PartialEq, Default)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes, redacted)", self.0.len())
    }
}

/// The shortest shared secret taken.
pub const MIN_SECRET: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub struct CloudConfig {
    /// Overrides IMDS's `placement/region`.
    pub region: Option<String>,
    /// The EC2 endpoint; the SDK also honours `AWS_ENDPOINT_URL(_EC2)`.
    pub endpoint: Option<String>,
    pub imds_endpoint: Option<String>,
    /// Override IMDS's `instance-id` and the ENI of its primary MAC.
    pub instance_id: Option<String>,
    pub interface_id: Option<String>,
    /// Each cloud call's timeout.
    pub call_timeout: Duration,
    /// Periodic verification, randomly spread by up to `verify_jitter`.
    pub verify_interval: Duration,
    pub verify_jitter: Duration,
    /// After a hint (a VRRP transition, another MASTER heard, a failed
    /// claim): a describe at once, then every `fast_verify_interval` for
    /// `fast_verify_for`.
    pub fast_verify_interval: Duration,
    pub fast_verify_for: Duration,
    /// Where damping is kept across restarts; `None` keeps it in memory.
    pub state_dir: Option<std::path::PathBuf>,
    /// How long after a claim the cloud has to show the VIP here.
    pub convergence_timeout: Duration,
    /// Decide and log, call nothing that mutates.
    pub dry_run: bool,
    /// Ask EC2 with `DryRun` whether this node may make the calls a claim
    /// needs: at start-up, then every `permission_check_interval`.
    pub permission_check: bool,
    pub permission_check_interval: Duration,
    /// State tags (`core::state_tag`): written every this often, and each
    /// counts for twice it; `None` when `state_tags` is off.
    pub state_tag_interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// This node's name, exported as the `node` label.
    pub name: String,
    /// The HA pair this node belongs to, exported as the `pair` label.
    pub pair: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// The notify wrapper's socket (`POST /v1/notify`, `GET
    /// /v1/notify/gate`): a path in a directory only the service user and
    /// root can write, so that no other local process can take it over.
    pub local_socket: PathBuf,
    /// The exporter-toolkit web config file: TLS, basic auth, headers.
    pub web_config_file: Option<PathBuf>,
    /// What that file says, read at load; plain HTTP without one.
    pub web: crate::config::web::WebConfig,
}

/// The exporter flags, which override `http.listen` and
/// `http.web_config_file` (kept across SIGHUP reloads).
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct WebFlags {
    /// Overrides http.listen: ADDR:PORT, or :PORT for every IPv4
    /// address (as node_exporter's `:9100`).
    #[arg(long = "web.listen-address", value_name = "ADDR:PORT", value_parser = parse_listen)]
    pub listen_address: Option<SocketAddr>,
    /// Overrides http.web_config_file: the exporter-toolkit web config
    /// (tls_server_config, basic_auth_users, http_server_config.headers).
    #[arg(long = "web.config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,
}

/// `--web.listen-address`: ADDR:PORT, or `:PORT` (every IPv4 address).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let full = match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_owned(),
    };
    full.parse().map_err(|_| {
        format!("{s:?} is not ADDR:PORT or :PORT (e.g. 10.0.0.5:9842, [::]:9842, :9842)")
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive, e.g. `info` or `vip_watchdog=debug`.
    pub level: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeepalivedConfig {
    /// The notify FIFO (`notify_fifo` or `vrrp_notify_fifo` in `global_defs`).
    pub fifo: PathBuf,
    /// Keepalived's main pid file (`-p`).
    pub pid_file: PathBuf,
    /// How Keepalived's VRRP process is found.
    pub vrrp_process: VrrpProcess,
    /// The process name (`/proc/PID/comm`) that a pid must have to count.
    pub process_name: String,
    pub process_check_interval: Duration,
    /// Read the present state at start-up from Keepalived's JSON dump.
    pub json_dump: Option<JsonDumpConfig>,
    /// When on (the default): keepalived.conf, from which the priority-0
    /// advert of a Keepalived that crashed while MASTER is built and sent on
    /// its behalf (`core::release`).
    pub release_on_crash: Option<PathBuf>,
    /// The file `vip-watchdog switchover` writes (`1`: drain, `0`: back),
    /// which keepalived.conf tracks with `vrrp_track_file ... weight 0`.
    pub drain_file: PathBuf,
    pub instances: Vec<InstanceConfig>,
}

/// How the process watch finds Keepalived's VRRP process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VrrpProcess {
    /// The main process's child (the default): the one `vrrp.pid` beside
    /// the main pid file names, else the only child, else the one named
    /// `keepalived_vrrp`.
    Child,
    /// The pid file `keepalived.vrrp_pid_file` names (Keepalived's `-r`).
    PidFile(PathBuf),
    /// The main process only (`vrrp_pid_file = ""`).
    Off,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JsonDumpConfig {
    /// Where Keepalived writes it: `$TMPDIR/keepalived.json` of Keepalived's
    /// environment.
    pub file: PathBuf,
    /// The real-time signal number; asked of `keepalived --signum=JSON` when
    /// not set.
    pub signal: Option<i32>,
    pub binary: PathBuf,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceConfig {
    pub name: String,
    /// The instance's virtual addresses: present on the host with Keepalived
    /// running means MASTER, when no better source is available at start-up.
    pub vips: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    pub check: Check,
    /// More checks (`[[probe.also]]`): a run passes when every one does.
    pub also: Vec<Check>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes to go up.
    pub rise: NonZeroU32,
    /// Consecutive failures to go down.
    pub fall: NonZeroU32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Http {
        url: reqwest::Url,
        expect_status: u16,
        /// `ca_file`: the only CA an https URL's certificate may chain to
        /// (a Kubernetes API server's cluster CA, say); the system's roots
        /// otherwise.
        ca: Option<CaFile>,
    },
    Tcp {
        address: SocketAddr,
    },
    /// Run `command[0]` with the remaining arguments, or `/bin/sh -c
    /// command[0]` when `shell` is set. Exit status 0 is success.
    Exec {
        command: Vec<String>,
        shell: bool,
    },
    /// Healthy only while the local PostgreSQL answers and is a primary
    /// (`pg_is_in_recovery()` is false). `dsn`: a libpq connection string
    /// or URL; no TLS (a local socket or loopback).
    Postgres {
        dsn: String,
    },
}

impl Check {
    /// In words, for `check-config` and the logs; a password is never
    /// shown.
    pub fn describe(&self) -> String {
        match self {
            Check::Http {
                url,
                expect_status,
                ca,
            } => format!(
                "http GET {url}, expecting status {expect_status}{}",
                ca.as_ref().map_or(String::new(), |c| format!(
                    ", trusting only the CA in {}",
                    c.path.display()
                ))
            ),
            Check::Tcp { address } => format!("tcp connect to {address}"),
            Check::Exec { command, shell } => format!(
                "exec {command:?}{}",
                if *shell { " through /bin/sh -c" } else { "" }
            ),
            Check::Postgres { dsn } => {
                let c: Option<tokio_postgres::Config> = dsn.parse().ok();
                let hosts = c.as_ref().map_or(String::new(), |c| {
                    c.get_hosts()
                        .iter()
                        .map(|h| match h {
                            tokio_postgres::config::Host::Tcp(t) => t.clone(),
                            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                });
                let user = c.as_ref().and_then(|c| c.get_user()).unwrap_or("(default)");
                let db = c
                    .as_ref()
                    .and_then(|c| c.get_dbname())
                    .unwrap_or("(default)");
                format!(
                    "postgres on {hosts} as {user}, database {db}: healthy while a primary (pg_is_in_recovery() is false)"
                )
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Check::Http { .. } => "http",
            Check::Tcp { .. } => "tcp",
            Check::Exec { .. } => "exec",
            Check::Postgres { .. } => "postgres",
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key, e.g. `probe.timeout`; empty when the file itself is wrong.
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every error found, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char('\n')?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid configuration:\n{errors}")]
    Invalid { path: PathBuf, errors: ConfigErrors },
    #[error("the web config file: {0}")]
    Web(#[from] crate::config::web::WebConfigError),
    #[error("peer.secret_file: {0}")]
    PeerSecret(String),
}

impl Config {
    /// The route VIPs' names: a node that is their next hop forwards their
    /// traffic (`net.ipv4.ip_forward`, the source/destination check).
    pub fn route_vips(&self) -> Vec<&str> {
        self.vips
            .iter()
            .filter(|v| matches!(v.target, crate::core::target::VipTarget::Route { .. }))
            .map(|v| v.name.as_str())
            .collect()
    }

    /// Every VRRP instance the config names: `[[keepalived.instance]]`
    /// first, then each `[[vip]]`'s instance not listed there, in order.
    pub fn vrrp_instances(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .keepalived
            .instances
            .iter()
            .map(|i| i.name.clone())
            .collect();
        for v in &self.vips {
            if !names.contains(&v.vrrp_instance) {
                names.push(v.vrrp_instance.clone());
            }
        }
        names
    }

    pub fn load(path: &Path) -> Result<Config, LoadError> {
        Config::load_with(path, &WebFlags::default())
    }

    /// Loads the config file, applies the exporter flags, and reads the web
    /// config file it names.
    pub fn load_with(path: &Path, flags: &WebFlags) -> Result<Config, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|errors| LoadError::Invalid {
            path: path.to_owned(),
            errors,
        })?;
        if let Some(listen) = flags.listen_address {
            config.http.listen = listen;
        }
        if let Some(file) = &flags.config_file {
            config.http.web_config_file = Some(file.clone());
        }
        if let Some(file) = &config.http.web_config_file {
            config.http.web = crate::config::web::WebConfig::load(file)?;
        }
        if let Some(peer) = &mut config.peer {
            peer.secret = read_secret(&peer.secret_file).map_err(LoadError::PeerSecret)?;
        }
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                key: String::new(),
                line: e.span().map(|s| line_of(text, s.start)),
                message: e.message().trim().to_owned(),
            }])
        })?;
        let mut v = Validator {
            text,
            errors: vec![],
        };
        let config = v.config(raw);
        if v.errors.is_empty() {
            Ok(config)
        } else {
            // File order; errors about defaults (no line) last.
            v.errors.sort_by_key(|e| (e.line.is_none(), e.line));
            Err(ConfigErrors(v.errors))
        }
    }
}

/// An http check's `ca_file`: read and parsed at load, so that a missing or
/// broken file is a config error, not a probe failure at every run.
#[derive(Clone, PartialEq)]
pub struct CaFile {
    pub path: PathBuf,
    /// PEM, holding at least one certificate.
    pub pem: Vec<u8>,
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaFile")
            .field("path", &self.path)
            .field("pem", &format_args!("{} bytes", self.pem.len()))
            .finish()
    }
}

impl CaFile {
    pub fn read(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) if !certs.is_empty() => Ok(Self {
                path: path.into(),
                pem,
            }),
            Ok(_) => Err(format!(
                "{}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)",
                path.display()
            )),
            Err(e) => Err(format!("{}: not a PEM certificate: {e}", path.display())),
        }
    }

    pub fn certificates(&self) -> Vec<reqwest::Certificate> {
        reqwest::Certificate::from_pem_bundle(&self.pem).unwrap_or_default()
    }
}

/// The shared secret: the file's bytes without a trailing newline; at
/// least `MIN_SECRET` of them; a file others may read is refused.
fn read_secret(path: &Path) -> Result<Secret, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(format!(
            "{}: readable by every user; chmod 0640 (or 0600) it",
            path.display()
        ));
    }
    let mut bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.len() < MIN_SECRET {
        return Err(format!(
            "{}: {} bytes; a shared secret has at least {MIN_SECRET} (e.g. `openssl rand -base64 48`)",
            path.display(),
            bytes.len()
        ));
    }
    Ok(Secret(bytes))
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[node]
name = "lb-a"
pair = "edge"

[keepalived]
fifo = "/run/vip-watchdog/keepalived.fifo"

[probe]
kind = "tcp"
address = "127.0.0.1:80"
"#;

    #[test]
    fn minimal_config_gets_safe_defaults() {
        let c = Config::parse(MINIMAL).expect("minimal config is valid");
        assert_eq!(c.http.listen, "127.0.0.1:9842".parse().unwrap());
        assert_eq!(c.keepalived.pid_file, PathBuf::from("/run/keepalived.pid"));
        // Keepalived 2.x's own default pid files: /run/keepalived.pid, and
        // the VRRP process found as its child (no second path to get wrong).
        assert_eq!(c.keepalived.vrrp_process, VrrpProcess::Child);
        assert_eq!(
            c.keepalived.process_check_interval,
            Duration::from_millis(250)
        );
        assert_eq!(
            c.keepalived.release_on_crash,
            Some(PathBuf::from("/etc/keepalived/keepalived.conf"))
        );
        assert!(c.keepalived.json_dump.is_some());
        assert_eq!(c.probe.interval, Duration::from_secs(1));
        assert_eq!(c.probe.timeout, Duration::from_millis(500));
        assert_eq!((c.probe.rise.get(), c.probe.fall.get()), (2, 2));
        assert_eq!(c.log.format, LogFormat::Text);
    }

    #[test]
    fn the_example_config_parses_and_describes_as_the_golden_file() {
        let text = include_str!("../../examples/vip-watchdog.toml");
        let c = Config::parse(text).unwrap_or_else(|e| panic!("example config: {e}"));
        let golden = include_str!("../../tests/golden/example-config.txt");
        assert_eq!(
            c.describe(),
            golden,
            "update tests/golden/example-config.txt"
        );
    }

    /// The README's two quick starts, as files: each parses, says what it
    /// claims to be, and stays short (its lines of TOML, comments aside).
    #[test]
    fn the_quick_start_configs_parse() {
        for (text, mode, peer) in [
            (
                include_str!("../../examples/quickstart-heal.toml"),
                crate::core::words::Mode::Heal,
                false,
            ),
            (
                include_str!("../../examples/quickstart-own.toml"),
                crate::core::words::Mode::Own,
                true,
            ),
        ] {
            let c = Config::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(c.vips[0].policy.mode, mode);
            assert_eq!(c.peer.is_some(), peer);
            let toml = text.lines().filter(|l| !l.starts_with('#')).count();
            assert!(toml <= 20, "{toml} lines:\n{text}");
        }
    }

    /// Each bad input names its key (and line, where there is one).
    #[test]
    fn the_peer_table_is_checked_and_its_secret_read_and_never_shown() {
        use std::os::unix::fs::PermissionsExt as _;
        let peer = |extra: &str| {
            format!(
                "{MINIMAL}\n[peer]\nlisten = \"10.0.0.1:9843\"\naddress = \"10.0.0.2:9843\"\nsecret_file = \"/k\"\n{extra}"
            )
        };
        let c = Config::parse(&peer("")).expect("a valid [peer]");
        let p = c.peer.expect("peer");
        assert_eq!(
            (p.heartbeat, p.max_age, p.replay_window),
            (
                Duration::from_secs(1),
                Duration::from_secs(3),
                Duration::from_secs(30)
            ),
            "the shipped defaults"
        );
        for (extra, key) in [
            ("max_age = \"1s\"\n", "peer.max_age"),
            ("heartbeat = \"50ms\"\n", "peer.heartbeat"),
            ("replay_window = \"1h\"\n", "peer.replay_window"),
        ] {
            let e = Config::parse(&peer(extra)).unwrap_err();
            assert!(e.0.iter().any(|e| e.key == key), "{extra}: {e}");
        }
        let same = peer("").replace("10.0.0.2:9843", "10.0.0.1:9843");
        let e = Config::parse(&same).unwrap_err();
        assert!(e.to_string().contains("peer.address"), "{e}");

        let dir = std::env::temp_dir().join(format!("vw-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("peer.key");
        let write = |text: &str, mode: u32| {
            std::fs::write(&key, text).unwrap();
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let good = "x".repeat(MIN_SECRET);
        write(&format!("{good}\n"), 0o600);
        let s = read_secret(&key).expect("a good secret");
        assert_eq!(s.0.len(), MIN_SECRET, "the newline is not part of it");
        assert!(!format!("{s:?}").contains('x'), "never shown: {s:?}");
        write("short\n", 0o600);
        assert!(read_secret(&key).unwrap_err().contains("at least 32"));
        write(&good, 0o644);
        assert!(
            read_secret(&key)
                .unwrap_err()
                .contains("readable by every user")
        );
        assert!(read_secret(&dir.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn each_error_names_the_key_and_line() {
        // (what, the file, expected key, expected line, words the message has)
        let table: Vec<(&str, String, &str, Option<usize>, &str)> = vec![
            (
                "unknown key in a table",
                MINIMAL.replace("pair = \"edge\"", "pair = \"edge\"\ncolour = \"red\""),
                "",
                Some(5),
                "unknown field `colour`",
            ),
            (
                "unknown table",
                format!("{MINIMAL}\n[extra]\nx = 1\n"),
                "",
                Some(13),
                "unknown field `extra`",
            ),
            (
                "a process name past the kernel's 15 bytes never matches",
                MINIMAL.replace("[probe]", "process_name = \"keepalived_vrrp_x\"\n[probe]"),
                "keepalived.process_name",
                Some(9),
                "1 to 15 bytes",
            ),
            (
                "bad duration",
                MINIMAL.replace("kind = \"tcp\"", "kind = \"tcp\"\ninterval = \"soon\""),
                "",
                Some(11),
                "soon",
            ),
            (
                "timeout above interval",
                MINIMAL.replace("kind = \"tcp\"", "kind = \"tcp\"\ninterval = \"1s\"\ntimeout = \"2s\""),
                "probe.timeout",
                Some(12),
                "at most probe.interval",
            ),
            (
                "rise of zero",
                MINIMAL.replace("kind = \"tcp\"", "kind = \"tcp\"\nrise = 0"),
                "",
                Some(11),
                "nonzero",
            ),
            (
                "bad pair label",
                MINIMAL.replace("pair = \"edge\"", "pair = \"edge pair\""),
                "node.pair",
                Some(4),
                "letters, digits",
            ),
            (
                "missing pair",
                MINIMAL.replace("pair = \"edge\"", ""),
                "",
                Some(2),
                "missing field `pair`",
            ),
            (
                "relative fifo",
                MINIMAL.replace("/run/vip-watchdog/keepalived.fifo", "keepalived.fifo"),
                "keepalived.fifo",
                Some(7),
                "absolute",
            ),
            (
                "tcp address not ip:port",
                MINIMAL.replace("127.0.0.1:80", "localhost"),
                "probe.address",
                Some(11),
                "not IP:port",
            ),
            (
                "key of another kind",
                MINIMAL.replace("kind = \"tcp\"", "kind = \"tcp\"\nurl = \"http://x/\""),
                "probe.url",
                Some(11),
                "not used by kind = \"tcp\"",
            ),
            (
                "http without url",
                MINIMAL.replace("kind = \"tcp\"\naddress = \"127.0.0.1:80\"", "kind = \"http\""),
                "probe.url",
                Some(9),
                "required",
            ),
            (
                "unknown probe kind",
                MINIMAL.replace("kind = \"tcp\"", "kind = \"icmp\""),
                "",
                Some(10),
                "unknown variant `icmp`",
            ),
            (
                "exec with shell and many words",
                MINIMAL.replace(
                    "kind = \"tcp\"\naddress = \"127.0.0.1:80\"",
                    "kind = \"exec\"\ncommand = [\"a\", \"b\"]\nshell = true",
                ),
                "probe.command",
                Some(11),
                "one string",
            ),
            (
                "bad status",
                MINIMAL.replace(
                    "kind = \"tcp\"\naddress = \"127.0.0.1:80\"",
                    "kind = \"http\"\nurl = \"http://127.0.0.1/\"\nexpect_status = 999",
                ),
                "probe.expect_status",
                Some(12),
                "HTTP status",
            ),
            (
                "ca_file that is not there",
                MINIMAL.replace(
                    "kind = \"tcp\"\naddress = \"127.0.0.1:80\"",
                    "kind = \"http\"\nurl = \"https://127.0.0.1/readyz\"\nca_file = \"/nonexistent/ca.crt\"",
                ),
                "probe.ca_file",
                Some(12),
                "/nonexistent/ca.crt: No such file",
            ),
            (
                "ca_file that holds no certificate",
                MINIMAL.replace(
                    "kind = \"tcp\"\naddress = \"127.0.0.1:80\"",
                    "kind = \"http\"\nurl = \"https://127.0.0.1/readyz\"\nca_file = \"/dev/null\"",
                ),
                "probe.ca_file",
                Some(12),
                "no PEM certificate in it",
            ),
            (
                "ca_file with a plain http url",
                MINIMAL.replace(
                    "kind = \"tcp\"\naddress = \"127.0.0.1:80\"",
                    "kind = \"http\"\nurl = \"http://127.0.0.1/readyz\"\nca_file = \"/dev/null\"",
                ),
                "probe.ca_file",
                Some(12),
                "only with an https:// url",
            ),
            (
                "ca_file on a tcp check",
                MINIMAL.replace("kind = \"tcp\"", "kind = \"tcp\"\nca_file = \"/dev/null\""),
                "probe.ca_file",
                Some(11),
                "not used by kind = \"tcp\"",
            ),
            (
                "postgres without dsn",
                MINIMAL.replace("kind = \"tcp\"\naddress = \"127.0.0.1:80\"", "kind = \"postgres\""),
                "probe.dsn",
                Some(9),
                "required for kind = \"postgres\"",
            ),
            (
                "postgres dsn not a connection string",
                MINIMAL.replace(
                    "kind = \"tcp\"\naddress = \"127.0.0.1:80\"",
                    "kind = \"postgres\"\ndsn = \"host=/run/postgresql port=notaport\"",
                ),
                "probe.dsn",
                Some(11),
                "not a PostgreSQL connection string",
            ),
            (
                "a combined check's mistake names probe.also",
                format!("{MINIMAL}[[probe.also]]\nkind = \"postgres\"\naddress = \"127.0.0.1:5432\"\ndsn = \"host=/run/postgresql\"\n"),
                "probe.also.address",
                Some(14),
                "not used by kind = \"postgres\"",
            ),
            (
                "ftp url",
                MINIMAL.replace(
                    "kind = \"tcp\"\naddress = \"127.0.0.1:80\"",
                    "kind = \"http\"\nurl = \"ftp://127.0.0.1/\"",
                ),
                "probe.url",
                Some(11),
                "not http",
            ),
            (
                "duplicate instance",
                MINIMAL.replace(
                    "[probe]",
                    "[[keepalived.instance]]\nname = \"VI_1\"\n[[keepalived.instance]]\nname = \"VI_1\"\n[probe]",
                ),
                "keepalived.instance.name",
                Some(12),
                "listed twice",
            ),
            (
                "bad vip",
                MINIMAL.replace(
                    "[probe]",
                    "[[keepalived.instance]]\nname = \"VI_1\"\nvips = [\"10.0.0.300\"]\n[probe]",
                ),
                "",
                Some(11),
                "invalid IP address",
            ),
            (
                "process check too slow",
                MINIMAL.replace(
                    "[probe]",
                    "process_check_interval = \"1m\"\n[probe]",
                ),
                "keepalived.process_check_interval",
                Some(9),
                "10ms to 10s",
            ),
            (
                "keepalived.conf path not absolute",
                MINIMAL.replace(
                    "[probe]",
                    "config_file = \"keepalived.conf\"\n[probe]",
                ),
                "keepalived.config_file",
                Some(9),
                "absolute path",
            ),
            (
                "bad log level",
                format!("{MINIMAL}[log]\nlevel = \"loud=[\"\n"),
                "log.level",
                Some(13),
                "not a log filter",
            ),
        ];
        for (what, text, key, line, needle) in table {
            let errs = Config::parse(&text).expect_err(what).0;
            let e = &errs[0];
            assert_eq!((e.key.as_str(), e.line), (key, line), "{what}: {e}");
            assert!(e.message.contains(needle), "{what}: {e:?} lacks {needle:?}");
        }
    }

    /// MINIMAL plus an instance, a [cloud] and a [[vip]] (lines 12-19).
    fn with_vip(vip_extra: &str) -> String {
        format!(
            "{}[[keepalived.instance]]\nname = \"VI_1\"\n[cloud]\nregion = \"eu-west-1\"\n[[vip]]\nkind = \"eip\"\nallocation_id = \"eipalloc-1\"\nprivate_ip = \"10.0.0.100\"\nvrrp_instance = \"VI_1\"\n{vip_extra}",
            MINIMAL
        )
    }

    fn with_route(vip_extra: &str) -> String {
        format!(
            "{}[[keepalived.instance]]\nname = \"VI_1\"\n[cloud]\nregion = \"eu-west-1\"\n[[vip]]\nkind = \"route\"\ndestination = \"192.168.100.10/32\"\nroute_tables = [\"rtb-1\", \"rtb-2\"]\nvrrp_instance = \"VI_1\"\n{vip_extra}",
            MINIMAL
        )
    }

    fn with_private_ip(vip_extra: &str) -> String {
        with_vip(vip_extra).replace(
            "kind = \"eip\"\nallocation_id = \"eipalloc-1\"\n",
            "kind = \"private_ip\"\n",
        )
    }

    #[test]
    fn a_private_ip_vip_parses_into_its_target_named_after_its_address() {
        use crate::core::target::VipTarget;
        let c = Config::parse(&with_private_ip("")).expect("valid private-IP VIP");
        let ip: std::net::IpAddr = "10.0.0.100".parse().unwrap();
        assert_eq!(c.vips[0].name, "10.0.0.100");
        assert_eq!(c.vips[0].target, VipTarget::PrivateIp { private_ip: ip });
        assert_eq!(c.vips[0].target.kind(), "private_ip");
        assert_eq!(c.vips[0].target.host_address(), Some(ip));
        assert_eq!(c.vips[0].target.allocation_id(), None);
    }

    #[test]
    fn route_and_instance_vips_parse_into_their_targets() {
        use crate::core::target::VipTarget;
        let c = Config::parse(&with_route("")).expect("valid route VIP");
        assert_eq!(c.vips[0].name, "192.168.100.10/32");
        assert_eq!(
            c.vips[0].target,
            VipTarget::Route {
                destination: "192.168.100.10/32".into(),
                host: Some("192.168.100.10".parse().unwrap()),
                route_tables: vec!["rtb-1".into(), "rtb-2".into()],
            }
        );
        let text =
            with_vip("associate = \"instance\"\n").replace("private_ip = \"10.0.0.100\"\n", "");
        let c = Config::parse(&text).expect("valid instance VIP");
        assert_eq!(
            c.vips[0].target,
            VipTarget::EipOnInstance {
                allocation_id: "eipalloc-1".into()
            }
        );
        assert_eq!(c.vips[0].target.host_address(), None);
    }

    #[test]
    fn vip_config_defaults_are_safe() {
        let c = Config::parse(&with_vip("")).expect("valid");
        let v = &c.vips[0];
        assert_eq!(v.name, "eipalloc-1");
        assert_eq!(v.policy.mode, crate::core::words::Mode::Heal);
        assert_eq!(v.policy.min_master_age, Duration::from_secs(3));
        assert_eq!(v.policy.grace, Duration::from_secs(10));
        assert_eq!(v.policy.max_claims, 3);
        assert!(!v.policy.dry_run);
        assert_eq!(v.address, None, "Keepalived owns the address by default");
        let c = Config::parse(&with_vip("manage_address = true\ninterface = \"eth0\"\n"))
            .expect("valid");
        assert_eq!(
            c.vips[0].address,
            Some(ManagedAddress {
                ip: "10.0.0.100".parse().unwrap(),
                interface: "eth0".into(),
                hold: Duration::from_secs(30),
            })
        );
        let c = Config::parse(&with_route("manage_address = true\ninterface = \"eth1\"\n"))
            .expect("valid");
        assert_eq!(
            c.vips[0].address.as_ref().map(|a| a.ip),
            Some("192.168.100.10".parse().unwrap())
        );
        let c = Config::parse(&with_vip("")).expect("valid");
        let cloud = c.cloud.expect("cloud");
        assert_eq!(cloud.verify_interval, Duration::from_secs(30));
        assert_eq!(cloud.region.as_deref(), Some("eu-west-1"));
        assert!(cloud.permission_check);
        assert_eq!(cloud.permission_check_interval, Duration::from_secs(3600));
    }

    /// `handover`: make before break by default; break before make with
    /// its fence_wait (30 s by default), only with the address in the
    /// watchdog's hands and the peer channel; each mistake named by key
    /// and line.
    #[test]
    fn break_before_make_needs_its_address_and_the_peer() {
        use crate::core::handover::Handover;
        let peer = "[peer]\nlisten = \"10.0.0.1:9843\"\naddress = \"10.0.0.2:9843\"\nsecret_file = \"/k\"\n";
        let managed = "manage_address = true\ninterface = \"eth0\"\n";
        let c = Config::parse(&with_vip("")).expect("valid");
        assert_eq!(c.vips[0].handover, Handover::MakeBeforeBreak);
        let bbm = format!("{managed}handover = \"break_before_make\"\n");
        let c = Config::parse(&format!("{}{peer}", with_vip(&bbm))).expect("valid");
        assert_eq!(
            c.vips[0].handover,
            Handover::BreakBeforeMake {
                fence_wait: Duration::from_secs(30)
            }
        );
        let c = Config::parse(&format!(
            "{}{peer}",
            with_private_ip(&format!("{bbm}fence_wait = \"10s\"\n"))
        ))
        .expect("valid");
        assert_eq!(
            c.vips[0].handover,
            Handover::BreakBeforeMake {
                fence_wait: Duration::from_secs(10)
            }
        );
        // (what, the file, expected key, words the message has)
        let rows = [
            (
                "without manage_address",
                format!("{}{peer}", with_vip("handover = \"break_before_make\"\n")),
                "vip.handover",
                "needs manage_address = true",
            ),
            (
                "without [peer]",
                with_vip(&bbm),
                "vip.handover",
                "needs a [peer] table",
            ),
            (
                "fence_wait under make before break",
                format!("{}{peer}", with_vip("fence_wait = \"10s\"\n")),
                "vip.fence_wait",
                "only with handover",
            ),
            (
                "fence_wait under 5s",
                format!("{}{peer}", with_vip(&format!("{bbm}fence_wait = \"2s\"\n"))),
                "vip.fence_wait",
                "at least 5s",
            ),
            (
                "fence_wait not longer than peer.max_age",
                format!(
                    "{}{peer}max_age = \"20s\"\n",
                    with_vip(&format!("{bbm}fence_wait = \"20s\"\n"))
                ),
                "vip.fence_wait",
                "longer than peer.max_age (20s)",
            ),
            (
                "the default fence_wait next to a longer max_age",
                format!("{}{peer}max_age = \"1m\"\n", with_vip(&bbm)),
                "vip.fence_wait",
                "longer than peer.max_age (1m)",
            ),
            (
                "an unknown handover",
                with_vip("handover = \"whenever\"\n"),
                // A value serde refuses is named by its line and the
                // values it takes, as for mode.
                "",
                "unknown variant `whenever`, expected `make_before_break` or `break_before_make`",
            ),
        ];
        for (what, text, key, needle) in rows {
            let errs = Config::parse(&text).expect_err(what).0;
            let e = errs
                .iter()
                .find(|e| e.key == key)
                .unwrap_or_else(|| panic!("{what}: no {key} error in {errs:?}"));
            assert!(e.line.is_some(), "{what}: {e}");
            assert!(e.message.contains(needle), "{what}: {e:?} lacks {needle:?}");
        }
    }

    #[test]
    fn vip_errors_name_the_key_and_line() {
        // (what, the file, expected key, expected line, words the message has)
        let table: Vec<(&str, String, &str, Option<usize>, &str)> = vec![
            (
                "vip without cloud",
                with_vip("").replace("[cloud]\nregion = \"eu-west-1\"\n", ""),
                "vip",
                Some(14),
                "needs a [cloud]",
            ),
            (
                "bad allocation id",
                with_vip("").replace("eipalloc-1", "alloc-1"),
                "vip.allocation_id",
                Some(18),
                "eipalloc-",
            ),
            (
                "unknown vrrp instance",
                with_vip("").replace("vrrp_instance = \"VI_1\"", "vrrp_instance = \"VI_9\""),
                "vip.vrrp_instance",
                Some(20),
                "not a [[keepalived.instance]]",
            ),
            (
                "min_master_age below a second",
                with_vip("min_master_age = \"500ms\"\n"),
                "vip.min_master_age",
                Some(21),
                "at least 1s",
            ),
            (
                "bad mode",
                with_vip("mode = \"fight\"\n"),
                "",
                Some(21),
                "unknown variant `fight`",
            ),
            (
                "unknown vip kind",
                with_vip("").replace("kind = \"eip\"", "kind = \"nat\""),
                "",
                Some(17),
                "unknown variant `nat`",
            ),
            (
                "eip without private_ip",
                with_vip("").replace("private_ip = \"10.0.0.100\"\n", ""),
                "vip.private_ip",
                Some(16),
                "associate = \"instance\"",
            ),
            (
                "private_ip with associate = instance",
                with_vip("associate = \"instance\"\n"),
                "vip.private_ip",
                Some(19),
                "not used with associate",
            ),
            (
                "route without destination",
                with_route("").replace("destination = \"192.168.100.10/32\"\n", ""),
                "vip.destination",
                Some(16),
                "needs the destination CIDR",
            ),
            (
                "route destination not a CIDR",
                with_route("").replace("192.168.100.10/32", "192.168.100.300/32"),
                "vip.destination",
                Some(18),
                "not a CIDR block",
            ),
            (
                "route table not an ID",
                with_route("").replace("\"rtb-2\"", "\"main\""),
                "vip.route_tables",
                Some(19),
                "\"main\" is not a route table ID",
            ),
            (
                "route table twice",
                with_route("").replace("\"rtb-2\"", "\"rtb-1\""),
                "vip.route_tables",
                Some(19),
                "listed twice",
            ),
            (
                "an EIP's key on a route",
                with_route("allocation_id = \"eipalloc-1\"\n"),
                "vip.allocation_id",
                Some(21),
                "is not a key of kind = \"route\"",
            ),
            (
                "private_ip without its address",
                with_private_ip("").replace("private_ip = \"10.0.0.100\"\n", ""),
                "vip.private_ip",
                Some(16),
                "needs the secondary private IP",
            ),
            (
                "private_ip that is IPv6",
                with_private_ip("").replace("10.0.0.100", "fd00::5"),
                "vip.private_ip",
                Some(18),
                "must be an IPv4 address",
            ),
            (
                "an EIP's key on a private_ip",
                with_private_ip("allocation_id = \"eipalloc-1\"\n"),
                "vip.allocation_id",
                Some(20),
                "is not a key of kind = \"private_ip\"",
            ),
            (
                "a private IP that an EIP VIP already moves",
                with_vip(
                    "[[vip]]\nkind = \"private_ip\"\nprivate_ip = \"10.0.0.100\"\nvrrp_instance = \"VI_1\"\n",
                ),
                "vip",
                Some(21),
                "listed twice",
            ),
            (
                "manage_address without an interface",
                with_vip("manage_address = true\n"),
                "vip.interface",
                Some(16),
                "needs the interface",
            ),
            (
                "manage_address on an EIP by instance",
                with_vip("manage_address = true\ninterface = \"eth0\"\nassociate = \"instance\"\n")
                    .replace("private_ip = \"10.0.0.100\"\n", ""),
                "vip.manage_address",
                Some(20),
                "needs a private IP this host carries",
            ),
            (
                "manage_address on a route to a network",
                with_route("manage_address = true\ninterface = \"eth0\"\n")
                    .replace("192.168.100.10/32", "192.168.100.0/24"),
                "vip.manage_address",
                Some(21),
                "single-address destination",
            ),
            (
                "interface without manage_address",
                with_vip("interface = \"eth0\"\n"),
                "vip.interface",
                Some(21),
                "only with manage_address = true",
            ),
            (
                "not an interface name",
                with_vip("manage_address = true\ninterface = \"eth0 eth1\"\n"),
                "vip.interface",
                Some(22),
                "not an interface name",
            ),
            (
                "address_hold below a second",
                with_vip("manage_address = true\ninterface = \"eth0\"\naddress_hold = \"100ms\"\n"),
                "vip.address_hold",
                Some(23),
                "at least 1s",
            ),
            (
                "backoff max below base",
                with_vip("backoff_base = \"1m\"\nbackoff_max = \"10s\"\n"),
                "vip.backoff_max",
                Some(22),
                "at least vip.backoff_base",
            ),
            (
                "verify interval too short",
                with_vip("").replace("region = \"eu-west-1\"", "verify_interval = \"100ms\""),
                "cloud.verify_interval",
                Some(15),
                "at least 1s",
            ),
            (
                "permission check too often",
                with_vip("").replace(
                    "region = \"eu-west-1\"",
                    "permission_check_interval = \"1s\"",
                ),
                "cloud.permission_check_interval",
                Some(15),
                "at least 10s",
            ),
            (
                "state tags too often",
                with_vip("").replace(
                    "region = \"eu-west-1\"",
                    "state_tags = true\nstate_tag_interval = \"2s\"",
                ),
                "cloud.state_tag_interval",
                Some(16),
                "at least 10s",
            ),
            (
                "bad eni",
                with_vip("").replace("region = \"eu-west-1\"", "interface_id = \"eth0\""),
                "cloud.interface_id",
                Some(15),
                "eni-",
            ),
            (
                "unknown cloud key",
                with_vip("").replace("region = \"eu-west-1\"", "zone = \"a\""),
                "",
                Some(15),
                "unknown field `zone`",
            ),
        ];
        for (what, text, key, line, needle) in table {
            let errs = Config::parse(&text).expect_err(what).0;
            let e = &errs[0];
            assert_eq!((e.key.as_str(), e.line), (key, line), "{what}: {e}\n{text}");
            assert!(e.message.contains(needle), "{what}: {e:?} lacks {needle:?}");
        }
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let text = MINIMAL
            .replace("pair = \"edge\"", "pair = \"\"")
            .replace("127.0.0.1:80", "nowhere");
        let errs = Config::parse(&text).expect_err("two errors").0;
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["node.pair", "probe.address"]);
        let shown = ConfigErrors(errs).to_string();
        assert!(shown.starts_with("line 4: node.pair: "), "{shown}");
    }

    #[test]
    fn empty_vrrp_pid_file_turns_the_child_watch_off() {
        let text = MINIMAL.replace(
            "[probe]",
            "vrrp_pid_file = \"\"\njson_dump = false\n[probe]",
        );
        let c = Config::parse(&text).expect("valid");
        assert_eq!(c.keepalived.vrrp_process, VrrpProcess::Off);
        assert_eq!(c.keepalived.json_dump, None);
    }

    #[test]
    fn release_on_crash_can_be_turned_off() {
        let text = MINIMAL.replace(
            "[probe]",
            "release_on_crash = false
[probe]",
        );
        let c = Config::parse(&text).expect("valid");
        assert_eq!(c.keepalived.release_on_crash, None);
        assert!(
            c.describe()
                .contains("keepalived.release_on_crash = false\n")
        );
    }
}
