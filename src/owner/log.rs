//! Every log line of a turn: one match on `Change` (the model's changes)
//! and one on `Note` (the cloud side's), constant messages, values in
//! fields.

use tracing::{debug, error, info, warn};

use crate::core::change::Change;
use crate::core::cloud::Note;
use crate::core::decide::Verdict;
use crate::core::state_tag::Reading;
use crate::core::words::{ClaimOutcome, RouteState};
use crate::status::rfc3339;

/// One line per change, constant message, values in fields.
pub fn log_change(change: &Change) {
    match change {
        Change::Learned {
            instance,
            state,
            priority,
            source,
            reason,
        } => info!(event = "vrrp_learned",
            vrrp_instance = %instance,
            state = state.as_str(),
            priority = priority.map(i64::from),
            source = source.as_str(),
            reason = %reason,
            "vrrp state learned at start-up"
        ),
        Change::Vrrp {
            instance,
            from,
            to,
            priority,
            source,
            reason,
        } => info!(event = "vrrp_changed",
            vrrp_instance = %instance,
            from = from.as_str(),
            to = to.as_str(),
            priority = priority.map(i64::from),
            source = source.as_str(),
            reason = %reason,
            "vrrp state changed"
        ),
        Change::Priority { instance, from, to } => info!(event = "vrrp_priority_changed",
            vrrp_instance = %instance,
            from = from.map(i64::from),
            to = *to,
            "vrrp priority changed"
        ),
        Change::OtherMasterSeen { instance } => warn!(event = "vrrp_other_master",
            vrrp_instance = %instance,
            "keepalived heard another MASTER with a lower priority (MASTER_RX_LOWER_PRI): possible split brain"
        ),
        Change::Group { group, from, to } => info!(event = "vrrp_group_changed",
            group = %group,
            from = from.as_str(),
            to = to.as_str(),
            "vrrp group state changed"
        ),
        Change::Lvs { kind, service, up } => {
            info!(event = "lvs_changed", kind, service = %service, up, "lvs server changed")
        }
        Change::Keepalived {
            running: true,
            detail,
        } => info!(event = "keepalived_running", detail = %detail, "keepalived is running"),
        Change::Keepalived {
            running: false,
            detail,
        } => warn!(event = "keepalived_gone", detail = %detail, "keepalived is gone"),
        Change::ProcessCheckFailed {
            reason,
            first: true,
        } => {
            warn!(event = "keepalived_look_failed", reason = %reason, "cannot look at keepalived's processes: its state is kept as it was until a look succeeds")
        }
        Change::ProcessCheckFailed { first: false, .. } => {}
        Change::Probe { from, to, detail } => info!(event = "probe_changed",
            from = from.as_str(),
            to = to.as_str(),
            detail = %detail,
            "probe health changed"
        ),
        Change::NameDropped {
            kind,
            name,
            dropped,
        } => {
            // The first, then at every power of two: a flood logs little.
            if dropped.is_power_of_two() {
                warn!(event = "fifo_name_dropped", kind, name = %name, dropped, limit = crate::core::model::MAX_NEW_NAMES, "a FIFO line names one name too many of its kind; dropped (counted in vip_watchdog_fifo_names_dropped_total)")
            }
        }
        Change::HostAddresses { added, removed } => info!(event = "host_addresses_changed",
            added = ?added,
            removed = ?removed,
            "this host's addresses changed"
        ),
        Change::InstanceMismatch {
            instance,
            known_to: "keepalived",
        } => {
            warn!(event = "instance_not_configured", vrrp_instance = %instance, "keepalived reports a VRRP instance that the config does not name: add it to [[keepalived.instance]] (and a [[vip]] if it should move one)")
        }
        Change::InstanceMismatch { instance, .. } => {
            warn!(event = "instance_not_in_dump", vrrp_instance = %instance, "the config names a VRRP instance that keepalived's JSON dump does not list: check the name against keepalived.conf (vip-watchdog check-config)")
        }
        Change::NotifyStarted { instance, timeout } => {
            let instance = instance.as_deref().unwrap_or("(every instance)");
            info!(event = "notify_started", vrrp_instance = %instance, timeout_ms = timeout.as_millis() as u64, "a wrapped notify script run started: asking the cloud every 200 ms until it ends");
        }
        Change::NotifyRun {
            instance,
            outcome,
            exit_code,
            duration_ms,
            output,
        } => {
            let instance = instance.as_deref().unwrap_or("(every instance)");
            if outcome.failed() {
                warn!(event = "notify_failed", vrrp_instance = %instance, outcome = outcome.as_str(), exit_code = *exit_code, duration_ms = *duration_ms, output = %output, "a notify script run failed: the watchdog heals without waiting for the rest of grace")
            } else if *outcome == crate::core::words::Outcome::Skipped {
                info!(event = "notify_skipped", vrrp_instance = %instance, outcome = outcome.as_str(), why = %output, "a notify script run was skipped: the peer is a healthy MASTER holding the VIP")
            } else {
                info!(event = "notify_succeeded", vrrp_instance = %instance, outcome = outcome.as_str(), exit_code = *exit_code, duration_ms = *duration_ms, output = %output, "a notify script run succeeded: asking the cloud at once")
            }
        }
        Change::Peer { node, summary } => info!(event = "peer_changed",
            peer = %node,
            summary = %summary,
            "the peer's watchdog reports a change"
        ),
        Change::SplitBrain {
            instance,
            on: true,
            mine,
            peers,
        } => warn!(event = "split_brain",
            vrrp_instance = %instance,
            this_node = %mine,
            peer = %peers,
            "split brain: this node and its peer are both MASTER; the incumbent keeps the VIP (rule 10), see the runbook"
        ),
        Change::SplitBrain {
            instance,
            on: false,
            mine,
            peers,
        } => info!(event = "split_brain_over",
            vrrp_instance = %instance,
            this_node = %mine,
            peer = %peers,
            "split brain over: one MASTER again"
        ),
        Change::Released {
            instance,
            sent: Some(sent),
            ..
        } => info!(event = "release_sent",
            vrrp_instance = %instance,
            advert = %sent,
            "keepalived crashed while MASTER: sent its priority-0 advert on its behalf, so the peer takes over after its skew time as at a graceful stop"
        ),
        Change::Released {
            instance, error, ..
        } => warn!(event = "release_failed",
            vrrp_instance = %instance,
            error = error.as_deref().unwrap_or_default(),
            "keepalived crashed while MASTER: its priority-0 advert was not sent; the peer takes over once Keepalived's detection ends"
        ),
        // Logged by the cloud side where they happen.
        Change::VipSeen { .. } | Change::VipVerdict { .. } | Change::ClaimDone { .. } => {}
    }
}

/// One line per note of the cloud side, when it says something new.
pub fn log_note(note: &Note) {
    match note {
        Note::Permission {
            vip,
            action,
            allowed,
            before,
            evidence,
            detail,
        } => match (before, allowed) {
            (_, false) if *before != Some(false) => error!(event = "permission_refused",
                vip = %vip,
                action = action.as_str(),
                iam_action = %format!("ec2:{}", action.as_str()),
                evidence = evidence.as_str(),
                detail = %detail,
                "the cloud refuses an action this node needs to claim the VIP: a failover to this node would leave the VIP behind; grant it in the instance role's IAM policy"
            ),
            (Some(false), true) => info!(event = "permission_allowed",
                vip = %vip,
                action = action.as_str(),
                evidence = evidence.as_str(),
                "the cloud allows the action again"
            ),
            _ => {}
        },
        Note::AddressDone { vip, change, error } => match error {
            None => {
                info!(event = "address_changed", vip = %vip, change = change.as_str(), "private IP changed on this host")
            }
            Some(e) => {
                error!(event = "address_change_failed", vip = %vip, change = change.as_str(), error = %e, "cannot change the private IP on this host")
            }
        },
        Note::DescribeFailed { error: e } => {
            warn!(event = "describe_failed", operation = e.operation, kind = e.kind.as_str(), error = %e, "cannot read the cloud's view; no action without it");
        }
        Note::SourceDestCheck {
            eni,
            on,
            before,
            has_routes,
        } => {
            if *on && *has_routes && *before != Some(true) {
                error!(event = "source_dest_check_on", eni = %eni, fix = "aws ec2 modify-network-interface-attribute --no-source-dest-check", "this node's ENI has its source/destination check on: the instance drops traffic for a routed VIP that is not its own address; turn it off");
            } else if !on && *before == Some(true) {
                info!(event = "source_dest_check_off", eni = %eni, "this node's ENI has its source/destination check off now");
            }
        }
        Note::AllocationUnknown {
            vip,
            allocation_id,
            unknown: true,
        } => {
            error!(event = "vip_allocation_unknown", vip = %vip, allocation_id = %allocation_id, "EC2 does not know the VIP's allocation ID: fix vip.allocation_id; the other VIPs are watched as usual");
        }
        Note::AllocationUnknown {
            vip, allocation_id, ..
        } => {
            info!(event = "vip_allocation_known", vip = %vip, allocation_id = %allocation_id, "EC2 knows the VIP's allocation ID now");
        }
        Note::Route { vip, route: r } => match r.state {
            RouteState::Blackhole => {
                error!(event = "route_blackhole", vip = %vip, route_table = %r.route_table, route_target = ?r.target, "the VIP's route is a blackhole: its target ENI or instance is gone and traffic is dropped; the MASTER claims it")
            }
            RouteState::Instance => {
                warn!(event = "route_to_instance", vip = %vip, route_table = %r.route_table, route_target = ?r.target, "the VIP's route targets an instance, not an ENI: EC2 resolves it to the primary ENI and refuses it for instances with several; the MASTER points it at its ENI")
            }
            RouteState::Other => {
                warn!(event = "route_to_other", vip = %vip, route_table = %r.route_table, route_target = ?r.target, "the VIP's route targets neither an ENI nor an instance")
            }
            _ => {
                debug!(event = "route_changed", vip = %vip, route_table = %r.route_table, state = r.state.as_str(), "the VIP's route changed")
            }
        },
        Note::OutOfOrder { vip } => {
            debug!(event = "answer_out_of_order", vip = %vip, "a cloud answer older than the view held: ignored");
        }
        Note::ArrivedHere {
            vip,
            latency,
            moved_by,
            seen_at,
        } => {
            info!(event = "vip_arrived", vip = %vip, latency_ms = latency.as_millis() as u64, moved_by = moved_by.as_str(), seen_at = %rfc3339(*seen_at), "the cloud shows the VIP on this node, the MASTER");
        }
        Note::MovedAway {
            vip,
            holder,
            fight: false,
        } => {
            info!(event = "vip_moved_away", vip = %vip, holder = %holder, "the VIP was moved away from this MASTER, the first time in this mastership (a late notify run, a brief MASTER elsewhere): taking it back after min_master_age, no back-off");
        }
        Note::MovedAway { vip, holder, .. } => {
            warn!(event = "vip_fight", vip = %vip, holder = %holder, "the VIP was moved away from this MASTER again in this mastership: a fight; backing off");
        }
        Note::Seen {
            vip,
            holder,
            changed: true,
            ..
        } => {
            info!(event = "vip_seen_changed", vip = %vip, holder = %holder, "the cloud's view of the VIP changed");
        }
        Note::HolderTag {
            vip,
            value,
            reading,
        } => {
            let value = value.as_deref().unwrap_or("");
            match reading {
                Some(Reading::Master { node, .. }) => {
                    info!(event = "state_tag_master", vip = %vip, writer = %node, tag = %value, "the ENI holding the VIP carries a fresh state tag saying its node is a healthy MASTER: while it does, rule 14 leaves the VIP there if it was moved away from this MASTER")
                }
                Some(Reading::Nothing(why))
                    if why.starts_with("unreadable") || why.starts_with("dated") =>
                {
                    warn!(event = "state_tag_ignored", vip = %vip, tag = %value, why = %why, "the state tag on the ENI holding the VIP counts for nothing")
                }
                Some(Reading::Nothing(why)) => {
                    info!(event = "state_tag_not_master", vip = %vip, tag = %value, why = %why, "the state tag on the ENI holding the VIP holds nothing back")
                }
                None => {
                    info!(event = "state_tag_none", vip = %vip, "no state tag of the VIP's holder (not elsewhere, or its node writes none)")
                }
            }
        }
        Note::SplitInCloud { vip, on: true } => {
            warn!(event = "split_brain_in_cloud", vip = %vip, "split brain seen in the cloud: this node is a healthy MASTER and the VIP's holder says through its state tag that it is one too (VRRP and the channel are cut); the VIP stays there (rule 14), see the runbook")
        }
        Note::SplitInCloud { vip, on: false } => {
            info!(event = "split_brain_in_cloud_over", vip = %vip, "split brain seen in the cloud over: rule 14 no longer holds the VIP back")
        }
        Note::Seen { .. } | Note::Converged { .. } => {}
        Note::ClaimDone {
            vip,
            outcome,
            detail,
        } => match outcome {
            ClaimOutcome::Converged => {
                info!(event = "claim_converged", vip = %vip, detail = %detail, "claim converged")
            }
            ClaimOutcome::Failed => {
                warn!(event = "claim_failed", vip = %vip, detail = %detail, next = "asking the cloud where the VIP is before another claim", "claim did not converge");
            }
            ClaimOutcome::Dropped => {
                info!(event = "claim_dropped", vip = %vip, detail = %detail, "claim dropped: overtaken by events");
            }
        },
        Note::Verdict { vip, verdict, why } => match verdict {
            // Logged when it is handed over (`owner::Owner::send`).
            Verdict::Claim { dry_run: false, .. } => {}
            Verdict::Claim { reason, .. } => {
                info!(event = "claim_dry_run", vip = %vip, reason = reason.as_str(), "dry run: would claim the VIP for this node");
            }
            Verdict::Refresh { .. } => {
                info!(event = "verdict_refresh", vip = %vip, why = %why, "asking the cloud before acting");
            }
            Verdict::Damped { .. } => {
                warn!(event = "claim_damped", vip = %vip, why = %why, "claim damped")
            }
            Verdict::Wait { .. } => {
                info!(event = "verdict_wait", vip = %vip, why = %why, "waiting before acting");
            }
            Verdict::Hold { .. } => {
                info!(event = "verdict_hold", vip = %vip, verdict = verdict.kind(), why = %why, "vip decision");
            }
        },
    }
}
