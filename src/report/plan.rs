//! The plan in words: what a change ticket states about target, stages and gates.

use crate::api::{DriftPolicy, Gate, Provider, RolloutSpec, TargetKind};
use crate::engine::compact;

use super::model::{GatePlan, Plan, PreCheck, PreCheckResult, StagePlan};

/// The plan of spec, with each gate's bounds after its provider's defaults.
pub fn plan_of(spec: &RolloutSpec) -> Plan {
    Plan {
        target: target_words(spec),
        allowlist: spec.target.flagd.as_ref().map(|f| f.allowlist.len()),
        stages: spec
            .stages
            .iter()
            .map(|s| StagePlan {
                percent: s.percent,
                bake: compact(s.duration.into()),
            })
            .collect(),
        interval: compact(spec.analysis.interval.into()),
        error_limit: spec.analysis.error_limit,
        gates: spec.analysis.gates.iter().map(gate_plan).collect(),
        rollback_percent: spec.rollback.percent,
        on_drift: match spec.on_drift {
            DriftPolicy::Revert => "Revert",
            DriftPolicy::Pause => "Pause",
        },
        min_allowlist: spec.pre_checks.as_ref().and_then(|p| p.min_allowlist),
    }
}

fn target_words(spec: &RolloutSpec) -> String {
    match spec.target.kind() {
        Some(TargetKind::Flagd(f)) => {
            let home = match (&f.config_map, &f.feature_flag) {
                (Some(cm), _) => format!("ConfigMap {cm} (key {})", f.key),
                (None, Some(ff)) => format!("FeatureFlag {ff}"),
                (None, None) => "an unnamed flagd source".to_owned(),
            };
            format!("flagd flag {} in {home}", f.flag)
        }
        Some(TargetKind::ConfigMap(c)) => format!("ConfigMap {} key {}", c.name, c.key),
        Some(TargetKind::Webhook(w)) => format!("webhook {}", w.url),
        None => "no single target (the plan is invalid)".to_owned(),
    }
}

fn gate_plan(gate: &Gate) -> GatePlan {
    let (min, max) = gate.bounds();
    let (measures, query) = match gate.provider() {
        Some(Provider::Prometheus(p)) => ("Prometheus query".to_owned(), Some(p.query.clone())),
        Some(Provider::Alerts(a)) if a.matchers.is_empty() => {
            ("firing alerts (all)".to_owned(), None)
        }
        Some(Provider::Alerts(a)) => (
            format!("firing alerts matching {}", a.matchers.join(", ")),
            None,
        ),
        Some(Provider::Ofrep(o)) => (
            format!(
                "determinism violations over {} keys probed at {}",
                o.sample, o.address
            ),
            None,
        ),
        Some(Provider::Http(h)) => (
            format!("{} of the JSON answer from {}", h.json_path, h.url),
            None,
        ),
        Some(Provider::Compare(c)) => (
            format!(
                "events per unit with the flag vs without ({} is better): the harmful bound of \
                 the difference{} at {} %",
                match c.better {
                    crate::api::Better::Lower => "lower",
                    crate::api::Better::Higher => "higher",
                },
                if c.relative {
                    ", relative to the control's rate"
                } else {
                    ""
                },
                c.confidence * 100.0
            ),
            Some(format!("units: {}\nevents: {}", c.units, c.events)),
        ),
        None => ("no single provider (the plan is invalid)".to_owned(), None),
    };
    GatePlan {
        name: gate.name.clone(),
        measures,
        query,
        min,
        max,
        max_word: if gate.compare.is_some() {
            "maxRegression"
        } else {
            "max"
        },
        failure_limit: gate.failure_limit,
    }
}

/// The pre-checks a controller makes before the start, as a simulation or backtest reports
/// them: not run (they start at t = 0), except the allowlist's size, which the plan itself
/// answers.
pub(super) fn offline_prechecks(plan: &Plan) -> Vec<PreCheck> {
    const NOT_RUN: PreCheckResult =
        PreCheckResult::NotRun("not run: a simulation or backtest starts at t = 0");
    let gates: Vec<&str> = plan.gates.iter().map(|g| g.name.as_str()).collect();
    let mut checks = vec![
        PreCheck {
            check: "the target exists and can be written".to_owned(),
            result: NOT_RUN,
        },
        PreCheck {
            check: format!(
                "the target holds the rollback percent ({}%)",
                plan.rollback_percent
            ),
            result: NOT_RUN,
        },
        PreCheck {
            check: format!("every gate answers ({})", gates.join(", ")),
            result: NOT_RUN,
        },
    ];
    if let Some(min) = plan.min_allowlist {
        let have = plan.allowlist.unwrap_or(0);
        let check = format!("the allowlist has at least {min} targeting keys");
        let result = if (have as u64) >= u64::from(min) {
            PreCheckResult::Passed(None)
        } else {
            PreCheckResult::Failed {
                at: None,
                reason: format!("the plan's allowlist has {have}"),
            }
        };
        checks.push(PreCheck { check, result });
    }
    checks
}
