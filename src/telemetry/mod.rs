//! The controller's and the command line's own telemetry: logs, and (for the controller)
//! metrics and health endpoints.

mod logging;
pub mod metrics;
pub mod server;

pub use logging::{LogFormat, init_logging};
pub use metrics::Metrics;
pub use server::{Readiness, Role, Servers};
