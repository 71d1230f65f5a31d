//! `rollgate controller`: carries Rollouts out in a cluster. A kube-runtime `Controller` runs
//! [`reconcile`] for each Rollout; the engine decides, this module reads, writes and reports.
//!
//! One reconcile is a pipeline (see `reconcile.rs`): triage (deleted, not leading, stale) →
//! the parked routine status, if any → claim an action → gather (async reads: the live
//! percent, the owner claim and pre-checks while not started, the gates when a checkpoint is
//! due) → plan (pure, `plan.rs`: `engine::decide` and what to write) → fenced writes: status,
//! then target → annotation clean-up → Events → requeue at the next checkpoint. Routine
//! status writes the API budget cannot take at once are parked and folded (`parked.rs`).

mod action;
mod budget;
mod context;
mod deleted;
mod events;
mod fence;
mod finished;
pub mod identity;
pub mod leader;
mod notifications;
mod observe;
mod ownership;
mod parked;
mod plan;
mod prechecks;
mod reconcile;
mod recorder;
mod run;
mod slots;
mod status;
mod target;
mod trigger;

pub use action::{ACTION_ANNOTATION, CLAIMED_ANNOTATION};
pub use budget::{ApiBudget, Priority};
pub use context::{
    AlwaysLeader, Clock, Context, DEFAULT_PENDING_BACKOFF, DEFAULT_RECONCILE_TIMEOUT, LeaderCheck,
    SystemClock,
};
pub use fence::{WRITE_TIMEOUT, target_timeout};
pub use identity::{Denial, Identities, ServiceAccount};
pub use observe::{GateObserver, GateReading, ProviderObserver, reading};
pub use ownership::{OWNER_ANNOTATION_PREFIX, TARGET_OWNED, owner_annotation, owner_value};
pub use reconcile::{ReconcileError, error_policy, reconcile};
pub use recorder::Recorder;
pub use run::{ControllerConfig, feature_flags_installed, run};
pub use slots::{Permit, Slots};

pub use target::{KubeTargets, TargetIo};

/// The field manager of every write the controller makes.
pub const FIELD_MANAGER: &str = "rollgate";
