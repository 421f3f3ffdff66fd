//! The peer channel's message: what a watchdog tells its peer, how it is
//! signed, and what a receiver refuses. Pure: bytes and times in, a report
//! or a typed refusal out.
//!
//! A message is `POST /v1/peer` with a JSON `Report` as its body and three
//! headers: `x-vip-watchdog-timestamp` (the sender's Unix time in ms),
//! `x-vip-watchdog-nonce` (random, never reused) and
//! `x-vip-watchdog-signature`: base64 of HMAC-SHA256, keyed with the pair's
//! shared secret, over `METHOD \n PATH \n TIMESTAMP \n NONCE \n BODY`.
//! The receiver refuses, in this order: a message it cannot read
//! (`malformed`), a wrong signature (`unauthenticated`), a timestamp
//! outside the replay window (`stale`), a nonce already seen inside it
//! (`replayed`), and a sequence number not above the last one of the same
//! boot, or an older boot's message (`out_of_order`).

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use crate::core::peer::Report;

pub const PATH: &str = "/v1/peer";
pub const TIMESTAMP: &str = "x-vip-watchdog-timestamp";
pub const NONCE: &str = "x-vip-watchdog-nonce";
pub const SIGNATURE: &str = "x-vip-watchdog-signature";
/// The largest body taken.
pub const MAX_BODY: usize = 64 * 1024;

/// Why a message was refused; also the metric's `result` label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("unauthenticated: the signature does not match the shared secret")]
    Unauthenticated,
    #[error("stale: sent {0} ms from this host's clock, outside the replay window")]
    Stale(i64),
    #[error("replayed: this nonce was already seen")]
    Replayed,
    #[error("out of order: {0}")]
    OutOfOrder(String),
    #[error("not this pair's peer: {0}")]
    Foreign(String),
}

impl Refused {
    pub const LABELS: [&'static str; 6] = [
        "malformed",
        "unauthenticated",
        "stale",
        "replayed",
        "out_of_order",
        "foreign",
    ];

    pub fn label(&self) -> &'static str {
        match self {
            Refused::Malformed(_) => "malformed",
            Refused::Unauthenticated => "unauthenticated",
            Refused::Stale(_) => "stale",
            Refused::Replayed => "replayed",
            Refused::OutOfOrder(_) => "out_of_order",
            Refused::Foreign(_) => "foreign",
        }
    }
}

fn mac(
    secret: &[u8],
    method: &str,
    path: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    for part in [method, path, timestamp, nonce] {
        m.update(part.as_bytes());
        m.update(b"\n");
    }
    m.update(body);
    m
}

/// The signature header's value.
pub fn sign(secret: &[u8], timestamp_ms: u64, nonce: &str, body: &[u8]) -> String {
    use base64::Engine as _;
    let tag = mac(secret, "POST", PATH, &timestamp_ms.to_string(), nonce, body)
        .finalize()
        .into_bytes();
    base64::engine::general_purpose::STANDARD.encode(tag)
}

/// The headers of one message, as received.
pub struct Signed<'a> {
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// The receiver's memory: nonces inside the window, the last boot and
/// sequence number accepted.
#[derive(Debug)]
pub struct Guard {
    secret: Vec<u8>,
    window_ms: i64,
    seen: HashMap<String, u64>,
    last: Option<(String, u64, u64)>,
}

impl Guard {
    pub fn new(secret: Vec<u8>, window: std::time::Duration) -> Guard {
        Guard {
            secret,
            window_ms: window.as_millis() as i64,
            seen: HashMap::new(),
            last: None,
        }
    }

    /// Checks one message received at `now_ms` (this host's Unix time in
    /// ms); an accepted one is remembered.
    pub fn accept(&mut self, m: &Signed<'_>, now_ms: u64) -> Result<Report, Refused> {
        use base64::Engine as _;
        let (Some(ts), Some(nonce), Some(sig)) = (m.timestamp, m.nonce, m.signature) else {
            return Err(Refused::Malformed(format!(
                "the {TIMESTAMP}, {NONCE} and {SIGNATURE} headers are required"
            )));
        };
        let ts_ms: u64 = ts
            .parse()
            .map_err(|_| Refused::Malformed(format!("{TIMESTAMP}: {ts:?} is not a number")))?;
        if nonce.is_empty() || nonce.len() > 64 {
            return Err(Refused::Malformed(format!("{NONCE}: 1 to 64 characters")));
        }
        let tag = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .map_err(|_| Refused::Malformed(format!("{SIGNATURE}: not base64")))?;
        mac(&self.secret, "POST", PATH, ts, nonce, m.body)
            .verify_slice(&tag)
            .map_err(|_| Refused::Unauthenticated)?;
        let skew = ts_ms as i64 - now_ms as i64;
        if skew.abs() > self.window_ms {
            return Err(Refused::Stale(skew));
        }
        self.seen.retain(|_, until| *until >= now_ms);
        if self.seen.contains_key(nonce) {
            return Err(Refused::Replayed);
        }
        let report: Report = serde_json::from_slice(m.body)
            .map_err(|e| Refused::Malformed(format!("the report: {e}")))?;
        if let Some((boot, seq, last_ts)) = &self.last {
            if *boot == report.boot_id && report.seq <= *seq {
                return Err(Refused::OutOfOrder(format!(
                    "sequence {} after {seq}",
                    report.seq
                )));
            }
            if *boot != report.boot_id && ts_ms < *last_ts {
                return Err(Refused::OutOfOrder(
                    "a boot older than the last message's".into(),
                ));
            }
        }
        self.seen
            .insert(nonce.to_owned(), now_ms + 2 * self.window_ms as u64);
        self.last = Some((report.boot_id.clone(), report.seq, ts_ms));
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::peer::InstanceReport;
    use crate::core::words::{Health, VrrpState};
    use std::time::Duration;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn report(boot: &str, seq: u64) -> Vec<u8> {
        serde_json::to_vec(&Report {
            node: "b".into(),
            pair: "edge".into(),
            boot_id: boot.into(),
            seq,
            keepalived_running: Some(true),
            keepalived_exit_seen: false,
            probe: Health::Up,
            instances: vec![InstanceReport {
                name: "VI_1".into(),
                state: VrrpState::Backup,
                priority: Some(100),
                since: None,
                source: Some(crate::core::words::Source::Fifo),
            }],
            vips: vec![],
            eni: Some("eni-b".into()),
        })
        .unwrap()
    }

    /// (case, key it was signed with, timestamp, nonce, boot, seq, now, result)
    #[test]
    fn the_guard_table() {
        let mut g = Guard::new(KEY.to_vec(), Duration::from_secs(30));
        let t0 = 1_800_000_000_000u64;
        #[allow(clippy::type_complexity)]
        let rows: Vec<(&str, &[u8], u64, &str, &str, u64, u64, &str)> = vec![
            ("accepted", KEY, t0, "n1", "boot1", 1, t0, "accepted"),
            (
                "the next in sequence",
                KEY,
                t0 + 1000,
                "n2",
                "boot1",
                2,
                t0 + 1000,
                "accepted",
            ),
            (
                "a wrong key",
                b"another key entirely, 32 bytes!!",
                t0 + 1100,
                "n3",
                "boot1",
                3,
                t0 + 1100,
                "unauthenticated",
            ),
            (
                "a replayed nonce",
                KEY,
                t0 + 1000,
                "n2",
                "boot1",
                2,
                t0 + 1200,
                "replayed",
            ),
            (
                "an old sequence, new nonce",
                KEY,
                t0 + 1300,
                "n4",
                "boot1",
                2,
                t0 + 1300,
                "out_of_order",
            ),
            (
                "older than the window",
                KEY,
                t0 - 31_000,
                "n5",
                "boot1",
                9,
                t0 + 1400,
                "stale",
            ),
            (
                "ahead of the window",
                KEY,
                t0 + 40_000,
                "n6",
                "boot1",
                9,
                t0 + 1500,
                "stale",
            ),
            (
                "a new boot",
                KEY,
                t0 + 2000,
                "n7",
                "boot2",
                1,
                t0 + 2000,
                "accepted",
            ),
            (
                "the old boot again",
                KEY,
                t0 + 1900,
                "n8",
                "boot1",
                10,
                t0 + 2100,
                "out_of_order",
            ),
        ];
        for (case, key, ts, nonce, boot, seq, now, want) in rows {
            let body = report(boot, seq);
            let sig = sign(key, ts, nonce, &body);
            let ts = ts.to_string();
            let m = Signed {
                timestamp: Some(&ts),
                nonce: Some(nonce),
                signature: Some(&sig),
                body: &body,
            };
            let got = match g.accept(&m, now) {
                Ok(_) => "accepted",
                Err(e) => e.label(),
            };
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn a_changed_body_or_header_is_unauthenticated() {
        let mut g = Guard::new(KEY.to_vec(), Duration::from_secs(30));
        let t0 = 1_800_000_000_000u64;
        let body = report("boot", 1);
        let sig = sign(KEY, t0, "n", &body);
        let mut other = body.clone();
        other[10] ^= 1;
        let ts = t0.to_string();
        let later = (t0 + 1).to_string();
        for (ts, nonce, body) in [
            (ts.as_str(), "n", other.as_slice()),
            (later.as_str(), "n", body.as_slice()),
            (ts.as_str(), "m", body.as_slice()),
        ] {
            let m = Signed {
                timestamp: Some(ts),
                nonce: Some(nonce),
                signature: Some(&sig),
                body,
            };
            assert_eq!(g.accept(&m, t0), Err(Refused::Unauthenticated));
        }
    }

    #[test]
    fn missing_or_bad_headers_are_malformed() {
        let mut g = Guard::new(KEY.to_vec(), Duration::from_secs(30));
        let body = report("boot", 1);
        for (ts, nonce, sig) in [
            (None, Some("n"), Some("x")),
            (Some("soon"), Some("n"), Some("x")),
            (Some("1"), Some(""), Some("x")),
            (Some("1"), Some("n"), Some("!!")),
        ] {
            let m = Signed {
                timestamp: ts,
                nonce,
                signature: sig,
                body: &body,
            };
            assert_eq!(g.accept(&m, 1).unwrap_err().label(), "malformed");
        }
    }
}
