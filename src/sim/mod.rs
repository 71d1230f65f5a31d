//! `rollgate simulate` and the parts `backtest` shares: strict file loading, scenarios, the
//! virtual clock and the timeline.

pub mod load;
pub mod locate;
pub mod read;
mod run;
pub mod scenario;
mod schema_check;
pub mod timeline;
mod yaml_node;

pub use run::{ObservationSource, RunSummary, SeriesSource, run};
