//! What flows between the owner task and the cloud tasks: claims one way,
//! `CloudEvent`s the other. Plain data.

use std::time::SystemTime;

use crate::core::clock::Stamp;
use crate::core::seen::{Action, CloudError, Me, Seen};
use crate::core::target::VipTarget;
use crate::core::words::{ClaimOutcome, HealReason};

/// A claim, as the owner hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub vip: String,
    pub target: VipTarget,
    /// This node: the claim is for it, always.
    pub me: Me,
    pub reason: HealReason,
    /// The owner's generation when the verdict was made: the executor makes
    /// a mutating call only while the owner's generation is still this one.
    pub generation: u64,
}

/// What the executor, the verifier and the permission checker tell the owner.
#[derive(Debug, Clone, PartialEq)]
pub enum CloudEvent {
    /// The cloud's answer for some (or all) of the VIPs, stamped when its
    /// request was sent. `unknown` are allocation IDs EC2 says do not exist
    /// (asked one by one, so that one wrong ID blinds no other VIP).
    Observed {
        sent: Stamp,
        result: Result<Seen, CloudError>,
        unknown: Vec<String>,
    },
    /// Whether this node's ENI has its source/destination check on (route
    /// VIPs need it off).
    SourceDestCheck { eni: String, on: bool },
    /// A claim ended.
    ClaimDone {
        vip: String,
        outcome: ClaimOutcome,
        detail: String,
    },
    /// A change of a `manage_address` VIP's private IP on this host ended
    /// (`error`: why it failed).
    AddressDone {
        vip: String,
        change: crate::core::address::Change,
        error: Option<String>,
    },
    /// Whether this node may make `action` for these VIPs, as a `DryRun`
    /// call or a real call showed. (DescribeAddresses is learnt from
    /// `Observed`.)
    Permission {
        vips: Vec<String>,
        action: Action,
        allowed: bool,
        /// The answer: `DryRunOperation`, or the refusal's code and message.
        detail: String,
        evidence: Evidence,
        at: SystemTime,
    },
}

/// What showed a permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    DryRun,
    Call,
}

impl Evidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DryRun => "dry_run",
            Self::Call => "call",
        }
    }
}

impl CloudEvent {
    /// The permission a real call's result shows: a success allows, an auth
    /// error refuses, anything else says nothing.
    pub fn call_evidence<T>(r: &Result<T, CloudError>) -> Option<(bool, String)> {
        match r {
            Ok(_) => Some((true, "the call succeeded".to_owned())),
            Err(e) => e.refusal().map(|detail| (false, detail)),
        }
    }

    /// That permission as an event for `vips`.
    pub fn from_call<T>(
        vips: Vec<String>,
        action: Action,
        r: &Result<T, CloudError>,
    ) -> Option<Self> {
        let (allowed, detail) = Self::call_evidence(r)?;
        Some(CloudEvent::Permission {
            vips,
            action,
            allowed,
            detail,
            evidence: Evidence::Call,
            at: SystemTime::now(),
        })
    }
}

/// One change to hand over.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressJob {
    pub vip: String,
    pub change: crate::core::address::Change,
    pub ip: std::net::IpAddr,
    pub interface: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::seen::ErrorKind;

    #[test]
    fn a_real_call_is_evidence_of_a_permission_only_when_it_succeeds_or_is_refused() {
        let allowed = |e: Option<CloudEvent>| match e {
            Some(CloudEvent::Permission {
                allowed,
                evidence: Evidence::Call,
                ..
            }) => Some(allowed),
            None => None,
            other => panic!("{other:?}"),
        };
        let ok: Result<(), CloudError> = Ok(());
        let a = Action::AssociateAddress;
        assert_eq!(
            allowed(CloudEvent::from_call(vec!["web".into()], a, &ok)),
            Some(true)
        );
        for kind in ErrorKind::ALL {
            let r: Result<(), CloudError> = Err(CloudError {
                operation: "Test",
                kind,
                code: kind.as_str().into(),
                message: String::new(),
            });
            let expected = (kind == ErrorKind::Auth).then_some(false);
            assert_eq!(
                allowed(CloudEvent::from_call(vec!["web".into()], a, &r)),
                expected,
                "{kind:?}"
            );
        }
    }
}
