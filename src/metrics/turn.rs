//! What an owner turn counts: counters from its changes, gauges that
//! mirror the model.

use super::*;
use crate::core::change::Change;
use crate::core::cloud::Note;
use crate::core::decide::Verdict;
use crate::core::model::Model;
use crate::core::words::ClaimOutcome;
use crate::metrics::read::label;

impl Metrics {
    /// The peer's freshness and split brain, at every owner turn.
    pub fn sync_peer(&self, address: &str, model: &Model, fresh: bool) {
        self.peer_up
            .with_label_values(&[address])
            .set(i64::from(fresh));
        if let Some(p) = &model.peer {
            self.peer_last_report
                .with_label_values(&[address])
                .set(epoch(p.at_wall));
        }
        for name in model.instances.keys() {
            if let Ok(g) = self.split_brain.get_metric_with_label_values(&[name]) {
                g.set(i64::from(model.split_brain.contains(name)));
            }
        }
    }

    /// Counters that follow from one change.
    pub fn count(&self, change: &Change) {
        match change {
            Change::Vrrp { instance, to, .. } => {
                self.vrrp_transitions
                    .with_label_values(&[instance.as_str(), to.as_str()])
                    .inc();
            }
            Change::OtherMasterSeen { instance } => {
                self.vrrp_other_master_seen
                    .with_label_values(&[instance.as_str()])
                    .inc();
            }
            Change::ProcessCheckFailed { .. } => self.process_check_errors.inc(),
            Change::NameDropped { kind, .. } => {
                self.fifo_names_dropped.with_label_values(&[kind]).inc();
            }
            Change::Released {
                instance, error, ..
            } => {
                let outcome = if error.is_some() { "failed" } else { "sent" };
                self.vrrp_releases
                    .with_label_values(&[instance.as_str(), outcome])
                    .inc();
            }
            Change::NotifyRun {
                outcome,
                duration_ms,
                ..
            } => {
                self.notify_runs
                    .with_label_values(&[outcome.as_str()])
                    .inc();
                self.notify_run_duration
                    .observe(*duration_ms as f64 / 1000.0);
            }
            _ => {}
        }
    }

    /// Gauges that mirror the model; called after every change.
    pub fn sync(&self, model: &Model) {
        for (name, inst) in &model.instances {
            for s in VrrpState::ALL {
                self.vrrp_state
                    .with_label_values(&[name.as_str(), s.as_str()])
                    .set(i64::from(inst.state == s));
                // Transition counters exist at 0 for every state.
                self.vrrp_transitions
                    .with_label_values(&[name.as_str(), s.as_str()]);
            }
            self.vrrp_other_master_seen
                .with_label_values(&[name.as_str()]);
            match inst.priority {
                Some(p) => self
                    .vrrp_priority
                    .with_label_values(&[name.as_str()])
                    .set(i64::from(p)),
                None => {
                    let _ = self.vrrp_priority.remove_label_values(&[name.as_str()]);
                }
            }
            match inst.since {
                Some(t) => self
                    .vrrp_last_transition
                    .with_label_values(&[name.as_str()])
                    .set(epoch(t)),
                None => {
                    let _ = self
                        .vrrp_last_transition
                        .remove_label_values(&[name.as_str()]);
                }
            }
        }
        // Present only while they disagree. The series that no longer
        // hold are removed one by one (no reset: a scrape in between would
        // see none, and restart the alert's `for`).
        let now = model.mismatches();
        let exported: Vec<(String, String)> = {
            use prometheus::core::Collector;
            self.instance_mismatch
                .collect()
                .iter()
                .flat_map(|f| f.get_metric())
                .map(|m| (label(m, "vrrp_instance"), label(m, "known_to")))
                .collect()
        };
        for (name, known_to) in &exported {
            if !now.iter().any(|(n, k)| n == name && k == known_to) {
                let _ = self
                    .instance_mismatch
                    .remove_label_values(&[name.as_str(), known_to.as_str()]);
            }
        }
        for (name, known_to) in now {
            self.instance_mismatch
                .with_label_values(&[name, known_to])
                .set(1);
        }
        self.keepalived_up
            .set(i64::from(model.keepalived.running == Some(true)));
        match model.keepalived.started {
            Some(t) if model.keepalived.running == Some(true) => self
                .keepalived_start_time
                .with_label_values::<&str>(&[])
                .set(epoch(t)),
            _ => {
                let _ = self.keepalived_start_time.remove_label_values::<&str>(&[]);
            }
        }
        self.probe_up
            .set(i64::from(model.probe.health == Health::Up));
        let lvs: BTreeMap<_, _> = model.lvs.iter().collect();
        for ((kind, service), up) in lvs {
            self.lvs_up
                .with_label_values(&[*kind, service.as_str()])
                .set(i64::from(*up));
        }
    }

    /// What a note of the cloud side counts or sets.
    pub fn note(&self, note: &Note) {
        match note {
            Note::Permission {
                vip,
                action,
                allowed,
                ..
            } => self.permission(vip, action.as_str(), !allowed),
            Note::AddressDone { vip, change, error } => {
                self.address_changed(vip, *change, error.is_none())
            }
            Note::SourceDestCheck { eni, on, .. } => self.source_dest_check(eni, *on),
            Note::AllocationUnknown { vip, unknown, .. } => {
                self.vip_allocation_unknown(vip, *unknown)
            }
            Note::Route { vip, route } => self.route_state(vip, &route.route_table, route.state),
            Note::ArrivedHere {
                vip,
                latency,
                moved_by,
                ..
            } => self.failover(vip, *moved_by, *latency),
            Note::MovedAway {
                vip, fight: true, ..
            } => self.claim_undone(vip),
            Note::Seen { vip, here, at, .. } => self.vip_seen(vip, *here, *at),
            Note::ClaimDone {
                vip,
                outcome: ClaimOutcome::Dropped,
                ..
            } => self.claim_dropped(vip),
            Note::Verdict {
                vip,
                verdict: Verdict::Damped { .. },
                ..
            } => self.claim_damped(vip),
            Note::Converged { vip, converged } => self.vip_converged(vip, *converged),
            _ => {}
        }
    }
}
