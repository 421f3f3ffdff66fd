//! The pure core: no tokio, no I/O, the clock passed in.

pub mod address;
pub mod change;
pub mod clock;
pub mod decide;
pub mod input;
pub mod model;
pub mod pace;
pub mod peer;
pub mod release;
pub mod target;
pub mod words;
