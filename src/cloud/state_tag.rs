//! The task that writes this node's state tags (`core::state_tag`): at once
//! when what they say changes in the published status (a VRRP transition,
//! Keepalived or the probe going up or down), and every `interval`
//! otherwise, so that a peer can tell a live tag from one left behind. At
//! most one write per `MIN_GAP` (a flapping state writes its latest), and
//! nothing in `dry_run`. CreateTags overwrites, so a retried or repeated
//! write is harmless; a failed one is tried again after `RETRY` (or at the
//! next change).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cloud::Cloud;
use crate::cloud::call::{CallPolicy, call};
use crate::core::seen::Me;
use crate::core::state_tag::{calls, wanted};
use crate::core::target::VipTarget;
use crate::core::words::{Health, VrrpState};
use crate::metrics::Metrics;
use crate::status::Status;

/// The least time between two writes.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// How soon a write that failed is tried again.
pub const RETRY: Duration = Duration::from_secs(5);

pub struct Writer<C: Cloud> {
    pub cloud: Arc<C>,
    pub metrics: Arc<Metrics>,
    pub policy: CallPolicy,
    /// Each VIP's target and VRRP instance.
    pub vips: Vec<(VipTarget, String)>,
    pub me: Me,
    pub node: String,
    pub interval: Duration,
    pub dry_run: bool,
}

/// What the tags say, from a status: each VIP's instance state, and
/// whether Keepalived runs and the probe is up.
type Says = (Vec<VrrpState>, bool);

impl<C: Cloud> Writer<C> {
    fn says(&self, s: &Status) -> Says {
        let states = self
            .vips
            .iter()
            .map(|(_, inst)| {
                s.instances
                    .iter()
                    .find(|i| &i.name == inst)
                    .map_or(VrrpState::Unknown, |i| i.state)
            })
            .collect();
        let healthy = s.keepalived.running == Some(true) && s.probe.health == Health::Up;
        (states, healthy)
    }

    /// Writes what `says` says now: one CreateTags per set of tags.
    async fn write(&self, says: &Says) -> bool {
        let w = wanted(
            self.vips
                .iter()
                .zip(&says.0)
                .map(|((t, inst), s)| (t, inst.as_str(), *s)),
            &self.me,
        );
        let mut ok = true;
        for (resources, tags) in calls(&w, says.1, crate::clock::now().wall, &self.node) {
            let r = call("CreateTags", &self.policy, &self.metrics, || {
                self.cloud.create_tags(&resources, &tags)
            })
            .await;
            if let Err(e) = r {
                ok = false;
                warn!(event = "state_tag_write_failed", resources = ?resources, error = %e, next_s = RETRY.as_secs(), "could not write this node's state tags: the peer's rule 14 goes on reading the last ones until they are stale (an IAM policy without ec2:CreateTags: see iam/state-tags.json)");
            }
        }
        ok
    }

    pub async fn run(
        self,
        mut status: watch::Receiver<Status>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        if self.dry_run {
            info!(
                event = "state_tags_dry_run",
                "cloud.dry_run: state tags are not written"
            );
            cancel.cancelled().await;
            return Ok(());
        }
        info!(
            event = "state_tags_on",
            interval_s = self.interval.as_secs(),
            "writing this node's state tags on its VIPs' resources (rule 14)"
        );
        let mut written: Option<Says> = None;
        let mut due = Instant::now();
        let mut last_write: Option<Instant> = None;
        loop {
            let says = self.says(&status.borrow_and_update());
            let now = Instant::now();
            let changed = written.as_ref() != Some(&says);
            let gap_over = last_write.is_none_or(|l| now >= l + MIN_GAP);
            if (changed || now >= due) && gap_over {
                last_write = Some(now);
                // A failed write is tried again after RETRY, or at the
                // next change.
                let ok = self.write(&says).await;
                written = Some(says);
                due = now + if ok { self.interval } else { RETRY };
                continue;
            }
            let wake = match (changed, last_write) {
                (true, Some(l)) => (l + MIN_GAP).min(due),
                _ => due,
            };
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = status.changed() => if r.is_err() { return Ok(()) },
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{ClaimTarget, DryRunAnswer};
    use crate::core::model::Model;
    use crate::core::seen::{Action, Address, CloudError, ErrorKind};
    use std::net::IpAddr;
    use std::sync::Mutex;

    /// Records each CreateTags (when, what), and refuses them while `fail`.
    #[derive(Default)]
    struct Tags {
        written: Mutex<Vec<(Duration, crate::core::state_tag::TagCall)>>,
        fail: Mutex<bool>,
        start: Mutex<Option<Instant>>,
    }

    impl Cloud for Tags {
        async fn create_tags(
            &self,
            resources: &[String],
            tags: &[(String, String)],
        ) -> Result<(), CloudError> {
            let start = *self.start.lock().unwrap().get_or_insert_with(Instant::now);
            self.written
                .lock()
                .unwrap()
                .push((Instant::now() - start, (resources.to_vec(), tags.to_vec())));
            if *self.fail.lock().unwrap() {
                return Err(CloudError {
                    operation: "CreateTags",
                    kind: ErrorKind::Auth,
                    code: "UnauthorizedOperation".into(),
                    message: "not allowed".into(),
                });
            }
            Ok(())
        }
        async fn describe_addresses(&self, _: &[String]) -> Result<Vec<Address>, CloudError> {
            unreachable!()
        }
        async fn private_ips(&self, _: &str) -> Result<Vec<IpAddr>, CloudError> {
            unreachable!()
        }
        async fn assign_private_ip(&self, _: &str, _: IpAddr) -> Result<(), CloudError> {
            unreachable!()
        }
        async fn associate(&self, _: &str, _: &str, _: IpAddr) -> Result<String, CloudError> {
            unreachable!()
        }
        async fn dry_run(&self, _: Action, _: &ClaimTarget) -> Result<DryRunAnswer, CloudError> {
            unreachable!()
        }
    }

    fn status(state: VrrpState) -> Status {
        let t = std::time::SystemTime::UNIX_EPOCH;
        let mut s = Status::build(&Model::new(["VI_1"]), "lb-a", "edge", t, t);
        s.instances[0].state = state;
        s.keepalived.running = Some(true);
        s.probe.health = Health::Up;
        s
    }

    /// The states written, in order, with when (whole seconds).
    fn states(cloud: &Tags) -> Vec<(u64, String)> {
        cloud
            .written
            .lock()
            .unwrap()
            .iter()
            .map(|(at, (_, tags))| {
                let words: Vec<&str> = tags[0].1.split(' ').take(2).collect();
                (at.as_secs(), words.join(" "))
            })
            .collect()
    }

    /// At once at start, at once (after `MIN_GAP`) on a change, every
    /// interval otherwise; a refused write again after `RETRY`. Paused
    /// clock: each sleep lets the task run up to that time.
    #[tokio::test(start_paused = true)]
    async fn writes_on_change_and_every_interval_and_retries_a_refused_write() {
        let cloud = Arc::new(Tags::default());
        let (tx, rx) = watch::channel(status(VrrpState::Backup));
        let writer = Writer {
            cloud: cloud.clone(),
            metrics: Arc::new(Metrics::new("edge", "lb-a").unwrap()),
            policy: CallPolicy::new(Duration::from_secs(1)),
            vips: vec![(
                VipTarget::EipOnEni {
                    allocation_id: "eipalloc-1".into(),
                    private_ip: "10.0.0.50".parse().unwrap(),
                },
                "VI_1".into(),
            )],
            me: Me {
                instance_id: "i-a".into(),
                eni: "eni-a".into(),
            },
            node: "lb-a".into(),
            interval: Duration::from_secs(60),
            dry_run: false,
        };
        let cancel = CancellationToken::new();
        let task = tokio::spawn(writer.run(rx, cancel.clone()));
        let sleep = |ms| tokio::time::sleep(Duration::from_millis(ms));
        sleep(10).await;
        tx.send_replace(status(VrrpState::Master));
        sleep(1_500).await;
        {
            let w = cloud.written.lock().unwrap();
            assert_eq!(w[0].1.0, ["eipalloc-1"]);
            assert_eq!(w[0].1.1[0].0, "vip-watchdog:eni-a/VI_1");
        }
        assert_eq!(
            states(&cloud),
            [(0, "backup healthy".into()), (1, "master healthy".into())]
        );
        sleep(60_000).await;
        assert_eq!(states(&cloud).len(), 3, "{:?}", states(&cloud));
        assert_eq!(states(&cloud)[2], (61, "master healthy".into()));
        *cloud.fail.lock().unwrap() = true;
        sleep(60_000).await;
        *cloud.fail.lock().unwrap() = false;
        sleep(6_000).await;
        let got = states(&cloud);
        assert_eq!(
            got[3..],
            [
                (121, "master healthy".into()),
                (126, "master healthy".into())
            ]
        );
        // Keepalived gone: "unhealthy", at once.
        let mut s = status(VrrpState::Master);
        s.keepalived.running = Some(false);
        tx.send_replace(s);
        sleep(1_500).await;
        assert_eq!(states(&cloud).last().unwrap().1, "master unhealthy");
        cancel.cancel();
        task.await.unwrap().unwrap();
    }
}
