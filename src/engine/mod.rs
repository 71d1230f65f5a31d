//! The decision engine: pure, no I/O, no clock.

mod observation;

pub use observation::{Observation, judge};
