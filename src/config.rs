//! The configuration file: TOML, parsed once into the types below.
//!
//! Unknown keys are rejected. Every error names the key and, where the file
//! has one, the line. `Config::describe` prints what was understood, with
//! every default filled in (`check-config` shows it).

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
}

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
}

#[derive(Debug, Clone, PartialEq)]
pub struct VipConfig {
    /// A short name for logs and the `vip` label; defaults to the allocation ID.
    pub name: String,
    pub allocation_id: String,
    /// The secondary private IP the EIP is associated with on the MASTER.
    pub private_ip: IpAddr,
    pub vrrp_instance: String,
    pub policy: crate::core::decide::VipPolicy,
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
    /// Keepalived's VRRP process pid file (`-r`); watched when present.
    pub vrrp_pid_file: Option<PathBuf>,
    /// The process name (`/proc/PID/comm`) that a pid must have to count.
    pub process_name: String,
    pub process_check_interval: Duration,
    /// Read the present state at start-up from Keepalived's JSON dump.
    pub json_dump: Option<JsonDumpConfig>,
    pub instances: Vec<InstanceConfig>,
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
}

impl Check {
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Http { .. } => "http",
            Check::Tcp { .. } => "tcp",
            Check::Exec { .. } => "exec",
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
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|errors| LoadError::Invalid {
            path: path.to_owned(),
            errors,
        })
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

    /// What was understood, every default filled in, one key a line.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        let d = |d: &Duration| humantime::format_duration(*d).to_string();
        let _ = writeln!(w, "node.name = {:?}", self.node.name);
        let _ = writeln!(w, "node.pair = {:?}", self.node.pair);
        let _ = writeln!(w, "http.listen = {}", self.http.listen);
        let format = match self.log.format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        let _ = writeln!(w, "log.format = {format:?}");
        let _ = writeln!(w, "log.level = {:?}", self.log.level);
        let k = &self.keepalived;
        let _ = writeln!(w, "keepalived.fifo = {}", k.fifo.display());
        let _ = writeln!(w, "keepalived.pid_file = {}", k.pid_file.display());
        match &k.vrrp_pid_file {
            Some(p) => writeln!(w, "keepalived.vrrp_pid_file = {}", p.display()),
            None => writeln!(w, "keepalived.vrrp_pid_file = (not watched)"),
        }
        .ok();
        let _ = writeln!(w, "keepalived.process_name = {:?}", k.process_name);
        let _ = writeln!(
            w,
            "keepalived.process_check_interval = {}",
            d(&k.process_check_interval)
        );
        match &k.json_dump {
            None => {
                let _ = writeln!(w, "keepalived.json_dump = false");
            }
            Some(j) => {
                let _ = writeln!(w, "keepalived.json_dump = true");
                let _ = writeln!(w, "keepalived.json_file = {}", j.file.display());
                match j.signal {
                    Some(s) => writeln!(w, "keepalived.json_signal = {s}"),
                    None => writeln!(
                        w,
                        "keepalived.json_signal = (asked of `{} --signum=JSON`)",
                        j.binary.display()
                    ),
                }
                .ok();
                let _ = writeln!(w, "keepalived.json_timeout = {}", d(&j.timeout));
            }
        }
        for i in &k.instances {
            let vips: Vec<String> = i.vips.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                w,
                "keepalived.instance {:?}: vips = [{}]",
                i.name,
                vips.join(", ")
            );
        }
        let p = &self.probe;
        let _ = match &p.check {
            Check::Http { url, expect_status } => writeln!(
                w,
                "probe = http GET {url}, expecting status {expect_status}"
            ),
            Check::Tcp { address } => writeln!(w, "probe = tcp connect to {address}"),
            Check::Exec { command, shell } => writeln!(
                w,
                "probe = exec {command:?}{}",
                if *shell { " through /bin/sh -c" } else { "" }
            ),
        };
        let _ = writeln!(
            w,
            "probe.interval = {}, probe.timeout = {}, probe.rise = {}, probe.fall = {}",
            d(&p.interval),
            d(&p.timeout),
            p.rise,
            p.fall
        );
        if let Some(c) = &self.cloud {
            let or = |v: &Option<String>, what: &str| {
                v.clone().unwrap_or_else(|| format!("(from IMDS: {what})"))
            };
            let _ = writeln!(w, "cloud.region = {}", or(&c.region, "placement/region"));
            let _ = writeln!(
                w,
                "cloud.instance_id = {}",
                or(&c.instance_id, "instance-id")
            );
            let _ = writeln!(
                w,
                "cloud.interface_id = {}",
                or(&c.interface_id, "the primary MAC's interface-id")
            );
            let _ = writeln!(
                w,
                "cloud.endpoint = {}",
                c.endpoint
                    .clone()
                    .unwrap_or_else(|| "(SDK default, or AWS_ENDPOINT_URL)".into())
            );
            let _ = writeln!(
                w,
                "cloud.imds_endpoint = {}",
                c.imds_endpoint
                    .clone()
                    .unwrap_or_else(|| "http://169.254.169.254".into())
            );
            let _ = writeln!(
                w,
                "cloud.call_timeout = {}, cloud.verify_interval = {} (jitter {}), cloud.convergence_timeout = {}, cloud.dry_run = {}",
                d(&c.call_timeout),
                d(&c.verify_interval),
                d(&c.verify_jitter),
                d(&c.convergence_timeout),
                c.dry_run
            );
            let _ = writeln!(
                w,
                "cloud.fast_verify_interval = {} for cloud.fast_verify_for = {} after a transition, cloud.state_dir = {}",
                d(&c.fast_verify_interval),
                d(&c.fast_verify_for),
                c.state_dir
                    .as_ref()
                    .map_or("(none: damping in memory only)".into(), |p| p
                        .display()
                        .to_string())
            );
            let _ = writeln!(
                w,
                "cloud.permission_check = {}",
                if c.permission_check {
                    format!(
                        "DryRun at start-up and every {}",
                        d(&c.permission_check_interval)
                    )
                } else {
                    "off".into()
                }
            );
        }
        for v in &self.vips {
            let p = &v.policy;
            let _ = writeln!(
                w,
                "vip {:?}: eip {} on private IP {} while {} is MASTER; mode {:?}, grace {}, min_master_age {}, at most {} claims per {}, back-off {} to {}",
                v.name,
                v.allocation_id,
                v.private_ip,
                v.vrrp_instance,
                p.mode,
                d(&p.grace),
                d(&p.min_master_age),
                p.max_claims,
                d(&p.claim_window),
                d(&p.backoff_base),
                d(&p.backoff_max)
            );
        }
        out
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

// ---- the file as written ---------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: Spanned<RawNode>,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    log: RawLog,
    keepalived: Spanned<RawKeepalived>,
    probe: Spanned<RawProbe>,
    cloud: Option<Spanned<RawCloud>>,
    #[serde(default, rename = "vip")]
    vips: Vec<Spanned<RawVip>>,
}

fn dur(d: Duration) -> Spanned<Dur> {
    Spanned::new(0..0, Dur(d))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCloud {
    region: Option<String>,
    endpoint: Option<Spanned<String>>,
    imds_endpoint: Option<Spanned<String>>,
    instance_id: Option<String>,
    interface_id: Option<Spanned<String>>,
    #[serde(default = "default_call_timeout")]
    call_timeout: Spanned<Dur>,
    #[serde(default = "default_verify_interval")]
    verify_interval: Spanned<Dur>,
    #[serde(default = "default_verify_jitter")]
    verify_jitter: Spanned<Dur>,
    #[serde(default = "default_fast_verify_interval")]
    fast_verify_interval: Spanned<Dur>,
    #[serde(default = "default_fast_verify_for")]
    fast_verify_for: Spanned<Dur>,
    #[serde(default = "default_state_dir")]
    state_dir: String,
    #[serde(default = "default_convergence_timeout")]
    convergence_timeout: Spanned<Dur>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default = "yes")]
    permission_check: bool,
    #[serde(default = "default_permission_check_interval")]
    permission_check_interval: Spanned<Dur>,
}

fn yes() -> bool {
    true
}
fn default_permission_check_interval() -> Spanned<Dur> {
    dur(Duration::from_secs(3600))
}
fn default_call_timeout() -> Spanned<Dur> {
    dur(Duration::from_secs(5))
}
fn default_verify_interval() -> Spanned<Dur> {
    dur(Duration::from_secs(30))
}
fn default_verify_jitter() -> Spanned<Dur> {
    dur(Duration::from_secs(3))
}
fn default_fast_verify_interval() -> Spanned<Dur> {
    dur(Duration::from_secs(1))
}
fn default_fast_verify_for() -> Spanned<Dur> {
    dur(Duration::from_secs(20))
}
fn default_state_dir() -> String {
    "/var/lib/vip-watchdog".into()
}
fn default_convergence_timeout() -> Spanned<Dur> {
    dur(Duration::from_secs(20))
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum VipKind {
    Eip,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum RawMode {
    Heal,
    Own,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVip {
    #[allow(dead_code)]
    kind: VipKind,
    name: Option<Spanned<String>>,
    allocation_id: Spanned<String>,
    private_ip: IpAddr,
    vrrp_instance: Spanned<String>,
    #[serde(default = "default_mode")]
    mode: RawMode,
    #[serde(default = "default_grace")]
    grace: Spanned<Dur>,
    #[serde(default = "default_min_master_age")]
    min_master_age: Spanned<Dur>,
    #[serde(default = "default_max_claims")]
    max_claims: NonZeroU32,
    #[serde(default = "default_claim_window")]
    claim_window: Spanned<Dur>,
    #[serde(default = "default_backoff_base")]
    backoff_base: Spanned<Dur>,
    #[serde(default = "default_backoff_max")]
    backoff_max: Spanned<Dur>,
}

fn default_mode() -> RawMode {
    RawMode::Heal
}
fn default_grace() -> Spanned<Dur> {
    dur(Duration::from_secs(10))
}
fn default_min_master_age() -> Spanned<Dur> {
    dur(Duration::from_secs(3))
}
fn default_max_claims() -> NonZeroU32 {
    NonZeroU32::new(3).expect("3 is not zero")
}
fn default_claim_window() -> Spanned<Dur> {
    dur(Duration::from_secs(600))
}
fn default_backoff_base() -> Spanned<Dur> {
    dur(Duration::from_secs(10))
}
fn default_backoff_max() -> Spanned<Dur> {
    dur(Duration::from_secs(300))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Option<Spanned<String>>,
    pair: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: SocketAddr,
}

impl Default for RawHttp {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9842)),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    format: LogFormat,
    level: Spanned<String>,
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
struct Dur(#[serde(with = "humantime_serde")] Duration);

fn default_fifo() -> Spanned<PathBuf> {
    Spanned::new(0..0, "/run/vip-watchdog/keepalived.fifo".into())
}
fn default_pid_file() -> Spanned<PathBuf> {
    Spanned::new(0..0, "/run/keepalived.pid".into())
}
fn default_vrrp_pid_file() -> Option<Spanned<PathBuf>> {
    Some(Spanned::new(0..0, "/run/keepalived_vrrp.pid".into()))
}
fn default_process_name() -> String {
    "keepalived".into()
}
fn default_check_interval() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_millis(250)))
}
fn default_true() -> bool {
    true
}
fn default_json_file() -> Spanned<PathBuf> {
    Spanned::new(0..0, "/tmp/keepalived.json".into())
}
fn default_binary() -> PathBuf {
    "keepalived".into()
}
fn default_json_timeout() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(2)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeepalived {
    #[serde(default = "default_fifo")]
    fifo: Spanned<PathBuf>,
    #[serde(default = "default_pid_file")]
    pid_file: Spanned<PathBuf>,
    /// `""` turns the VRRP process watch off.
    #[serde(default = "default_vrrp_pid_file")]
    vrrp_pid_file: Option<Spanned<PathBuf>>,
    #[serde(default = "default_process_name")]
    process_name: String,
    #[serde(default = "default_check_interval")]
    process_check_interval: Spanned<Dur>,
    #[serde(default = "default_true")]
    json_dump: bool,
    #[serde(default = "default_json_file")]
    json_file: Spanned<PathBuf>,
    json_signal: Option<Spanned<i32>>,
    #[serde(default = "default_binary")]
    binary: PathBuf,
    #[serde(default = "default_json_timeout")]
    json_timeout: Spanned<Dur>,
    #[serde(default, rename = "instance")]
    instances: Vec<Spanned<RawInstance>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    name: Spanned<String>,
    #[serde(default)]
    vips: Vec<IpAddr>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum ProbeKind {
    Http,
    Tcp,
    Exec,
}

fn default_interval() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(1)))
}
fn default_timeout() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_millis(500)))
}
fn default_rise_fall() -> NonZeroU32 {
    NonZeroU32::new(2).expect("2 is not zero")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    kind: ProbeKind,
    url: Option<Spanned<String>>,
    expect_status: Option<Spanned<u16>>,
    address: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    shell: Option<Spanned<bool>>,
    #[serde(default = "default_interval")]
    interval: Spanned<Dur>,
    #[serde(default = "default_timeout")]
    timeout: Spanned<Dur>,
    #[serde(default = "default_rise_fall")]
    rise: NonZeroU32,
    #[serde(default = "default_rise_fall")]
    fall: NonZeroU32,
}

// ---- validation --------------------------------------------------------------

struct Validator<'a> {
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn err<T>(&mut self, key: &str, span: &Spanned<T>, message: impl Into<String>) {
        let line = (span.span() != (0..0)).then(|| line_of(self.text, span.span().start));
        self.errors.push(ConfigError {
            key: key.to_owned(),
            line,
            message: message.into(),
        });
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let node = self.node(raw.node);
        let level = raw.log.level;
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(level.get_ref()) {
            self.err("log.level", &level, format!("not a log filter: {e}"));
        }
        let keepalived = self.keepalived(raw.keepalived);
        let probe = self.probe(raw.probe);
        let cloud = raw.cloud.map(|c| self.cloud(c));
        let vips = self.vips(raw.vips, &keepalived, cloud.as_ref());
        Config {
            cloud,
            vips,
            node,
            http: HttpConfig {
                listen: raw.http.listen,
            },
            log: LogConfig {
                format: raw.log.format,
                level: level.into_inner(),
            },
            keepalived,
            probe,
        }
    }

    fn label(&mut self, key: &str, value: &Spanned<String>) {
        let v = value.get_ref();
        let ok = !v.is_empty()
            && v.len() <= 64
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.err(
                key,
                value,
                format!("{v:?} must be 1-64 characters of letters, digits, '-', '_', '.'"),
            );
        }
    }

    fn node(&mut self, raw: Spanned<RawNode>) -> NodeConfig {
        let raw = raw.into_inner();
        self.label("node.pair", &raw.pair);
        let name = match raw.name {
            Some(name) => {
                self.label("node.name", &name);
                name.into_inner()
            }
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown".into()),
        };
        NodeConfig {
            name,
            pair: raw.pair.into_inner(),
        }
    }

    fn absolute(&mut self, key: &str, path: &Spanned<PathBuf>) {
        if !path.get_ref().is_absolute() {
            self.err(
                key,
                path,
                format!("{} must be an absolute path", path.get_ref().display()),
            );
        }
    }

    fn keepalived(&mut self, raw: Spanned<RawKeepalived>) -> KeepalivedConfig {
        let raw = raw.into_inner();
        self.absolute("keepalived.fifo", &raw.fifo);
        self.absolute("keepalived.pid_file", &raw.pid_file);
        let vrrp_pid_file = match raw.vrrp_pid_file {
            Some(p) if p.get_ref().as_os_str().is_empty() => None,
            Some(p) => {
                self.absolute("keepalived.vrrp_pid_file", &p);
                Some(p.into_inner())
            }
            None => None,
        };
        let every = raw.process_check_interval.get_ref().0;
        if !(Duration::from_millis(10)..=Duration::from_secs(10)).contains(&every) {
            self.err(
                "keepalived.process_check_interval",
                &raw.process_check_interval,
                "must be from 10ms to 10s: a crashed Keepalived must be noticed quickly",
            );
        }
        let json_dump = if raw.json_dump {
            self.absolute("keepalived.json_file", &raw.json_file);
            if let Some(sig) = &raw.json_signal
                && !(1..=64).contains(sig.get_ref())
            {
                self.err(
                    "keepalived.json_signal",
                    sig,
                    "must be a signal number from 1 to 64",
                );
            }
            Some(JsonDumpConfig {
                file: raw.json_file.into_inner(),
                signal: raw.json_signal.map(Spanned::into_inner),
                binary: raw.binary,
                timeout: raw.json_timeout.into_inner().0,
            })
        } else {
            None
        };
        let mut instances: Vec<InstanceConfig> = vec![];
        for inst in raw.instances {
            let inst = inst.into_inner();
            let name = inst.name.get_ref();
            if name.is_empty() || name.contains('"') {
                self.err(
                    "keepalived.instance.name",
                    &inst.name,
                    "must be a non-empty vrrp_instance name without '\"'",
                );
            } else if instances.iter().any(|i| &i.name == name) {
                self.err(
                    "keepalived.instance.name",
                    &inst.name,
                    format!("instance {name:?} is listed twice"),
                );
            }
            instances.push(InstanceConfig {
                name: inst.name.into_inner(),
                vips: inst.vips,
            });
        }
        KeepalivedConfig {
            fifo: raw.fifo.into_inner(),
            pid_file: raw.pid_file.into_inner(),
            vrrp_pid_file,
            process_name: raw.process_name,
            process_check_interval: every,
            json_dump,
            instances,
        }
    }

    fn url(&mut self, key: &str, v: Option<Spanned<String>>) -> Option<String> {
        let v = v?;
        match reqwest::Url::parse(v.get_ref()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(v.into_inner()),
            _ => {
                self.err(key, &v, format!("{:?} is not an http(s) URL", v.get_ref()));
                None
            }
        }
    }

    fn cloud(&mut self, raw: Spanned<RawCloud>) -> CloudConfig {
        let raw = raw.into_inner();
        let endpoint = self.url("cloud.endpoint", raw.endpoint);
        let imds_endpoint = self.url("cloud.imds_endpoint", raw.imds_endpoint);
        if let Some(eni) = &raw.interface_id
            && !eni.get_ref().starts_with("eni-")
        {
            self.err("cloud.interface_id", eni, "must be an ENI ID (eni-...)");
        }
        let call_timeout = raw.call_timeout.get_ref().0;
        if call_timeout < Duration::from_millis(100) || call_timeout > Duration::from_secs(60) {
            self.err(
                "cloud.call_timeout",
                &raw.call_timeout,
                "must be from 100ms to 60s",
            );
        }
        let verify_interval = raw.verify_interval.get_ref().0;
        if verify_interval < Duration::from_secs(1) {
            self.err(
                "cloud.verify_interval",
                &raw.verify_interval,
                "must be at least 1s: every node of every pair shares the account's describe rate",
            );
        }
        let verify_jitter = raw.verify_jitter.get_ref().0;
        if verify_jitter > verify_interval {
            self.err(
                "cloud.verify_jitter",
                &raw.verify_jitter,
                "must be at most cloud.verify_interval",
            );
        }
        let fast_verify_interval = raw.fast_verify_interval.get_ref().0;
        if fast_verify_interval < crate::cloud::verifier::MIN_GAP
            || fast_verify_interval > verify_interval
        {
            self.err(
                "cloud.fast_verify_interval",
                &raw.fast_verify_interval,
                "must be from 1s to cloud.verify_interval",
            );
        }
        let fast_verify_for = raw.fast_verify_for.get_ref().0;
        if fast_verify_for > Duration::from_secs(600) {
            self.err(
                "cloud.fast_verify_for",
                &raw.fast_verify_for,
                "must be at most 10m: the fast pace is for the moments after a transition",
            );
        }
        let permission_check_interval = raw.permission_check_interval.get_ref().0;
        if permission_check_interval < Duration::from_secs(10) {
            self.err(
                "cloud.permission_check_interval",
                &raw.permission_check_interval,
                "must be at least 10s",
            );
        }
        CloudConfig {
            region: raw.region,
            endpoint,
            imds_endpoint,
            instance_id: raw.instance_id,
            interface_id: raw.interface_id.map(Spanned::into_inner),
            call_timeout,
            verify_interval,
            verify_jitter,
            fast_verify_interval,
            fast_verify_for,
            state_dir: (!raw.state_dir.is_empty()).then(|| raw.state_dir.into()),
            convergence_timeout: raw.convergence_timeout.get_ref().0,
            dry_run: raw.dry_run,
            permission_check: raw.permission_check,
            permission_check_interval,
        }
    }

    fn vips(
        &mut self,
        raw: Vec<Spanned<RawVip>>,
        keepalived: &KeepalivedConfig,
        cloud: Option<&CloudConfig>,
    ) -> Vec<VipConfig> {
        let mut out: Vec<VipConfig> = vec![];
        for spanned in raw {
            let table = Spanned::new(spanned.span(), ());
            let v = spanned.into_inner();
            if cloud.is_none() {
                self.err("vip", &table, "a [[vip]] needs a [cloud] table");
            }
            if !v.allocation_id.get_ref().starts_with("eipalloc-") {
                self.err(
                    "vip.allocation_id",
                    &v.allocation_id,
                    "must be an allocation ID (eipalloc-...)",
                );
            }
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
            let name = match v.name {
                Some(n) => {
                    self.label("vip.name", &n);
                    n.into_inner()
                }
                None => v.allocation_id.get_ref().clone(),
            };
            if out
                .iter()
                .any(|o| o.name == name || &o.allocation_id == v.allocation_id.get_ref())
            {
                self.err(
                    "vip.allocation_id",
                    &v.allocation_id,
                    format!("VIP {name:?} is listed twice"),
                );
            }
            out.push(VipConfig {
                name,
                allocation_id: v.allocation_id.into_inner(),
                private_ip: v.private_ip,
                vrrp_instance: v.vrrp_instance.into_inner(),
                policy: crate::core::decide::VipPolicy {
                    mode: match v.mode {
                        RawMode::Heal => crate::core::decide::Mode::Heal,
                        RawMode::Own => crate::core::decide::Mode::Own,
                    },
                    grace: v.grace.get_ref().0,
                    min_master_age,
                    max_claims: v.max_claims.get(),
                    claim_window: v.claim_window.get_ref().0,
                    backoff_base: base,
                    backoff_max: max,
                    dry_run: cloud.is_some_and(|c| c.dry_run),
                },
            });
        }
        out
    }

    fn probe(&mut self, raw: Spanned<RawProbe>) -> ProbeConfig {
        let table = Spanned::new(raw.span(), ());
        let raw = raw.into_inner();
        let (interval, timeout) = (raw.interval.get_ref().0, raw.timeout.get_ref().0);
        if interval < Duration::from_millis(10) {
            self.err("probe.interval", &raw.interval, "must be at least 10ms");
        }
        if timeout.is_zero() || timeout > interval {
            self.err(
                "probe.timeout",
                &raw.timeout,
                format!(
                    "must be more than 0 and at most probe.interval ({})",
                    humantime::format_duration(interval)
                ),
            );
        }
        // Keys that belong to another kind are mistakes, not noise.
        let kind = raw.kind;
        let foreign: [(&str, Option<std::ops::Range<usize>>, ProbeKind); 5] = [
            ("url", raw.url.as_ref().map(Spanned::span), ProbeKind::Http),
            (
                "expect_status",
                raw.expect_status.as_ref().map(Spanned::span),
                ProbeKind::Http,
            ),
            (
                "address",
                raw.address.as_ref().map(Spanned::span),
                ProbeKind::Tcp,
            ),
            (
                "command",
                raw.command.as_ref().map(Spanned::span),
                ProbeKind::Exec,
            ),
            (
                "shell",
                raw.shell.as_ref().map(Spanned::span),
                ProbeKind::Exec,
            ),
        ];
        for (key, span, owner) in foreign {
            if let Some(span) = span
                && owner != kind
            {
                let s = Spanned::new(span, ());
                self.err(
                    &format!("probe.{key}"),
                    &s,
                    format!("is not used by kind = \"{}\"", kind_name(kind)),
                );
            }
        }
        let placeholder = Check::Tcp {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let check = match kind {
            ProbeKind::Http => match raw.url {
                None => {
                    self.err("probe.url", &table, "is required for kind = \"http\"");
                    placeholder
                }
                Some(url) => {
                    let expect_status = match raw.expect_status {
                        Some(s) if !(100..=599).contains(s.get_ref()) => {
                            self.err(
                                "probe.expect_status",
                                &s,
                                "must be an HTTP status from 100 to 599",
                            );
                            200
                        }
                        Some(s) => s.into_inner(),
                        None => 200,
                    };
                    match reqwest::Url::parse(url.get_ref()) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") => Check::Http {
                            url: u,
                            expect_status,
                        },
                        Ok(u) => {
                            self.err(
                                "probe.url",
                                &url,
                                format!("scheme {:?} is not http or https", u.scheme()),
                            );
                            placeholder
                        }
                        Err(e) => {
                            self.err("probe.url", &url, format!("not a URL: {e}"));
                            placeholder
                        }
                    }
                }
            },
            ProbeKind::Tcp => match raw.address {
                None => {
                    self.err("probe.address", &table, "is required for kind = \"tcp\"");
                    placeholder
                }
                Some(a) => match a.get_ref().parse::<SocketAddr>() {
                    Ok(address) => Check::Tcp { address },
                    Err(_) => {
                        self.err(
                            "probe.address",
                            &a,
                            format!("{:?} is not IP:port (e.g. \"127.0.0.1:80\")", a.get_ref()),
                        );
                        placeholder
                    }
                },
            },
            ProbeKind::Exec => {
                let shell = raw.shell.as_ref().is_some_and(|s| *s.get_ref());
                match raw.command {
                    None => {
                        self.err("probe.command", &table, "is required for kind = \"exec\"");
                        placeholder
                    }
                    Some(c) if c.get_ref().is_empty() || c.get_ref()[0].is_empty() => {
                        self.err("probe.command", &c, "must name a program");
                        placeholder
                    }
                    Some(c) if shell && c.get_ref().len() != 1 => {
                        self.err(
                            "probe.command",
                            &c,
                            "with shell = true, give the whole command as one string",
                        );
                        placeholder
                    }
                    Some(c) => Check::Exec {
                        command: c.into_inner(),
                        shell,
                    },
                }
            }
        };
        ProbeConfig {
            check,
            interval,
            timeout,
            rise: raw.rise,
            fall: raw.fall,
        }
    }
}

fn kind_name(k: ProbeKind) -> &'static str {
    match k {
        ProbeKind::Http => "http",
        ProbeKind::Tcp => "tcp",
        ProbeKind::Exec => "exec",
    }
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
        assert_eq!(
            c.keepalived.vrrp_pid_file,
            Some(PathBuf::from("/run/keepalived_vrrp.pid"))
        );
        assert_eq!(
            c.keepalived.process_check_interval,
            Duration::from_millis(250)
        );
        assert!(c.keepalived.json_dump.is_some());
        assert_eq!(c.probe.interval, Duration::from_secs(1));
        assert_eq!(c.probe.timeout, Duration::from_millis(500));
        assert_eq!((c.probe.rise.get(), c.probe.fall.get()), (2, 2));
        assert_eq!(c.log.format, LogFormat::Text);
    }

    #[test]
    fn the_example_config_parses_and_describes_as_the_golden_file() {
        let text = include_str!("../examples/vip-watchdog.toml");
        let c = Config::parse(text).unwrap_or_else(|e| panic!("example config: {e}"));
        let golden = include_str!("../tests/golden/example-config.txt");
        assert_eq!(
            c.describe(),
            golden,
            "update tests/golden/example-config.txt"
        );
    }

    /// Each bad input names its key (and line, where there is one).
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

    #[test]
    fn vip_config_defaults_are_safe() {
        let c = Config::parse(&with_vip("")).expect("valid");
        let v = &c.vips[0];
        assert_eq!(v.name, "eipalloc-1");
        assert_eq!(v.policy.mode, crate::core::decide::Mode::Heal);
        assert_eq!(v.policy.min_master_age, Duration::from_secs(3));
        assert_eq!(v.policy.grace, Duration::from_secs(10));
        assert_eq!(v.policy.max_claims, 3);
        assert!(!v.policy.dry_run);
        let cloud = c.cloud.expect("cloud");
        assert_eq!(cloud.verify_interval, Duration::from_secs(30));
        assert_eq!(cloud.region.as_deref(), Some("eu-west-1"));
        assert!(cloud.permission_check);
        assert_eq!(cloud.permission_check_interval, Duration::from_secs(3600));
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
                with_vip("").replace("kind = \"eip\"", "kind = \"route\""),
                "",
                Some(17),
                "unknown variant `route`",
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
        assert_eq!(c.keepalived.vrrp_pid_file, None);
        assert_eq!(c.keepalived.json_dump, None);
    }
}
