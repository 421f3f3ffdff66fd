//! vip-watchdog: a sidecar next to Keepalived on each node of an HA pair.
//!
//! # Layout
//!
//! ```text
//! main.rs, cli.rs      parse the command line, load the config
//! reload.rs            run() until SIGTERM, again with a new config on SIGHUP
//! config/              TOML -> typed Config; errors name key and line
//! clock.rs             the runtime's clocks (monotonic for ages, wall for display)
//! core/                pure: the vocabulary (words.rs), inputs and changes,
//!                      the model, the claim, address and release rules (see
//!                      core/mod.rs); imports nothing outside core/
//! keepalived/          the FIFO (line.rs pure, fifo.rs), the processes
//!                      (process.rs, watch.rs), start-up (startup.rs),
//!                      keepalived.conf (conf.rs, check.rs), the release advert
//! probe/               local probe task: http / tcp / exec with rise/fall
//! host/                this host's addresses, as events; the task that adds
//!                      and removes a managed private IP (rtnetlink)
//! cloud/               everything cloud: the trait and aws-sdk-ec2, the owner's
//!                      cloud side, executor, verifier, permission checker,
//!                      damping store (see cloud/mod.rs)
//! notify/              the notify wrapper and its report to the watchdog
//! peer/                the channel to the other node's watchdog
//! owner/               the one task that owns the core (core::turn::Core)
//! metrics/, status.rs  what is exported; landing.rs the page at /
//! http/                the server: routes, listeners, TLS, basic auth
//! systemd.rs           READY=1 and WATCHDOG=1 for a Type=notify unit
//! ```
//!
//! An event flows one way: source task -> owner (`Core::apply`) -> logs,
//! metrics -> `Core::plan` -> executor -> cloud -> a `CloudEvent` back to
//! the owner; and a published status snapshot (`Status::of(core)`).
//!
//! # Invariants
//!
//! - Nothing in `core/` awaits; nothing outside the owner task mutates the
//!   model; an owner turn makes no system call.
//! - Ages, windows and back-off are on the monotonic clock.
//! - A state is never invented: without evidence an instance is `unknown`;
//!   FIFO lines buffered before start-up are discarded, not believed.
//! - When Keepalived's process is gone, every instance it reported becomes
//!   `stop` at once, whatever the FIFO or the addresses last said.
//! - A critical task that ends ends the process with an error.

#![deny(unsafe_code)]

pub mod cli;
pub mod clock;
pub mod cloud;
pub mod config;
pub mod core;
pub mod host;
pub mod http;
pub mod keepalived;
pub mod landing;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod owner;
pub mod peer;
pub mod probe;
pub mod reload;
pub mod status;
pub mod systemd;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::core::model::Model;
use crate::keepalived::{fifo, process, startup};
use crate::metrics::Metrics;
use crate::owner::Owner;
use crate::status::Status;

/// An error with its causes, `: `-separated (many libraries' Display hides
/// the cause, e.g. reqwest's "error sending request").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Events queued between the sources and the owner.
const EVENT_QUEUE: usize = 1024;
/// How long tasks get to finish after shutdown is asked.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs until `shutdown` is cancelled or a critical task fails.
pub async fn run(
    config: Config,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let release_names = config.vrrp_instances();
    let routed: Vec<String> = config.route_vips().into_iter().map(str::to_owned).collect();
    let Config {
        node,
        http,
        log: _,
        keepalived,
        probe,
        cloud,
        vips,
        peer,
    } = config;
    let started = SystemTime::now();
    info!(event = "starting",
        version = crate::metrics::VERSION,
        node = %node.name,
        pair = %node.pair,
        "vip-watchdog starting"
    );

    // A route VIP's next hop forwards its traffic: exported at each
    // scrape, logged now.
    metrics.ip_forward.watch((!routed.is_empty()).then(|| {
        Box::new(|| {
            crate::host::forwarding::read(std::path::Path::new(crate::host::forwarding::IP_FORWARD))
                .ok()
        }) as crate::metrics::forwarding::Reader
    }));
    crate::host::forwarding::report(&routed);

    // The FIFO first, so that Keepalived finds ours; what it already holds
    // was written before we started and describes the past.
    let mut fifo = fifo::Fifo::open(&keepalived.fifo)?;
    let stale = fifo.discard_buffered()?;
    metrics.lines_stale(stale as u64);
    if stale > 0 {
        info!(
            event = "fifo_backlog_discarded",
            lines = stale,
            "discarded FIFO lines buffered before start-up: they describe the past"
        );
    }

    // Keepalived's processes, then its present state from a source that reports it.
    let observed = process::observe(&keepalived, None);
    let mut initial = process::diff(None, &observed);
    if let process::Observation::Running { main, .. } = &observed {
        let (events, failure) = startup::learn(&keepalived, main).await;
        if let Some(reason) = failure {
            warn!(event = "startup_state_not_from_dump", reason = %reason, "start-up state is not from keepalived's JSON dump");
        }
        initial.extend(events);
    }

    // The cloud side: this node's identity first, so that a missing one stops
    // start-up with a clear error instead of running blind.
    let cloud = match cloud {
        Some(cloud) if !vips.is_empty() => {
            let id = cloud::imds::identity(&cloud).await?;
            info!(event = "cloud_identity",
                instance_id = %id.instance_id,
                region = %id.region,
                interface_id = %id.interface_id,
                dry_run = cloud.dry_run,
                "cloud identity"
            );
            let aws =
                cloud::aws::Aws::connect(&id.region, cloud.endpoint.as_deref(), cloud.call_timeout)
                    .await;
            Some((cloud, id, Arc::new(aws)))
        }
        _ => None,
    };

    let listener = TcpListener::bind(http.listen)
        .await
        .with_context(|| format!("cannot listen on http.listen = {}", http.listen))?;
    let local = http::local::bind(&http.local_socket)?;
    info!(event = "notify_socket_listening", path = %http.local_socket.display(), "the notify wrapper's socket is listening");
    let web = http.web.clone();
    info!(event = "http_listening",
        address = %listener.local_addr()?,
        tls = web.tls.is_some(),
        basic_auth_users = web.users.len(),
        "http listening"
    );

    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    for event in initial {
        tx.try_send(event).context("queueing start-up events")?;
    }
    let model = Model::new(keepalived.instances.iter().map(|i| i.name.as_str()));
    let keepalived_names: Vec<String> = keepalived
        .instances
        .iter()
        .map(|i| i.name.clone())
        .collect();
    let (publish, status) = watch::channel(Status::build(
        &model, &node.name, &node.pair, started, started,
    ));
    let peer_link = peer.as_ref().map(|p| crate::core::turn::PeerLink {
        address: p.address.to_string(),
        max_age: p.max_age,
        fresh: false,
    });
    let mut owner = Owner {
        core: crate::core::turn::Core::new(model, None, peer_link, &node.name, false),
        metrics: metrics.clone(),
        publish,
        node: node.name.clone(),
        pair: node.pair.clone(),
        started,
        links: None,
        release: None,
        wake: None,
    };

    let cancel = shutdown.child_token();
    let mut tasks = Tasks::new();
    let mut peer_eni: Option<String> = None;
    if let Some((cloud, id, aws)) = cloud {
        let (claims_tx, claims_rx) = mpsc::channel(16);
        // The cloud tasks answer on the owner's one queue.
        let events_tx = tx.clone();
        let (asks_tx, asks_rx) = mpsc::channel(8);
        let (generation_tx, generation_rx) = watch::channel(0);
        let policy = cloud::call::CallPolicy::new(cloud.call_timeout);
        let me = id.me();
        let pace = cloud::verifier::pace_of(&cloud);
        let verifier = cloud::verifier::Verifier::for_vips(
            aws.clone(),
            metrics.clone(),
            policy.clone(),
            &vips,
            pace,
            me.eni.clone(),
        );
        let targets = cloud::permissions::targets(&vips, &me);
        let (store, damping) = cloud::damping_store::load(cloud.state_dir.as_deref());
        let damping_tx = store.map(|store| {
            let (tx, rx) = watch::channel(damping.clone());
            let c = cancel.clone();
            tasks.spawn(async move {
                (
                    "damping store",
                    cloud::damping_store::run(store, rx, c).await,
                )
            });
            tx
        });
        let addresses = vips.iter().any(|v| v.address.is_some()).then(|| {
            let (tx, rx) = mpsc::channel(8);
            let (t, c) = (events_tx.clone(), cancel.clone());
            tasks.spawn(async move { ("addresses", host::address::run(rx, t, c).await) });
            tx
        });
        let links = owner::Links {
            claims: claims_tx,
            asks: asks_tx,
            generation: generation_tx,
            damping: damping_tx,
            addresses,
        };
        metrics.summary.vips(&vips, cloud.verify_interval);
        for v in &vips {
            metrics.vip_init(&v.name);
            if v.address.is_some() {
                metrics.address_init(&v.name);
            }
            if v.handover != crate::core::handover::Handover::MakeBeforeBreak {
                metrics.handover_init(&v.name);
            }
            if cloud.state_tag_interval.is_some() {
                metrics.split_in_cloud_init(&v.name);
            }
        }
        if let Some(interval) = cloud.state_tag_interval {
            let writer = cloud::state_tag::Writer {
                cloud: aws.clone(),
                metrics: metrics.clone(),
                policy: policy.clone(),
                vips: vips
                    .iter()
                    .map(|v| (v.target.clone(), v.vrrp_instance.clone()))
                    .collect(),
                me: me.clone(),
                node: node.name.clone(),
                interval,
                dry_run: cloud.dry_run,
            };
            let (s, c) = (status.clone(), cancel.clone());
            tasks.spawn(async move { ("state tags", writer.run(s, c).await) });
        }
        let mut side = crate::core::cloud::CloudState::new(vips, me.clone(), damping);
        if let Some(interval) = cloud.state_tag_interval {
            side = side.with_state_tags(interval * 2);
        }
        owner.core.cloud = Some(match &peer {
            Some(p) => side.with_peer(&node.name, p.max_age),
            None => side,
        });
        owner.links = Some(links);
        peer_eni = Some(me.eni.clone());
        let exec = cloud::executor::Executor {
            cloud: aws.clone(),
            metrics: metrics.clone(),
            policy: policy.clone(),
            convergence_timeout: cloud.convergence_timeout,
            dry_run: cloud.dry_run,
            generation: generation_rx,
        };
        let (t, c) = (events_tx.clone(), cancel.clone());
        tasks.spawn(async move { ("executor", exec.run(claims_rx, t, c).await) });
        if cloud.permission_check {
            let checker = cloud::permissions::Checker {
                cloud: aws.clone(),
                metrics: metrics.clone(),
                policy: policy.clone(),
                targets,
                interval: cloud.permission_check_interval,
            };
            let (t, c) = (events_tx.clone(), cancel.clone());
            tasks.spawn(async move { ("permission check", checker.run(t, c).await) });
        } else {
            info!(
                event = "permission_check_off",
                "cloud.permission_check = false: permissions are learnt from real calls only"
            );
        }
        let c = cancel.clone();
        tasks.spawn(async move { ("verifier", verifier.run(asks_rx, events_tx, c).await) });
    }
    let (t, c) = (tx.clone(), cancel.clone());
    let host_interval = keepalived.process_check_interval;
    let drain_file = keepalived.drain_file.clone();
    tasks.spawn(async move { ("host addresses", host::run(host_interval, t, c).await) });
    let (t, m, c) = (tx.clone(), metrics.clone(), cancel.clone());
    tasks.spawn(async move {
        (
            "fifo reader",
            fifo::run(fifo, t, m, c).await.map_err(Into::into),
        )
    });
    if let Some(conf) = keepalived.release_on_crash.clone() {
        metrics.release_init(&release_names);
        let (orders_tx, orders_rx) = mpsc::channel(16);
        owner.release = Some(orders_tx);
        owner.core.release = true;
        let (k, t, m, c) = (
            keepalived.clone(),
            tx.clone(),
            metrics.clone(),
            cancel.clone(),
        );
        tasks.spawn(async move {
            (
                "release",
                crate::keepalived::release::run(k, conf, release_names, orders_rx, t, m, c).await,
            )
        });
    }
    let c = cancel.clone();
    tasks.spawn(async move { ("owner", owner.run(rx, c).await) });
    let (t, m, c) = (tx.clone(), metrics.clone(), cancel.clone());
    tasks.spawn(async move {
        (
            "process watch",
            crate::keepalived::watch::run(keepalived, observed, t, m, c).await,
        )
    });
    let (t, m, c) = (tx.clone(), metrics.clone(), cancel.clone());
    tasks.spawn(async move { ("probe", probe::run(probe, t, m, c).await) });
    let (s, c) = (status.clone(), cancel.clone());
    tasks.spawn(async move { ("systemd notify", systemd::run(s, c).await) });
    if let Some(p) = peer {
        let listener = TcpListener::bind(p.listen)
            .await
            .with_context(|| format!("cannot listen on peer.listen = {}", p.listen))?;
        info!(event = "peer_channel", listen = %p.listen, peer = %p.address, heartbeat_ms = p.heartbeat.as_millis() as u64, max_age_ms = p.max_age.as_millis() as u64, "peer channel");
        let instances: Vec<&str> = keepalived_names.iter().map(String::as_str).collect();
        metrics.peer_init(&p.address.to_string(), &instances);
        let options = crate::peer::receiver::Options {
            secret: p.secret.0.clone(),
            replay_window: p.replay_window,
            pair: node.pair.clone(),
            node: node.name.clone(),
            peer: p.address.ip(),
        };
        let (t, m, c) = (tx.clone(), metrics.clone(), cancel.clone());
        tasks.spawn(async move {
            (
                "peer receiver",
                crate::peer::receiver::serve(listener, options, m, t, c)
                    .await
                    .map_err(Into::into),
            )
        });
        let sender = crate::peer::sender::Sender {
            address: p.address,
            secret: p.secret.0,
            heartbeat: p.heartbeat,
            eni: peer_eni,
            metrics: metrics.clone(),
        };
        let (s, c) = (status.clone(), cancel.clone());
        tasks.spawn(async move { ("peer sender", sender.run(s, c).await) });
    }
    let (m, c) = (metrics, cancel.clone());
    tasks.spawn(async move {
        (
            "http server",
            http::serve(
                listener,
                local,
                http.local_socket,
                status,
                m,
                tx,
                web,
                drain_file,
                c,
            )
            .await,
        )
    });

    supervise(tasks, shutdown, cancel).await
}

/// The critical tasks, each named, each returning why it ended.
pub type Tasks = JoinSet<(&'static str, anyhow::Result<()>)>;

/// Waits until `shutdown` is cancelled (Ok) or a task ends first (an error
/// naming the task: a critical task never ends on its own). Then cancels
/// `cancel` and gives every task `SHUTDOWN_GRACE` to finish.
pub async fn supervise(
    mut tasks: Tasks,
    shutdown: CancellationToken,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let outcome = tokio::select! {
        biased;
        _ = shutdown.cancelled() => {
            info!(event = "shutting_down", "shutting down");
            Ok(())
        }
        // Tasks share the shutdown token: one that ends after shutdown was
        // asked is not a failure.
        Some(joined) = tasks.join_next(), if !shutdown.is_cancelled() => {
            let (name, detail) = match joined {
                Ok((name, Ok(()))) => (name, "ended".to_owned()),
                Ok((name, Err(e))) => (name, format!("failed: {e:#}")),
                Err(e) => ("a task", format!("panicked: {e}")),
            };
            error!(event = "task_failed", task = name, detail = %detail, "a critical task stopped; exiting");
            Err(anyhow::anyhow!("critical task {name} {detail}"))
        }
    };
    cancel.cancel();
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        warn!(
            event = "shutdown_slow",
            "some tasks did not stop within {SHUTDOWN_GRACE:?}"
        );
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that runs until cancelled, as every critical task does.
    fn until_cancelled(tasks: &mut Tasks, cancel: &CancellationToken) {
        let c = cancel.clone();
        tasks.spawn(async move {
            c.cancelled().await;
            ("steady", Ok(()))
        });
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_every_task_cleanly() {
        let shutdown = CancellationToken::new();
        let cancel = shutdown.child_token();
        let mut tasks = Tasks::new();
        until_cancelled(&mut tasks, &cancel);
        until_cancelled(&mut tasks, &cancel);
        shutdown.cancel();
        supervise(tasks, shutdown, cancel.clone())
            .await
            .expect("clean shutdown");
        assert!(cancel.is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_task_ends_the_process_with_its_name_and_reason() {
        let shutdown = CancellationToken::new();
        let cancel = shutdown.child_token();
        let mut tasks = Tasks::new();
        until_cancelled(&mut tasks, &cancel);
        tasks.spawn(async {
            (
                "fifo reader",
                Err(anyhow::anyhow!("reading FIFO /x: broken")),
            )
        });
        let err = supervise(tasks, shutdown, cancel.clone())
            .await
            .expect_err("a task failed");
        assert_eq!(
            err.to_string(),
            "critical task fifo reader failed: reading FIFO /x: broken"
        );
        assert!(cancel.is_cancelled(), "the other tasks are told to stop");
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ends_or_panics_is_an_error_too() {
        for (task, want) in [
            (
                tokio::spawn(async { ("probe", Ok(())) }),
                "critical task probe ended",
            ),
            (
                tokio::spawn(async {
                    if true {
                        panic!("boom");
                    }
                    ("owner", Ok(()))
                }),
                "critical task a task panicked",
            ),
        ] {
            let shutdown = CancellationToken::new();
            let cancel = shutdown.child_token();
            let mut tasks = Tasks::new();
            tasks.spawn(async move {
                task.await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            });
            let err = supervise(tasks, shutdown, cancel)
                .await
                .expect_err("not a clean end");
            assert!(err.to_string().starts_with(want), "{err}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ignores_shutdown_is_abandoned_after_the_grace() {
        let shutdown = CancellationToken::new();
        let cancel = shutdown.child_token();
        let mut tasks = Tasks::new();
        tasks.spawn(async {
            std::future::pending::<()>().await;
            ("stuck", Ok(()))
        });
        shutdown.cancel();
        // The paused clock jumps over SHUTDOWN_GRACE: no real waiting.
        supervise(tasks, shutdown, cancel)
            .await
            .expect("shutdown still succeeds");
    }
}
