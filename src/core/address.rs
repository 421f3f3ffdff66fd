//! The address rules (`manage_address = true`): when this node adds the
//! VIP's private IP to its interface, and when it removes it. Make before
//! break: the node that will claim carries the address before it claims,
//! and the node that served keeps serving on it until the cloud sends the
//! traffic elsewhere. With Keepalived's `virtual_ipaddress` instead, a
//! Keepalived stop removes the address at once, and clients fail until the
//! VIP lands on the peer.
//!
//! Pure: `AddressState::decide(now, view, hold)` returns what to do; the
//! cloud side hands an add or a removal to the host's address task and
//! reports its end with `finished`. The rules, in order:
//!
//! A1. Never act while Keepalived's process or the instance's VRRP state
//!     is not known (at start-up, before the first check).
//! A2. One change at a time: nothing while one is in flight, which it is
//!     until the host's addresses show it done (or it failed; or, done by
//!     the kernel's word, the listing does not show it within `SETTLE`).
//!     After a failed change (no CAP_NET_ADMIN, no such interface) the
//!     next waits `RETRY`: an error a turn would flood the log.
//! A3. Make: a healthy MASTER (claim rule 2: MASTER, Keepalived runs, the
//!     probe is up) carries the address; it is added when absent. Claim
//!     rule 6 waits for it, so the address is up before the VIP is claimed.
//!     With break before make, only once the old holder let go
//!     (`core::handover`; claim rule 13 waits for the same).
//! A4. A MASTER whose Keepalived runs keeps the address, healthy or not:
//!     the cloud may still send it the traffic.
//! A5. Break: a node that is not MASTER (BACKUP, FAULT, STOP, or its
//!     Keepalived is down) removes the address once the cloud's view shows
//!     the VIP elsewhere, nowhere, or on another private IP. With break
//!     before make, at once: the new holder waits for it (A6 does not
//!     apply).
//! A6. Until then it keeps serving on it, asking the cloud again, for at
//!     most `address_hold` after it stopped being MASTER. Then a view asked
//!     for after the hold ended decides: while it shows the VIP still here
//!     and the local probe is up, the address stays (nobody claimed it: the
//!     traffic still comes here, and removing the address would drop it;
//!     `vip_watchdog_address_kept` says so, and an alert). Otherwise (no
//!     such view can be had, the probe is not up) it is removed: a node
//!     that is not MASTER keeps the address only while it serves the
//!     traffic the cloud sends it.
//!
//! The rules never add the address on a node that is not a healthy
//! MASTER, so they never draw traffic to an unhealthy node; and a removal
//! never comes before the cloud showed the VIP elsewhere, but for A6's
//! bound.

use std::time::Duration;

use serde::Serialize;

use crate::core::clock::Mono;
use crate::core::handover::Release;
use crate::core::words::Holder;
use crate::core::words::{Health, VrrpState};

/// A change to this host's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Add,
    Remove,
}

impl Change {
    pub const ALL: [Change; 2] = [Self::Add, Self::Remove];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
        }
    }
}

/// What the address rules see.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressView<'a> {
    /// Keepalived's process runs; `None` before the first check.
    pub keepalived: Option<bool>,
    pub vrrp: VrrpState,
    pub probe: Health,
    /// The address is on this host.
    pub on_host: bool,
    /// The cloud's last view of the VIP; `None` before the first.
    pub holder: Option<&'a Holder>,
    /// When the request of that view was sent.
    pub seen: Option<Mono>,
    /// `handover = "break_before_make"` (A3, A5).
    pub break_first: bool,
    /// Whether the old holder let go (`core::handover`; A3).
    pub release: &'a Release,
}

/// The verdict of the address rules.
#[derive(Debug, Clone, PartialEq)]
pub enum AddressVerdict {
    /// Add or remove the address now.
    Act { change: Change, why: &'static str },
    /// Keep it as it is; `refresh`: ask the cloud again (A6).
    Keep { why: &'static str, refresh: bool },
}

/// How long a change the kernel said it made may take to show in the
/// host's addresses before the rules decide again (A2).
pub const SETTLE: Duration = Duration::from_secs(2);

/// How long after a failed change the rules try again (A2).
pub const RETRY: Duration = Duration::from_secs(5);

/// A change handed over and not yet seen through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InFlight {
    pub change: Change,
    pub at: Mono,
    /// The address task reported it done.
    pub done: bool,
}

/// What the address rules remember of one VIP.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AddressState {
    /// Since when this node is not MASTER while it carries the address.
    pub released_at: Option<Mono>,
    pub in_flight: Option<InFlight>,
    /// When the last change failed, until `RETRY` later.
    pub failed_at: Option<Mono>,
    /// A6: `address_hold` has passed since `released_at` (its end is no
    /// wake-up any more).
    pub past_hold: bool,
    /// A6: not MASTER past `address_hold`, and kept because a fresh view
    /// shows the VIP here and the probe is up.
    pub kept: bool,
}

impl AddressState {
    pub fn decide(&mut self, now: Mono, v: &AddressView, hold: Duration) -> AddressVerdict {
        let keep = |why| AddressVerdict::Keep {
            why,
            refresh: false,
        };
        let act = |change, why| AddressVerdict::Act { change, why };
        self.kept = false;
        // Rule A1.
        let Some(running) = v.keepalived else {
            return keep("Keepalived's process is not checked yet");
        };
        if running && v.vrrp == VrrpState::Unknown {
            return keep("the VRRP state is not known yet");
        }
        // Rule A2.
        if let Some(f) = self.in_flight {
            let shown = match f.change {
                Change::Add => v.on_host,
                Change::Remove => !v.on_host,
            };
            if f.done && (shown || now.since(f.at) >= SETTLE) {
                self.in_flight = None;
            } else {
                return keep("a change of the address is in flight");
            }
        }
        if let Some(f) = self.failed_at {
            if now.since(f) < RETRY {
                return keep("the last change of the address failed: trying again after a pause");
            }
            self.failed_at = None;
        }
        let master = running && v.vrrp == VrrpState::Master;
        if master {
            self.released_at = None;
            self.past_hold = false;
            // Rule A3.
            if !v.on_host && v.probe == Health::Up && !v.release.may_make() {
                return keep(
                    "break before make: a healthy MASTER, but the old holder has not let go: the private IP is not added yet",
                );
            }
            if !v.on_host && v.probe == Health::Up {
                return act(
                    Change::Add,
                    "a healthy MASTER carries the private IP before it claims the VIP",
                );
            }
            // Rule A4.
            return keep(if v.on_host {
                "MASTER: it serves on the private IP"
            } else {
                "MASTER, but the local probe is not up: the private IP is not added"
            });
        }
        if !v.on_host {
            self.released_at = None;
            self.past_hold = false;
            return keep("not MASTER, and the private IP is not on this host");
        }
        let since = *self.released_at.get_or_insert(now);
        // Rule A5.
        if v.break_first {
            return act(
                Change::Remove,
                "break before make: not MASTER, so the private IP goes first; the new holder waits for it",
            );
        }
        if let Some(h) = v.holder.filter(|h| **h != Holder::Here) {
            return act(
                Change::Remove,
                match h {
                    Holder::Nowhere => "not MASTER, and the cloud shows the VIP nowhere",
                    Holder::HereOtherIp { .. } => {
                        "not MASTER, and the cloud shows the VIP on another private IP"
                    }
                    _ => "not MASTER, and the cloud shows the VIP elsewhere: break after make",
                },
            );
        }
        // Rule A6.
        if now.since(since) >= hold {
            self.past_hold = true;
            let end = since + hold;
            if v.holder == Some(&Holder::Here) && v.probe == Health::Up {
                if v.seen.is_some_and(|s| s >= end) {
                    self.kept = true;
                    return keep(
                        "not MASTER past address_hold, but the cloud still sends the VIP here and the probe is up: serving on it until a node claims it",
                    );
                }
                return AddressVerdict::Keep {
                    why: "address_hold is over: asking the cloud before removing an address it may still send traffic to",
                    refresh: true,
                };
            }
            return act(
                Change::Remove,
                if v.holder == Some(&Holder::Here) {
                    "not MASTER for address_hold, and the local probe is not up"
                } else {
                    "not MASTER for address_hold, and no view of the cloud"
                },
            );
        }
        AddressVerdict::Keep {
            why: "not MASTER: serving on the private IP until the cloud shows the VIP elsewhere",
            refresh: v.holder.is_some(),
        }
    }

    /// The change handed over at `at`.
    pub fn sent(&mut self, change: Change, at: Mono) {
        self.in_flight = Some(InFlight {
            change,
            at,
            done: false,
        });
    }

    /// The change in flight ended: done (then it is in flight until the
    /// host's addresses show it), or failed (the rules decide again).
    pub fn finished(&mut self, ok: bool, at: Mono) {
        match (&mut self.in_flight, ok) {
            (Some(f), true) => f.done = true,
            _ => {
                self.in_flight = None;
                self.failed_at = Some(at);
            }
        }
    }

    /// When a verdict may change by itself (A6's bound ends, a failed
    /// change may be tried again, a done one stops waiting for the
    /// listing): the owner wakes then.
    pub fn wake(&self, hold: Duration) -> Option<Mono> {
        [
            self.released_at
                .filter(|_| !self.past_hold)
                .map(|r| r + hold),
            self.failed_at.map(|f| f + RETRY),
            self.in_flight.filter(|f| f.done).map(|f| f.at + SETTLE),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Make before break, the default.
    static MBB: Release = Release::NotNeeded;

    const HOLD: Duration = Duration::from_secs(30);

    fn ms(n: u64) -> Mono {
        Mono::from_millis(n)
    }

    fn elsewhere() -> Holder {
        Holder::Elsewhere {
            network_interface_id: Some("eni-peer".into()),
            private_ip: None,
        }
    }

    struct Row {
        name: &'static str,
        keepalived: Option<bool>,
        vrrp: VrrpState,
        probe: Health,
        on_host: bool,
        holder: Option<Holder>,
        /// Milliseconds since the node stopped being MASTER, if it did.
        released_ms_ago: Option<u64>,
        in_flight: bool,
        /// Milliseconds since the last change failed, if one did.
        failed_ms_ago: Option<u64>,
        /// Milliseconds since the view's request was sent (none: long ago).
        seen_ms_ago: Option<u64>,
        want: Option<Change>,
        refresh: bool,
        /// A6 keeps the address past address_hold.
        kept: bool,
        break_first: bool,
        release: Release,
    }

    fn row(name: &'static str) -> Row {
        Row {
            name,
            keepalived: Some(true),
            vrrp: VrrpState::Master,
            probe: Health::Up,
            on_host: false,
            holder: Some(elsewhere()),
            released_ms_ago: None,
            in_flight: false,
            failed_ms_ago: None,
            seen_ms_ago: None,
            want: None,
            refresh: false,
            kept: false,
            break_first: false,
            release: Release::NotNeeded,
        }
    }

    /// The old holder has not let go (break before make).
    fn not_let_go() -> Release {
        Release::Waiting {
            why: "break before make: the peer still carries the address on its host".into(),
            until: None,
        }
    }

    #[test]
    fn the_address_rules_table() {
        let now = ms(100_000);
        let rows = [
            Row {
                keepalived: None,
                ..row("rule A1: Keepalived not checked yet: nothing, not even an add")
            },
            Row {
                vrrp: VrrpState::Unknown,
                ..row("rule A1: the VRRP state is not known: nothing")
            },
            Row {
                vrrp: VrrpState::Unknown,
                on_host: true,
                ..row("rule A1: not known, address present: not removed")
            },
            Row {
                in_flight: true,
                ..row("rule A2: a change in flight: nothing")
            },
            Row {
                failed_ms_ago: Some(4_999),
                ..row("rule A2: the last change failed under RETRY ago: nothing yet")
            },
            Row {
                failed_ms_ago: Some(5_000),
                want: Some(Change::Add),
                ..row("rule A2: the last change failed RETRY ago: try again")
            },
            Row {
                want: Some(Change::Add),
                ..row("rule A3: healthy MASTER without the address: add")
            },
            Row {
                holder: None,
                want: Some(Change::Add),
                ..row("rule A3: before the cloud's first view too (claim rule 6 waits for it)")
            },
            Row {
                holder: Some(Holder::Here),
                want: Some(Change::Add),
                ..row("rule A3: the cloud sends it here but the address is gone: add")
            },
            Row {
                probe: Health::Down,
                ..row("rule A3: an unhealthy MASTER does not add it")
            },
            Row {
                probe: Health::Unknown,
                ..row("rule A3: a MASTER whose probe is not known does not add it")
            },
            Row {
                on_host: true,
                holder: Some(Holder::Here),
                ..row("rule A4: MASTER with the address: keep")
            },
            Row {
                on_host: true,
                probe: Health::Down,
                ..row(
                    "rule A4: unhealthy MASTER with the address: keep, even with the VIP elsewhere",
                )
            },
            Row {
                vrrp: VrrpState::Backup,
                on_host: true,
                want: Some(Change::Remove),
                ..row("rule A5: BACKUP, the cloud shows the VIP elsewhere: remove")
            },
            Row {
                vrrp: VrrpState::Fault,
                on_host: true,
                holder: Some(Holder::Nowhere),
                want: Some(Change::Remove),
                ..row("rule A5: FAULT, the cloud shows the VIP nowhere: remove")
            },
            Row {
                vrrp: VrrpState::Backup,
                on_host: true,
                holder: Some(Holder::HereOtherIp {
                    private_ip: Some("10.0.0.9".parse().unwrap()),
                }),
                want: Some(Change::Remove),
                ..row("rule A5: BACKUP, the VIP on another private IP of this ENI: remove")
            },
            Row {
                keepalived: Some(false),
                on_host: true,
                want: Some(Change::Remove),
                ..row("rule A5: Keepalived down (its last state MASTER), VIP elsewhere: remove")
            },
            Row {
                keepalived: Some(false),
                vrrp: VrrpState::Unknown,
                on_host: true,
                holder: Some(Holder::Here),
                refresh: true,
                ..row(
                    "rule A6: Keepalived down, the cloud still shows it here: keep serving, ask again",
                )
            },
            Row {
                vrrp: VrrpState::Backup,
                on_host: true,
                holder: Some(Holder::Here),
                released_ms_ago: Some(29_999),
                refresh: true,
                ..row("rule A6: BACKUP, still here, within address_hold: keep, ask again")
            },
            Row {
                vrrp: VrrpState::Stop,
                on_host: true,
                holder: None,
                ..row("rule A6: STOP, no view yet: keep (the first view is on its way)")
            },
            Row {
                vrrp: VrrpState::Backup,
                on_host: true,
                holder: Some(Holder::Here),
                released_ms_ago: Some(30_000),
                seen_ms_ago: Some(1),
                refresh: true,
                ..row(
                    "rule A6: BACKUP for address_hold, still here on a view from before its end: ask again",
                )
            },
            Row {
                vrrp: VrrpState::Backup,
                on_host: true,
                holder: Some(Holder::Here),
                released_ms_ago: Some(30_000),
                seen_ms_ago: Some(0),
                kept: true,
                ..row(
                    "rule A6: BACKUP for address_hold, a fresh view still here, probe up: keep serving",
                )
            },
            Row {
                vrrp: VrrpState::Backup,
                probe: Health::Down,
                on_host: true,
                holder: Some(Holder::Here),
                released_ms_ago: Some(30_000),
                seen_ms_ago: Some(0),
                want: Some(Change::Remove),
                ..row(
                    "rule A6: BACKUP for address_hold, a fresh view still here, probe down: remove",
                )
            },
            Row {
                keepalived: Some(false),
                vrrp: VrrpState::Stop,
                on_host: true,
                holder: None,
                released_ms_ago: Some(30_000),
                want: Some(Change::Remove),
                ..row("rule A6: Keepalived down for address_hold, no view of the cloud: remove")
            },
            Row {
                break_first: true,
                release: not_let_go(),
                ..row("rule A3: break before make, the old holder has not let go: not added")
            },
            Row {
                break_first: true,
                release: Release::LetGo { fenced: false },
                want: Some(Change::Add),
                ..row("rule A3: break before make, the old holder let go: add")
            },
            Row {
                break_first: true,
                release: Release::LetGo { fenced: true },
                want: Some(Change::Add),
                ..row("rule A3: break before make, the old holder fenced by silence: add")
            },
            Row {
                break_first: true,
                release: not_let_go(),
                on_host: true,
                ..row("rule A4: break before make, MASTER with the address: keep")
            },
            Row {
                break_first: true,
                vrrp: VrrpState::Backup,
                on_host: true,
                holder: Some(Holder::Here),
                want: Some(Change::Remove),
                ..row(
                    "rule A5: break before make, BACKUP, the cloud still shows the VIP here: remove at once",
                )
            },
            Row {
                break_first: true,
                keepalived: Some(false),
                vrrp: VrrpState::Unknown,
                on_host: true,
                holder: None,
                want: Some(Change::Remove),
                ..row("rule A5: break before make, Keepalived down, no view: remove at once")
            },
            Row {
                break_first: true,
                vrrp: VrrpState::Backup,
                on_host: true,
                in_flight: true,
                ..row("rule A2 before A5: break before make, a change in flight: nothing")
            },
            Row {
                vrrp: VrrpState::Backup,
                ..row("BACKUP without the address: nothing")
            },
        ];
        for r in rows {
            let mut st = AddressState {
                released_at: r
                    .released_ms_ago
                    .map(|a| now.before(Duration::from_millis(a))),
                in_flight: r.in_flight.then_some(InFlight {
                    change: Change::Add,
                    at: now,
                    done: false,
                }),
                failed_at: r
                    .failed_ms_ago
                    .map(|a| now.before(Duration::from_millis(a))),
                ..AddressState::default()
            };
            let v = AddressView {
                keepalived: r.keepalived,
                vrrp: r.vrrp,
                probe: r.probe,
                on_host: r.on_host,
                holder: r.holder.as_ref(),
                seen: Some(now.before(Duration::from_millis(r.seen_ms_ago.unwrap_or(90_000)))),
                break_first: r.break_first,
                release: &r.release,
            };
            let got = st.decide(now, &v, HOLD);
            match (&got, r.want) {
                (AddressVerdict::Act { change, .. }, Some(w)) => {
                    assert_eq!(*change, w, "{}: {got:?}", r.name)
                }
                (AddressVerdict::Keep { refresh, .. }, None) => {
                    assert_eq!(*refresh, r.refresh, "{}: {got:?}", r.name)
                }
                _ => panic!("{}: got {got:?}, want {:?}", r.name, r.want),
            }
            assert_eq!(st.kept, r.kept, "{}: kept", r.name);
        }
    }

    #[test]
    fn the_bound_counts_from_when_the_node_stopped_being_master() {
        let mut st = AddressState::default();
        let here = Holder::Here;
        let view = |vrrp, on_host| AddressView {
            keepalived: Some(true),
            vrrp,
            probe: Health::Up,
            on_host,
            holder: Some(&here),
            seen: Some(ms(500)),
            break_first: false,
            release: &MBB,
        };
        assert!(matches!(
            st.decide(ms(1_000), &view(VrrpState::Master, true), HOLD),
            AddressVerdict::Keep { refresh: false, .. }
        ));
        assert_eq!(st.wake(HOLD), None);
        // BACKUP at 2 s: kept until 32 s, not 31 s.
        assert!(matches!(
            st.decide(ms(2_000), &view(VrrpState::Backup, true), HOLD),
            AddressVerdict::Keep { refresh: true, .. }
        ));
        assert_eq!(st.wake(HOLD), Some(ms(32_000)));
        assert!(matches!(
            st.decide(ms(31_999), &view(VrrpState::Backup, true), HOLD),
            AddressVerdict::Keep { .. }
        ));
        // At the end of the hold, a view from before it asks again; the
        // hold's end is no wake-up any more (the owner would spin on it).
        assert!(matches!(
            st.decide(ms(32_000), &view(VrrpState::Backup, true), HOLD),
            AddressVerdict::Keep { refresh: true, .. }
        ));
        assert_eq!(st.wake(HOLD), None);
        // A view from after it still shows the VIP here, the probe is up:
        // kept, and said so.
        let fresh = AddressView {
            seen: Some(ms(32_050)),
            ..view(VrrpState::Backup, true)
        };
        assert!(matches!(
            st.decide(ms(32_100), &fresh, HOLD),
            AddressVerdict::Keep { refresh: false, .. }
        ));
        assert!(st.kept);
        // The probe goes down: removed.
        let down = AddressView {
            probe: Health::Down,
            ..fresh.clone()
        };
        assert!(matches!(
            st.decide(ms(32_200), &down, HOLD),
            AddressVerdict::Act {
                change: Change::Remove,
                ..
            }
        ));
        assert!(!st.kept);
        // Removed, then MASTER again: the bound is forgotten, and the
        // address is added back.
        st.sent(Change::Remove, ms(32_000));
        st.finished(true, ms(32_001));
        assert!(matches!(
            st.decide(ms(33_000), &view(VrrpState::Master, false), HOLD),
            AddressVerdict::Act {
                change: Change::Add,
                ..
            }
        ));
        assert_eq!(st.wake(HOLD), None);
    }

    #[test]
    fn one_change_at_a_time() {
        let mut st = AddressState::default();
        let v = AddressView {
            keepalived: Some(true),
            vrrp: VrrpState::Master,
            probe: Health::Up,
            on_host: false,
            holder: None,
            seen: None,
            break_first: false,
            release: &MBB,
        };
        assert!(matches!(
            st.decide(ms(1), &v, HOLD),
            AddressVerdict::Act {
                change: Change::Add,
                ..
            }
        ));
        st.sent(Change::Add, ms(1));
        assert!(matches!(
            st.decide(ms(2), &v, HOLD),
            AddressVerdict::Keep { .. }
        ));
        // Done by the kernel's word, not yet in the host's addresses: still
        // in flight (no second add).
        st.finished(true, ms(2));
        assert!(matches!(
            st.decide(ms(3), &v, HOLD),
            AddressVerdict::Keep { .. }
        ));
        let shown = AddressView {
            on_host: true,
            ..v.clone()
        };
        assert!(matches!(
            st.decide(ms(4), &shown, HOLD),
            AddressVerdict::Keep { .. }
        ));
        assert_eq!(st.in_flight, None, "seen through");
        // Done but never shown: decided again after SETTLE.
        st.sent(Change::Add, ms(10));
        st.finished(true, ms(11));
        assert!(matches!(
            st.decide((ms(10) + SETTLE).before(Duration::from_millis(1)), &v, HOLD),
            AddressVerdict::Keep { .. }
        ));
        assert!(matches!(
            st.decide(ms(10) + SETTLE, &v, HOLD),
            AddressVerdict::Act { .. }
        ));
        // Failed: decided again after RETRY, and the owner wakes then.
        st.sent(Change::Add, ms(20_000));
        st.finished(false, ms(20_100));
        assert_eq!(st.in_flight, None);
        assert!(matches!(
            st.decide(ms(20_200), &v, HOLD),
            AddressVerdict::Keep { .. }
        ));
        assert_eq!(st.wake(HOLD), Some(ms(20_100) + RETRY));
        assert!(matches!(
            st.decide(ms(20_100) + RETRY, &v, HOLD),
            AddressVerdict::Act { .. }
        ));
    }
}
