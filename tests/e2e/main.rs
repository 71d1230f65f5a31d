//! End to end: the controller binary against the stand-in API server and a real Prometheus (and a real cluster when one is named).
//!
//! One test crate per area (docs/development.md, "Tests"): each file here was its own test
//! binary and is now a module of this one.

#[path = "../support/mod.rs"]
mod support;

mod controller_memory;
mod e2e_apiserver;
mod e2e_compare;
mod e2e_controller;
mod e2e_identity;
mod e2e_ownership;
mod kind_cluster;
