//! The baseline checked before the start (DESIGN §4 rule 0), as a careful team does by hand:
//! the target exists and can be written (server-side dry run), the target holds the rollback
//! percent (or what this rollout last wrote), the allowlist is long enough, every gate
//! answers (a value or no data, not an error), and each alerts gate's matchers select at least
//! one alerting rule its Prometheus knows. The engine decides to start; this only
//! gathers what failed, in words.

use k8s_openapi::jiff::Timestamp;

use super::context::Context;
use super::observe::GateReading;
use crate::api::{Percent, Rollout, RolloutStatus};
use crate::engine::Observation;
use crate::targets::{TargetError, WriteMode};

/// The pre-checks that failed, each in words; empty when the rollout may start.
pub(super) async fn failures(
    rollout: &Rollout,
    status: &RolloutStatus,
    live: &Result<Option<Percent>, TargetError>,
    ctx: &Context,
    now: Timestamp,
) -> Vec<String> {
    let spec = &rollout.spec;
    let mut failed = Vec::new();
    match live {
        Err(e) => failed.push(format!("target: {e}")),
        Ok(Some(percent)) if !baseline(*percent, rollout, status) => failed.push(format!(
            "the target holds {percent}%, not the rollback percent {}%",
            spec.rollback.percent
        )),
        Ok(_) => {}
    }
    if live.is_ok() {
        let first = spec.stages.first().map_or(Percent::ZERO, |s| s.percent);
        if let Err(e) = ctx.targets.write(rollout, first, WriteMode::DryRun).await {
            failed.push(format!("target cannot be written: {e}"));
        }
    }
    if let Some(min) = spec.pre_checks.as_ref().and_then(|p| p.min_allowlist) {
        let have = spec.target.flagd.as_ref().map_or(0, |f| f.allowlist.len());
        if (have as u64) < u64::from(min) {
            failed.push(format!(
                "the allowlist has {have} targeting keys, fewer than preChecks.minAllowlist {min}"
            ));
        }
    }
    let readings = ctx.observer.observe(rollout, status, now).await;
    let unanswered = gate_failures(rollout, &readings);
    if unanswered.is_empty() {
        // Only a Prometheus that answers can say which alerting rules it knows.
        failed.extend(ctx.observer.alert_rule_problems(rollout, now).await);
    }
    failed.extend(unanswered);
    failed
}

/// Whether a live percent is a fine place to start from.
fn baseline(percent: Percent, rollout: &Rollout, status: &RolloutStatus) -> bool {
    percent == rollout.spec.rollback.percent || status.percent == Some(percent)
}

/// Gates that did not answer: a provider error, or no reading at all.
fn gate_failures(rollout: &Rollout, readings: &[GateReading]) -> Vec<String> {
    rollout
        .spec
        .analysis
        .gates
        .iter()
        .enumerate()
        .filter_map(|(i, gate)| match readings.get(i).map(|r| &r.observation) {
            Some(Observation::Error(message)) => Some(format!("gate {}: {message}", gate.name)),
            None => Some(format!("gate {}: no answer", gate.name)),
            Some(_) => None,
        })
        .collect()
}
