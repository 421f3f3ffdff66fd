//! Break before make (`handover = "break_before_make"`): whether the peer,
//! the old holder, has let go of a VIP, so that this node may carry its
//! address (address rule A3) and claim it (claim rule 13). For a database
//! primary: never two nodes with the address at once, and never a new
//! primary behind it while the old one still answers as primary.
//!
//! Pure: `release` reads the peer's last report (`core::peer`). The rules,
//! in order:
//!
//! B1. Make before break (the default) waits for nothing.
//! B2. Without a time for this node's mastership nothing is let go: no
//!     report can be told old from new.
//! B3. Let go, reported: the peer's last report arrived after this node's
//!     MASTER line and says the VIP's address is not on its host and its
//!     probe is down (the `postgres` probe: not the primary). Fresh or
//!     not: it is the peer's last word, and the peer adds the address
//!     again only as a healthy MASTER, which it would report.
//! B4. Not let go while the peer speaks: a fresh report that arrived before
//!     this node's MASTER line (its answer is on its way), or that says the
//!     address is on its host, or its probe up or not known yet, or
//!     nothing of the address (a sender that does not know its addresses),
//!     holds this node back however long it lasts: `fence_wait` does not
//!     run while the peer reports.
//! B5. Fenced by silence: no fresh report (the peer's host or watchdog is
//!     dead, or the channel cut) for `fence_wait`, counted from the later
//!     of this node's MASTER line and the last report's arrival: the peer
//!     is taken as down. This node is VRRP MASTER, so its Keepalived hears
//!     no adverts from the peer either. (A partition that cuts both VRRP
//!     and the channel looks the same: `fence_wait` is the time the old
//!     primary's own tooling has to demote it; docs/deployments.md.)

use std::time::Duration;

use crate::core::clock::Mono;
use crate::core::peer::PeerKnown;
use crate::core::words::Health;

/// How a VIP changes hands between the two nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handover {
    /// The new holder carries the address and claims at once; the old one
    /// keeps serving until the cloud sends the traffic elsewhere (a proxy
    /// pair: no request lost).
    #[default]
    MakeBeforeBreak,
    /// The new holder waits until the old one let go: its watchdog reports
    /// the address removed and its role demoted, or it is silent for
    /// `fence_wait` (a database primary: never two primaries behind the
    /// address).
    BreakBeforeMake { fence_wait: Duration },
}

impl Handover {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MakeBeforeBreak => "make_before_break",
            Self::BreakBeforeMake { .. } => "break_before_make",
        }
    }
}

/// Whether the old holder let go of the VIP.
#[derive(Debug, Clone, PartialEq)]
pub enum Release {
    /// B1: make before break; nothing waits.
    NotNeeded,
    /// B3 (`fenced: false`) or B5 (`fenced: true`): this node may make.
    LetGo { fenced: bool },
    /// B2, B4, or B5 before `fence_wait` is over (`until`).
    Waiting { why: String, until: Option<Mono> },
}

impl Release {
    /// This node may carry the address and claim.
    pub fn may_make(&self) -> bool {
        !matches!(self, Release::Waiting { .. })
    }

    /// For the status and the logs: `not_needed`, `reported`, `fenced`,
    /// `waiting`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Release::NotNeeded => "not_needed",
            Release::LetGo { fenced: false } => "reported",
            Release::LetGo { fenced: true } => "fenced",
            Release::Waiting { .. } => "waiting",
        }
    }
}

/// Whether the peer let go of `vip`, for a node that is MASTER since
/// `mastership`; `peer` is its last report, fresh while younger than
/// `max_age`.
pub fn release(
    handover: Handover,
    vip: &str,
    peer: Option<&PeerKnown>,
    max_age: Duration,
    mastership: Option<Mono>,
    now: Mono,
) -> Release {
    let waiting = |why: &str| Release::Waiting {
        why: format!("break before make: {why}"),
        until: None,
    };
    // Rule B1.
    let Handover::BreakBeforeMake { fence_wait } = handover else {
        return Release::NotNeeded;
    };
    // Rule B2.
    let Some(began) = mastership else {
        return waiting(
            "no time for this mastership, so no report of the peer's can be told old from new",
        );
    };
    let address = |p: &PeerKnown| {
        p.report
            .vips
            .iter()
            .find(|v| v.name == vip)
            .and_then(|v| v.address_on_host)
    };
    // Rule B3.
    if let Some(p) = peer.filter(|p| p.at >= began)
        && address(p) == Some(false)
        && p.report.probe == Health::Down
    {
        return Release::LetGo { fenced: false };
    }
    // Rule B4.
    if let Some(p) = peer.filter(|p| p.fresh(now, max_age)) {
        if p.at < began {
            return waiting(
                "the peer's last report is from before this node's MASTER line: waiting for its answer",
            );
        }
        return waiting(match (address(p), p.report.probe) {
            (None, _) => "the peer's report does not say whether its host carries the address",
            (Some(true), _) => "the peer still carries the address on its host",
            (Some(false), Health::Up) => {
                "the peer removed the address but its probe is up: its role is not demoted (for a database: still the primary)"
            }
            (Some(false), _) => "the peer removed the address but its probe is not known yet",
        });
    }
    // Rule B5.
    let from = peer.map_or(began, |p| p.at.max(began));
    let until = from + fence_wait;
    if now >= until {
        return Release::LetGo { fenced: true };
    }
    Release::Waiting {
        why: format!(
            "break before make: the peer's watchdog is silent: it is taken as down fence_wait ({}) after {}",
            humantime::format_duration(fence_wait),
            if peer.is_some_and(|p| p.at > began) {
                "its last report"
            } else {
                "this node's MASTER line"
            }
        ),
        until: Some(until),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::peer::{Report, VipReport};
    use std::time::SystemTime;

    const MAX_AGE: Duration = Duration::from_secs(3);
    const FENCE: Duration = Duration::from_secs(30);

    fn t(ms: u64) -> Mono {
        Mono::from_millis(1_000_000 + ms)
    }

    /// A report that arrived at `at_ms`, with the peer's probe and whether
    /// it carries the VIP's address.
    fn said(at_ms: u64, probe: Health, address: Option<bool>) -> PeerKnown {
        PeerKnown {
            report: Report {
                probe,
                vips: vec![VipReport {
                    name: "db".into(),
                    cloud: None,
                    claim_in_flight: false,
                    address_on_host: address,
                }],
                ..Report::sample("a", "db")
            },
            at: t(at_ms),
            at_wall: SystemTime::UNIX_EPOCH,
        }
    }

    /// (case, handover, peer's last report, this node MASTER since (ms),
    /// now (ms), expected)
    #[test]
    fn release_rules_table() {
        use Health::*;
        let bbm = Handover::BreakBeforeMake { fence_wait: FENCE };
        let let_go = |fenced| Release::LetGo { fenced };
        // Expected: Ok(release) for a let-go or not-needed, Err(until) for
        // a wait (until: when it ends by itself, in ms, if it does).
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            &str,
            Handover,
            Option<PeerKnown>,
            Option<u64>,
            u64,
            Result<Release, Option<u64>>,
        )> = vec![
            (
                "rule B1: make before break waits for nothing",
                Handover::MakeBeforeBreak,
                Some(said(500, Up, Some(true))),
                Some(0),
                600,
                Ok(Release::NotNeeded),
            ),
            (
                "rule B2: no time for this mastership",
                bbm,
                Some(said(500, Down, Some(false))),
                None,
                600,
                Err(None),
            ),
            (
                "rule B3: address removed and probe down, after this MASTER line",
                bbm,
                Some(said(500, Down, Some(false))),
                Some(0),
                600,
                Ok(let_go(false)),
            ),
            (
                "rule B3: the same report, stale by now, still stands",
                bbm,
                Some(said(500, Down, Some(false))),
                Some(0),
                10_000,
                Ok(let_go(false)),
            ),
            (
                "rule B4: a let-go report from before this MASTER line is old news",
                bbm,
                Some(said(500, Down, Some(false))),
                Some(1_000),
                1_100,
                Err(None),
            ),
            (
                "rule B4: the peer still carries the address",
                bbm,
                Some(said(500, Down, Some(true))),
                Some(0),
                600,
                Err(None),
            ),
            (
                "rule B4: address removed, but the probe is up (still primary)",
                bbm,
                Some(said(500, Up, Some(false))),
                Some(0),
                600,
                Err(None),
            ),
            (
                "rule B4: address removed, probe not known yet",
                bbm,
                Some(said(500, Unknown, Some(false))),
                Some(0),
                600,
                Err(None),
            ),
            (
                "rule B4: the report does not say whether it carries the address",
                bbm,
                Some(said(500, Down, None)),
                Some(0),
                600,
                Err(None),
            ),
            (
                "rule B4: a peer that reports holds back past fence_wait",
                bbm,
                Some(said(40_000, Up, Some(true))),
                Some(0),
                41_000,
                Err(None),
            ),
            (
                "rule B5: never a report: fence_wait from the MASTER line",
                bbm,
                None,
                Some(0),
                29_999,
                Err(Some(30_000)),
            ),
            (
                "rule B5: never a report, fence_wait over",
                bbm,
                None,
                Some(0),
                30_000,
                Ok(let_go(true)),
            ),
            (
                "rule B5: silent since a report in this mastership: counted from it",
                bbm,
                Some(said(5_000, Up, Some(true))),
                Some(0),
                34_999,
                Err(Some(35_000)),
            ),
            (
                "rule B5: silent since then, fence_wait over",
                bbm,
                Some(said(5_000, Up, Some(true))),
                Some(0),
                35_000,
                Ok(let_go(true)),
            ),
            (
                "rule B5: silent since before this MASTER line: counted from the line",
                bbm,
                Some(said(0, Up, Some(true))),
                Some(10_000),
                39_999,
                Err(Some(40_000)),
            ),
        ];
        for (case, handover, peer, since, now, want) in rows {
            let got = release(handover, "db", peer.as_ref(), MAX_AGE, since.map(t), t(now));
            match (&got, &want) {
                (Release::Waiting { why, until }, Err(w)) => {
                    assert!(why.starts_with("break before make: "), "{case}: {why}");
                    assert_eq!(*until, w.map(t), "{case}: {why}");
                }
                (got, Ok(w)) => assert_eq!(got, w, "{case}"),
                (got, Err(_)) => panic!("{case}: {got:?}, not a wait"),
            }
            assert_eq!(got.may_make(), want.is_ok(), "{case}");
        }
    }
}
