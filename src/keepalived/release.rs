//! Sending a crashed MASTER's priority-0 advert (`core::release` decides
//! which instances; `keepalived/vrrp.rs` builds the packet;
//! `keepalived/armed.rs` says which adverts are certainly right).
//!
//! One task. While Keepalived runs it keeps a snapshot: the adverts built
//! from keepalived.conf and checked against the running Keepalived (its
//! `-f`, its JSON dump), taken again when a new main process appears, when
//! any file read changes, and every `RETRY` while a check failed. Each
//! instance's verdict is logged when it changes. At an order (one at a
//! time) it looks again that no Keepalived process runs, twice a process
//! check apart, and sends the snapshot's advert, never one read at crash
//! time; an instance without a checked advert sends nothing and says why.
//! It reports each outcome to the owner (`Event::Released`), which logs
//! and counts it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::config::KeepalivedConfig;
use crate::core::input::Event;
use crate::host::file::{FileId, identity};
use crate::keepalived::armed;
use crate::keepalived::process::{Observation, Proc, observe};
use crate::keepalived::vrrp::{Advert, PROTOCOL, TTL};
use crate::metrics::Metrics;

/// How soon a snapshot whose check failed (no dump, a mismatch) is taken
/// again.
pub const RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("a Keepalived process may run ({0}): it speaks VRRP itself; nothing sent")]
    Running(String),
    #[error("no advert checked against the running Keepalived: {0}; nothing sent")]
    NotArmed(String),
    #[error("interface {0} has no IPv4 address to send from (set unicast_src_ip)")]
    NoSource(String),
    #[error(
        "cannot open a raw VRRP socket: {0} (needs CAP_NET_RAW: the packaged unit grants it; a container needs --cap-add NET_RAW)"
    )]
    Socket(std::io::Error),
    #[error("cannot send on {interface} from {from} to {to}: {error}")]
    Send {
        interface: String,
        from: Ipv4Addr,
        to: Ipv4Addr,
        error: std::io::Error,
    },
}

/// The interface's first IPv4 address, as Keepalived picks its source.
fn interface_v4(interface: &str) -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        if ifa.interface_name != interface {
            return None;
        }
        let addr = ifa.address?;
        addr.as_sockaddr_in().map(|sin| sin.ip())
    })
}

fn raw_socket() -> Result<Socket, ReleaseError> {
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(PROTOCOL)))
        .map_err(ReleaseError::Socket)
}

/// Sends `advert` to each destination; returns where it went.
pub fn send(advert: &Advert) -> Result<String, ReleaseError> {
    let source = advert
        .source
        .or_else(|| interface_v4(&advert.interface))
        .ok_or_else(|| ReleaseError::NoSource(advert.interface.clone()))?;
    let socket = raw_socket()?;
    let send_err = |to: Ipv4Addr| {
        let interface = advert.interface.clone();
        move |error| ReleaseError::Send {
            interface,
            from: source,
            to,
            error,
        }
    };
    let first = advert.destinations.first().copied().unwrap_or(source);
    socket
        .bind_device(Some(OsStr::new(&advert.interface).as_encoded_bytes()))
        .map_err(send_err(first))?;
    socket
        .bind(&SockAddr::from(SocketAddr::V4(SocketAddrV4::new(
            source, 0,
        ))))
        .map_err(send_err(first))?;
    socket.set_ttl_v4(TTL).map_err(send_err(first))?;
    socket.set_multicast_ttl_v4(TTL).map_err(send_err(first))?;
    socket
        .set_multicast_loop_v4(false)
        .map_err(send_err(first))?;
    for &to in &advert.destinations {
        let packet = advert.encode(source, to);
        socket
            .send_to(
                &packet,
                &SockAddr::from(SocketAddr::V4(SocketAddrV4::new(to, 0))),
            )
            .map_err(send_err(to))?;
    }
    Ok(format!("{} from {source}", advert.describe()))
}

/// The release's snapshot (armed.rs, rule A5): for which Keepalived, from
/// which files, and per instance the advert or why none.
struct Snapshot {
    main: Proc,
    files: Vec<(PathBuf, Option<FileId>)>,
    adverts: BTreeMap<String, Result<Advert, String>>,
    /// Set when a check could not conclude: taken again then.
    retry_at: Option<tokio::time::Instant>,
}

impl Snapshot {
    fn files_changed(&self) -> bool {
        self.files.iter().any(|(p, id)| identity(p) != *id)
    }

    fn stale(&self, main: &Proc) -> bool {
        self.main != *main
            || self.files_changed()
            || self
                .retry_at
                .is_some_and(|t| tokio::time::Instant::now() >= t)
    }
}

/// Takes a snapshot for the Keepalived whose main process is `main`
/// (rules A1-A4).
async fn snapshot(
    keepalived: &KeepalivedConfig,
    conf: &Path,
    instances: &[String],
    main: &Proc,
) -> Snapshot {
    let mut files = vec![];
    let mut retry_at = None;
    let all = |why: String| -> BTreeMap<String, Result<Advert, String>> {
        instances
            .iter()
            .map(|i| (i.clone(), Err(why.clone())))
            .collect()
    };
    let adverts = 'check: {
        // Rule A1.
        match crate::keepalived::process::command_line(main.pid) {
            Ok((words, cwd)) => {
                let running = armed::config_file_of(&words);
                if !armed::same_file(&running, cwd.as_deref(), conf) {
                    break 'check all(format!(
                        "Keepalived (pid {}) reads {}, not keepalived.config_file {}",
                        main.pid,
                        running.display(),
                        conf.display()
                    ));
                }
            }
            Err(e) => {
                retry_at = Some(tokio::time::Instant::now() + RETRY);
                break 'check all(format!(
                    "cannot read Keepalived's command line (pid {}): {e}",
                    main.pid
                ));
            }
        }
        let items = match crate::keepalived::conf::read_with_files(conf) {
            Ok((items, read)) => {
                files = read
                    .into_iter()
                    .map(|p| {
                        let id = identity(&p);
                        (p, id)
                    })
                    .collect();
                // Read again after the files were stamped: an edit between
                // the read and the stamps would otherwise go unseen.
                let again = crate::keepalived::conf::read(conf).ok();
                if again.as_ref() != Some(&items) {
                    retry_at = Some(tokio::time::Instant::now() + RETRY);
                    break 'check all("keepalived.conf changed while it was read".into());
                }
                items
            }
            Err(e) => {
                files = vec![(conf.to_owned(), identity(conf))];
                break 'check all(format!("keepalived.conf: {e}"));
            }
        };
        // Rule A2.
        if let Some(why) = armed::unreproducible(&items) {
            break 'check all(why);
        }
        // Rule A4 needs the dump.
        let Some(dump) = &keepalived.json_dump else {
            break 'check all(
                "keepalived.json_dump is off, so the running Keepalived's instances cannot be checked".into(),
            );
        };
        let dumped = match crate::keepalived::startup::request_json_dump(dump, main).await {
            Ok(d) => d,
            Err(e) => {
                retry_at = Some(tokio::time::Instant::now() + RETRY);
                break 'check all(format!("the running Keepalived's JSON dump: {e}"));
            }
        };
        instances
            .iter()
            .map(|name| {
                // Rule A3, then A4.
                let verdict = Advert::from_items(&items, name)
                    .map_err(|e| e.to_string())
                    .and_then(|a| {
                        let running = dumped.iter().find(|d| d.name == *name).map(|d| &d.running);
                        armed::check(&a, running).map(|()| a)
                    });
                if verdict.is_err() {
                    retry_at = Some(tokio::time::Instant::now() + RETRY);
                }
                (name.clone(), verdict)
            })
            .collect()
    };
    Snapshot {
        main: main.clone(),
        files,
        adverts,
        retry_at,
    }
}

/// Logs each instance whose verdict changed from `before` to `after`, and
/// sets its gauge.
fn log_changes(before: Option<&Snapshot>, after: &Snapshot, metrics: &Metrics) {
    for (name, verdict) in &after.adverts {
        metrics
            .release_armed
            .with_label_values(&[name.as_str()])
            .set(i64::from(verdict.is_ok()));
        let old = before.and_then(|b| b.adverts.get(name));
        let same = match (old, verdict) {
            (Some(Ok(a)), Ok(b)) => a == b,
            (Some(Err(a)), Err(b)) => a == b,
            _ => false,
        };
        if same {
            continue;
        }
        match verdict {
            Ok(a) => {
                info!(event = "release_armed", vrrp_instance = %name, keepalived_pid = after.main.pid, advert = %a.describe(), "release_on_crash armed: keepalived.conf matches the running Keepalived; if it crashes while MASTER, this advert is sent on its behalf")
            }
            Err(e) => {
                warn!(event = "release_disarmed", vrrp_instance = %name, keepalived_pid = after.main.pid, reason = %e, "release_on_crash disarmed for this instance: a crash while MASTER fails over on Keepalived's own detection")
            }
        }
    }
}

/// Whether a look shows no Keepalived process at all.
fn none_left(keepalived: &KeepalivedConfig) -> Result<(), ReleaseError> {
    match observe(keepalived, None) {
        Observation::Gone { exited: true, .. } => Ok(()),
        Observation::Gone { reason, .. } | Observation::Unknown { reason } => {
            Err(ReleaseError::Running(reason))
        }
        Observation::Running { main, .. } => {
            Err(ReleaseError::Running(format!("pid {}", main.pid)))
        }
    }
}

/// One order: two looks a process check apart that both show no Keepalived
/// left, then the snapshot's advert (rule A5: taken for the Keepalived
/// last seen, from files unchanged since).
async fn release(
    keepalived: &KeepalivedConfig,
    snapshot: Option<&Snapshot>,
    last_main: Option<&Proc>,
    instance: &str,
) -> Result<String, ReleaseError> {
    none_left(keepalived)?;
    tokio::time::sleep(keepalived.process_check_interval).await;
    none_left(keepalived)?;
    let s = snapshot.ok_or_else(|| {
        ReleaseError::NotArmed(
            "no running Keepalived has been seen since the watchdog started".into(),
        )
    })?;
    if last_main != Some(&s.main) {
        return Err(ReleaseError::NotArmed(
            "the Keepalived that went was never checked (it started after the last check)".into(),
        ));
    }
    if s.files_changed() {
        return Err(ReleaseError::NotArmed(
            "keepalived.conf changed since it was checked against the running Keepalived".into(),
        ));
    }
    match s.adverts.get(instance) {
        Some(Ok(advert)) => send(advert),
        Some(Err(why)) => Err(ReleaseError::NotArmed(why.clone())),
        None => Err(ReleaseError::NotArmed(format!(
            "vrrp_instance {instance:?} was not checked"
        ))),
    }
}

/// Serves release orders (instance names) until cancelled, keeping the
/// snapshot current while Keepalived runs.
pub async fn run(
    keepalived: KeepalivedConfig,
    conf: PathBuf,
    instances: Vec<String>,
    mut orders: mpsc::Receiver<String>,
    events: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    async move {
        if let Err(e) = raw_socket() {
            warn!(event = "release_unavailable", error = %e, "release_on_crash is on but cannot work: a crashed MASTER's peer will wait out Keepalived's detection");
        }
        let mut snap: Option<Snapshot> = None;
        let mut last_main: Option<Proc> = None;
        let mut tick = tokio::time::interval(keepalived.process_check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                order = orders.recv() => {
                    let Some(instance) = order else { return Ok(()) };
                    let outcome = release(&keepalived, snap.as_ref(), last_main.as_ref(), &instance)
                        .await
                        .map_err(|e| e.to_string());
                    if events
                        .send(Event::Released { instance, outcome })
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                _ = tick.tick() => {
                    // Only a running Keepalived is checked; a gone or
                    // unknown one keeps the last snapshot for the order.
                    if let Observation::Running { main, .. } = observe(&keepalived, last_main.as_ref()) {
                        last_main = Some(main.clone());
                        if snap.as_ref().is_none_or(|s| s.stale(&main)) {
                            let new = snapshot(&keepalived, &conf, &instances, &main).await;
                            log_changes(snap.as_ref(), &new, &metrics);
                            snap = Some(new);
                        }
                    }
                }
            }
        }
    }
    .instrument(info_span!("release"))
    .await
}
