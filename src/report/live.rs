//! The report of a Rollout in a cluster, from its spec and the evidence its status keeps.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;

use super::model::{
    Entry, Event, FinalState, GateReading, Plan, PreCheck, PreCheckResult, Report, Source,
};
use super::plan::plan_of;
use crate::api::{
    CHECKPOINT_HISTORY_LIMIT, GateStatus, HISTORY_LIMIT, HistoryEntry, HistoryKind, Phase, Rollout,
    RolloutStatus,
};

/// Why a Rollout could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No Rollout of that name in that namespace.
    #[error("no Rollout {name:?} in namespace {namespace:?}")]
    NotFound {
        /// The namespace asked.
        namespace: String,
        /// The name asked.
        name: String,
    },
    /// The API server could not be reached or refused.
    #[error("cannot read Rollout {namespace}/{name}: {source}")]
    Api {
        /// The namespace asked.
        namespace: String,
        /// The name asked.
        name: String,
        /// The client's error.
        source: kube::Error,
    },
}

/// Reads one Rollout (a GET of `rollouts/NAME` in `namespace`).
pub async fn fetch(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Rollout, FetchError> {
    let api: Api<Rollout> = Api::namespaced(client, namespace);
    match api.get_opt(name).await {
        Ok(Some(rollout)) => Ok(rollout),
        Ok(None) => Err(FetchError::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
        Err(source) => Err(FetchError::Api {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        }),
    }
}

/// Reads one Rollout and makes its report: what `rollgate report NAME` prints.
pub async fn load_report(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Report, FetchError> {
    fetch(client, namespace, name)
        .await
        .map(|rollout| from_rollout(&rollout))
}

/// The report of a live Rollout: its plan, and its status' history, gates and conditions.
pub fn from_rollout(rollout: &Rollout) -> Report {
    let empty = RolloutStatus::default();
    let status = rollout.status.as_ref().unwrap_or(&empty);
    let gates: Vec<GateReading> = status.gates.iter().map(reading).collect();
    let last_checkpoint = status.last_checkpoint.as_ref().map(|c| c.at.0);
    let entries: Vec<Entry> = status
        .history
        .iter()
        .map(|h| entry(h, last_checkpoint, &gates))
        .collect();
    let plan = plan_of(&rollout.spec);
    let mut notes = vec![format!(
        "From the Rollout's status, which keeps every transition (at most {HISTORY_LIMIT} entries) \
         and the latest {CHECKPOINT_HISTORY_LIMIT} checkpoints; gate values are kept for the last \
         checkpoint only."
    )];
    let generation = rollout.metadata.generation;
    if status.observed_generation.is_some() && status.observed_generation != generation {
        notes.push(format!(
            "The status describes generation {}, the spec is at generation {}: the controller has \
             not acted on the latest change yet.",
            number(status.observed_generation),
            number(generation)
        ));
    }
    let final_at = entries.iter().map(|e| e.at).chain(last_checkpoint).max();
    Report {
        name: rollout.metadata.name.clone().unwrap_or_default(),
        namespace: rollout.metadata.namespace.clone(),
        source: Source::Live {
            generation,
            observed_generation: status.observed_generation,
        },
        prechecks: prechecks(status, &plan),
        plan,
        entries,
        final_state: FinalState {
            at: final_at,
            phase: status.phase,
            stage: status.stage,
            percent: status.percent,
            message: status.message.clone(),
            gates,
            next_checkpoint_at: status.next_checkpoint_at.as_ref().map(|t| t.0),
            conditions: status
                .conditions
                .iter()
                .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
                .collect(),
        },
        notes,
    }
}

fn number(n: Option<i64>) -> String {
    n.map_or_else(|| "unknown".to_owned(), |n| n.to_string())
}

fn reading(gate: &GateStatus) -> GateReading {
    GateReading {
        name: gate.name.clone(),
        verdict: gate.last_verdict,
        value: gate.last_value,
        message: gate.last_message.clone(),
        failures: gate.failures,
        misses: gate.misses,
    }
}

fn entry(
    history: &HistoryEntry,
    last_checkpoint: Option<Timestamp>,
    gates: &[GateReading],
) -> Entry {
    let Time(at) = history.at;
    let reason = history.message.clone();
    let event = match history.kind {
        HistoryKind::Pending => Event::Pending { reason },
        HistoryKind::Start => Event::Start,
        HistoryKind::Checkpoint => Event::Checkpoint {
            verdict: history
                .verdict
                .unwrap_or(crate::api::CheckpointVerdict::Warn),
            gates: if last_checkpoint == Some(at) {
                gates.to_vec()
            } else {
                Vec::new()
            },
        },
        HistoryKind::Drift => Event::Drift {
            actual: None,
            reason,
        },
        kind => Event::Transition { kind, reason },
    };
    Entry {
        at,
        stage: history.stage,
        percent: history.percent,
        event,
    }
}

/// A later attempt of the same pre-checks.
const AGAIN: &str = "the same, again";

/// The pre-checks as the status tells them: each time the rollout waited (Pending), and the
/// start once they all passed.
fn prechecks(status: &RolloutStatus, plan: &Plan) -> Vec<PreCheck> {
    let gates: Vec<&str> = plan.gates.iter().map(|g| g.name.as_str()).collect();
    let mut all = format!(
        "the target exists and can be written, holds the rollback percent ({}%), and every gate answers ({})",
        plan.rollback_percent,
        gates.join(", ")
    );
    if let Some(min) = plan.min_allowlist {
        all.push_str(&format!(
            "; the allowlist has at least {min} targeting keys"
        ));
    }
    let mut checks: Vec<PreCheck> = status
        .history
        .iter()
        .filter(|h| h.kind == HistoryKind::Pending)
        .enumerate()
        .map(|(i, h)| PreCheck {
            check: if i == 0 {
                all.clone()
            } else {
                AGAIN.to_owned()
            },
            result: PreCheckResult::Failed {
                at: Some(h.at.0),
                reason: h.message.clone().unwrap_or_default(),
            },
        })
        .collect();
    let started = status.started_at.as_ref().map(|t| t.0);
    if !checks.is_empty() {
        all = AGAIN.to_owned();
    }
    match (status.phase, started) {
        (Some(Phase::Pending), _) if checks.is_empty() => checks.push(PreCheck {
            check: all,
            result: PreCheckResult::Failed {
                at: None,
                reason: status.message.clone().unwrap_or_default(),
            },
        }),
        (Some(Phase::Pending), _) => {}
        (Some(Phase::Failed), None) => checks.push(PreCheck {
            check: all,
            result: PreCheckResult::NotRun("not made: the spec is invalid"),
        }),
        (None, None) => checks.push(PreCheck {
            check: all,
            result: PreCheckResult::NotRun(
                "not made yet: the controller has not reconciled the Rollout",
            ),
        }),
        (_, started) => checks.push(PreCheck {
            check: all,
            result: PreCheckResult::Passed(started),
        }),
    }
    checks
}
