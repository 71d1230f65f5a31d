//! The decision engine (pure, driven directly), `simulate` and `backtest`.
//!
//! One test crate per area (docs/development.md, "Tests"): each file here was its own test
//! binary and is now a module of this one.

#[path = "../support/mod.rs"]
mod support;

mod backtest;
mod engine;
mod simulate;
