//! The `Rollout` custom resource: its spec, its status and the rules that validate it.

mod crd;
pub mod duration;
mod gate;
pub mod limits;
mod matcher;
mod notifications;
mod ofrep_memory;
mod percent;
mod prometheus_connection;
mod query_vars;
mod spec;
mod stage_label;
mod status;
mod target;
mod validate;
mod validate_gates;

pub use crd::crd_yaml;
pub use duration::{DURATION_PATTERN, parse as parse_duration};
pub use gate::{
    AlertsGate, Better, COMPARE_CONFIDENCE, CompareGate, FlagdBucketing, Gate, HttpGate,
    HttpMethod, OfrepGate, PrometheusConnection, PrometheusGate, Provider,
};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use notifications::{
    NotificationSpec, SecretKeyRef, SlackNotification, TransitionKind, WebhookNotification,
};
pub use ofrep_memory::{MEMORY_KEYS, OfrepMemory};
pub use percent::{
    PERCENT_DECIMALS_MESSAGE, PERCENT_DECIMALS_RULE, PERCENT_RANGE_MESSAGE, PERCENT_RANGE_RULE,
    PERCENT_TOLERANCE, Percent, PercentError,
};
pub use query_vars::{
    Piece, QueryVar, VarError, check_compare_query, check_query, check_text, parse_template,
};
pub use spec::{Analysis, DriftPolicy, PreChecksSpec, RollbackSpec, Rollout, RolloutSpec, Stage};
pub use stage_label::{stage_label, stage_number};
pub use status::{
    CHECKPOINT_HISTORY_LIMIT, Checkpoint, CheckpointVerdict, CompareArm, CompareStatus, GateStatus,
    GateVerdict, HISTORY_LIMIT, HistoryEntry, HistoryKind, Phase, REASON_FORBIDDEN, RolloutStatus,
};
pub use target::{ConfigMapTarget, FlagdTarget, Target, TargetKind, WebhookTarget};
pub use validate::{SpecError, validate_spec};

/// The API group of every rollgate resource.
pub const GROUP: &str = "rollgate.dev";
