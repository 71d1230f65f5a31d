//! The desired state: target, stages, analysis, rollback and drift policy.

use kube::core::Duration;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::duration::{
    DURATION_AT_LEAST_1S_RULE, DURATION_FORMAT_RULE, DURATION_NOT_NEGATIVE_RULE,
};
use super::gate::Gate;
use super::notifications::NotificationSpec;
use super::percent::{
    PERCENT_DECIMALS_MESSAGE, PERCENT_DECIMALS_RULE, PERCENT_RANGE_MESSAGE, PERCENT_RANGE_RULE,
    Percent,
};
use super::status::RolloutStatus;
use super::target::Target;

/// A plan that rolls a change out to users in stages, checking gates at every checkpoint.
// Printer columns repeat `type_ = "string"`, which clippy takes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "rollgate.dev",
    version = "v1alpha1",
    kind = "Rollout",
    doc = "A Rollout raises a change's exposure (a feature flag's percentage) in stages and \
           checks its gates (Prometheus queries, alerts, flag determinism, HTTP checks) at every \
           checkpoint, advancing, pausing or rolling back as the rules say; its status is the \
           evidence trail of every decision.",
    namespaced,
    status = "RolloutStatus",
    shortname = "rgo",
    category = "rollgate",
    cel,
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Progressing, Paused, Succeeded, RolledBack or Failed."
    ),
    printcolumn(
        name = "Stage",
        type_ = "integer",
        json_path = ".status.stageNumber",
        description = "The current stage, counted from 1 (status.stage is the 0-based index)."
    ),
    printcolumn(
        name = "Percent",
        type_ = "number",
        json_path = ".status.percent",
        description = "The percent the controller last wrote to the target."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        description = "Why the rollout is where it is."
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(ROLLBACK_NOT_ABOVE_FIRST_STAGE_RULE)
    .message("rollback.percent must not exceed the first stage's percent: a rollback never raises exposure"))]
pub struct RolloutSpec {
    /// Where the rollout writes each stage's percentage. Exactly one kind of target.
    pub target: Target,
    /// The stages, in order: each raises exposure to its percent and holds it at least for its
    /// duration. Percents must be strictly increasing.
    #[x_kube(validation = Rule::new("size(self) > 0").message("stages must not be empty"))]
    // `all` binds elements, not indices, and the index forms (`all(i, v, …)`) are not in every
    // CEL; sorted with every percent unique is strictly increasing.
    #[x_kube(validation = Rule::new(
        "self.map(s, s.percent).isSorted() && self.all(s, self.exists_one(t, t.percent == s.percent))"
    ).message("stage percents must be strictly increasing"))]
    #[schemars(length(max = 100))]
    pub stages: Vec<Stage>,
    /// How and how often the gates are checked.
    #[serde(default)]
    pub analysis: Analysis,
    /// Where a rollback leaves the target.
    #[serde(default)]
    pub rollback: RollbackSpec,
    /// What to do when the target's live percent differs from what the rollout last wrote.
    #[serde(default)]
    pub on_drift: DriftPolicy,
    /// Baseline checks made before the start, besides the ones always made (the target exists
    /// and can be written, every gate answers, the target holds the rollback percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_checks: Option<PreChecksSpec>,
    /// Hold the rollout: checkpoints go on and a failing gate still rolls back, but nothing
    /// advances until this is false again.
    #[serde(default)]
    pub paused: bool,
    /// Endpoints told about every transition (start, advance, pause, resume, drift, rollback,
    /// complete): generic JSON webhooks or Slack-compatible incoming webhooks, their URLs read
    /// from Secrets in the rollout's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub notifications: Vec<NotificationSpec>,
    /// The ServiceAccount (in the rollout's namespace) the controller acts as for this
    /// rollout: every Secret it reads (gate `secretRef`, webhook `headersSecret`, notification
    /// URLs), every read of the target's content and every target write (and the pre-check's
    /// dry run) go through a client impersonating `system:serviceaccount:<namespace>:<name>`,
    /// so that ServiceAccount's RBAC decides. Unset: the controller's
    /// `--default-service-account` when the operator set one (lockdown), otherwise the
    /// controller's own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::MAX_OBJECT_NAME))]
    #[x_kube(validation = Rule::new("size(self) > 0 && self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message(
        "serviceAccountName must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
    ))]
    pub service_account_name: Option<String>,
}

/// CEL rule on the spec: `rollback.percent` is at most `stages[0].percent` (a missing
/// rollback percent is 0; a plan without stages and a percent above 100 are left to their own
/// rules).
const ROLLBACK_NOT_ABOVE_FIRST_STAGE_RULE: &str = "!has(self.rollback) || !has(self.rollback.percent) || size(self.stages) == 0 || self.rollback.percent > 100 || self.rollback.percent <= self.stages[0].percent";
/// Optional baseline checks before the start.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PreChecksSpec {
    /// The flagd target's allowlist must hold at least this many targeting keys before the
    /// rollout starts (internal users who see the change first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 10000").message("minAllowlist must be between 0 and 10000"))]
    pub min_allowlist: Option<u32>,
}

/// One step of exposure.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// Share of users that get the change during this stage, 0 to 100, with up to two
    /// decimals (`0.5`, `2.25`).
    #[x_kube(validation = Rule::new(PERCENT_RANGE_RULE).message(PERCENT_RANGE_MESSAGE))]
    #[x_kube(validation = Rule::new(PERCENT_DECIMALS_RULE).message(PERCENT_DECIMALS_MESSAGE))]
    pub percent: Percent,
    /// Minimum time at this stage before it may advance (bake time), as a Go duration such as
    /// `2h` or `90m`. Defaults to 0s: advance at the first passing checkpoint.
    #[serde(
        default = "zero_duration",
        deserialize_with = "super::duration::deserialize"
    )]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new(DURATION_FORMAT_RULE)
        .message("duration must be a Go duration such as 90s, 2h or 1h30m"))]
    #[x_kube(validation = Rule::new(DURATION_NOT_NEGATIVE_RULE).message("duration must not be negative"))]
    pub duration: Duration,
}

/// How and how often the gates are checked.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.gates) || self.gates.all(g, self.gates.exists_one(h, h.name == g.name))")
    .message("gate names must be unique"))]
pub struct Analysis {
    /// Time between checkpoints within a stage, as a Go duration (default 1m). The cadence
    /// restarts when the stage changes.
    #[serde(
        default = "default_interval",
        deserialize_with = "super::duration::deserialize"
    )]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new(DURATION_FORMAT_RULE)
        .message("interval must be a Go duration such as 30s, 1m or 1h"))]
    #[x_kube(validation = Rule::new(DURATION_AT_LEAST_1S_RULE).message("interval must be at least 1s"))]
    pub interval: Duration,
    /// Checkpoints in a row without usable data from a gate (no data or a provider error)
    /// before the rollout pauses (default 3).
    #[serde(default = "default_error_limit")]
    #[x_kube(validation = Rule::new("self >= 1").message("errorLimit must be at least 1"))]
    pub error_limit: u32,
    /// The checks made at every checkpoint.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub gates: Vec<Gate>,
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            error_limit: default_error_limit(),
            gates: Vec::new(),
        }
    }
}

/// Where a rollback leaves the target.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RollbackSpec {
    /// The percent written to the target on rollback (default 0), with up to two decimals.
    #[serde(default)]
    #[x_kube(validation = Rule::new(PERCENT_RANGE_RULE).message(PERCENT_RANGE_MESSAGE))]
    #[x_kube(validation = Rule::new(PERCENT_DECIMALS_RULE).message(PERCENT_DECIMALS_MESSAGE))]
    pub percent: Percent,
}

/// What the controller does when the target's live percent differs from the one it wrote.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum DriftPolicy {
    /// Write the expected percent back and keep going.
    #[default]
    Revert,
    /// Leave the target alone and pause the rollout until someone resumes it.
    Pause,
}

fn zero_duration() -> Duration {
    std::time::Duration::ZERO.into()
}

fn default_interval() -> Duration {
    std::time::Duration::from_secs(60).into()
}

fn default_error_limit() -> u32 {
    3
}
