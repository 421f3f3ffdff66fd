//! What the watchdog knows, where each fact came from, and since when.
//!
//! `Model::observe(event, now)` is the only way in (`core::turn::Core::apply`
//! calls it); it returns the changes it made, which the owner logs and
//! counts. Nothing here awaits or touches the network; the clock is passed
//! in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::SystemTime;

use serde::Serialize;

mod line;

use crate::core::change::Change;
use crate::core::clock::{Mono, Stamp};
use crate::core::input::Event;
use crate::core::words::{FifoLine, Health, LineState, LvsKind, Source, VrrpState, VrrpTarget};

/// How many recent decisions `/v1/status` shows.
pub const DECISION_HISTORY: usize = 32;

/// How many names the FIFO may add beyond the configured instances, per
/// kind (instance, group, LVS server): a writer that invents names must not
/// grow the maps and the metric labels without bound.
pub const MAX_NEW_NAMES: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    pub state: VrrpState,
    /// Effective priority, when a source reported one.
    pub priority: Option<u8>,
    /// When the instance entered `state`, when known.
    pub since: Option<SystemTime>,
    /// The same on the monotonic clock, which ages are measured on.
    #[serde(skip)]
    pub since_mono: Option<Mono>,
    /// `state` began with a transition line this process read (not learnt
    /// at start-up, not implied): the moment it began is known exactly.
    #[serde(skip)]
    pub announced: bool,
    pub source: Source,
    /// Why the watchdog believes `state`, in words.
    pub reason: String,
    /// When the last piece of evidence about this instance arrived.
    pub evidence_at: Option<SystemTime>,
    /// When Keepalived last said `MASTER_RX_LOWER_PRI` (another MASTER heard).
    pub lower_priority_master_seen_at: Option<SystemTime>,
    /// The same, on the monotonic clock (decide's rule 12).
    #[serde(skip)]
    pub other_master_at: Option<Mono>,
}

impl Instance {
    /// When this node's present mastership of the instance began: `None`
    /// unless it is MASTER (what a peer report is weighed against).
    pub fn mastership(&self) -> Option<Mono> {
        self.since_mono.filter(|_| self.state == VrrpState::Master)
    }

    fn unknown(reason: &str) -> Self {
        Self {
            state: VrrpState::Unknown,
            priority: None,
            since: None,
            since_mono: None,
            announced: false,
            source: Source::None,
            reason: reason.to_owned(),
            evidence_at: None,
            lower_priority_master_seen_at: None,
            other_master_at: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeepalivedStatus {
    /// `None` until the process watch has looked once.
    pub running: Option<bool>,
    pub pid: Option<i32>,
    pub vrrp_pid: Option<i32>,
    /// When the watched Keepalived process started.
    pub started: Option<SystemTime>,
    pub detail: String,
    /// Down, and this process saw it exit after it had seen it running.
    #[serde(skip)]
    pub exit_seen: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeStatus {
    pub health: Health,
    pub detail: String,
    pub since: Option<SystemTime>,
}

/// A peer report after this long a silence is logged even when it says
/// nothing new.
pub const PEER_SILENCE_LOGGED: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub at: SystemTime,
    #[serde(flatten)]
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model {
    pub instances: BTreeMap<String, Instance>,
    pub groups: BTreeMap<String, VrrpState>,
    /// LVS virtual and real servers, keyed by (kind, service): up or down.
    pub lvs: BTreeMap<(&'static str, String), bool>,
    pub keepalived: KeepalivedStatus,
    pub probe: ProbeStatus,
    pub decisions: VecDeque<Decision>,
    /// This host's addresses; `None` until they were first listed.
    pub host_addresses: Option<BTreeSet<IpAddr>>,
    /// Lines dropped because their name was one too many, per kind.
    pub names_dropped: BTreeMap<&'static str, u64>,
    /// The instances the config names.
    #[serde(skip)]
    configured: BTreeSet<String>,
    /// The instances Keepalived's JSON dump listed, when one was read.
    #[serde(skip)]
    listed: Option<BTreeSet<String>>,
    /// The peer's last report, and when it arrived.
    #[serde(skip)]
    pub peer: Option<crate::core::peer::PeerKnown>,
    /// The instances in split brain now (rule 10's condition).
    #[serde(skip)]
    pub split_brain: BTreeSet<String>,
    /// The instances that were MASTER when Keepalived's VRRP process went
    /// while its main process stayed (it may respawn it, or be gone next):
    /// `core::release` releases them if no Keepalived is left after all.
    #[serde(skip)]
    pub lost_masters: BTreeSet<String>,
    /// Whether the process watch's last look failed without evidence
    /// (`Event::KeepalivedUnknown`): one log line per episode.
    #[serde(skip)]
    process_check_failing: bool,
}

impl Model {
    /// A model that knows the configured instances' names and nothing else.
    pub fn new<'a>(configured: impl IntoIterator<Item = &'a str>) -> Self {
        let instances: BTreeMap<String, Instance> = configured
            .into_iter()
            .map(|n| {
                (
                    n.to_owned(),
                    Instance::unknown("no source has reported it yet"),
                )
            })
            .collect();
        let configured = instances.keys().cloned().collect();
        Self {
            instances,
            groups: BTreeMap::new(),
            lvs: BTreeMap::new(),
            keepalived: KeepalivedStatus {
                running: None,
                pid: None,
                vrrp_pid: None,
                started: None,
                detail: "not looked at yet".into(),
                exit_seen: false,
            },
            probe: ProbeStatus {
                health: Health::Unknown,
                detail: "no result yet".into(),
                since: None,
            },
            decisions: VecDeque::new(),
            host_addresses: None,
            names_dropped: BTreeMap::new(),
            configured,
            listed: None,
            peer: None,
            split_brain: BTreeSet::new(),
            lost_masters: BTreeSet::new(),
            process_check_failing: false,
        }
    }

    /// Rule 10's condition per configured instance at `now`: this node
    /// MASTER by evidence, and a fresh report that arrived after this
    /// node's MASTER line says the peer is MASTER too (an older one may
    /// be the state the peer has just left: no split brain flickers at a
    /// failover).
    /// Returns a change for each instance that entered or left it.
    pub fn follow_split_brain(
        &mut self,
        now: Mono,
        max_age: std::time::Duration,
        node: &str,
    ) -> Vec<Change> {
        let mut out = vec![];
        for (name, inst) in &self.instances {
            if !self.configured.contains(name) {
                continue;
            }
            let peer = self.peer.as_ref().map(|p| {
                (
                    p.view_since(name, now, max_age, (inst.priority, node), inst.mastership()),
                    p.summary(),
                )
            });
            let on = inst.state == VrrpState::Master
                && matches!(peer, Some((crate::core::peer::PeerView::Master { .. }, _)));
            if on != self.split_brain.contains(name) {
                if on {
                    self.split_brain.insert(name.clone());
                } else {
                    self.split_brain.remove(name);
                }
                out.push(Change::SplitBrain {
                    instance: name.clone(),
                    on,
                    mine: format!(
                        "{name} {} (priority {}), keepalived {}, probe {}",
                        inst.state,
                        inst.priority.map_or("unknown".into(), |p| p.to_string()),
                        match self.keepalived.running {
                            Some(true) => "running",
                            Some(false) => "down",
                            None => "unknown",
                        },
                        self.probe.health.as_str()
                    ),
                    peers: peer.map_or_else(|| "silent".into(), |(_, s)| s),
                });
            }
        }
        out
    }

    /// Instances Keepalived and the config disagree on: (name, "keepalived")
    /// for one Keepalived reports that the config does not name, (name,
    /// "config") for one the config names that Keepalived's JSON dump did
    /// not list.
    pub fn mismatches(&self) -> Vec<(&str, &'static str)> {
        let mut out: Vec<(&str, &'static str)> = self
            .instances
            .keys()
            .filter(|n| !self.configured.contains(*n))
            .map(|n| (n.as_str(), "keepalived"))
            .collect();
        if let Some(listed) = &self.listed {
            out.extend(
                self.configured
                    .iter()
                    .filter(|n| !listed.contains(*n))
                    .map(|n| (n.as_str(), "config")),
            );
        }
        out
    }

    /// A change for an instance Keepalived names that the config does not.
    fn unconfigured(&self, name: &str, known: bool) -> Option<Change> {
        (!known && !self.configured.contains(name)).then(|| Change::InstanceMismatch {
            instance: name.to_owned(),
            known_to: "keepalived",
        })
    }

    /// Whether a line about `name` of `kind` may be kept: known names
    /// always, new ones up to `MAX_NEW_NAMES`. A refusal is counted, and
    /// reported as a change the first time and at every power of two.
    fn admit(
        &mut self,
        kind: &'static str,
        known: bool,
        len: usize,
        name: &str,
    ) -> Result<(), Change> {
        let limit = if kind == "instance" {
            self.configured.len() + MAX_NEW_NAMES
        } else {
            MAX_NEW_NAMES
        };
        if known || len < limit {
            return Ok(());
        }
        let n = self.names_dropped.entry(kind).or_default();
        *n += 1;
        Err(Change::NameDropped {
            kind,
            name: name.chars().take(64).collect(),
            dropped: *n,
        })
    }

    pub fn observe(&mut self, event: Event, now: Stamp) -> Vec<Change> {
        let changes = match event {
            // The cloud side's (`core::cloud`), applied by the core.
            Event::Cloud(_) => vec![],
            Event::Line { line, at } => self.on_line(line, at),
            Event::Learned {
                instance,
                state,
                priority,
                since,
                source,
                reason,
            } => {
                let mismatch = self.unconfigured(&instance, self.instances.contains_key(&instance));
                let entry = self
                    .instances
                    .entry(instance.clone())
                    .or_insert_with(|| Instance::unknown(""));
                *entry = Instance {
                    state,
                    priority,
                    since,
                    // Keepalived's own time, read on the wall clock; without
                    // one the age counts from now (never invented).
                    since_mono: Some(since.map_or(now.mono, |s| now.mono_of(s))),
                    announced: false,
                    source,
                    reason: reason.clone(),
                    evidence_at: Some(now.wall),
                    lower_priority_master_seen_at: None,
                    other_master_at: None,
                };
                let learned = Change::Learned {
                    instance,
                    state,
                    priority,
                    source,
                    reason,
                };
                mismatch.into_iter().chain([learned]).collect()
            }
            Event::KeepalivedRunning {
                pid,
                vrrp_pid,
                started,
            } => {
                let was = self.keepalived.running;
                self.process_check_failing = false;
                self.lost_masters.clear();
                self.keepalived = KeepalivedStatus {
                    running: Some(true),
                    pid: Some(pid),
                    vrrp_pid,
                    started: Some(started),
                    detail: match vrrp_pid {
                        Some(v) => format!("pid {pid}, VRRP process {v}"),
                        None => format!("pid {pid}"),
                    },
                    exit_seen: false,
                };
                if was == Some(true) {
                    vec![]
                } else {
                    vec![Change::Keepalived {
                        running: true,
                        detail: self.keepalived.detail.clone(),
                    }]
                }
            }
            Event::KeepalivedGone {
                reason,
                replaced_at,
                exited,
            } => {
                self.process_check_failing = false;
                self.on_gone(reason, replaced_at, exited, now)
            }
            Event::KeepalivedUnknown { reason } => {
                let first = !self.process_check_failing;
                self.process_check_failing = true;
                vec![Change::ProcessCheckFailed { reason, first }]
            }
            Event::HostAddresses(now_listed) => {
                let before = self
                    .host_addresses
                    .replace(now_listed.clone())
                    .unwrap_or_default();
                let added: Vec<IpAddr> = now_listed.difference(&before).copied().collect();
                let removed: Vec<IpAddr> = before.difference(&now_listed).copied().collect();
                if added.is_empty() && removed.is_empty() {
                    vec![]
                } else {
                    vec![Change::HostAddresses { added, removed }]
                }
            }
            Event::KeepalivedListed(names) => {
                let changes = self
                    .configured
                    .iter()
                    .filter(|n| !names.contains(*n))
                    .map(|n| Change::InstanceMismatch {
                        instance: n.clone(),
                        known_to: "config",
                    })
                    .collect();
                self.listed = Some(names);
                changes
            }
            Event::Peer(report) => {
                let known = crate::core::peer::PeerKnown {
                    report,
                    at: now.mono,
                    at_wall: now.wall,
                };
                let summary = known.summary();
                let changed = self.peer.as_ref().is_none_or(|p| {
                    p.summary() != summary || now.mono.since(p.at) >= PEER_SILENCE_LOGGED
                });
                let node = known.report.node.clone();
                self.peer = Some(known);
                if changed {
                    vec![Change::Peer { node, summary }]
                } else {
                    vec![]
                }
            }
            Event::Released { instance, outcome } => {
                let (sent, error) = match outcome {
                    Ok(s) => (Some(s), None),
                    Err(e) => (None, Some(e)),
                };
                vec![Change::Released {
                    instance,
                    sent,
                    error,
                }]
            }
            Event::NotifyStarted { instance, timeout } => {
                vec![Change::NotifyStarted { instance, timeout }]
            }
            Event::NotifyRun(r) => vec![Change::NotifyRun {
                instance: r.instance,
                outcome: r.outcome,
                exit_code: r.exit_code,
                duration_ms: r.duration_ms,
                output: r.output,
            }],
            Event::Probe { health, detail } => {
                let from = self.probe.health;
                if from == health {
                    self.probe.detail = detail;
                    vec![]
                } else {
                    self.probe = ProbeStatus {
                        health,
                        detail: detail.clone(),
                        since: Some(now.wall),
                    };
                    vec![Change::Probe {
                        from,
                        to: health,
                        detail,
                    }]
                }
            }
        };
        for change in &changes {
            self.record(change.clone(), now.wall);
        }
        changes
    }

    /// Keeps a change in the bounded decision history (a dropped name is
    /// counted, not kept: a flood must not push the decisions out).
    pub fn record(&mut self, change: Change, at: SystemTime) {
        if matches!(change, Change::NameDropped { .. }) {
            return;
        }
        if self.decisions.len() == DECISION_HISTORY {
            self.decisions.pop_front();
        }
        self.decisions.push_back(Decision { at, change });
    }

    fn on_gone(
        &mut self,
        reason: String,
        replaced_at: Option<SystemTime>,
        exited: bool,
        now: Stamp,
    ) -> Vec<Change> {
        let was = self.keepalived.running;
        self.keepalived = KeepalivedStatus {
            running: Some(false),
            pid: None,
            vrrp_pid: None,
            started: None,
            detail: reason.clone(),
            exit_seen: was == Some(true) || self.keepalived.exit_seen,
        };
        let mut changes = vec![];
        if was != Some(false) {
            changes.push(Change::Keepalived {
                running: false,
                detail: reason.clone(),
            });
        }
        let cutoff = replaced_at.unwrap_or(now.wall);
        for (name, inst) in &mut self.instances {
            let fresh = inst.evidence_at.is_some_and(|t| t >= cutoff);
            if fresh || inst.state == VrrpState::Stop {
                continue;
            }
            let from = inst.state;
            if from == VrrpState::Master && replaced_at.is_none() && !exited {
                self.lost_masters.insert(name.clone());
            }
            inst.state = VrrpState::Stop;
            inst.since = Some(now.wall);
            inst.since_mono = Some(now.mono);
            inst.announced = false;
            inst.source = Source::ProcessWatch;
            inst.reason = reason.clone();
            inst.evidence_at = Some(now.wall);
            changes.push(Change::Vrrp {
                instance: name.clone(),
                from,
                to: VrrpState::Stop,
                priority: inst.priority,
                source: Source::ProcessWatch,
                reason: reason.clone(),
            });
        }
        for state in self.groups.values_mut() {
            *state = VrrpState::Stop;
        }
        if exited || replaced_at.is_some() {
            self.lost_masters.clear();
        }
        changes
    }
}

fn is_vrrp(c: &Change) -> bool {
    matches!(c, Change::Vrrp { .. })
}

fn lvs_label(kind: LvsKind) -> &'static str {
    kind.as_str()
}

/// The state a transition line announces; `None` for the informational lines.
fn transition_state(s: LineState) -> Option<VrrpState> {
    match s {
        LineState::Master => Some(VrrpState::Master),
        LineState::Backup => Some(VrrpState::Backup),
        LineState::Fault => Some(VrrpState::Fault),
        LineState::Stop => Some(VrrpState::Stop),
        LineState::Deleted => Some(VrrpState::Deleted),
        LineState::MasterRxLowerPri | LineState::MasterPriority | LineState::BackupPriority => None,
    }
}

/// The state only a node in that state writes the given informational line in.
fn implied_state(s: LineState) -> VrrpState {
    match s {
        LineState::MasterRxLowerPri | LineState::MasterPriority => VrrpState::Master,
        LineState::BackupPriority => VrrpState::Backup,
        other => transition_state(other).unwrap_or(VrrpState::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::line::parse;
    use std::time::Duration;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    /// `t(secs)` on both clocks.
    fn st(secs: u64) -> Stamp {
        Stamp {
            mono: Mono::from_duration(Duration::from_secs(secs)),
            wall: t(secs),
        }
    }

    fn line(text: &str, at: u64) -> Event {
        Event::Line {
            line: parse(text).expect("test line parses"),
            at: st(at),
        }
    }

    fn gone(replaced_at: Option<u64>) -> Event {
        Event::KeepalivedGone {
            reason: "keepalived pid 42 exited".into(),
            replaced_at: replaced_at.map(t),
            exited: replaced_at.is_none(),
        }
    }

    fn learned(state: VrrpState, source: Source, since: Option<u64>) -> Event {
        Event::Learned {
            instance: "VI_1".into(),
            state,
            priority: Some(150),
            since: since.map(t),
            source,
            reason: "test".into(),
        }
    }

    /// (what happened so far, then; expected state, source, since of VI_1)
    #[test]
    fn instance_state_table() {
        use Source::*;
        use VrrpState::*;
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Vec<(Event, u64)>, VrrpState, Source, Option<u64>)> = vec![
            ("nothing reported", vec![], Unknown, None, Option::None),
            (
                "a MASTER line",
                vec![(line("INSTANCE \"VI_1\" MASTER 150", 5), 5)],
                Master,
                Fifo,
                Some(5),
            ),
            (
                "BACKUP then MASTER: since is the MASTER line",
                vec![
                    (line("INSTANCE \"VI_1\" BACKUP 150", 1), 1),
                    (line("INSTANCE \"VI_1\" MASTER 150", 4), 4),
                ],
                Master,
                Fifo,
                Some(4),
            ),
            (
                "a repeated MASTER line keeps the first since",
                vec![
                    (line("INSTANCE \"VI_1\" MASTER 150", 4), 4),
                    (line("INSTANCE \"VI_1\" MASTER 150", 9), 9),
                ],
                Master,
                Fifo,
                Some(4),
            ),
            (
                "MASTER_RX_LOWER_PRI keeps MASTER and its since",
                vec![
                    (line("INSTANCE \"VI_1\" MASTER 150", 4), 4),
                    (line("INSTANCE \"VI_1\" MASTER_RX_LOWER_PRI 150", 8), 8),
                ],
                Master,
                Fifo,
                Some(4),
            ),
            (
                "MASTER_PRIORITY keeps MASTER",
                vec![
                    (line("INSTANCE \"VI_1\" MASTER 150", 4), 4),
                    (line("INSTANCE \"VI_1\" MASTER_PRIORITY 90", 8), 8),
                ],
                Master,
                Fifo,
                Some(4),
            ),
            (
                "BACKUP_PRIORITY after a missed BACKUP line implies BACKUP",
                vec![
                    (line("INSTANCE \"VI_1\" MASTER 150", 4), 4),
                    (line("INSTANCE \"VI_1\" BACKUP_PRIORITY 90", 8), 8),
                ],
                Backup,
                Fifo,
                Some(8),
            ),
            (
                "FAULT",
                vec![
                    (line("INSTANCE \"VI_1\" MASTER 150", 4), 4),
                    (line("INSTANCE \"VI_1\" FAULT 150", 6), 6),
                ],
                Fault,
                Fifo,
                Some(6),
            ),
            (
                "STOP line",
                vec![(line("INSTANCE \"VI_1\" STOP 150", 6), 6)],
                Stop,
                Fifo,
                Some(6),
            ),
            (
                "DELETED line",
                vec![(line("INSTANCE \"VI_1\" DELETED 150", 6), 6)],
                Deleted,
                Fifo,
                Some(6),
            ),
            (
                "a group line does not touch the instance",
                vec![(line("GROUP \"VI_1\" MASTER 0", 6), 6)],
                Unknown,
                None,
                Option::None,
            ),
            (
                "learned from the JSON dump at start-up",
                vec![(learned(Master, JsonDump, Some(2)), 10)],
                Master,
                JsonDump,
                Some(2),
            ),
            (
                "a FIFO line after the dump wins and restamps",
                vec![
                    (learned(Master, JsonDump, Some(2)), 10),
                    (line("INSTANCE \"VI_1\" BACKUP 100", 11), 11),
                ],
                Backup,
                Fifo,
                Some(11),
            ),
            (
                "a repeated MASTER after the dump keeps its state but names the FIFO",
                vec![
                    (learned(Master, JsonDump, Some(2)), 10),
                    (line("INSTANCE \"VI_1\" MASTER 150", 11), 11),
                ],
                Master,
                Fifo,
                Some(11),
            ),
            (
                "keepalived gone: MASTER becomes STOP at once",
                vec![
                    (line("INSTANCE \"VI_1\" MASTER 150", 4), 4),
                    (gone(Option::None), 20),
                ],
                Stop,
                ProcessWatch,
                Some(20),
            ),
            (
                "keepalived gone: unknown becomes STOP",
                vec![(gone(Option::None), 20)],
                Stop,
                ProcessWatch,
                Some(20),
            ),
            (
                "replaced by a new keepalived: older evidence becomes STOP",
                vec![
                    (line("INSTANCE \"VI_1\" MASTER 150", 4), 4),
                    (gone(Some(15)), 20),
                ],
                Stop,
                ProcessWatch,
                Some(20),
            ),
            (
                "replaced: a line from the new process, seen first, is kept",
                vec![
                    (line("INSTANCE \"VI_1\" MASTER 150", 4), 4),
                    (line("INSTANCE \"VI_1\" BACKUP 150", 16), 16),
                    (gone(Some(15)), 20),
                ],
                Backup,
                Fifo,
                Some(16),
            ),
            (
                "after keepalived is gone, its new process's lines count",
                vec![
                    (line("INSTANCE \"VI_1\" MASTER 150", 4), 4),
                    (gone(Option::None), 20),
                    (line("INSTANCE \"VI_1\" BACKUP 150", 25), 25),
                ],
                Backup,
                Fifo,
                Some(25),
            ),
        ];
        for (name, events, state, source, since) in cases {
            let mut m = Model::new(["VI_1"]);
            for (event, now) in events {
                m.observe(event, st(now));
            }
            let got = &m.instances["VI_1"];
            assert_eq!(
                (got.state, got.source, got.since),
                (state, source, since.map(t)),
                "case: {name}"
            );
        }
    }

    #[test]
    fn changes_are_reported_once_and_kept_as_decisions() {
        let mut m = Model::new(["VI_1"]);
        let c = m.observe(line("INSTANCE \"VI_1\" MASTER 150", 1), st(1));
        assert!(matches!(
            &c[..],
            [Change::Vrrp {
                from: VrrpState::Unknown,
                to: VrrpState::Master,
                ..
            }]
        ));
        assert_eq!(
            m.observe(line("INSTANCE \"VI_1\" MASTER 150", 2), st(2)),
            vec![]
        );
        let c = m.observe(line("INSTANCE \"VI_1\" MASTER_PRIORITY 90", 3), st(3));
        assert_eq!(
            c,
            vec![Change::Priority {
                instance: "VI_1".into(),
                from: Some(150),
                to: 90
            }]
        );
        let c = m.observe(line("INSTANCE \"VI_1\" MASTER_RX_LOWER_PRI 90", 4), st(4));
        assert_eq!(
            c,
            vec![Change::OtherMasterSeen {
                instance: "VI_1".into()
            }]
        );
        assert_eq!(
            m.instances["VI_1"].lower_priority_master_seen_at,
            Some(t(4))
        );
        assert_eq!(m.decisions.len(), 3);
        assert_eq!(m.decisions.back().map(|d| d.at), Some(t(4)));
    }

    #[test]
    fn start_up_reports_are_learned_not_transitions() {
        let mut m = Model::new(["VI_1"]);
        let c = m.observe(
            learned(VrrpState::Master, Source::JsonDump, Some(2)),
            st(10),
        );
        assert!(
            matches!(
                &c[..],
                [Change::Learned {
                    state: VrrpState::Master,
                    source: Source::JsonDump,
                    ..
                }]
            ),
            "{c:?}"
        );
        let c = m.observe(learned(VrrpState::Unknown, Source::Addresses, None), st(11));
        assert!(
            matches!(
                &c[..],
                [Change::Learned {
                    state: VrrpState::Unknown,
                    ..
                }]
            ),
            "{c:?}"
        );
    }

    #[test]
    fn instances_keepalived_and_the_config_disagree_on_are_named_both_ways() {
        let mut m = Model::new(["VI_1", "VI_2"]);
        let mismatch = |c: &[Change]| {
            c.iter()
                .filter_map(|c| match c {
                    Change::InstanceMismatch { instance, known_to } => {
                        Some((instance.clone(), *known_to))
                    }
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let c = m.observe(line("INSTANCE \"VI_3\" BACKUP 90", 1), st(1));
        assert_eq!(mismatch(&c), [("VI_3".into(), "keepalived")]);
        // Said once, not at every line.
        let c = m.observe(line("INSTANCE \"VI_3\" MASTER 90", 2), st(2));
        assert_eq!(mismatch(&c), []);
        let c = m.observe(line("INSTANCE \"VI_1\" MASTER 90", 2), st(2));
        assert_eq!(mismatch(&c), []);
        assert_eq!(m.mismatches(), [("VI_3", "keepalived")], "no dump read yet");
        let listed = ["VI_1", "VI_3"].map(String::from).into();
        let c = m.observe(Event::KeepalivedListed(listed), st(3));
        assert_eq!(mismatch(&c), [("VI_2".into(), "config")]);
        assert_eq!(m.mismatches(), [("VI_3", "keepalived"), ("VI_2", "config")]);
    }

    #[test]
    fn decision_history_is_bounded() {
        let mut m = Model::new(["VI_1"]);
        for i in 0..(DECISION_HISTORY as u64 + 10) {
            let state = if i % 2 == 0 { "MASTER" } else { "BACKUP" };
            m.observe(line(&format!("INSTANCE \"VI_1\" {state} 1"), i), st(i));
        }
        assert_eq!(m.decisions.len(), DECISION_HISTORY);
    }

    #[test]
    fn unconfigured_instances_groups_and_lvs_are_tracked() {
        let mut m = Model::new([]);
        m.observe(line("INSTANCE \"other\" BACKUP 100", 1), st(1));
        m.observe(line("GROUP \"G\" MASTER 0", 1), st(1));
        let c = m.observe(line("VS [10.0.0.1]:tcp:80 DOWN", 1), st(1));
        assert_eq!(c.len(), 1);
        assert_eq!(
            m.observe(line("VS [10.0.0.1]:tcp:80 DOWN", 2), st(2)),
            vec![]
        );
        assert_eq!(m.instances["other"].state, VrrpState::Backup);
        assert_eq!(m.groups["G"], VrrpState::Master);
        assert!(!m.lvs[&("vs", "[10.0.0.1]:tcp:80".to_string())]);
        m.observe(gone(None), st(5));
        assert_eq!(m.groups["G"], VrrpState::Stop);
    }

    #[test]
    fn keepalived_and_probe_changes_are_edges() {
        let mut m = Model::new(["VI_1"]);
        let run = Event::KeepalivedRunning {
            pid: 7,
            vrrp_pid: Some(8),
            started: t(0),
        };
        assert_eq!(m.observe(run.clone(), st(1)).len(), 1);
        assert_eq!(m.observe(run, st(2)), vec![]);
        assert_eq!(m.observe(gone(None), st(3)).len(), 2, "keepalived + VI_1");
        assert_eq!(m.observe(gone(None), st(4)), vec![], "nothing left to stop");
        let up = Event::Probe {
            health: Health::Up,
            detail: "200".into(),
        };
        assert_eq!(m.observe(up.clone(), st(5)).len(), 1);
        assert_eq!(m.observe(up, st(6)), vec![]);
        assert_eq!(m.probe.since, Some(t(5)));
    }

    /// A writer that invents names cannot grow the maps (and the metric
    /// labels) without bound: known names always pass, new ones up to
    /// MAX_NEW_NAMES per kind, the rest are dropped and counted.
    #[test]
    fn new_names_are_capped_per_kind_and_counted() {
        let mut m = Model::new(["VI_1"]);
        for i in 0..MAX_NEW_NAMES + 5 {
            m.observe(line(&format!("INSTANCE \"X{i}\" BACKUP 100"), 1), st(1));
            m.observe(line(&format!("GROUP \"G{i}\" BACKUP 0"), 1), st(1));
            m.observe(
                line(&format!("VS [10.0.0.1]:tcp:{} UP", 1000 + i), 1),
                st(1),
            );
        }
        assert_eq!(m.instances.len(), 1 + MAX_NEW_NAMES);
        assert_eq!(m.groups.len(), MAX_NEW_NAMES);
        assert_eq!(m.lvs.len(), MAX_NEW_NAMES);
        assert_eq!(m.names_dropped.get("instance"), Some(&5));
        assert_eq!(m.names_dropped.get("group"), Some(&5));
        assert_eq!(m.names_dropped.get("lvs"), Some(&5));
        // The configured instance and the admitted ones still update.
        let c = m.observe(line("INSTANCE \"VI_1\" MASTER 150", 2), st(2));
        assert!(matches!(c[..], [Change::Vrrp { .. }]), "{c:?}");
        let c = m.observe(line("INSTANCE \"X0\" MASTER 100", 2), st(2));
        assert!(matches!(c[..], [Change::Vrrp { .. }]), "{c:?}");
        // Dropped names stay out of the decision history.
        assert!(
            m.decisions
                .iter()
                .all(|d| !matches!(d.change, Change::NameDropped { .. }))
        );
    }
}
