//! The `Rollout` custom resource: its spec, its status and the rules that validate it.

mod crd;
mod gate;
mod spec;
mod status;
mod target;
mod validate;

pub use crd::crd_yaml;
pub use gate::{
    AlertsGate, FlagdBucketing, Gate, HttpGate, HttpMethod, OfrepGate, PrometheusGate, Provider,
};
pub use spec::{Analysis, DriftPolicy, RollbackSpec, Rollout, RolloutSpec, Stage};
pub use status::{
    Checkpoint, CheckpointVerdict, GateStatus, GateVerdict, HistoryEntry, HistoryKind, Phase,
    RolloutStatus, HISTORY_LIMIT,
};
pub use target::{ConfigMapTarget, FlagdTarget, Target, TargetKind, WebhookTarget};
pub use validate::{validate_spec, SpecError};

/// The API group of every rollgate resource.
pub const GROUP: &str = "rollgate.dev";
