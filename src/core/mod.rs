//! The pure core: no tokio, no I/O, no module of this crate outside
//! `core/` (tests/layout.rs checks it), the clock passed in.
//!
//! ```text
//! words.rs     the shared vocabulary; a leaf: VrrpState, Source, Health, Mode,
//!              HealReason, Mover, ClaimOutcome, Holder, RouteState, the
//!              notify Outcome, the FIFO line's types
//! clock.rs     Mono (ages, windows) and Stamp (mono + wall, for display)
//! input.rs     Event: every input the owner applies to the model, as data
//! change.rs    Change: what a turn changed, for logs, counters and history
//! model/       what is known about Keepalived, the probe, the host, the peer
//! peer.rs      the peer's report and what it says of an instance (PeerView)
//! target.rs    what a VIP is and where the cloud shows it (Holder::of_routes)
//! decide.rs    the claim rules 1-14, damping, failover latency
//! address.rs   manage_address's rules A1-A6
//! handover.rs  break before make: whether the old holder let go (B1-B5)
//! release.rs   release_on_crash's rules R1-R4
//! pace.rs      how often the cloud is asked (MIN_GAP, Ask, Pace)
//! seen.rs      what the cloud says, as data (Address, Route, Seen, CloudError)
//! state_tag.rs state tags, the second path of a pair through the EC2 API:
//!              what a node writes, how the holder's tag is read (rule 14)
//! message.rs   what goes to and comes from the cloud tasks (Claim, CloudEvent)
//! vip.rs       a VIP's config (VipConfig, ManagedAddress)
//! cloud/       the cloud side of a turn: what the cloud showed, the claim
//!              and address rules' state, notes instead of logs
//! turn.rs      Core: apply(Input) and plan() -> Plan, the owner's whole turn
//! view.rs      each VIP as /v1/status shows it
//! ```
//!
//! # Rules and the tables that test them
//!
//! | rules | where | table test |
//! |---|---|---|
//! | 1-14: when to claim a VIP | `decide.rs` | `decide::tests::rules_table` (one row per case, named after its rule), with `rule_N_*` tests for sequences (`rule_9_damping_ends_with_its_conflict`: one row per way a conflict ends; `rule_14_*`: a split brain seen in the cloud) |
//! | how a state tag is read | `state_tag.rs` | `state_tag::tests::reading_table` |
//! | A1-A6: when to add or remove a managed private IP | `address.rs` | `address::tests::the_address_rules_table` |
//! | B1-B5: whether the old holder let go (break before make) | `handover.rs` | `handover::tests::release_rules_table` |
//! | R1-R4: when a crashed MASTER's advert is sent | `release.rs` | `release::tests::release_rules_table` |
//! | a VRRP instance's state from FIFO lines, the process watch and start-up | `model/` | `model::tests::instance_state_table` |
//! | a whole owner turn: inputs in, claims, asks and verdicts out | `turn.rs` | `turn::tests::whole_turn_table` (one row per rule shown), with sequences beside it |
//! | a route VIP's holder from its tables | `target.rs` | `target::tests::a_route_vip_is_here_only_when_every_table_points_here` |
//!
//! The process-side rules that read `/proc` and keepalived.conf live with
//! their I/O, each pure and table-tested: `keepalived/armed.rs` (A1-A5 of a
//! release advert being certainly right), `keepalived/host.rs` (H1-H4 of
//! `check-config --host`), `http/listener.rs` (rules 1-5 of the listeners).

pub mod address;
pub mod change;
pub mod clock;
pub mod cloud;
pub mod decide;
pub mod handover;
pub mod input;
pub mod message;
pub mod model;
pub mod pace;
pub mod peer;
pub mod release;
pub mod seen;
pub mod state_tag;
pub mod target;
pub mod turn;
pub mod view;
pub mod vip;
pub mod words;
