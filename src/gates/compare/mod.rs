//! The `compare` gate: treatment against control with an always-valid sequential test.
//! [`stats`] holds the statistics (pure, no I/O), shared by the controller, `simulate` and
//! `backtest`.

pub mod stats;

pub use stats::{
    CompareError, Comparison, Counts, Direction, Estimate, Sample, Settings, Verdict, compare,
};
