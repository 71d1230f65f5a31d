//! Routine status writes folded under the API budget (docs/design.md §6).
//!
//! A routine checkpoint's status write (no transition, no target write, no action) that finds
//! no token free at once is *parked* here, one entry per Rollout, instead of waiting: a newer
//! routine status of the same Rollout replaces the parked one and keeps its place in the queue
//! (the fold — the replaced status is never written, the newer one includes every counter it
//! had, since it was decided from it). The reconcile of a Rollout with a parked status decides
//! from that status, not from the older cached one, so no checkpoint is re-run and no counter
//! is lost; a transition's status write for that Rollout supersedes the parked one.
//!
//! A flusher task writes the parked statuses, oldest parked first, whenever a routine token is
//! free (transitions still come first): a parked status reaches the API after at most the
//! statuses parked before it divided by the qps left by transitions — at most the number of
//! parked Rollouts ÷ `--kube-api-qps` while transitions do not take the whole budget. At
//! shutdown, what is parked is written before the Lease is released, for up to
//! [`SHUTDOWN_FLUSH`]; a status still parked after that is lost, and the next leader re-runs
//! that Rollout's latest checkpoint from the status in the API (never a transition: those are
//! never parked).
//!
//! A parked status is only valid over the API status it was decided from (its digest is kept):
//! when the API's status changed under it (someone else wrote it, another leader), the parked
//! one is dropped and the reconcile decides from the API's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::budget::Priority;
use super::context::{Context, RolloutKey};
use super::fence;
use super::status;
use super::trigger::status_digest;
use crate::api::{Rollout, RolloutStatus};

/// How long a shutting-down controller keeps writing parked statuses before it releases the
/// Lease.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(10);

/// How often a parked write the API refused is tried again before it is dropped (the next
/// reconcile then decides from the API's status).
const MAX_WRITE_FAILURES: u32 = 3;

/// One parked status.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    /// The status to write.
    pub status: RolloutStatus,
    /// The Rollout's resourceVersion the status was decided on (the write's precondition).
    pub version: Option<String>,
    /// The digest of the API status the first parked status was decided from.
    pub base: u64,
    /// When the oldest status not yet written was parked.
    pub since: Instant,
    /// The place in the queue (kept when a newer status replaces this one).
    seq: u64,
    /// Writes of this entry the API refused.
    failures: u32,
}

/// What [`Parked::take`] found for a Rollout.
#[derive(Debug)]
pub(super) enum Taken {
    /// Nothing parked: decide from the cached status.
    Nothing,
    /// This status is parked: decide from it (and give it back unless it is superseded).
    Entry(Box<Entry>),
    /// The flusher is writing its status right now: come again in a moment.
    Writing,
}

/// The parked statuses of every Rollout, oldest first.
#[derive(Debug, Default)]
pub(super) struct Parked {
    entries: HashMap<RolloutKey, Entry>,
    queue: BTreeMap<u64, RolloutKey>,
    next: u64,
    writing: HashSet<RolloutKey>,
    folded: u64,
    wake: Arc<Notify>,
}

impl Parked {
    /// Parks `status` for `key`, decided on the Rollout at `version`. `earlier` is the parked
    /// entry it was decided from (taken by the reconcile): the new status replaces it (one fold)
    /// and keeps its place and age. `base` is the digest of the API's status when nothing was
    /// parked before.
    pub(super) fn park(
        &mut self,
        key: &RolloutKey,
        status: RolloutStatus,
        version: Option<String>,
        base: u64,
        earlier: Option<Entry>,
        now: Instant,
    ) {
        let (seq, since, base) = match earlier {
            Some(earlier) => {
                self.folded += 1;
                (earlier.seq, earlier.since, earlier.base)
            }
            None => {
                self.next += 1;
                (self.next, now, base)
            }
        };
        if let Some(old) = self.entries.remove(key) {
            // Only the reconcile of this Rollout parks, after taking its entry: this is a
            // leftover; the newer status includes it.
            self.queue.remove(&old.seq);
            self.folded += 1;
        }
        self.queue.insert(seq, key.clone());
        self.entries.insert(
            key.clone(),
            Entry {
                status,
                version,
                base,
                since,
                seq,
                failures: 0,
            },
        );
        self.wake.notify_one();
    }

    /// Takes the status parked for `key`, when it was decided over the API status whose
    /// digest is `api_status` (otherwise it is dropped: someone else changed the status).
    pub(super) fn take(&mut self, key: &RolloutKey, api_status: u64) -> Taken {
        if self.writing.contains(key) {
            return Taken::Writing;
        }
        let Some(entry) = self.entries.remove(key) else {
            return Taken::Nothing;
        };
        self.queue.remove(&entry.seq);
        if entry.base != api_status {
            warn!(
                namespace = %key.0,
                name = %key.1,
                "the status changed in the API under a parked status: deciding from the API's"
            );
            return Taken::Nothing;
        }
        Taken::Entry(Box::new(entry))
    }

    /// Gives an entry back at its place (a reconcile that wrote nothing, a refused write).
    pub(super) fn restore(&mut self, key: &RolloutKey, entry: Entry) {
        if self.entries.contains_key(key) {
            return;
        }
        self.queue.insert(entry.seq, key.clone());
        self.entries.insert(key.clone(), entry);
        self.wake.notify_one();
    }

    /// The oldest parked status, marked as being written until [`written`](Self::written).
    pub(super) fn pop_oldest(&mut self) -> Option<(RolloutKey, Entry)> {
        let (_, key) = self.queue.pop_first()?;
        let entry = self.entries.remove(&key)?;
        self.writing.insert(key.clone());
        Some((key, entry))
    }

    /// The flusher is done with `key`'s write.
    pub(super) fn written(&mut self, key: &RolloutKey) {
        self.writing.remove(key);
    }

    /// Forgets a deleted Rollout's parked status.
    pub(super) fn forget(&mut self, key: &RolloutKey) {
        if let Some(entry) = self.entries.remove(key) {
            self.queue.remove(&entry.seq);
        }
    }

    /// Drops everything parked (this replica no longer leads: the leader's API status rules).
    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.queue.clear();
    }

    /// How many statuses are parked.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// How many routine status writes were folded (replaced before they were written).
    pub(super) fn folded(&self) -> u64 {
        self.folded
    }

    /// The age of the oldest parked status.
    pub(super) fn oldest_age(&self, now: Instant) -> Option<Duration> {
        let (_, key) = self.queue.first_key_value()?;
        self.entries.get(key).map(|e| now.duration_since(e.since))
    }

    fn notify(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }
}

/// Writes parked statuses as routine tokens come free, for as long as the controller runs.
pub(super) async fn flusher(ctx: Arc<Context>) {
    let wake = ctx.memory().parked.notify();
    let mut reported = Instant::now();
    loop {
        if let Some(metrics) = &ctx.metrics {
            let memory = ctx.memory();
            let parked = &memory.parked;
            metrics.set_parked(
                parked.len(),
                parked.oldest_age(Instant::now()),
                parked.folded(),
            );
        }
        if reported.elapsed() >= REPORT_EVERY {
            reported = Instant::now();
            report(&ctx.memory().parked, reported);
        }
        if ctx.memory().parked.len() == 0 {
            // A park notifies; the timeout only bounds a missed wake-up.
            let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
            continue;
        }
        if !ctx.leader.is_leader() {
            ctx.memory().parked.clear();
            continue;
        }
        if !ctx.leader.held_for(fence::WRITE_TIMEOUT) {
            // Leading, but short of lease until the next renewal: a token taken now would
            // buy a write the fence refuses.
            tokio::time::sleep(SHORT_OF_LEASE).await;
            continue;
        }
        ctx.budget.acquire(Priority::Routine).await;
        let popped = ctx.memory().parked.pop_oldest();
        if let Some((key, entry)) = popped {
            write(&ctx, key, entry).await;
        }
    }
}

/// How long the flusher waits while the Lease is too short for a status write.
const SHORT_OF_LEASE: Duration = Duration::from_millis(200);

/// How often the flusher says how much is parked.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Logs how many statuses are parked, the oldest one's age and the folds so far.
fn report(parked: &Parked, now: Instant) {
    if let Some(oldest) = parked.oldest_age(now) {
        info!(
            parked = parked.len(),
            ?oldest,
            folded = parked.folded(),
            "routine status writes parked under --kube-api-qps"
        );
    }
}

/// Writes what is parked, oldest first, until nothing is or `limit` has passed; returns how
/// many statuses were still parked then.
pub(super) async fn flush(ctx: &Context, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let parked = ctx.memory().parked.len();
    if parked > 0 {
        info!(parked, "writing the parked routine statuses before leaving");
    }
    loop {
        let popped = ctx.memory().parked.pop_oldest();
        let Some((key, entry)) = popped else {
            return 0;
        };
        let budget = ctx.budget.acquire(Priority::Routine);
        if tokio::time::timeout_at(deadline, budget).await.is_err() {
            let mut memory = ctx.memory();
            memory.parked.written(&key);
            memory.parked.restore(&key, entry);
            let left = memory.parked.len();
            warn!(
                left,
                "shutdown: parked routine statuses not written; the next leader re-runs their \
                 latest checkpoints"
            );
            return left;
        }
        write(ctx, key, entry).await;
    }
}

/// Writes one parked status (fenced), then marks it written or gives it back.
async fn write(ctx: &Context, key: RolloutKey, mut entry: Entry) {
    if !ctx.leader.held_for(fence::WRITE_TIMEOUT) {
        let mut memory = ctx.memory();
        memory.parked.written(&key);
        memory.parked.restore(&key, entry);
        return;
    }
    // The Rollout may have changed since the status was parked (an annotation, a spec edit):
    // write over its latest version, as long as its status is still the one the parked status
    // was decided from.
    if let Some(rollouts) = &ctx.rollouts
        && let Some(cached) = rollouts.get(&ObjectRef::new(&key.1).within(&key.0))
    {
        if status_digest(cached.status.as_ref()) != entry.base {
            let mut memory = ctx.memory();
            memory.parked.written(&key);
            if !memory.is_stale(&key, cached.metadata.resource_version.as_deref()) {
                debug!(
                    namespace = %key.0,
                    name = %key.1,
                    "the status changed in the API under a parked status: dropped"
                );
                return;
            }
            // The cache has not caught up with this controller's own last write yet.
            memory.parked.restore(&key, entry);
            return;
        }
        entry.version = cached.metadata.resource_version.clone();
    }
    let age = entry.since.elapsed();
    ctx.memory().triggers.writing_status(&key, &entry.status);
    let api: Api<Rollout> = Api::namespaced(ctx.client.clone(), &key.0);
    let apply = status::apply_at(&api, &key.1, entry.version.as_deref(), &entry.status);
    // Dropped mid-request (the flusher stopped at shutdown): the entry goes back, so the
    // shutdown flush writes it.
    let in_flight = InFlight {
        ctx,
        key: key.clone(),
        entry: Some(entry.clone()),
    };
    let result = fence::within(fence::WRITE_TIMEOUT, apply).await;
    in_flight.disarm();
    let mut memory = ctx.memory();
    memory.parked.written(&key);
    match result {
        Ok(written) => {
            debug!(namespace = %key.0, name = %key.1, ?age, "wrote a parked status");
            memory.wrote_status(key, written.metadata.resource_version);
            drop(memory);
            if let Some(metrics) = &ctx.metrics {
                metrics.count_write("status");
            }
        }
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(error) => {
            entry.failures += 1;
            if entry.failures < MAX_WRITE_FAILURES {
                debug!(%error, namespace = %key.0, name = %key.1, "a parked status write failed");
                memory.parked.restore(&key, entry);
            } else {
                warn!(
                    %error,
                    namespace = %key.0,
                    name = %key.1,
                    "a parked status write failed again: dropped; the next reconcile decides \
                     from the API's status"
                );
            }
        }
    }
}

/// A parked status whose write is in flight: given back if the write is dropped.
struct InFlight<'a> {
    ctx: &'a Context,
    key: RolloutKey,
    entry: Option<Entry>,
}

impl InFlight<'_> {
    fn disarm(mut self) {
        self.entry = None;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            let mut memory = self.ctx.memory();
            memory.parked.written(&self.key);
            memory.parked.restore(&self.key, entry);
        }
    }
}

/// A parked status taken by a reconcile: given back when the reconcile ends without writing or
/// parking a newer one (an error, a timeout, nothing changed).
pub(super) struct Guard<'a> {
    ctx: &'a Context,
    key: RolloutKey,
    entry: Option<Entry>,
}

impl<'a> Guard<'a> {
    pub(super) fn new(ctx: &'a Context, key: RolloutKey, entry: Option<Entry>) -> Self {
        Guard { ctx, key, entry }
    }

    /// The parked status, to decide from.
    pub(super) fn status(&self) -> Option<&RolloutStatus> {
        self.entry.as_ref().map(|e| &e.status)
    }

    /// The entry, superseded by what the reconcile writes or parks now.
    pub(super) fn supersede(&mut self) -> Option<Entry> {
        self.entry.take()
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.ctx.memory().parked.restore(&self.key, entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> RolloutKey {
        ("ns".into(), name.into())
    }

    fn status(message: &str) -> RolloutStatus {
        RolloutStatus {
            message: Some(message.into()),
            ..RolloutStatus::default()
        }
    }

    #[test]
    fn a_newer_status_replaces_the_parked_one_and_keeps_its_place() {
        let mut parked = Parked::default();
        let now = Instant::now();
        parked.park(&key("a"), status("a1"), Some("1".into()), 7, None, now);
        parked.park(&key("b"), status("b1"), Some("1".into()), 7, None, now);
        let Taken::Entry(a1) = parked.take(&key("a"), 7) else {
            panic!("a is parked");
        };
        parked.park(&key("a"), status("a2"), Some("2".into()), 0, Some(*a1), now);
        assert_eq!(parked.len(), 2);
        assert_eq!(parked.folded(), 1);
        let (first, entry) = parked.pop_oldest().expect("parked");
        assert_eq!(first, key("a"), "a keeps its place before b");
        assert_eq!(entry.status.message.as_deref(), Some("a2"));
        assert_eq!(entry.version.as_deref(), Some("2"));
        assert_eq!(
            entry.base, 7,
            "still over the API status it was first decided from"
        );
        assert!(matches!(parked.take(&key("a"), 7), Taken::Writing));
        parked.written(&key("a"));
        assert!(matches!(parked.take(&key("a"), 7), Taken::Nothing));
    }

    #[test]
    fn a_parked_status_over_a_changed_api_status_is_dropped() {
        let mut parked = Parked::default();
        parked.park(&key("a"), status("a1"), None, 7, None, Instant::now());
        assert!(matches!(parked.take(&key("a"), 8), Taken::Nothing));
        assert_eq!(parked.len(), 0);
    }

    #[test]
    fn forget_and_clear_drop_entries() {
        let mut parked = Parked::default();
        let now = Instant::now();
        parked.park(&key("a"), status("a1"), None, 7, None, now);
        parked.park(&key("b"), status("b1"), None, 7, None, now);
        parked.forget(&key("a"));
        assert_eq!(parked.len(), 1);
        parked.clear();
        assert_eq!(parked.len(), 0);
        assert!(parked.pop_oldest().is_none());
    }
}

#[cfg(test)]
#[path = "coalesce_tests.rs"]
mod coalesce;
