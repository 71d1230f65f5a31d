//! Tenant identity (DESIGN §8, the Flux model): a Rollout's author gains nothing through the
//! controller that their ServiceAccount lacks.
//!
//! A Rollout acts as `spec.serviceAccountName`, or as the controller's
//! `--default-service-account` of its own namespace (lockdown), or, with neither, as the
//! controller itself (one team per cluster). Acting as a ServiceAccount means that every Secret
//! read, every read of the target's content and every target write (the pre-check's dry run
//! too) goes through a client that sends `Impersonate-User:
//! system:serviceaccount:<namespace>:<name>` and nothing else (no `Impersonate-Group`: the API
//! server adds the ServiceAccount's groups itself). The watches and caches, the Rollout's
//! status, annotations and Events, and the Lease keep the controller's own identity.
//!
//! Impersonating clients are made on demand, one per ServiceAccount, and dropped after
//! [`IDLE`] unused. Each sends its requests through the controller's own client, so they share
//! its connection pool, credentials and any limit on its requests; only the header differs.
//!
//! A 403 answered to a call made as a ServiceAccount is remembered per Rollout as a
//! [`Denial`] naming the ServiceAccount, verb, resource and name; the reconcile takes it and
//! gives it to the engine, which keeps a Pending rollout Pending or pauses a running one with
//! reason `Forbidden`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::HeaderValue;
use http::header::HeaderName;

use super::context::RolloutKey;
use crate::api::Rollout;
use crate::targets::TargetError;

/// How long an impersonating client is kept after its last use.
pub const IDLE: Duration = Duration::from_secs(600);

/// The header that names the impersonated user.
pub const IMPERSONATE_USER: HeaderName = HeaderName::from_static("impersonate-user");

/// A ServiceAccount a Rollout acts as: always in the Rollout's own namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceAccount {
    /// The Rollout's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub name: String,
}

impl ServiceAccount {
    /// The user name the API server gives this ServiceAccount's tokens, the one impersonated.
    pub fn user(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

impl fmt::Display for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why no client acting as a ServiceAccount could be made.
#[derive(Debug, thiserror::Error)]
#[error("spec.serviceAccountName {name:?} cannot be impersonated: not a valid header value")]
pub struct IdentityError {
    /// The ServiceAccount's name.
    pub name: String,
}

/// A refusal of the API server to a call made as a ServiceAccount, or to the controller acting
/// as it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// Who was refused.
    pub account: ServiceAccount,
    /// The verb refused (`get`, `patch`, `impersonate`).
    pub verb: String,
    /// The resource and name, as the API server says them: `configmaps "feature-flags"`.
    pub subject: String,
    /// The controller itself may not impersonate the ServiceAccount.
    pub impersonation: bool,
}

impl Denial {
    /// The denial behind a 403 whose Status message is `message`, for a call of `verb` made
    /// as `account`. The API server's message begins with the resource and name
    /// (`configmaps "feature-flags" is forbidden: User "…" cannot patch resource …`); a
    /// refused impersonation says `cannot impersonate`.
    pub fn from_message(account: &ServiceAccount, verb: &str, message: &str) -> Self {
        let impersonation = message.contains("cannot impersonate");
        let subject = message
            .split_once(" is forbidden")
            .map(|(subject, _)| subject.trim())
            .filter(|s| !s.is_empty() && s.len() <= 300)
            .unwrap_or_default()
            .to_owned();
        Self {
            account: account.clone(),
            verb: if impersonation {
                "impersonate".to_owned()
            } else {
                verb.to_owned()
            },
            subject,
            impersonation,
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.impersonation {
            return write!(
                f,
                "the controller may not impersonate ServiceAccount {} (grant it impersonate on \
                 serviceaccounts)",
                self.account
            );
        }
        write!(f, "ServiceAccount {} may not {}", self.account, self.verb)?;
        if !self.subject.is_empty() {
            write!(f, " {}", self.subject)?;
        }
        Ok(())
    }
}

/// The impersonating clients made so far, each with its last use, and when idle ones were
/// last dropped.
struct Clients {
    by_account: HashMap<ServiceAccount, (kube::Client, Instant)>,
    swept: Instant,
}

/// The identities Rollouts act as: the controller's own client, the impersonating clients
/// made so far, and the latest denial per Rollout.
pub struct Identities {
    base: kube::Client,
    default_account: Option<String>,
    idle: Duration,
    clients: Mutex<Clients>,
    denials: Mutex<HashMap<RolloutKey, Denial>>,
}

impl Identities {
    /// Rollouts without `spec.serviceAccountName` act as the controller (`base`).
    pub fn new(base: kube::Client) -> Self {
        Self {
            base,
            default_account: None,
            idle: IDLE,
            clients: Mutex::new(Clients {
                by_account: HashMap::new(),
                swept: Instant::now(),
            }),
            denials: Mutex::new(HashMap::new()),
        }
    }

    /// Rollouts without `spec.serviceAccountName` act as this ServiceAccount of their own
    /// namespace (`--default-service-account`, lockdown); `None` keeps the controller's.
    pub fn with_default_account(mut self, name: Option<String>) -> Self {
        self.default_account = name.filter(|n| !n.is_empty());
        self
    }

    /// Impersonating clients unused for `idle` are dropped.
    pub fn with_idle(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// The controller's own client.
    pub fn controller(&self) -> &kube::Client {
        &self.base
    }

    /// The ServiceAccount `rollout` acts as, when not the controller.
    pub fn account_of(&self, rollout: &Rollout) -> Option<ServiceAccount> {
        let name = rollout
            .spec
            .service_account_name
            .as_ref()
            .or(self.default_account.as_ref())?;
        Some(ServiceAccount {
            namespace: rollout
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            name: name.clone(),
        })
    }

    /// The client for `rollout`'s Secret reads and target reads and writes: impersonating its
    /// ServiceAccount, or the controller's own when it has none.
    pub fn client_for(&self, rollout: &Rollout) -> Result<kube::Client, IdentityError> {
        match self.account_of(rollout) {
            Some(account) => self.impersonating(&account),
            None => Ok(self.base.clone()),
        }
    }

    /// The client acting as `account`, made on first use and kept while used.
    pub fn impersonating(&self, account: &ServiceAccount) -> Result<kube::Client, IdentityError> {
        let now = Instant::now();
        let mut clients = lock(&self.clients);
        let idle = self.idle;
        // Idle clients are dropped at most every quarter of the idle time, not at every use.
        if now.saturating_duration_since(clients.swept) >= idle / 4 {
            clients
                .by_account
                .retain(|_, (_, used)| now.saturating_duration_since(*used) < idle);
            clients.swept = now;
        }
        if let Some((client, used)) = clients.by_account.get_mut(account) {
            *used = now;
            return Ok(client.clone());
        }
        let client = impersonating_client(&self.base, account)?;
        clients
            .by_account
            .insert(account.clone(), (client.clone(), now));
        Ok(client)
    }

    /// How many impersonating clients are kept.
    pub fn cached_clients(&self) -> usize {
        lock(&self.clients).by_account.len()
    }

    /// Remembers a 403 answered to a call of `verb` made for `rollout` (as its ServiceAccount;
    /// refusals to the controller's own identity are not tenants' and are not remembered).
    pub fn record(&self, rollout: &Rollout, verb: &str, error: &kube::Error) {
        if let kube::Error::Api(status) = error
            && status.code == 403
        {
            self.record_message(rollout, verb, &status.message);
        }
    }

    /// [`Identities::record`] for a target's error.
    pub fn record_target(&self, rollout: &Rollout, error: &TargetError) {
        if let TargetError::Forbidden { verb, message, .. } = error {
            self.record_message(rollout, verb, message);
        }
    }

    fn record_message(&self, rollout: &Rollout, verb: &str, message: &str) {
        let Some(account) = self.account_of(rollout) else {
            return;
        };
        let denial = Denial::from_message(&account, verb, message);
        tracing::warn!(%denial, "the API server refused a call made as the rollout's ServiceAccount");
        let mut denials = lock(&self.denials);
        // The first refusal of a reconcile is the one to report; an impersonation refusal
        // explains every other.
        match denials.get(&key_of(rollout)) {
            Some(kept) if kept.impersonation || !denial.impersonation => {}
            _ => {
                denials.insert(key_of(rollout), denial);
            }
        }
    }

    /// The refusal remembered for `rollout` since the last call, if any.
    pub fn take_denial(&self, rollout: &Rollout) -> Option<Denial> {
        lock(&self.denials).remove(&key_of(rollout))
    }

    /// Forgets a deleted Rollout.
    pub fn forget(&self, rollout: &Rollout) {
        lock(&self.denials).remove(&key_of(rollout));
    }
}

fn key_of(rollout: &Rollout) -> RolloutKey {
    (
        rollout
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        rollout.metadata.name.clone().unwrap_or_default(),
    )
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another reconcile panicked; the map itself is sound.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A client that sends every request through `base` with `Impersonate-User` set to
/// `account`'s user (any `Impersonate-*` header a request carried is removed first).
fn impersonating_client(
    base: &kube::Client,
    account: &ServiceAccount,
) -> Result<kube::Client, IdentityError> {
    let user = HeaderValue::from_str(&account.user()).map_err(|_| IdentityError {
        name: account.name.clone(),
    })?;
    let base = base.clone();
    let namespace = account.namespace.clone();
    let service = tower::service_fn(move |mut request: http::Request<kube::client::Body>| {
        let base = base.clone();
        let headers = request.headers_mut();
        for name in ["impersonate-user", "impersonate-group", "impersonate-uid"] {
            headers.remove(name);
        }
        headers.insert(IMPERSONATE_USER, user.clone());
        async move { base.send(request).await }
    });
    Ok(kube::Client::new(service, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> ServiceAccount {
        ServiceAccount {
            namespace: "kaviar".to_owned(),
            name: "deployer".to_owned(),
        }
    }

    #[test]
    fn a_denial_names_the_account_verb_resource_and_name() {
        let message = "configmaps \"feature-flags\" is forbidden: User \
                       \"system:serviceaccount:kaviar:deployer\" cannot patch resource \
                       \"configmaps\" in API group \"\" in the namespace \"kaviar\"";
        let denial = Denial::from_message(&account(), "patch", message);
        assert_eq!(
            denial.to_string(),
            "ServiceAccount kaviar/deployer may not patch configmaps \"feature-flags\""
        );
        assert!(!denial.impersonation);
    }

    #[test]
    fn a_refused_impersonation_says_the_controller_may_not_act_as_the_account() {
        let message = "serviceaccounts \"deployer\" is forbidden: User \
                       \"system:serviceaccount:rollgate:rollgate\" cannot impersonate resource \
                       \"serviceaccounts\" in API group \"\" in the namespace \"kaviar\"";
        let denial = Denial::from_message(&account(), "get", message);
        assert!(denial.impersonation);
        assert_eq!(denial.verb, "impersonate");
        assert!(
            denial
                .to_string()
                .starts_with("the controller may not impersonate ServiceAccount kaviar/deployer"),
            "{denial}"
        );
    }

    #[test]
    fn a_message_without_a_subject_still_names_account_and_verb() {
        let denial = Denial::from_message(&account(), "get", "forbidden");
        assert_eq!(
            denial.to_string(),
            "ServiceAccount kaviar/deployer may not get"
        );
    }
}
