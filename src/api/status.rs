//! The observed state: the evidence trail the engine keeps on the object.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::percent::Percent;

/// How many entries `status.history` keeps; older ones are dropped first.
pub const HISTORY_LIMIT: usize = 100;

/// How many routine checkpoint entries `status.history` keeps; transitions are kept until
/// [`HISTORY_LIMIT`] pushes them out, checkpoints only the latest few.
pub const CHECKPOINT_HISTORY_LIMIT: usize = 10;

/// Where a rollout stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not started: waiting for the pre-checks (target, gates, baseline) to pass.
    Pending,
    /// Moving through the stages.
    Progressing,
    /// Held for a human: checkpoints go on and a failing gate still rolls back.
    Paused,
    /// Every stage passed; the target keeps the last stage's percent.
    Succeeded,
    /// A gate failed or someone aborted; the target holds the rollback percent.
    RolledBack,
    /// The spec is invalid; nothing was written.
    Failed,
}

impl Phase {
    /// Whether the rollout has ended (Succeeded, RolledBack or Failed).
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::RolledBack | Phase::Failed)
    }

    /// The phase's name as it appears in status and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::Succeeded => "Succeeded",
            Phase::RolledBack => "RolledBack",
            Phase::Failed => "Failed",
        }
    }
}

/// A gate's verdict at one checkpoint.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GateVerdict {
    /// A value within the bounds.
    Pass,
    /// A value outside the bounds.
    Fail,
    /// No data: an empty result or NaN. Never a pass.
    Inconclusive,
    /// The provider failed: unreachable, timed out or a bad answer.
    Error,
    /// A compare gate's cohort has too few units yet: the stage holds, no counter moves.
    Waiting,
    /// A compare gate at 0 % or 100 %, where there is no second cohort: it does not keep the
    /// stage from completing, and no counter moves.
    Skipped,
}

impl GateVerdict {
    /// The verdict's word as it appears in status and output.
    pub fn as_str(self) -> &'static str {
        match self {
            GateVerdict::Pass => "pass",
            GateVerdict::Fail => "fail",
            GateVerdict::Inconclusive => "inconclusive",
            GateVerdict::Error => "error",
            GateVerdict::Waiting => "waiting",
            GateVerdict::Skipped => "skipped",
        }
    }
}

/// A checkpoint's verdict over all its gates.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointVerdict {
    /// Every gate passed.
    Pass,
    /// Not every gate passed, and no rollback followed.
    Warn,
    /// The checkpoint triggered a rollback.
    Fail,
}

impl CheckpointVerdict {
    /// The verdict's word as it appears in status and output.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointVerdict::Pass => "pass",
            CheckpointVerdict::Warn => "warn",
            CheckpointVerdict::Fail => "fail",
        }
    }
}

/// What a checkpoint saw, as recorded in status.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// When the checkpoint was taken.
    pub at: Time,
    /// The stage at the checkpoint, as a 0-based index.
    pub stage: u32,
    /// The percent at the checkpoint.
    pub percent: Percent,
    /// The checkpoint's verdict.
    pub verdict: CheckpointVerdict,
}

/// Per-gate counters and the last observation.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GateStatus {
    /// The gate's name.
    #[schemars(length(max = super::limits::MAX_GATE_NAME))]
    pub name: String,
    /// Consecutive failing checkpoints (reset by a pass).
    #[serde(default)]
    pub failures: u32,
    /// Consecutive checkpoints without usable data (reset by a pass or a fail).
    #[serde(default)]
    pub misses: u32,
    /// Verdict at the last checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verdict: Option<GateVerdict>,
    /// Value at the last checkpoint, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_value: Option<f64>,
    /// The provider's error at the last checkpoint, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::MAX_GATE_MESSAGE))]
    pub last_message: Option<String>,
    /// What a determinism (OFREP) probe remembers between checkpoints: a few sampled keys that
    /// had the flag, so a key that loses it while the percent did not go down is caught.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = limit_determinism)]
    pub determinism: Option<super::ofrep_memory::OfrepMemory>,
    /// A compare gate's arms and difference at the last checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<CompareStatus>,
    /// The `stageStartedAt` of the stage for which a compare gate's `Waiting` Event went out
    /// (one per stage, once the bake time has passed and the gate still waits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_reported: Option<Time>,
}

/// One arm of a compare gate: counts since the stage started and their rate.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CompareArm {
    /// Units in the arm (requests, users).
    pub units: f64,
    /// Events among them (errors, conversions).
    pub events: f64,
    /// events / units (0 without units).
    pub rate: f64,
}

/// A compare gate's last comparison: both arms, the difference and the confidence sequence's
/// half-width (the gate's value is the harmful bound).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CompareStatus {
    /// The users with the flag.
    pub treatment: CompareArm,
    /// The users without it.
    pub control: CompareArm,
    /// Treatment minus control (relative to the control's rate with `relative`), when there
    /// were enough units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difference: Option<f64>,
    /// The confidence sequence's half-width, when there were enough units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_width: Option<f64>,
}

/// The kind of a history entry.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HistoryKind {
    /// Waiting for pre-checks before the start.
    Pending,
    /// The rollout started at stage 0.
    Start,
    /// A checkpoint that changed nothing.
    Checkpoint,
    /// Moved to the next stage.
    Advance,
    /// Paused.
    Pause,
    /// Resumed.
    Resume,
    /// The target's live percent differed from the expected one.
    Drift,
    /// Rolled back.
    Rollback,
    /// Completed the last stage.
    Complete,
    /// A new spec generation moved the rollout to another stage mid-way.
    Replan,
    /// The spec was invalid.
    Invalid,
}

impl HistoryKind {
    /// The event word used in output (`start`, `advance`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryKind::Pending => "pending",
            HistoryKind::Start => "start",
            HistoryKind::Checkpoint => "checkpoint",
            HistoryKind::Advance => "advance",
            HistoryKind::Pause => "pause",
            HistoryKind::Resume => "resume",
            HistoryKind::Drift => "drift",
            HistoryKind::Rollback => "rollback",
            HistoryKind::Complete => "complete",
            HistoryKind::Replan => "replan",
            HistoryKind::Invalid => "invalid",
        }
    }
}

/// One entry of the evidence trail.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// When it happened.
    pub at: Time,
    /// What happened.
    pub kind: HistoryKind,
    /// The stage after it happened, as a 0-based index.
    pub stage: u32,
    /// The expected percent after it happened.
    pub percent: Percent,
    /// A checkpoint's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<CheckpointVerdict>,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::MAX_HISTORY_MESSAGE))]
    pub message: Option<String>,
}

/// The observed state of a rollout: what the controller last wrote and why.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Pending, Progressing, Paused, Succeeded, RolledBack or Failed; absent before the first
    /// reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The current stage as a 0-based index (the first stage is 0), for programs. People read
    /// `stageNumber`.
    #[serde(default)]
    pub stage: u32,
    /// The current stage counted from 1, as people read it ("stage 2 of 3"); the printer
    /// column shows it. Absent before the first reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_number: Option<u32>,
    /// The percent the controller last wrote to the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<Percent>,
    /// When the rollout started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the current stage started; checkpoints fall at this time plus whole intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_started_at: Option<Time>,
    /// When the next checkpoint is due; absent once the rollout has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_checkpoint_at: Option<Time>,
    /// The last checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checkpoint: Option<Checkpoint>,
    /// Why the rollout is where it is, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::MAX_STATUS_MESSAGE))]
    pub message: Option<String>,
    /// A machine word for why the rollout waits or is paused when it is more specific than the
    /// phase: `Forbidden` (the rollout's ServiceAccount may not do what the rollout needs, or
    /// the controller may not act as it), `DriftLoop` (paused: someone else writes the
    /// target), `TargetOwned` (pending: another unfinished Rollout owns the target). It
    /// becomes the conditions' reason while Pending or Paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub reason: Option<String>,
    /// Per-gate counters and last observations, in the order of `spec.analysis.gates`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::MAX_GATES))]
    pub gates: Vec<GateStatus>,
    /// The live percent seen on the target while paused by drift; the expected percent is
    /// written back on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drifted_percent: Option<Percent>,
    /// Drifts reverted since `driftWindowStart`: the third within 10 minutes of the first
    /// pauses the rollout (`DriftLoop`) instead of reverting; resume clears it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drift_count: u32,
    /// When the first drift counted in `driftCount` was reverted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_window_start: Option<Time>,
    /// The resourceVersion the target object had when a final write (a rollback, or the
    /// last stage's percent) was planned: after a restart, a finished rollout finishes that
    /// write only while the target still has this version (nobody changed it since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub target_version: Option<String>,
    /// The percent in `percent` was decided but its write to the target is not confirmed yet:
    /// a controller restarted in between finishes the write instead of reading a drift.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub target_pending: bool,
    /// How many times this rollout decided a new percent: the `sequence` a webhook target's
    /// PUT carries, so its receiver can drop a stale write (a repair resends the same one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_sequence: Option<u64>,
    /// The one-shot `rollgate.dev/action` annotation last applied, as `action@token`, so an
    /// action is applied once even when the controller stops before removing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub last_action: Option<String>,
    /// Whether the current pause comes from `spec.paused` (cleared when the spec unpauses).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused_by_spec: bool,
    /// A Succeeded rollout whose new spec generation added stages beyond its percent waits
    /// (Pending) for its pre-checks to continue from the percent in force, not from stage 0:
    /// the target must still hold `percent`, and nothing is raised before a passing checkpoint.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continuing: bool,
    /// The evidence trail, oldest first: every transition and the latest few checkpoints, at
    /// most 100 entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::status::HISTORY_LIMIT))]
    pub history: Vec<HistoryEntry>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// kstatus conditions: Ready, Reconciling and Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::MAX_CONDITIONS), transform = limit_condition_texts)]
    pub conditions: Vec<Condition>,
}

impl RolloutStatus {
    /// Appends a history entry. Only the latest [`CHECKPOINT_HISTORY_LIMIT`] checkpoints are
    /// kept; beyond [`HISTORY_LIMIT`] entries the oldest are dropped first.
    pub fn record(&mut self, entry: HistoryEntry) {
        let is_checkpoint = entry.kind == HistoryKind::Checkpoint;
        self.history.push(entry);
        if is_checkpoint {
            let checkpoints = self
                .history
                .iter()
                .filter(|e| e.kind == HistoryKind::Checkpoint)
                .count();
            let mut excess = checkpoints.saturating_sub(CHECKPOINT_HISTORY_LIMIT);
            self.history.retain(|e| {
                let drop = excess > 0 && e.kind == HistoryKind::Checkpoint;
                excess -= usize::from(drop);
                !drop
            });
        }
        if self.history.len() > HISTORY_LIMIT {
            let excess = self.history.len() - HISTORY_LIMIT;
            self.history.drain(..excess);
        }
    }

    /// Cuts every text the status stores to its `maxLength` in the CRD (`message`, each gate's
    /// `lastMessage`, each history entry's `message`), so a long provider error or reason can
    /// never make the API server refuse the status. Cheap when the texts are short.
    pub fn cap_to_limits(&mut self) {
        use super::limits::{MAX_GATE_MESSAGE, MAX_HISTORY_MESSAGE, MAX_STATUS_MESSAGE, cap_text};
        if let Some(message) = &mut self.message {
            cap_text(message, MAX_STATUS_MESSAGE);
        }
        for gate in &mut self.gates {
            if let Some(message) = &mut gate.last_message {
                cap_text(message, MAX_GATE_MESSAGE);
            }
        }
        for entry in &mut self.history {
            if let Some(message) = &mut entry.message {
                cap_text(message, MAX_HISTORY_MESSAGE);
            }
        }
        for condition in &mut self.conditions {
            cap_text(&mut condition.message, MAX_STATUS_MESSAGE);
        }
    }

    /// Sets the kstatus conditions (`Ready`, `Reconciling`, `Stalled`) from the phase,
    /// keeping each condition's `lastTransitionTime` while its status does not change.
    pub fn update_conditions(&mut self, now: Timestamp) {
        let phase = self.phase;
        let message = self.message.clone().unwrap_or_default();
        let (ready, reconciling, stalled, reason) = match phase {
            None => ("False", "True", "False", "Pending"),
            Some(Phase::Pending) => ("False", "True", "False", "PreCheckFailed"),
            Some(Phase::Progressing) => ("False", "True", "False", "Progressing"),
            // Paused is not done: kstatus reads Reconciling=True as InProgress, so a Flux
            // `dependsOn` step waits for a person instead of running during the pause.
            Some(Phase::Paused) => ("False", "True", "False", "Paused"),
            Some(Phase::Succeeded) => ("True", "False", "False", "Succeeded"),
            Some(Phase::RolledBack) => ("False", "False", "True", "RolledBack"),
            Some(Phase::Failed) => ("False", "False", "True", "InvalidSpec"),
        };
        let reason = match (phase, self.reason.as_deref()) {
            (Some(Phase::Pending | Phase::Paused), Some(own)) => own,
            _ => reason,
        };
        let reason = reason.to_owned();
        let generation = self.observed_generation;
        for (kind, status) in [
            ("Ready", ready),
            ("Reconciling", reconciling),
            ("Stalled", stalled),
        ] {
            let wanted = Condition {
                type_: kind.to_owned(),
                status: status.to_owned(),
                reason: reason.clone(),
                message: message.clone(),
                observed_generation: generation,
                last_transition_time: Time(now),
            };
            match self.conditions.iter_mut().find(|c| c.type_ == kind) {
                Some(existing) if existing.status == wanted.status => {
                    existing.reason = wanted.reason;
                    existing.message = wanted.message;
                    existing.observed_generation = wanted.observed_generation;
                }
                Some(existing) => *existing = wanted,
                None => self.conditions.push(wanted),
            }
        }
    }
}

/// `status.reason` (and the conditions' reason) when the rollout's ServiceAccount may not do
/// what the rollout needs, or the controller may not act as that ServiceAccount.
pub const REASON_FORBIDDEN: &str = "Forbidden";
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The texts of a condition get a `maxLength` (Kubernetes' own for `type` and `reason`, the
/// status message's for `message`), so the status stays bounded.
fn limit_condition_texts(schema: &mut schemars::Schema) {
    let limits = [
        ("type", 316),
        ("status", 16),
        ("reason", 1024),
        ("message", super::limits::MAX_STATUS_MESSAGE),
    ];
    let properties = schema
        .get_mut("items")
        .and_then(|items| items.get_mut("properties"))
        .and_then(serde_json::Value::as_object_mut);
    if let Some(properties) = properties {
        for (name, max) in limits {
            if let Some(property) = properties.get_mut(name).and_then(|p| p.as_object_mut()) {
                property.insert("maxLength".to_owned(), max.into());
            }
        }
    }
}

/// The determinism probe's memory gets the limits its writer keeps: a flag key of at most
/// [`MAX_FLAG_KEY`](super::limits::MAX_FLAG_KEY) characters and at most
/// [`MAX_REMEMBERED_KEYS`](super::limits::MAX_REMEMBERED_KEYS) remembered keys.
fn limit_determinism(schema: &mut schemars::Schema) {
    let limits = [
        ("flag", "maxLength", super::limits::MAX_FLAG_KEY),
        ("withFlag", "maxItems", super::limits::MAX_REMEMBERED_KEYS),
    ];
    // An optional field's schema is the object itself, or an `anyOf` with null.
    if let Some(object) = schema.as_object_mut() {
        limit_properties(object, &limits);
        if let Some(any_of) = object.get_mut("anyOf").and_then(|a| a.as_array_mut()) {
            for alternative in any_of.iter_mut().filter_map(|a| a.as_object_mut()) {
                limit_properties(alternative, &limits);
            }
        }
    }
}

/// Sets `keyword: max` on each named property of an object schema.
fn limit_properties(
    object: &mut serde_json::Map<String, serde_json::Value>,
    limits: &[(&str, &str, usize)],
) {
    let Some(properties) = object
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for (name, keyword, max) in limits {
        if let Some(property) = properties.get_mut(*name).and_then(|p| p.as_object_mut()) {
            property.insert((*keyword).to_owned(), (*max).into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("a valid time")
    }

    fn entry(n: u32) -> HistoryEntry {
        HistoryEntry {
            at: Time(at(i64::from(n))),
            kind: HistoryKind::Checkpoint,
            stage: n,
            percent: Percent::whole(1),
            verdict: Some(CheckpointVerdict::Pass),
            message: None,
        }
    }

    fn stages(status: &RolloutStatus) -> Vec<u32> {
        status.history.iter().map(|e| e.stage).collect()
    }

    #[test]
    fn record_appends_below_the_limit() {
        let mut status = RolloutStatus::default();
        for n in 0..3 {
            status.record(entry(n));
        }
        assert_eq!(stages(&status), [0, 1, 2]);
    }

    fn transition(n: u32) -> HistoryEntry {
        HistoryEntry {
            kind: HistoryKind::Advance,
            verdict: None,
            ..entry(n)
        }
    }

    #[test]
    fn record_keeps_only_the_latest_checkpoints() {
        let mut status = RolloutStatus::default();
        for n in 0..(CHECKPOINT_HISTORY_LIMIT as u32 + 5) {
            status.record(entry(n));
            assert!(status.history.len() <= CHECKPOINT_HISTORY_LIMIT);
        }
        let expected: Vec<u32> = (5..CHECKPOINT_HISTORY_LIMIT as u32 + 5).collect();
        assert_eq!(stages(&status), expected);
    }

    #[test]
    fn record_keeps_every_transition_between_checkpoints() {
        let mut status = RolloutStatus::default();
        status.record(transition(1000));
        for n in 0..50 {
            status.record(entry(n));
        }
        status.record(transition(2000));
        assert_eq!(status.history.len(), CHECKPOINT_HISTORY_LIMIT + 2);
        assert_eq!(status.history[0].stage, 1000);
        assert_eq!(status.history.last().map(|e| e.stage), Some(2000));
        let checkpoints: Vec<u32> = status.history[1..=CHECKPOINT_HISTORY_LIMIT]
            .iter()
            .map(|e| e.stage)
            .collect();
        assert_eq!(checkpoints, (40..50).collect::<Vec<u32>>());
    }

    #[test]
    fn record_drops_the_oldest_transitions_beyond_the_limit() {
        let mut status = RolloutStatus::default();
        for n in 0..(HISTORY_LIMIT as u32 + 7) {
            status.record(transition(n));
        }
        let expected: Vec<u32> = (7..HISTORY_LIMIT as u32 + 7).collect();
        assert_eq!(stages(&status), expected);
    }

    #[test]
    fn record_trims_a_history_longer_than_the_limit() {
        // A status written with a larger limit is cut down at the next entry.
        let mut status = RolloutStatus {
            history: (0..150).map(transition).collect(),
            ..RolloutStatus::default()
        };
        status.record(transition(150));
        let expected: Vec<u32> = (51..=150).collect();
        assert_eq!(stages(&status), expected);
    }

    fn condition<'a>(status: &'a RolloutStatus, kind: &str) -> &'a Condition {
        let found: Vec<_> = status
            .conditions
            .iter()
            .filter(|c| c.type_ == kind)
            .collect();
        assert_eq!(found.len(), 1, "{kind}: {:?}", status.conditions);
        found[0]
    }

    /// The (Ready, Reconciling, Stalled) statuses and the reason.
    fn summary(status: &RolloutStatus) -> (&str, &str, &str, &str) {
        let ready = condition(status, "Ready");
        (
            ready.status.as_str(),
            condition(status, "Reconciling").status.as_str(),
            condition(status, "Stalled").status.as_str(),
            ready.reason.as_str(),
        )
    }

    #[test]
    fn conditions_follow_the_phase() {
        let cases = [
            (None, ("False", "True", "False", "Pending")),
            (
                Some(Phase::Pending),
                ("False", "True", "False", "PreCheckFailed"),
            ),
            (
                Some(Phase::Progressing),
                ("False", "True", "False", "Progressing"),
            ),
            (Some(Phase::Paused), ("False", "True", "False", "Paused")),
            (
                Some(Phase::Succeeded),
                ("True", "False", "False", "Succeeded"),
            ),
            (
                Some(Phase::RolledBack),
                ("False", "False", "True", "RolledBack"),
            ),
            (
                Some(Phase::Failed),
                ("False", "False", "True", "InvalidSpec"),
            ),
        ];
        for (phase, expected) in cases {
            let mut status = RolloutStatus {
                phase,
                message: Some("why".to_owned()),
                observed_generation: Some(7),
                ..RolloutStatus::default()
            };
            status.update_conditions(at(100));
            assert_eq!(summary(&status), expected, "{phase:?}");
            assert_eq!(status.conditions.len(), 3);
            for c in &status.conditions {
                assert_eq!(c.message, "why");
                assert_eq!(c.reason, expected.3);
                assert_eq!(c.observed_generation, Some(7));
                assert_eq!(c.last_transition_time, Time(at(100)));
            }
        }
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let mut status = RolloutStatus {
            phase: Some(Phase::Progressing),
            message: Some("stage 0".to_owned()),
            observed_generation: Some(1),
            ..RolloutStatus::default()
        };
        status.update_conditions(at(100));

        status.message = Some("stage 1".to_owned());
        status.observed_generation = Some(2);
        status.update_conditions(at(200));
        for c in &status.conditions {
            assert_eq!(c.last_transition_time, Time(at(100)), "{}", c.type_);
            assert_eq!(c.message, "stage 1");
            assert_eq!(c.observed_generation, Some(2));
        }

        status.phase = Some(Phase::Succeeded);
        status.message = None;
        status.update_conditions(at(300));
        assert_eq!(summary(&status), ("True", "False", "False", "Succeeded"));
        let changed = |kind| condition(&status, kind).last_transition_time.clone();
        assert_eq!(changed("Ready"), Time(at(300)));
        assert_eq!(changed("Reconciling"), Time(at(300)));
        assert_eq!(changed("Stalled"), Time(at(100)));
        assert_eq!(condition(&status, "Stalled").reason, "Succeeded");
        assert_eq!(condition(&status, "Stalled").message, "");
    }

    #[test]
    fn other_conditions_are_left_alone() {
        let foreign = Condition {
            type_: "example.com/Custom".to_owned(),
            status: "True".to_owned(),
            reason: "Mine".to_owned(),
            message: "not rollgate's".to_owned(),
            observed_generation: None,
            last_transition_time: Time(at(1)),
        };
        let mut status = RolloutStatus {
            phase: Some(Phase::Paused),
            conditions: vec![foreign.clone()],
            ..RolloutStatus::default()
        };
        status.update_conditions(at(100));
        status.update_conditions(at(200));
        assert_eq!(status.conditions.len(), 4);
        assert_eq!(status.conditions[0], foreign);
    }

    #[test]
    fn terminal_phases() {
        assert!(!Phase::Progressing.is_terminal());
        assert!(!Phase::Paused.is_terminal());
        assert!(Phase::Succeeded.is_terminal());
        assert!(Phase::RolledBack.is_terminal());
        assert!(Phase::Failed.is_terminal());
    }
}
