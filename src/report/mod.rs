//! Release reports: one [`Report`] model, filled from a simulation's or backtest's timeline
//! events ([`Recorder`]) or from a live Rollout's spec and status ([`from_rollout`]), and
//! rendered as Markdown ([`markdown`]) with an SVG chart beside it ([`chart`]).

pub mod chart;
mod escape;
pub mod live;
pub mod markdown;
mod model;
mod plan;
mod recorder;
pub mod write;

pub use live::from_rollout;
pub use model::{
    Entry, Event, FinalState, GatePlan, GateReading, Plan, PreCheck, PreCheckResult, Report,
    Source, StagePlan,
};
pub use plan::plan_of;
pub use recorder::Recorder;
