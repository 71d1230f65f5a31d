//! Notifications: tells people and systems about a rollout's transitions (start, advance,
//! pause, resume, drift, rollback, complete) through generic JSON webhooks and
//! Slack-compatible incoming webhooks.
//!
//! Endpoints come from a Rollout's `spec.notifications` (URLs read from Secrets, see
//! [`endpoints_from_spec`]) and from the controller's flags (`--notify-webhook URL`,
//! `--notify-slack URL`, see [`Endpoint::from_flag`]). The [`Notifier`] sends one
//! [`Notification`] to many endpoints at once, each under a timeout, redirects off, and
//! never twice (see its deduplication rules).

mod dedupe;
mod endpoint;
mod message;
mod notifier;
mod resolve;

pub use endpoint::{Endpoint, EndpointError, EndpointKind};
pub use message::Notification;
pub use notifier::{Delivery, Notifier, NotifierSettings, Outcome};
pub use resolve::endpoints_from_spec;
