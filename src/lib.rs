//! rollgate: progressive delivery for feature flags and configuration, as a Kubernetes
//! controller. The [`engine`] decides; everything else observes, writes and reports.

pub mod api;
pub mod backtest;
pub mod controller;
pub mod engine;
pub mod gates;
pub mod lint;
pub mod net;
pub mod notify;
pub mod report;
pub mod sim;
pub mod targets;
pub mod telemetry;
pub mod text;
