//! The Rollout API: the CRD's schema and CEL rules, Rust validation, and the plan parsers.
//!
//! One test crate per area (docs/development.md, "Tests"): each file here was its own test
//! binary and is now a module of this one.

#[path = "../support/mod.rs"]
mod support;

mod cel;
mod crd;
mod proptest_parsers;
mod validate;
mod validate_gates;
