//! Everything that reads Keepalived: the FIFO line parser (pure), the FIFO
//! reader task, the process watch, the start-up state sources, and
//! keepalived.conf (for `check-config` and for the adverts of
//! `release`), and the release of a crashed MASTER.

pub mod armed;
pub mod check;
pub mod conf;
pub mod fifo;
pub mod host;
pub mod line;
pub mod process;
pub mod release;
pub mod startup;
pub mod vrrp;
pub mod watch;
