//! The pure core: no tokio, no I/O, the clock passed in.

pub mod decide;
pub mod model;
