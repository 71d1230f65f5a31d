//! The controller: reconcile against a verifier, identity, fairness, leader election, notifications, the ops server.
//!
//! One test crate per area (docs/development.md, "Tests"): each file here was its own test
//! binary and is now a module of this one.

#[path = "../support/mod.rs"]
mod support;

mod api_verifier;
mod controller_flags;
mod controller_identity;
mod controller_reconcile;
mod fairness;
mod ops_leader;
mod ops_notify;
mod ops_server;
