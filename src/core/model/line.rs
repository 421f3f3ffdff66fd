//! A FIFO line applied to the model: an instance's state, a group's, an LVS
//! server's.

use super::*;

impl Model {
    pub(super) fn on_line(&mut self, line: FifoLine, at: Stamp) -> Vec<Change> {
        match line {
            FifoLine::Vrrp {
                target: VrrpTarget::Group,
                name,
                state,
                ..
            } => {
                let Some(to) = transition_state(state) else {
                    return vec![];
                };
                let known = self.groups.contains_key(&name);
                if let Err(c) = self.admit("group", known, self.groups.len(), &name) {
                    return vec![c];
                }
                let from = self
                    .groups
                    .insert(name.clone(), to)
                    .unwrap_or(VrrpState::Unknown);
                if from == to {
                    vec![]
                } else {
                    vec![Change::Group {
                        group: name,
                        from,
                        to,
                    }]
                }
            }
            FifoLine::Vrrp {
                target: VrrpTarget::Instance,
                name,
                state,
                priority,
            } => self.on_instance_line(name, state, priority, at),
            FifoLine::Lvs { kind, service, up } => {
                let key = (lvs_label(kind), service.clone());
                let known = self.lvs.contains_key(&key);
                if let Err(c) = self.admit("lvs", known, self.lvs.len(), &service) {
                    return vec![c];
                }
                if self.lvs.insert(key, up) == Some(up) {
                    vec![]
                } else {
                    vec![Change::Lvs {
                        kind: lvs_label(kind),
                        service,
                        up,
                    }]
                }
            }
        }
    }

    fn on_instance_line(
        &mut self,
        name: String,
        state: LineState,
        priority: u8,
        at: Stamp,
    ) -> Vec<Change> {
        let known = self.instances.contains_key(&name);
        if let Err(c) = self.admit("instance", known, self.instances.len(), &name) {
            return vec![c];
        }
        let mismatch = self.unconfigured(&name, known);
        let inst = self
            .instances
            .entry(name.clone())
            .or_insert_with(|| Instance::unknown(""));
        inst.evidence_at = Some(at.wall);
        let old_priority = inst.priority.replace(priority);
        let mut changes: Vec<Change> = mismatch.into_iter().collect();
        // A transition line says the state outright; the other lines imply it.
        let (to, reason) = match transition_state(state) {
            Some(to) => (to, format!("keepalived wrote {}", state.as_str())),
            None => {
                let implied = implied_state(state);
                if state == LineState::MasterRxLowerPri {
                    inst.lower_priority_master_seen_at = Some(at.wall);
                    inst.other_master_at = Some(at.mono);
                    changes.push(Change::OtherMasterSeen {
                        instance: name.clone(),
                    });
                }
                (
                    implied,
                    format!(
                        "implied by {}: the line that announced this state was missed",
                        state.as_str()
                    ),
                )
            }
        };
        // A transition line restamps a state that another source reported: it
        // is fresher evidence, and a later `since` only delays, never hastens.
        let announced = transition_state(state).is_some();
        if inst.state != to || (announced && inst.source != Source::Fifo) {
            let from = inst.state;
            inst.state = to;
            inst.since = Some(at.wall);
            inst.since_mono = Some(at.mono);
            inst.announced = announced;
            inst.source = Source::Fifo;
            inst.reason = reason.clone();
            if from != to {
                changes.push(Change::Vrrp {
                    instance: name.clone(),
                    from,
                    to,
                    priority: Some(priority),
                    source: Source::Fifo,
                    reason,
                });
            }
        }
        if old_priority.is_some_and(|p| p != priority) && !changes.iter().any(is_vrrp) {
            changes.push(Change::Priority {
                instance: name,
                from: old_priority,
                to: priority,
            });
        }
        changes
    }
}
