//! The command line: offline commands, operator commands against a verifier, the kubectl plugin, `report`.
//!
//! One test crate per area (docs/development.md, "Tests"): each file here was its own test
//! binary and is now a module of this one.

#[path = "../support/mod.rs"]
mod support;

mod cli_offline;
mod cli_ops;
mod cli_plugin;
mod report_backtest;
mod report_cli;
mod report_live;
mod report_simulate;
