//! What every reconcile shares: the API client, the event recorder, the clock, the gate
//! observer, the target reader/writer, leadership and the memory of the controller's own
//! writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::Store;

use super::budget::ApiBudget;
use super::identity::Identities;
use super::observe::GateObserver;
use super::recorder::Recorder;
use super::slots::Slots;
use super::target::TargetIo;
use crate::api::{Percent, Rollout};
use crate::notify::Notifier;
use crate::telemetry::Metrics;

/// Where the controller reads the time; tests inject a fixed one.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Whether this replica may write: the confirmed holder of the leader lease, or the only
/// replica when leader election is off.
pub trait LeaderCheck: Send + Sync {
    /// True while this replica may write.
    fn is_leader(&self) -> bool;

    /// True while this replica may write and will still hold the Lease `margin` from now
    /// without renewing it: the fence before a write whose request may take `margin`.
    /// Checks without a lease expiry (tests, no election) answer [`is_leader`](Self::is_leader).
    fn held_for(&self, margin: std::time::Duration) -> bool {
        let _ = margin;
        self.is_leader()
    }
}

/// Leadership when leader election is off: always the leader.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysLeader;

impl LeaderCheck for AlwaysLeader {
    fn is_leader(&self) -> bool {
        true
    }
}

impl LeaderCheck for super::leader::Leadership {
    fn is_leader(&self) -> bool {
        super::leader::Leadership::is_leader(self)
    }

    fn held_for(&self, margin: std::time::Duration) -> bool {
        super::leader::Leadership::held_for(self, margin)
    }
}

/// The deadline of one whole reconcile, unless `--reconcile-timeout` says otherwise.
pub const DEFAULT_RECONCILE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(45);

/// The first wait of a Pending rollout's backoff (doubling up to 5 minutes), unless the hidden
/// `--pending-backoff-base` says otherwise.
pub const DEFAULT_PENDING_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

/// What one reconcile needs besides the Rollout.
pub struct Context {
    /// The API client.
    pub client: kube::Client,
    /// The one shared event recorder.
    pub recorder: Recorder,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Turns gates into observations.
    pub observer: Arc<dyn GateObserver>,
    /// Reads and writes targets.
    pub targets: Arc<dyn TargetIo>,
    /// Whether this replica may write.
    pub leader: Arc<dyn LeaderCheck>,
    /// The controller's own metrics, when served.
    pub metrics: Option<Metrics>,
    /// Sends transition notifications, when any endpoint may be configured.
    pub notifier: Option<Arc<Notifier>>,
    /// The identities Rollouts act as (their ServiceAccounts), and the refusals they met.
    pub identities: Arc<Identities>,
    /// The API budget every write draws from (transitions first).
    pub budget: ApiBudget,
    /// The reconcile slots, shared fairly across namespaces.
    pub slots: Slots,
    /// The deadline of one whole reconcile; past it the reconcile is abandoned.
    pub reconcile_timeout: std::time::Duration,
    /// The first wait of a Pending rollout's backoff.
    pub pending_backoff: std::time::Duration,
    /// The controller's own writes, so a stale cache is never acted on.
    pub(super) memory: Mutex<WriteMemory>,
    /// The Rollout watch cache, where the owner a target's claim names is looked up.
    pub(super) rollouts: Option<Store<Rollout>>,
}

impl Context {
    /// A context from its parts.
    pub fn new(
        client: kube::Client,
        recorder: Recorder,
        clock: Arc<dyn Clock>,
        observer: Arc<dyn GateObserver>,
        targets: Arc<dyn TargetIo>,
        leader: Arc<dyn LeaderCheck>,
    ) -> Self {
        let identities = Arc::new(Identities::new(client.clone()));
        Self {
            client,
            recorder,
            clock,
            observer,
            targets,
            leader,
            metrics: None,
            notifier: None,
            identities,
            budget: ApiBudget::unlimited(),
            slots: Slots::unshared(usize::MAX),
            reconcile_timeout: DEFAULT_RECONCILE_TIMEOUT,
            pending_backoff: DEFAULT_PENDING_BACKOFF,
            memory: Mutex::new(WriteMemory::default()),
            rollouts: None,
        }
    }

    /// This context, looking up the owners that targets' claims name in `rollouts` (the
    /// controller's Rollout watch cache). Without it, every claim by another Rollout counts as
    /// held.
    pub fn with_rollouts(mut self, rollouts: Store<Rollout>) -> Self {
        self.rollouts = Some(rollouts);
        self
    }

    /// This context, drawing every write from `budget` (shared by every scope).
    pub fn with_budget(mut self, budget: ApiBudget) -> Self {
        self.budget = budget;
        self
    }

    /// This context, taking each reconcile's slot from `slots` (shared by every scope).
    pub fn with_slots(mut self, slots: Slots) -> Self {
        self.slots = slots;
        self
    }

    /// This context, abandoning a reconcile that runs longer than `timeout`.
    pub fn with_reconcile_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.reconcile_timeout = timeout;
        self
    }

    /// This context, retrying a Pending rollout after `base`, doubling up to 5 minutes.
    pub fn with_pending_backoff(mut self, base: std::time::Duration) -> Self {
        self.pending_backoff = base;
        self
    }

    /// This context, recording into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// This context, announcing transitions through `notifier`.
    pub fn with_notifier(mut self, notifier: Arc<Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// This context, acting for Rollouts as `identities` says (the same ones its targets and
    /// gate observer use, so the refusals they meet reach the reconcile).
    pub fn with_identities(mut self, identities: Arc<Identities>) -> Self {
        self.identities = identities;
        self
    }

    /// Whether this watch event of `rollout` should start a reconcile (see `trigger.rs`): not
    /// the echo of this controller's own status write.
    pub(super) fn should_reconcile(&self, rollout: &crate::api::Rollout) -> bool {
        let key = (
            super::target::namespace_of(rollout),
            rollout.metadata.name.clone().unwrap_or_default(),
        );
        self.memory().triggers.should_reconcile(&key, rollout)
    }

    pub(super) fn memory(&self) -> std::sync::MutexGuard<'_, WriteMemory> {
        // A poisoned lock only means another reconcile panicked; the map itself is sound.
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The key of a Rollout: namespace and name.
pub(super) type RolloutKey = (String, String);

/// The controller's own writes, remembered per Rollout.
#[derive(Debug, Default)]
pub(super) struct WriteMemory {
    /// The resourceVersion of the last status this controller wrote.
    status_versions: HashMap<RolloutKey, String>,
    /// The percent this controller confirmed on the target (written, or read back), per
    /// Rollout uid.
    confirmed: HashMap<String, Percent>,
    /// Reconciles in a row that left the Rollout Pending, for the pre-checks' backoff.
    pending: HashMap<RolloutKey, u32>,
    /// Reconciles in a row that failed (a timeout, a write the API refused), for the error
    /// policy's backoff.
    failures: HashMap<RolloutKey, u32>,
    /// Which watch events start a reconcile.
    pub(super) triggers: super::trigger::Triggers,
    /// Routine status writes parked under the API budget (see `parked.rs`).
    pub(super) parked: super::parked::Parked,
}

impl WriteMemory {
    /// Remembers the resourceVersion a status write returned.
    pub(super) fn wrote_status(&mut self, key: RolloutKey, version: Option<String>) {
        match version {
            Some(v) => self.status_versions.insert(key, v),
            None => self.status_versions.remove(&key),
        };
    }

    /// Whether `version` (of a cached Rollout) is older than the last status written.
    /// resourceVersions are compared as numbers when both are; otherwise nothing is stale.
    pub(super) fn is_stale(&self, key: &RolloutKey, version: Option<&str>) -> bool {
        let (Some(written), Some(seen)) = (self.status_versions.get(key), version) else {
            return false;
        };
        match (written.parse::<u64>(), seen.parse::<u64>()) {
            (Ok(written), Ok(seen)) => seen < written,
            _ => false,
        }
    }

    /// Remembers that the target holds `percent` for the rollout with this uid.
    pub(super) fn confirm(&mut self, uid: &str, percent: Percent) {
        self.confirmed.insert(uid.to_owned(), percent);
    }

    /// Whether the target was seen or made to hold `percent` for this uid.
    pub(super) fn confirmed(&self, uid: &str, percent: Percent) -> bool {
        self.confirmed.get(uid) == Some(&percent)
    }

    /// Counts one more Pending reconcile; returns how many came before it.
    pub(super) fn pending_attempt(&mut self, key: &RolloutKey) -> u32 {
        let count = self.pending.entry(key.clone()).or_default();
        let before = *count;
        *count = count.saturating_add(1);
        before
    }

    /// Resets the Pending count once the rollout has started.
    pub(super) fn clear_pending(&mut self, key: &RolloutKey) {
        self.pending.remove(key);
    }

    /// The Rollouts (namespace and name) this memory knows of.
    pub(super) fn keys(&self) -> Vec<RolloutKey> {
        let mut keys: Vec<RolloutKey> = self
            .status_versions
            .keys()
            .chain(self.pending.keys())
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Keeps only the confirmations of these uids.
    pub(super) fn retain_uids(&mut self, keep: impl Fn(&str) -> bool) {
        self.confirmed.retain(|uid, _| keep(uid));
    }

    /// Counts one more failed reconcile; returns how many came before it.
    pub(super) fn failed_attempt(&mut self, key: &RolloutKey) -> u32 {
        let count = self.failures.entry(key.clone()).or_default();
        let before = *count;
        *count = count.saturating_add(1);
        before
    }

    /// Resets the failure count after a reconcile that succeeded.
    pub(super) fn clear_failures(&mut self, key: &RolloutKey) {
        self.failures.remove(key);
    }

    /// Forgets a deleted Rollout.
    pub(super) fn forget(&mut self, key: &RolloutKey, uid: Option<&str>) {
        self.status_versions.remove(key);
        self.pending.remove(key);
        self.failures.remove(key);
        self.triggers.forget(key);
        self.parked.forget(key);
        if let Some(uid) = uid {
            self.confirmed.remove(uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RolloutKey {
        ("ns".to_owned(), "r".to_owned())
    }

    #[test]
    fn a_cache_older_than_the_last_status_write_is_stale() {
        let mut memory = WriteMemory::default();
        assert!(!memory.is_stale(&key(), Some("5")));
        memory.wrote_status(key(), Some("10".to_owned()));
        assert!(memory.is_stale(&key(), Some("9")));
        assert!(!memory.is_stale(&key(), Some("10")));
        assert!(!memory.is_stale(&key(), Some("11")));
        assert!(!memory.is_stale(&key(), Some("opaque")));
        memory.forget(&key(), None);
        assert!(!memory.is_stale(&key(), Some("9")));
    }

    #[test]
    fn confirmation_is_per_uid_and_percent() {
        let mut memory = WriteMemory::default();
        memory.confirm("u1", Percent::whole(5));
        assert!(memory.confirmed("u1", Percent::whole(5)));
        assert!(!memory.confirmed("u1", Percent::whole(10)));
        assert!(!memory.confirmed("u2", Percent::whole(5)));
    }
}
