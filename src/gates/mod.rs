//! Gate providers: each turns a gate's spec into one [`Observation`](crate::engine::Observation)
//! at an instant — a value, no data, or an error that tells an operator what to fix. They never
//! decide; the engine does.

pub mod alerts;
pub mod cbor;
pub mod flagd_bucketing;
pub mod http;
pub mod http_util;
pub mod ofrep;
pub mod ofrep_checks;
pub mod ofrep_client;
pub mod ofrep_memory;
pub mod ofrep_sample;
pub mod prometheus;
pub mod vars;

use k8s_openapi::jiff::Timestamp;

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
    pub percent: u8,
    /// The instant the observation is for: now for live checks, a past checkpoint in backtests.
    pub at: Timestamp,
}
