//! What a gate provider saw at one instant, and the verdict the engine draws from it.

use crate::api::{Gate, GateVerdict};

/// One gate's observation at a checkpoint, as a provider (or a scenario) reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// A number. NaN counts as no data; ±Inf is a value (it fails a finite bound).
    Value(f64),
    /// The query answered with nothing: an empty result.
    NoData,
    /// The provider failed (unreachable, timed out, a bad answer); the message says why.
    Error(String),
}

/// The verdict a gate's observation earns: `pass` only for a value within the gate's bounds.
pub fn judge(gate: &Gate, observation: &Observation) -> GateVerdict {
    match observation {
        Observation::NoData => GateVerdict::Inconclusive,
        Observation::Error(_) => GateVerdict::Error,
        Observation::Value(v) if v.is_nan() => GateVerdict::Inconclusive,
        Observation::Value(v) => {
            let (min, max) = gate.bounds();
            let above_min = min.is_none_or(|m| *v >= m);
            let below_max = max.is_none_or(|m| *v <= m);
            if above_min && below_max {
                GateVerdict::Pass
            } else {
                GateVerdict::Fail
            }
        }
    }
}
