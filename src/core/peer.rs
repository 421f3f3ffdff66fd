//! The peer's watchdog as this node knows it: the report it pushes over
//! the peer channel (`crate::peer`), and what that report says of one VRRP
//! instance for the rules (`PeerView`, rules 10 and 11 of `decide`).
//! Pure data.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::core::clock::Mono;
use crate::core::words::{Health, Source, VrrpState};

/// What one watchdog tells its peer: pushed on every change and as a
/// heartbeat.
/// Fields a receiver does not know are ignored (a newer sender's); the
/// HMAC has already said who sent them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub node: String,
    pub pair: String,
    /// Random per process start; `seq` counts up within it.
    pub boot_id: String,
    pub seq: u64,
    /// `None`: not known yet.
    pub keepalived_running: Option<bool>,
    /// The sender's watchdog saw its Keepalived exit after it had seen it
    /// running (rule 11's evidence that a "down" is real).
    #[serde(default)]
    pub keepalived_exit_seen: bool,
    pub probe: Health,
    pub instances: Vec<InstanceReport>,
    pub vips: Vec<VipReport>,
    /// This node's ENI, when it has a cloud side: the receiver compares it
    /// with where its own view of the cloud puts each VIP.
    pub eni: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceReport {
    pub name: String,
    pub state: VrrpState,
    pub priority: Option<u8>,
    /// When it entered the state (RFC 3339), when known.
    pub since: Option<String>,
    /// Where the sender has the state from (rule 11 takes "not MASTER"
    /// only from a FIFO line); `None` from a sender that does not say.
    #[serde(default)]
    pub source: Option<Source>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipReport {
    pub name: String,
    /// The sender's view: "here", "elsewhere", "nowhere", ... or none yet.
    pub cloud: Option<String>,
    pub claim_in_flight: bool,
    /// Whether the sender's host carries the VIP's private IP; `None`
    /// when it does not know (or an earlier sender does not say). Break
    /// before make reads it (`core::handover`).
    #[serde(default)]
    pub address_on_host: Option<bool>,
}

impl Report {
    pub fn instance(&self, name: &str) -> Option<&InstanceReport> {
        self.instances.iter().find(|i| i.name == name)
    }

    /// For tests: `node`'s report in `pair`, Keepalived running, the
    /// probe up, nothing else said; a test sets what it needs.
    #[cfg(test)]
    pub(crate) fn sample(node: &str, pair: &str) -> Report {
        Report {
            node: node.into(),
            pair: pair.into(),
            boot_id: "boot".into(),
            seq: 1,
            keepalived_running: Some(true),
            keepalived_exit_seen: false,
            probe: Health::Up,
            instances: vec![],
            vips: vec![],
            eni: None,
        }
    }
}

/// The peer's last authenticated report.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerKnown {
    pub report: Report,
    pub at: Mono,
    pub at_wall: SystemTime,
}

impl PeerKnown {
    /// Its Keepalived, probe and instance states, in a few words.
    pub fn summary(&self) -> String {
        let r = &self.report;
        let keepalived = match r.keepalived_running {
            Some(true) => "running",
            Some(false) => "down",
            None => "unknown",
        };
        let states: Vec<String> = r
            .instances
            .iter()
            .map(|i| format!("{} {}", i.name, i.state))
            .collect();
        format!(
            "keepalived {keepalived}, probe {}, {}",
            r.probe.as_str(),
            states.join(", ")
        )
    }

    /// Whether the report is still knowledge at `now`: younger than
    /// `max_age`.
    pub fn fresh(&self, now: Mono, max_age: std::time::Duration) -> bool {
        now.since(self.at) < max_age
    }

    /// What it says of `instance` for the rules, while younger than
    /// `max_age` at `now`; `mine` is this node's (priority, name).
    pub fn view(
        &self,
        instance: &str,
        now: Mono,
        max_age: std::time::Duration,
        mine: (Option<u8>, &str),
    ) -> PeerView {
        self.view_since(instance, now, max_age, mine, None)
    }

    /// The report says the peer is MASTER of `instance`, but it arrived
    /// before this node's MASTER line at `mastership`: the notify gate waits
    /// a moment for a newer one (the peer answers a change at once).
    pub fn pending_master(&self, instance: &str, mastership: Option<Mono>) -> bool {
        mastership.is_some_and(|m| self.at < m)
            && self
                .report
                .instance(instance)
                .is_some_and(|i| i.state == VrrpState::Master)
    }

    /// `view`, for a node that is MASTER of `instance` since `mastership`:
    /// a report that arrived before this node's MASTER line says nothing of
    /// a split brain (the peer may have gone down since: the very reason
    /// this node is MASTER), so it gives no `Master` view (rules 10 and the
    /// notify gate); its "not MASTER" still stands (rule 11: it is why this
    /// node took over).
    pub fn view_since(
        &self,
        instance: &str,
        now: Mono,
        max_age: std::time::Duration,
        mine: (Option<u8>, &str),
        mastership: Option<Mono>,
    ) -> PeerView {
        if !self.fresh(now, max_age) {
            return PeerView::Unknown;
        }
        let r = &self.report;
        // Rule 11 takes "not MASTER" on evidence only: an exit of the
        // peer's Keepalived that its watchdog saw after seeing it run, or a
        // BACKUP, FAULT or STOP line Keepalived wrote. A "down" from a look
        // that found nothing, or a state learnt at start-up, says nothing.
        if r.keepalived_running == Some(false) {
            return if r.keepalived_exit_seen {
                PeerView::NotMaster
            } else {
                PeerView::Unknown
            };
        }
        match r.instance(instance) {
            Some(_) if self.pending_master(instance, mastership) => PeerView::Unknown,
            Some(i) if i.state == VrrpState::Master => PeerView::Master {
                healthy: r.keepalived_running == Some(true) && r.probe == Health::Up,
                eni: r.eni.clone(),
                wins_tie: crate::core::peer::wins_tie(mine, (i.priority, r.node.as_str())),
            },
            Some(i)
                if matches!(
                    i.state,
                    VrrpState::Backup | VrrpState::Fault | VrrpState::Stop
                ) && i.source == Some(Source::Fifo) =>
            {
                PeerView::NotMaster
            }
            // Unknown to the peer, or not reported: nothing known.
            _ => PeerView::Unknown,
        }
    }
}

/// What a fresh, authenticated report of the peer says of the VIP's
/// instance (rules 10 and 11).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PeerView {
    /// No fresh report (no channel, a silent peer): rules 1-9 unchanged.
    #[default]
    Unknown,
    /// The peer is not MASTER of the instance, on evidence: a BACKUP,
    /// FAULT or STOP line from its Keepalived, or its Keepalived's exit
    /// seen after it ran.
    NotMaster,
    /// The peer is MASTER of the instance too.
    Master {
        /// Its Keepalived runs and its probe is up.
        healthy: bool,
        /// The peer's ENI: where the cloud shows the VIP when the peer holds it.
        eni: Option<String>,
        /// This node wins the tie (`wins_tie`).
        wins_tie: bool,
    },
}

/// Rule 10's tie-break between two healthy MASTERs of which neither holds
/// the VIP: the higher priority, then the smaller node name. `None`: the
/// priority is not known (it never is higher).
pub fn wins_tie(mine: (Option<u8>, &str), peers: (Option<u8>, &str)) -> bool {
    match mine.0.cmp(&peers.0) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => mine.1 < peers.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(ms: u64) -> Mono {
        Mono::from_millis(1_000_000 + ms)
    }

    fn known(keepalived: Option<bool>, probe: Health, state: VrrpState, prio: u8) -> PeerKnown {
        PeerKnown {
            report: Report {
                keepalived_running: keepalived,
                keepalived_exit_seen: keepalived == Some(false),
                probe,
                instances: vec![InstanceReport {
                    name: "VI_1".into(),
                    state,
                    priority: Some(prio),
                    since: None,
                    source: Some(Source::Fifo),
                }],
                eni: Some("eni-b".into()),
                ..Report::sample("b", "edge")
            },
            at: t(0),
            at_wall: SystemTime::UNIX_EPOCH,
        }
    }

    /// An earlier sender's report (no `source`, no `keepalived_exit_seen`)
    /// reads, and gives no fast path; a later sender's unknown fields are
    /// ignored.
    #[test]
    fn reports_of_other_releases_read() {
        let older = r#"{"node":"b","pair":"edge","boot_id":"x","seq":1,"keepalived_running":false,"probe":"up","instances":[{"name":"VI_1","state":"backup","priority":100,"since":null}],"vips":[{"name":"web","cloud":"here","claim_in_flight":false}],"eni":"eni-b"}"#;
        let r: Report = serde_json::from_str(older).expect("an earlier report reads");
        assert!(!r.keepalived_exit_seen);
        // Break before make never takes an earlier sender's silence on its
        // address for a removal.
        assert_eq!(r.vips[0].address_on_host, None);
        assert_eq!(r.instances[0].source, None);
        let k = PeerKnown {
            report: r,
            at: t(0),
            at_wall: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(
            k.view("VI_1", t(100), Duration::from_secs(3), (Some(150), "a")),
            PeerView::Unknown
        );
        let newer = older.replace(r#""seq":1,"#, r#""seq":1,"later":{"x":1},"#);
        assert!(serde_json::from_str::<Report>(&newer).is_ok(), "{newer}");
    }

    /// Rule 10 and the gate: a "healthy MASTER" report that arrived before
    /// this node's MASTER line is no evidence of a split brain; one after it
    /// is; "not MASTER" counts either way (rule 11).
    #[test]
    fn a_report_from_before_this_mastership_shows_no_master() {
        use VrrpState::*;
        let max_age = Duration::from_secs(3);
        let rows = [
            ("no mastership here", Master, None, true),
            (
                "arrived after this node's MASTER line",
                Master,
                Some(0),
                true,
            ),
            ("arrived before it", Master, Some(1), false),
            ("BACKUP from before it still counts", Backup, Some(1), true),
        ];
        for (case, state, since_ms, known_view) in rows {
            let k = known(Some(true), Health::Up, state, 100);
            let v = k.view_since("VI_1", t(100), max_age, (Some(150), "a"), since_ms.map(t));
            assert_eq!(v != PeerView::Unknown, known_view, "{case}: {v:?}");
        }
    }

    fn with_source(mut k: PeerKnown, source: Option<Source>) -> PeerKnown {
        k.report.instances[0].source = source;
        k
    }

    /// (case, report, instance asked, now in ms, expected)
    #[test]
    fn what_a_report_says_of_an_instance() {
        use Health::*;
        use VrrpState::*;
        let max_age = Duration::from_secs(3);
        let master = |healthy, wins_tie| PeerView::Master {
            healthy,
            eni: Some("eni-b".into()),
            wins_tie,
        };
        let rows = [
            (
                "backup, fresh",
                known(Some(true), Up, Backup, 100),
                "VI_1",
                100,
                PeerView::NotMaster,
            ),
            (
                "fault",
                known(Some(true), Down, Fault, 100),
                "VI_1",
                100,
                PeerView::NotMaster,
            ),
            (
                "stop",
                known(Some(true), Up, Stop, 100),
                "VI_1",
                100,
                PeerView::NotMaster,
            ),
            (
                "keepalived down",
                known(Some(false), Up, Master, 100),
                "VI_1",
                100,
                PeerView::NotMaster,
            ),
            (
                "rule 11: keepalived down, but its exit was never seen (a look that found nothing)",
                PeerKnown {
                    report: Report {
                        keepalived_exit_seen: false,
                        ..known(Some(false), Up, Master, 100).report
                    },
                    ..known(Some(false), Up, Master, 100)
                },
                "VI_1",
                100,
                PeerView::Unknown,
            ),
            (
                "rule 11: backup learnt from the JSON dump at start-up, no line yet",
                with_source(known(Some(true), Up, Backup, 100), Some(Source::JsonDump)),
                "VI_1",
                100,
                PeerView::Unknown,
            ),
            (
                "rule 11: backup from the addresses",
                with_source(known(Some(true), Up, Backup, 100), Some(Source::Addresses)),
                "VI_1",
                100,
                PeerView::Unknown,
            ),
            (
                "rule 11: a sender that does not say where it has the state from",
                with_source(known(Some(true), Up, Fault, 100), None),
                "VI_1",
                100,
                PeerView::Unknown,
            ),
            (
                "healthy master, lower priority",
                known(Some(true), Up, Master, 100),
                "VI_1",
                100,
                master(true, true),
            ),
            (
                "healthy master, higher priority",
                known(Some(true), Up, Master, 200),
                "VI_1",
                100,
                master(true, false),
            ),
            (
                "master, probe down",
                known(Some(true), Down, Master, 100),
                "VI_1",
                100,
                master(false, true),
            ),
            (
                "master, keepalived unknown",
                known(None, Up, Master, 100),
                "VI_1",
                100,
                master(false, true),
            ),
            (
                "stale at max_age",
                known(Some(true), Up, Backup, 100),
                "VI_1",
                3_000,
                PeerView::Unknown,
            ),
            (
                "an instance it does not report",
                known(Some(true), Up, Backup, 100),
                "VI_2",
                100,
                PeerView::Unknown,
            ),
            (
                "its state unknown",
                known(Some(true), Up, VrrpState::Unknown, 100),
                "VI_1",
                100,
                PeerView::Unknown,
            ),
        ];
        for (case, k, instance, now, want) in rows {
            assert_eq!(
                k.view(instance, t(now), max_age, (Some(150), "a")),
                want,
                "{case}"
            );
        }
    }
}
