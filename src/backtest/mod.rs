//! `rollgate backtest`: the plan replayed over a real Prometheus' past. Every Prometheus and
//! alerts gate is asked for its value *as of each checkpoint's time*; the engine decides as it
//! would have, and the timeline is the one `simulate` prints.

mod source;

pub use source::{BacktestError, MAX_STEPS, PrometheusHistory, QueryMode};
