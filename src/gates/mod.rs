//! Gate providers: each turns a gate's spec into one [`Observation`](crate::engine::Observation)
//! at an instant — a value, no data, or an error that tells an operator what to fix. They never
//! decide; the engine does.
//!
//! [`observe`] and [`observe_all`] are the one entry point: the controller, `backtest` and the
//! pre-checks hand them a gate and get its observation back. One folder per provider
//! ([`prometheus`], [`alerts`], [`ofrep`], [`http`]); [`crate::net`] holds what they share with
//! webhook targets and notifications about the network (the operator's address policy, bounded
//! reads), and [`crate::text`] makes remote text safe to store.

pub mod alerts;
pub mod compare;
pub mod http;
pub mod observe;
pub mod ofrep;
pub mod prometheus;
pub mod query;
pub mod secret;

pub use observe::{
    GateEnv, GateEnvError, GateInput, GateOutput, alert_rules_problem, observe, observe_all,
};
pub use secret::{Secret, SecretData};

use k8s_openapi::jiff::Timestamp;

use crate::api::Percent;

/// What a provider may know about the rollout it observes for.
#[derive(Clone, Copy, Debug)]
pub struct GateContext<'a> {
    /// The Rollout's name (`{{rollout}}` in queries).
    pub rollout: &'a str,
    /// The Rollout's namespace (`{{namespace}}`).
    pub namespace: &'a str,
    /// The flag the target rolls out, when it names one (`{{flag}}`).
    pub flag: Option<&'a str>,
    /// Targeting keys that must always get the flag.
    pub allowlist: &'a [String],
    /// Index of the current stage (`{{stage}}`).
    pub stage: u32,
    /// The percent currently expected on the target (`{{percent}}`).
    pub percent: Percent,
    /// The instant the observation is for: now for live checks, a past checkpoint in backtests.
    pub at: Timestamp,
}
