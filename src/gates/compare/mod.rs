//! The `compare` gate: treatment against control with an always-valid sequential test.
//! [`stats`] holds the statistics (pure, no I/O), shared by the controller, `simulate` and
//! `backtest`.

pub mod stats;

pub use stats::{
    CompareError, Comparison, Counts, Direction, Estimate, Sample, Settings, Verdict, compare,
};

use crate::api::{Better, CompareGate};

impl From<&CompareGate> for Settings {
    fn from(gate: &CompareGate) -> Self {
        Self {
            better: match gate.better {
                Better::Lower => Direction::Lower,
                Better::Higher => Direction::Higher,
            },
            max_regression: gate.max_regression,
            relative: gate.relative,
            confidence: gate.confidence,
            min_units: f64::from(gate.min_units),
            expected_units: f64::from(gate.expected_units),
            sample_ratio: gate.sample_ratio,
        }
    }
}

use std::time::Duration;

use super::GateContext;
use super::prometheus::{Answer, PrometheusClient, QueryError};
use super::query::{ArmVars, fill_compare_query};
use crate::api::{Percent, RolloutSpec};
use crate::engine::Observation;

/// What a compare gate's queries need besides the rollout's context: the arms' default
/// variants and the window the counts cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompareScope<'a> {
    /// The target's variant for users with the flag (a gate's `treatment` overrides it).
    pub treatment: &'a str,
    /// The target's variant for everyone else (a gate's `control` overrides it).
    pub control: &'a str,
    /// Time since the stage started (`{{window}}`); the analysis interval in the pre-check.
    pub window: Duration,
    /// The pre-check before the start: every query must answer and the control arm's
    /// `units` must return something, whatever the percent.
    pub precheck: bool,
}

/// The target's on and off variants: the flagd target's `onVariant` / `offVariant`, else
/// `on` / `off`.
pub fn default_variants(spec: &RolloutSpec) -> (&str, &str) {
    match &spec.target.flagd {
        Some(f) => (f.on_variant.as_str(), f.off_variant.as_str()),
        None => ("on", "off"),
    }
}

/// The scope of a checkpoint at `at` in a stage that started at `stage_start` (`None` before
/// the start: the pre-check, with the analysis interval as the window).
pub fn scope(
    spec: &RolloutSpec,
    stage_start: Option<k8s_openapi::jiff::Timestamp>,
    at: k8s_openapi::jiff::Timestamp,
) -> CompareScope<'_> {
    let (treatment, control) = default_variants(spec);
    let (window, precheck) = match stage_start {
        Some(start) => (
            Duration::from_secs(at.duration_since(start).as_secs().max(0).unsigned_abs()),
            false,
        ),
        None => (Duration::from(spec.analysis.interval), true),
    };
    CompareScope {
        treatment,
        control,
        window,
        precheck,
    }
}

/// The four queries of a compare gate, filled in: treatment units and events, control units
/// and events.
pub fn queries(
    gate: &CompareGate,
    ctx: &GateContext<'_>,
    scope: &CompareScope<'_>,
) -> Result<[String; 4], crate::api::VarError> {
    let window_secs = scope.window.as_secs();
    let treatment = ArmVars {
        variant: gate.treatment.as_deref().unwrap_or(scope.treatment),
        window_secs,
    };
    let control = ArmVars {
        variant: gate.control.as_deref().unwrap_or(scope.control),
        window_secs,
    };
    Ok([
        fill_compare_query(&gate.units, ctx, treatment)?,
        fill_compare_query(&gate.events, ctx, treatment)?,
        fill_compare_query(&gate.units, ctx, control)?,
        fill_compare_query(&gate.events, ctx, control)?,
    ])
}

const QUERY_NAMES: [&str; 4] = [
    "units with the flag",
    "events with the flag",
    "units without the flag",
    "events without the flag",
];

/// A count from an answer: an empty result is 0 (a cohort without traffic yet).
fn count(answer: Answer) -> f64 {
    match answer {
        Answer::Value(v) => v,
        Answer::Empty => 0.0,
    }
}

/// Observes a compare gate: its four instant queries at `ctx.at`, in parallel, as the arms'
/// counts (an empty result counts as 0; any query error is an error). At 0 % and 100 % outside
/// the pre-check nothing is queried: there is no second cohort and the engine skips the gate.
pub async fn observe(
    client: &PrometheusClient,
    gate: &CompareGate,
    ctx: &GateContext<'_>,
    scope: &CompareScope<'_>,
) -> Observation {
    if !scope.precheck && (ctx.percent == Percent::ZERO || ctx.percent >= Percent::HUNDRED) {
        return Observation::Arms {
            treatment: Counts::default(),
            control: Counts::default(),
        };
    }
    let queries = match queries(gate, ctx, scope) {
        Ok(q) => q,
        Err(e) => return Observation::Error(e.to_string()),
    };
    let [a, b, c, d] = &queries;
    let (a, b, c, d) = tokio::join!(
        client.query(a, ctx.at),
        client.query(b, ctx.at),
        client.query(c, ctx.at),
        client.query(d, ctx.at),
    );
    let answers: [Result<Answer, QueryError>; 4] = [a, b, c, d];
    let mut counts = [0.0; 4];
    for (i, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok(Answer::Empty) if scope.precheck && i == 2 => {
                return Observation::Error(format!(
                    "the units query for the control variant {:?} returned nothing over the last \
                     {}s: check its labels and the variant names before anyone gets the flag",
                    gate.control.as_deref().unwrap_or(scope.control),
                    scope.window.as_secs().max(1)
                ));
            }
            Ok(answer) => counts[i] = count(answer),
            Err(e) => return Observation::Error(format!("{}: {e}", QUERY_NAMES[i])),
        }
    }
    Observation::Arms {
        treatment: Counts::new(counts[0], counts[1]),
        control: Counts::new(counts[2], counts[3]),
    }
}
