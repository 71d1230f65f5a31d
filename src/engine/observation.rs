//! What a gate provider saw at one instant, and the verdict the engine draws from it.

use crate::api::{CompareArm, CompareStatus, Gate, GateVerdict};
use crate::gates::compare::{self, Counts, Sample, Verdict};

/// One gate's observation at a checkpoint, as a provider (or a scenario) reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// A number. NaN counts as no data; ±Inf is a value (it fails a finite bound).
    Value(f64),
    /// The query answered with nothing: an empty result.
    NoData,
    /// The provider failed (unreachable, timed out, a bad answer); the message says why.
    Error(String),
    /// A compare gate's counts since the stage started: units and events with the flag
    /// (treatment) and without it (control). The engine compares them.
    Arms {
        /// The users with the flag.
        treatment: Counts,
        /// The users without it.
        control: Counts,
    },
}

/// What the engine knows at a checkpoint that a compare gate's verdict depends on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conditions {
    /// The percent in force (the arms' expected split).
    pub percent: crate::api::Percent,
    /// Whether the split has had a whole interval to settle since the stage started, so the
    /// sample-ratio test may run.
    pub ratio_settled: bool,
}

/// A gate's verdict with what status keeps of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    /// The verdict.
    pub verdict: GateVerdict,
    /// The value, when there was one (a compare gate's harmful bound).
    pub value: Option<f64>,
    /// The provider's error, or a compare gate's account in the user's terms.
    pub message: Option<String>,
    /// A compare gate's arms and difference.
    pub compare: Option<CompareStatus>,
}

/// The verdict a gate's observation earns: `pass` only for a value within the gate's bounds.
/// A compare gate's counts depend on the split in force, so this judges them as an error; the
/// engine uses [`assess`] with the checkpoint's [`Conditions`].
pub fn judge(gate: &Gate, observation: &Observation) -> GateVerdict {
    match observation {
        Observation::NoData => GateVerdict::Inconclusive,
        Observation::Error(_) | Observation::Arms { .. } => GateVerdict::Error,
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

/// The verdict, value and message a gate's observation earns at a checkpoint. A compare gate
/// compares its arms with [`compare::compare`] (the one implementation of its statistics) at
/// the split in `conditions`; every other gate is [`judge`]d.
pub fn assess(gate: &Gate, observation: &Observation, conditions: &Conditions) -> Assessment {
    let Some(spec) = &gate.compare else {
        let verdict = judge(gate, observation);
        return Assessment {
            verdict,
            value: match observation {
                Observation::Value(v) if !v.is_nan() => Some(*v),
                _ => None,
            },
            message: match observation {
                Observation::Error(message) => Some(message.clone()),
                Observation::Arms { .. } => Some(
                    "the provider reported arm counts for a gate that is no compare gate".into(),
                ),
                _ => None,
            },
            compare: None,
        };
    };
    let error = |message: String| Assessment {
        verdict: GateVerdict::Error,
        value: None,
        message: Some(message),
        compare: None,
    };
    let (treatment, control) = match observation {
        Observation::Arms { treatment, control } => (*treatment, *control),
        Observation::NoData => (Counts::default(), Counts::default()),
        Observation::Error(message) => return error(message.clone()),
        Observation::Value(_) => {
            return error("a compare gate needs both arms' counts, not one value".into());
        }
    };
    let sample = Sample {
        treatment,
        control,
        percent: conditions.percent.as_f64(),
        ratio_settled: conditions.ratio_settled,
    };
    let settings = compare::Settings::from(spec);
    match compare::compare(&settings, &sample, compare::stats::unit_noun(&spec.units)) {
        Err(e) => error(e.to_string()),
        Ok(result) => {
            let verdict = match result.verdict {
                Verdict::Pass => GateVerdict::Pass,
                Verdict::Fail => GateVerdict::Fail,
                Verdict::Waiting => GateVerdict::Waiting,
                Verdict::Skipped => GateVerdict::Skipped,
            };
            let arm = |a: compare::stats::Arm| CompareArm {
                units: a.units,
                events: a.events,
                rate: a.rate,
            };
            Assessment {
                verdict,
                value: result.estimate.map(|e| e.bound),
                message: Some(result.message),
                compare: Some(CompareStatus {
                    treatment: arm(result.treatment),
                    control: arm(result.control),
                    difference: result.estimate.map(|e| e.difference),
                    half_width: result.estimate.map(|e| e.half_width),
                }),
            }
        }
    }
}
