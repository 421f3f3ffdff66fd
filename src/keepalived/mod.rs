//! Everything that reads Keepalived: the FIFO line parser (pure), the FIFO
//! reader task, the process watch, the start-up state sources, and
//! keepalived.conf (for `check-config` and for the adverts of
//! `release`), the release of a crashed MASTER, and Keepalived's own
//! counters and script status (`stats`).

pub mod armed;
pub mod check;
pub mod conf;
pub mod fifo;
pub mod host;
pub mod line;
pub mod process;
pub mod release;
pub mod startup;
pub mod stats;
pub mod vrrp;
pub mod watch;
