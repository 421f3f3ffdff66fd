//! The command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LoadError, LogFormat, WebFlags};

#[derive(Parser, Debug)]
#[command(
    name = "vip-watchdog",
    version = crate::metrics::VERSION,
    about = "Keepalived sidecar: follows VRRP state, probes the local load balancer, exports what it sees"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the watchdog.
    Run {
        /// The config file.
        #[arg(long, env = "VIP_WATCHDOG_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Overrides log.format from the config file (text or json).
        #[arg(long = "log.format", alias = "log-format", value_enum)]
        log_format: Option<LogFormat>,
        /// Overrides log.level from the config file: a level (error, warn,
        /// info, debug, trace) or a tracing filter (vip_watchdog=debug).
        #[arg(long = "log.level", value_parser = parse_log_level)]
        log_level: Option<String>,
        #[command(flatten)]
        web: WebFlags,
    },
    /// Parse and validate the config; print what was understood; then
    /// cross-check it with keepalived.conf (the notify FIFO, the instances,
    /// each VIP's address in its instance). With --host, check this host
    /// too: Keepalived's processes and its -f, the FIFO it writes, the
    /// capabilities the features need, the JSON dump, and with route VIPs
    /// IPv4 forwarding. Exit 0 when all
    /// agree, 1 when keepalived.conf or the host disagrees, 2 on a bad
    /// config.
    CheckConfig {
        /// The config file.
        #[arg(long, env = "VIP_WATCHDOG_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Also check this host (run it as the service runs, to see what
        /// the service will hold).
        #[arg(long)]
        host: bool,
        /// The user the service runs as, for the dump's permissions.
        #[arg(long, default_value = "vip-watchdog")]
        service_user: String,
        /// keepalived.conf, with its includes. At the default path, a
        /// missing file is reported and not an error.
        #[arg(long, default_value = DEFAULT_KEEPALIVED_CONF)]
        keepalived_config: PathBuf,
        #[command(flatten)]
        web: WebFlags,
    },
    /// Ask the cloud, once, mutating nothing: this node's identity, where
    /// each VIP is, and (with DryRun) whether this node may make the calls
    /// a claim needs. Exit 0 when every answer allows, 1 otherwise.
    CheckCloud {
        /// The config file.
        #[arg(long, env = "VIP_WATCHDOG_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Ask the running watchdog's /healthz (on the config's http.listen);
    /// exit 0 when healthy, 1 otherwise. For a container's HEALTHCHECK.
    Health {
        /// The config file.
        #[arg(long, env = "VIP_WATCHDOG_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[command(flatten)]
        web: WebFlags,
    },
    /// Drain this node for maintenance: make Keepalived hand over (the
    /// drain file, tracked by keepalived.conf's vrrp_track_file with weight
    /// 0) and wait until the cloud shows every VIP on the peer. With a
    /// [peer], refused unless the peer is a healthy BACKUP. Exit 0 when
    /// done, 1 when refused or not done in time.
    Switchover {
        /// The config file.
        #[arg(long, env = "VIP_WATCHDOG_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Give the node back: no instance in FAULT any more (Keepalived's
        /// preemption then decides who is MASTER).
        #[arg(long)]
        undo: bool,
        /// How long to wait for the handover.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// A user of the web config's basic_auth_users; the password is
        /// read from VIP_WATCHDOG_PASSWORD.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        web: WebFlags,
    },
    /// Read a password on stdin (one line) and print its bcrypt hash, for
    /// basic_auth_users in the web config file.
    HashPassword {
        /// bcrypt's cost: each step doubles the work of every check.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
    },
    /// Print shell completions (bash, zsh, fish, ...) to stdout.
    #[command(hide = true)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    #[command(hide = true)]
    Man,
    /// Run a notify script for Keepalived (notify_master) with a clean
    /// environment and a timeout, and tell the running watchdog how it
    /// ended. Exits with the script's status (124 at the timeout, 127 when
    /// it cannot start).
    Notify {
        /// The config file.
        #[arg(long, env = "VIP_WATCHDOG_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The script's process group is killed after this long.
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// The VRRP instance the script is for; without it, the report is
        /// for every VIP.
        #[arg(long)]
        instance: Option<String>,
        /// The script and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
        #[command(flatten)]
        web: WebFlags,
    },
}

/// Where Keepalived's config is by default.
pub const DEFAULT_KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";

/// Where the package installs the watchdog's config.
pub const DEFAULT_CONFIG: &str = "/etc/vip-watchdog/vip-watchdog.toml";

/// `--log.level`: checked as the config's `log.level` is.
fn parse_log_level(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("not a level or tracing filter: {e}"))
}

/// Exit codes: 0 fine, 1 failed while running (or, for `check-cloud`, a
/// refusal or no answer), 2 bad configuration.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "vip-watchdog", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::HashPassword { cost } => hash_password(cost),
        Command::Health { config, web } => {
            let config = match Config::load_with(&config, &web) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            let runtime = match runtime(tokio::runtime::Builder::new_current_thread()) {
                Ok(r) => r,
                Err(code) => return code,
            };
            match runtime.block_on(crate::http::check_health(&config.http)) {
                Ok(()) => {
                    println!("healthy");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("vip-watchdog: unhealthy: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Switchover {
            config,
            undo,
            timeout,
            user,
            web,
        } => {
            let config = match Config::load_with(&config, &web) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            let user = match user {
                None => None,
                Some(u) => match std::env::var("VIP_WATCHDOG_PASSWORD") {
                    Ok(p) => Some((u, p)),
                    Err(_) => {
                        eprintln!(
                            "vip-watchdog: --user needs the password in VIP_WATCHDOG_PASSWORD"
                        );
                        return ExitCode::FAILURE;
                    }
                },
            };
            let runtime = match runtime(tokio::runtime::Builder::new_current_thread()) {
                Ok(r) => r,
                Err(code) => return code,
            };
            match runtime.block_on(crate::http::switchover::main(
                &config.http,
                undo,
                timeout,
                user,
            )) {
                Ok(done) => {
                    println!("{done}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("vip-watchdog: switchover: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vip-watchdog: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig {
            config,
            host,
            service_user,
            keepalived_config,
            web,
        } => match Config::load_with(&config, &web) {
            Ok(c) => {
                print!("{}", c.describe());
                println!("{}: OK", config.display());
                let agrees = if keepalived_config.as_os_str() == DEFAULT_KEEPALIVED_CONF
                    && !keepalived_config.exists()
                {
                    println!(
                        "keepalived.conf: {DEFAULT_KEEPALIVED_CONF} does not exist: not cross-checked (--keepalived-config PATH)"
                    );
                    true
                } else {
                    let (text, agrees) = crate::keepalived::check::report(&c, &keepalived_config);
                    print!("{text}");
                    agrees
                };
                let host_ok = if host {
                    let runtime = match runtime(tokio::runtime::Builder::new_current_thread()) {
                        Ok(r) => r,
                        Err(code) => return code,
                    };
                    let (text, ok) =
                        runtime.block_on(crate::keepalived::host::check(&c, &service_user));
                    print!("{text}");
                    ok
                } else {
                    true
                };
                if agrees && host_ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => config_error(&e),
        },
        Command::CheckCloud { config } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            let _log = crate::logging::init(LogFormat::Text, "warn");
            let Some(cloud) = config.cloud.as_ref().filter(|_| !config.vips.is_empty()) else {
                println!("no [cloud] and [[vip]] in the config: nothing to check");
                return ExitCode::SUCCESS;
            };
            let runtime = match runtime(tokio::runtime::Builder::new_current_thread()) {
                Ok(r) => r,
                Err(code) => return code,
            };
            match runtime.block_on(crate::cloud::permissions::check_cloud(cloud, &config.vips)) {
                Ok(report) => {
                    println!("{report}");
                    if report.ok() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("vip-watchdog: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Notify {
            config,
            timeout,
            instance,
            command,
            web,
        } => {
            let runtime = match runtime(tokio::runtime::Builder::new_current_thread()) {
                Ok(r) => r,
                Err(code) => return code,
            };
            let options = crate::notify::wrapper::Options {
                config,
                web,
                timeout,
                instance,
                command,
            };
            ExitCode::from(runtime.block_on(crate::notify::wrapper::main(options)))
        }
        Command::Run {
            config: path,
            log_format,
            log_level,
            web,
        } => {
            let mut config = match Config::load_with(&path, &web) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            if let Some(f) = log_format {
                config.log.format = f;
            }
            if let Some(l) = log_level {
                config.log.level = l;
            }
            let _log = crate::logging::init(config.log.format, &config.log.level);
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            let runtime = match runtime(builder) {
                Ok(r) => r,
                Err(code) => return code,
            };
            let result = runtime.block_on(crate::reload::run_until_stopped(path, web, config));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(event = "stopped_on_error", error = %format!("{e:#}"), "vip-watchdog stopped");
                    eprintln!("vip-watchdog: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn hash_password(cost: u32) -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("vip-watchdog: cannot read the password on stdin: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("vip-watchdog: an empty password: give one line on stdin");
        return ExitCode::from(2);
    }
    match bcrypt::hash(password, cost) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vip-watchdog: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|e| {
        eprintln!("vip-watchdog: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

fn config_error(e: &LoadError) -> ExitCode {
    eprintln!("vip-watchdog: {e}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    fn parse(args: &[&str]) -> Result<Cli, String> {
        Cli::try_parse_from(std::iter::once("vip-watchdog").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn flags_follow_the_exporter_conventions() {
        let cli = parse(&["run"]).unwrap();
        let Command::Run {
            config,
            log_format,
            log_level,
            web,
        } = cli.command
        else {
            panic!("run");
        };
        if std::env::var_os("VIP_WATCHDOG_CONFIG").is_none() {
            assert_eq!(config, PathBuf::from(DEFAULT_CONFIG), "the packaged path");
        }
        assert_eq!(
            (log_format, log_level, web.listen_address),
            (None, None, None)
        );

        let cli = parse(&[
            "run",
            "--log.level",
            "vip_watchdog=debug",
            "--log-format",
            "json",
            "--web.listen-address=:9842",
        ])
        .unwrap();
        let Command::Run {
            log_format,
            log_level,
            web,
            ..
        } = cli.command
        else {
            panic!("run");
        };
        assert_eq!(
            log_format,
            Some(LogFormat::Json),
            "--log-format stays an alias"
        );
        assert_eq!(log_level.as_deref(), Some("vip_watchdog=debug"));
        assert_eq!(web.listen_address, Some("0.0.0.0:9842".parse().unwrap()));
        assert!(parse(&["run", "--log.format", "text"]).is_ok());

        for (args, names) in [
            (&["run", "--log.level", "loud=["][..], "--log.level"),
            (
                &["health", "--web.listen-address", "9842"][..],
                "--web.listen-address",
            ),
            (&["run", "--log.format", "xml"][..], "--log.format"),
        ] {
            let e = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            assert!(e.contains(names), "{args:?}: {e}");
        }
    }

    #[test]
    fn every_flag_has_help() {
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(
                    arg.get_help().is_some(),
                    "{} --{id} has no help text",
                    sub.get_name()
                );
            }
        }
    }
}
