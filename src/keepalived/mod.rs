//! Everything that reads Keepalived: the FIFO line parser (pure), the FIFO
//! reader task, the process watch, and the start-up state sources.

pub mod fifo;
pub mod line;
pub mod process;
pub mod startup;
