//! The targets: flagd (and its bucketing, checked by the real evaluator), ConfigMap keys, FeatureFlags, webhooks.
//!
//! One test crate per area (docs/development.md, "Tests"): each file here was its own test
//! binary and is now a module of this one.

#[path = "../support/mod.rs"]
mod support;

mod flagd_bucketing;
mod targets_flagd;
mod targets_flagd_eval;
mod targets_kube;
mod targets_parsers;
mod targets_webhook;
