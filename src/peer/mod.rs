//! The peer channel: the two watchdogs of a pair tell each other what they
//! know, so that a new MASTER can claim at once when its peer says it is
//! not MASTER (rule 11), and a split brain is settled rather than fought
//! (rule 10). It runs on its own address and port (`[peer]`), apart from
//! VRRP's path: either may work when the other does not.
//!
//! Every message is authenticated with an HMAC over method, path, body,
//! timestamp and nonce, keyed with a shared secret read from a file, inside
//! a replay window (`message.rs`). A watchdog pushes its report on every
//! change of its status and as a heartbeat (`sender.rs`); the receiver
//! (`receiver.rs`) refuses and counts what is not authentic, fresh and in
//! order, and hands the rest to the state owner as an event, like a FIFO
//! line. The owner keeps the last report and when it arrived: a report
//! older than `peer.max_age` is no knowledge, and a silent peer changes no
//! rule.
//!
//! ```text
//! message.rs   the report's signature and the receiver's checks (pure)
//! receiver.rs  POST /v1/peer on peer.listen
//! sender.rs    the report from the published status, pushed to peer.address
//! ```

pub mod message;
pub mod receiver;
pub mod sender;
