//! Everything that reads Keepalived: the FIFO line parser (pure), the FIFO
//! reader task, the process watch, the start-up state sources, and
//! keepalived.conf for `check-config`.

pub mod conf;
pub mod fifo;
pub mod line;
pub mod process;
pub mod startup;
