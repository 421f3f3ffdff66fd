//! Pushes this watchdog's report to the peer: at once when the published
//! status changes in what the report carries, and every `peer.heartbeat`
//! otherwise. One request at a time, each bounded by a timeout shorter
//! than the heartbeat: a peer that does not answer costs a failed send
//! (counted), never a queue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::message;
use crate::core::peer::{InstanceReport, Report, VipReport};
use crate::core::words::Holder;
use crate::metrics::Metrics;
use crate::status::Status;

/// The instance states the peer's last report gave.
fn peer_states(status: &Status) -> Vec<(String, crate::core::words::VrrpState)> {
    status
        .peer
        .as_ref()
        .and_then(|p| p.report.as_ref())
        .map(|r| {
            r.instances
                .iter()
                .map(|i| (i.name.clone(), i.state))
                .collect()
        })
        .unwrap_or_default()
}

/// The report of `status`; `seq` is set by the sender.
pub fn report_of(status: &Status, boot_id: &str, eni: Option<&str>) -> Report {
    Report {
        node: status.node.clone(),
        pair: status.pair.clone(),
        boot_id: boot_id.to_owned(),
        seq: 0,
        keepalived_running: status.keepalived.running,
        keepalived_exit_seen: status.keepalived.exit_seen,
        probe: status.probe.health,
        instances: status
            .instances
            .iter()
            .map(|i| InstanceReport {
                name: i.name.clone(),
                state: i.state,
                priority: i.priority,
                since: i.since.clone(),
                source: Some(i.source),
            })
            .collect(),
        vips: status
            .vips
            .iter()
            .map(|v| VipReport {
                name: v.name.clone(),
                cloud: v.cloud.as_ref().map(|h| {
                    match h {
                        Holder::Here => "here",
                        Holder::HereOtherIp { .. } => "here_other_ip",
                        Holder::Elsewhere { .. } => "elsewhere",
                        Holder::Nowhere => "nowhere",
                    }
                    .to_owned()
                }),
                claim_in_flight: v.claim_in_flight,
                address_on_host: v.address_on_host,
            })
            .collect(),
        eni: eni.map(str::to_owned),
    }
}

pub struct Sender {
    pub address: SocketAddr,
    pub secret: Vec<u8>,
    pub heartbeat: Duration,
    pub eni: Option<String>,
    pub metrics: Arc<Metrics>,
}

fn boot_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

impl Sender {
    pub async fn run(
        self,
        mut status: watch::Receiver<Status>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout((self.heartbeat / 2).min(Duration::from_secs(1)))
            .no_proxy()
            .build()?;
        let url = format!("http://{}{}", self.address, message::PATH);
        let boot = boot_id();
        let mut seq = 0u64;
        let mut last: Option<Report> = None;
        let mut last_peer = vec![];
        let mut failing = false;
        let mut next = tokio::time::Instant::now();
        loop {
            let (report, peer) = {
                let s = status.borrow_and_update();
                (report_of(&s, &boot, self.eni.as_deref()), peer_states(&s))
            };
            let now = tokio::time::Instant::now();
            // The peer's states changed (it became MASTER, say): answer at
            // once, so that its rules and its notify gate see this node as
            // it is after the change, not a heartbeat later.
            let answer = peer != last_peer;
            last_peer = peer;
            if last.as_ref() != Some(&report) || answer || now >= next {
                seq += 1;
                let mut r = report.clone();
                r.seq = seq;
                let ok = self.send(&client, &url, &r).await;
                self.metrics.peer_sent(ok.is_ok());
                match (&ok, failing) {
                    (Err(e), false) => {
                        tracing::warn!(event = "peer_unreachable", peer = %self.address, error = %e, "cannot reach the peer's watchdog (logged again when it answers)");
                        failing = true;
                    }
                    (Ok(()), true) => {
                        tracing::info!(event = "peer_reachable", peer = %self.address, "the peer's watchdog takes reports again");
                        failing = false;
                    }
                    _ => {}
                }
                last = Some(report);
                next = tokio::time::Instant::now() + self.heartbeat;
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                changed = status.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }

    async fn send(&self, client: &reqwest::Client, url: &str, r: &Report) -> Result<(), String> {
        let body = serde_json::to_vec(r).map_err(|e| e.to_string())?;
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let nonce = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let sig = message::sign(&self.secret, ts, &nonce, &body);
        crate::http::expect_success(
            client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(message::TIMESTAMP, ts.to_string())
                .header(message::NONCE, &nonce)
                .header(message::SIGNATURE, sig)
                .body(body),
        )
        .await
    }
}
