//! `rollgate simulate` and the parts `backtest` shares: strict file loading, scenarios, the
//! virtual clock and the timeline.

pub mod load;
mod run;
pub mod scenario;
pub mod timeline;

pub use run::{ObservationSource, RunSummary, SeriesSource, run};
