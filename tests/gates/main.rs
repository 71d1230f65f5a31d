//! The gates: Prometheus (real and fake), compare, alerts, OFREP, HTTP checks, their parsers and their transport security.
//!
//! One test crate per area (docs/development.md, "Tests"): each file here was its own test
//! binary and is now a module of this one.

#[path = "../support/mod.rs"]
mod support;
#[path = "../support_ofrep/mod.rs"]
mod support_ofrep;

mod compare_prometheus;
mod fake_prometheus;
mod gate_parsers;
mod gate_security;
mod http_gate;
mod ofrep;
mod prometheus_auth;
mod real_prometheus;
