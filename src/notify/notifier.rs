//! Sends a notification to its endpoints: at once, each under a timeout, never twice.
//!
//! # Deduplication: at most once per process
//!
//! Before sending, the notifier claims the key (the transition's [`Notification::key`] plus
//! the endpoint's label) in a bounded in-memory set (the most recent
//! [`NotifierSettings::dedupe_capacity`] keys). A retried reconcile that announces the same
//! transition again finds the key taken and sends nothing; so do two reconciles racing. A
//! failed send is not retried by a later reconcile either: the key stays claimed. Within one
//! call, a send that could not even connect is tried once more (nothing reached the
//! endpoint, so this cannot duplicate); a timeout or an error answer is not retried, since
//! the endpoint may have acted on it.
//!
//! Across restarts the set is empty, and we chose not to persist it: a notification is
//! informational (the status history is the record), and a durable at-least-once scheme
//! would cost a status write per delivery. What a restart can therefore do: a transition
//! the controller decided but crashed before recording in status is decided again after the
//! restart, at a new time, so its endpoints may hear of it twice (at-least-once in that
//! window); a notification in flight when the process died is lost (at-most-once there).
//! The controller keeps both windows small by notifying right after the status write that
//! records the transition.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use tracing::{debug, warn};

use super::dedupe::Dedupe;
use super::endpoint::{Endpoint, EndpointKind};
use super::message::Notification;
use crate::net::{GuardedClient, describe};

/// How the notifier sends.
#[derive(Clone, Debug)]
pub struct NotifierSettings {
    /// Time allowed for one request, connection included (default 5 s).
    pub timeout: Duration,
    /// How many sent keys are remembered (default 10,000).
    pub dedupe_capacity: usize,
    /// Endpoints every notification goes to, besides the rollout's own: the controller's
    /// `--notify-webhook` and `--notify-slack` flags.
    pub global: Vec<Endpoint>,
    /// A PEM CA bundle trusted besides the system's and the built-in roots (`--ca-file`).
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        NotifierSettings {
            timeout: Duration::from_secs(5),
            dedupe_capacity: 10_000,
            global: Vec::new(),
            extra_ca_pem: None,
        }
    }
}

/// What happened at one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered 2xx.
    Sent,
    /// The endpoint's `when` filter leaves this transition out.
    Filtered,
    /// This transition was already sent (or attempted) to this endpoint.
    Duplicate,
    /// The send failed: the reason, without the URL.
    Failed(String),
}

impl Outcome {
    /// `sent`, `filtered`, `duplicate` or `failed`, for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Filtered => "filtered",
            Outcome::Duplicate => "duplicate",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// The outcome at one endpoint, named by its label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The endpoint's label (`spec.notifications[0].slack`, `--notify-webhook #1`).
    pub endpoint: String,
    /// What happened.
    pub outcome: Outcome,
}

/// Sends notifications. Share one per controller (it holds the connection pool and the
/// deduplication set).
pub struct Notifier {
    http: reqwest::Client,
    guard: Option<GuardedClient>,
    global: Vec<Endpoint>,
    sent: Mutex<Dedupe>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("global", &self.global)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier with its own HTTP client: redirects off, `settings.timeout` per request.
    pub fn new(settings: NotifierSettings) -> Result<Notifier, reqwest::Error> {
        let http = crate::net::with_extra_roots(
            reqwest::Client::builder(),
            settings.extra_ca_pem.as_deref(),
        )
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .user_agent(concat!("rollgate/", env!("CARGO_PKG_VERSION")))
        .build()?;
        Ok(Notifier::with_client(http, settings))
    }

    /// A notifier on a client the caller built (for example one that checks addresses against
    /// the operator's allowlist). The client must not follow redirects and should time out.
    pub fn with_client(http: reqwest::Client, settings: NotifierSettings) -> Notifier {
        Notifier {
            http,
            guard: None,
            global: settings.global,
            sent: Mutex::new(Dedupe::new(settings.dedupe_capacity)),
        }
    }

    /// Restricts the endpoints Rollout authors name (from `spec.notifications`) to the
    /// addresses the operator allows for the Rollout's namespace: each URL passes the guard's
    /// policy first ([`AddressPolicy::admit`](crate::net::AddressPolicy::admit)), travels over
    /// plain `http://` only when the policy allows insecure credentials (the URL came from a
    /// Secret, and is one), and is sent with the guard's client, which enforces the same
    /// policy after DNS resolution and follows no redirect. The operator's own endpoints
    /// (controller flags) are exempt. Without a guard, every endpoint is sent with the
    /// notifier's plain client.
    pub fn with_address_guard(mut self, guard: GuardedClient) -> Notifier {
        self.guard = Some(guard);
        self
    }

    /// Sends `event` to `endpoints` and to the global endpoints, all at once, and reports
    /// each endpoint's outcome in that order. A slow or failing endpoint delays the others by
    /// nothing and the call by at most the timeout (twice for a refused connection).
    pub async fn notify(&self, event: &Notification, endpoints: &[Endpoint]) -> Vec<Delivery> {
        let key = event.key();
        let sends = endpoints
            .iter()
            .chain(&self.global)
            .map(|endpoint| self.deliver(event, &key, endpoint));
        join_all(sends).await
    }

    async fn deliver(&self, event: &Notification, key: &str, endpoint: &Endpoint) -> Delivery {
        let outcome = if !endpoint.wants(event.kind) {
            Outcome::Filtered
        } else if !self.claim(format!("{key}|{}", endpoint.label())) {
            Outcome::Duplicate
        } else {
            self.send(event, endpoint).await
        };
        match &outcome {
            Outcome::Failed(why) => warn!(
                namespace = %event.namespace, rollout = %event.name, event = event.kind.as_str(),
                endpoint = endpoint.label(), error = %why, "notification failed"
            ),
            other => debug!(
                namespace = %event.namespace, rollout = %event.name, event = event.kind.as_str(),
                endpoint = endpoint.label(), outcome = other.as_str(), "notification"
            ),
        }
        Delivery {
            endpoint: endpoint.label().to_owned(),
            outcome,
        }
    }

    /// Forgets what was sent for the Rollout with this uid (it was deleted), so its memory
    /// does not outlive it.
    pub fn forget(&self, uid: &str) {
        if uid.is_empty() {
            return;
        }
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .forget_prefix(&format!("{uid}/"));
    }

    fn claim(&self, key: String) -> bool {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .claim(key)
    }

    async fn send(&self, event: &Notification, endpoint: &Endpoint) -> Outcome {
        let body = match endpoint.kind() {
            EndpointKind::Webhook => event.webhook_body(),
            EndpointKind::Slack => event.slack_body(),
        }
        .to_string();
        let (http, url) = match (&self.guard, endpoint.is_operator()) {
            (Some(guard), false) => {
                let url = match guard.admit(endpoint.url(), Some(&event.namespace)) {
                    Ok(url) => url,
                    Err(why) => return Outcome::Failed(format!("refused: {why}")),
                };
                if let Err(why) = guard
                    .policy()
                    .check_credentials(&url, "notification URLs (read from a Secret)")
                {
                    return Outcome::Failed(format!("refused: {why}"));
                }
                (guard.http(), url)
            }
            _ => (&self.http, endpoint.url().clone()),
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let result = http
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            return match result {
                Ok(response) if response.status().is_success() => Outcome::Sent,
                Ok(response) if response.status().is_redirection() => Outcome::Failed(format!(
                    "answered {} (redirects are not followed)",
                    response.status().as_u16()
                )),
                Ok(response) => Outcome::Failed(format!("answered {}", response.status().as_u16())),
                Err(error) if error.is_connect() && tries < 2 => continue,
                Err(error) if error.is_timeout() => Outcome::Failed("timed out".to_owned()),
                Err(error) => Outcome::Failed(describe(&error.without_url())),
            };
        }
    }
}
