//! Releasing a crashed MASTER: which VRRP instances to send Keepalived's
//! priority-0 advert for, on its behalf, when it is gone.
//!
//! A Keepalived that stops gracefully sends that advert itself, and its
//! peer takes over after Skew_Time (about 0.6 s); one that crashes sends
//! nothing, and the peer waits three adverts and the skew (about 3.6 s at
//! `advert_int 1`) before it even knows. Sending the advert the crashed
//! process would have sent makes a crash fail over as a graceful stop does.
//! It changes when the peer's Keepalived takes over, never who: VRRP still
//! elects, and the claim rules (`decide.rs`) still decide the VIP.
//!
//! Pure: the event and the model before it in, instance names out. The
//! rules, in order:
//!
//! R1. Only when `keepalived.release_on_crash` is on (the default).
//! R2. Only for a Keepalived that is gone and left nothing behind: no
//!     Keepalived process exists. A stopped or frozen one may resume as
//!     MASTER (releasing it would make two); a main process that lost its
//!     VRRP process respawns it; a new Keepalived that replaced it speaks
//!     VRRP itself.
//! R3. Only for the instances this node knew as MASTER by evidence (a FIFO
//!     line or a start-up source). A BACKUP's release means nothing to its
//!     peer; a graceful stop wrote `STOP` and sent its own (its instances
//!     are no longer MASTER when the process goes); an unknown state is
//!     never acted on.
//! R4. Once per crash: the process watch reports a Keepalived gone once,
//!     and the instance is no longer MASTER after it.
//!
//! The acting side (`keepalived/release.rs`) checks again, just before it
//! sends, that no Keepalived process runs.

use crate::core::input::Event;
use crate::core::model::Model;
use crate::core::words::VrrpState;

/// The instances to release for `event`, given the model before it.
pub fn to_release(event: &Event, before: &Model, enabled: bool) -> Vec<String> {
    // Rule R1.
    if !enabled {
        return vec![];
    }
    // Rule R2 (and R4: one Gone event per crash).
    let Event::KeepalivedGone {
        replaced_at: None,
        exited: true,
        ..
    } = event
    else {
        return vec![];
    };
    // Rule R3: MASTER now, or when its VRRP process went before the main
    // process did.
    before
        .instances
        .iter()
        .filter(|(name, i)| i.state == VrrpState::Master || before.lost_masters.contains(*name))
        .map(|(name, _)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::{Mono, Stamp};
    use crate::core::words::Source;
    use std::time::{Duration, SystemTime};

    fn st(secs: u64) -> Stamp {
        Stamp {
            mono: Mono::from_duration(Duration::from_secs(secs)),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs),
        }
    }

    /// A model where VI_1 is `state` by `how` and VI_2 is BACKUP.
    fn model(state: Option<VrrpState>, how: &str) -> Model {
        let mut m = Model::new(["VI_1", "VI_2"]);
        let mut feed = |event| {
            m.observe(event, st(10));
        };
        feed(Event::Line {
            line: crate::keepalived::line::parse("INSTANCE \"VI_2\" BACKUP 100").unwrap(),
            at: st(1),
        });
        match (state, how) {
            (None, _) => {}
            (Some(s), "line") => feed(Event::Line {
                line: crate::keepalived::line::parse(&format!(
                    "INSTANCE \"VI_1\" {} 150",
                    s.as_str().to_uppercase()
                ))
                .unwrap(),
                at: st(2),
            }),
            (Some(s), _) => feed(Event::Learned {
                instance: "VI_1".into(),
                state: s,
                priority: Some(150),
                since: None,
                source: Source::JsonDump,
                reason: "test".into(),
            }),
        }
        m
    }

    fn gone(exited: bool, replaced: bool) -> Event {
        Event::KeepalivedGone {
            reason: "test".into(),
            replaced_at: replaced.then(|| st(5).wall),
            exited,
        }
    }

    /// (name, enabled, event, VI_1's state before it, how it was known,
    /// the instances released)
    type Case = (
        &'static str,
        bool,
        Event,
        Option<VrrpState>,
        &'static str,
        &'static [&'static str],
    );

    #[test]
    fn release_rules_table() {
        use VrrpState::*;
        let cases: Vec<Case> = vec![
            (
                "R1 off: nothing",
                false,
                gone(true, false),
                Some(Master),
                "line",
                &[],
            ),
            (
                "R2 a crash with no process left releases the MASTER",
                true,
                gone(true, false),
                Some(Master),
                "line",
                &["VI_1"],
            ),
            (
                "R3 a MASTER learnt at start-up counts as evidence",
                true,
                gone(true, false),
                Some(Master),
                "learned",
                &["VI_1"],
            ),
            (
                "R2 paused, or the main process still runs: nothing",
                true,
                gone(false, false),
                Some(Master),
                "line",
                &[],
            ),
            (
                "R2 replaced by a new Keepalived: nothing",
                true,
                gone(true, true),
                Some(Master),
                "line",
                &[],
            ),
            (
                "R2 not a Keepalived gone: nothing",
                true,
                Event::Probe {
                    health: crate::core::words::Health::Down,
                    detail: "test".into(),
                },
                Some(Master),
                "line",
                &[],
            ),
            (
                "R3 BACKUP: nothing",
                true,
                gone(true, false),
                Some(Backup),
                "line",
                &[],
            ),
            (
                "R3 FAULT: nothing",
                true,
                gone(true, false),
                Some(Fault),
                "line",
                &[],
            ),
            (
                "R3 a graceful stop wrote STOP first: nothing",
                true,
                gone(true, false),
                Some(Stop),
                "line",
                &[],
            ),
            (
                "R3 unknown: nothing",
                true,
                gone(true, false),
                None,
                "line",
                &[],
            ),
        ];
        for (name, enabled, event, state, how, want) in cases {
            let m = model(state, how);
            assert_eq!(to_release(&event, &m, enabled), want.to_vec(), "{name}");
        }
    }

    #[test]
    fn r3_a_master_whose_vrrp_process_went_first_is_released_when_the_main_one_goes() {
        let mut m = model(Some(VrrpState::Master), "line");
        let child = gone(false, false);
        assert!(to_release(&child, &m, true).is_empty(), "main process left");
        m.observe(child, st(20));
        assert_eq!(m.instances["VI_1"].state, VrrpState::Stop);
        assert_eq!(
            to_release(&gone(true, false), &m, true),
            vec!["VI_1".to_owned()]
        );
        // A respawned VRRP process (Keepalived running again) ends it.
        m.observe(
            Event::KeepalivedRunning {
                pid: 1,
                vrrp_pid: Some(3),
                started: st(21).wall,
            },
            st(21),
        );
        assert!(to_release(&gone(true, false), &m, true).is_empty());
    }

    #[test]
    fn r4_once_per_crash() {
        let mut m = model(Some(VrrpState::Master), "line");
        let event = gone(true, false);
        assert_eq!(to_release(&event, &m, true), vec!["VI_1".to_owned()]);
        m.observe(event.clone(), st(20));
        assert_eq!(to_release(&event, &m, true), Vec::<String>::new());
    }
}
