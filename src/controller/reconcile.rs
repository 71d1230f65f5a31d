//! One reconcile of one Rollout, as a pipeline of small steps, one function each
//! (docs/design.md §6):
//!
//! 1. dereference: skip a cached copy older than the status this controller last wrote, and
//!    decide from this Rollout's parked routine status when one is (see `parked.rs`);
//! 2. claim a one-shot action annotation (see `action.rs`);
//! 3. gather (async): the target's live percent (watch cache first), the owner claim and the
//!    pre-checks while not started, the gates when a checkpoint is due;
//! 4. plan (pure, `plan.rs`): `engine::decide`, the only decider, and what to write;
//! 5. fence and write the status (only when it changed; a routine one may be parked), *then*
//!    the target, then release the claim;
//! 6. publish Events; requeue at the next checkpoint.
//!
//! Status before target: a controller stopped between the two finds a status whose
//! `targetPending` says the write was not confirmed, and finishes it instead of reading the
//! old percent as drift; a rollback recorded in status is never lost.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use tracing::{Instrument, debug, info, warn};

use super::action;
use super::budget::Priority;
use super::context::{Context, RolloutKey};
use super::events;
use super::fence;
use super::finished;
use super::notifications;
use super::parked::{self, Taken};
use super::plan::{self, Gathered, MAX_REQUEUE, Plan, Triage, Wake, started};
use super::prechecks::{self, BeforeStart};
use super::status;
use super::target::namespace_of;
use super::trigger::status_digest;
use crate::api::{Percent, Phase, Rollout, RolloutStatus, validate_spec};
use crate::engine;
use crate::targets::{TargetError, WriteMode};

/// The wait before a reconcile whose cached copy was stale.
const STALE_REQUEUE: Duration = Duration::from_secs(1);

/// The longest a routine checkpoint's Event waits for an API token before it is skipped.
const ROUTINE_EVENT_WAIT: Duration = Duration::from_secs(1);

/// The wait before a reconcile whose parked status the flusher is writing right now.
const PARKED_WRITING_REQUEUE: Duration = Duration::from_millis(100);

/// Why a reconcile stopped; the error policy requeues it with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The status could not be written (nothing else was).
    #[error("cannot write the status of {rollout}: {source}")]
    Status {
        /// namespace/name.
        rollout: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// The action annotation could not be claimed or released.
    #[error("cannot update the action annotation of {rollout}: {source}")]
    Annotation {
        /// namespace/name.
        rollout: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// The target could not be written; the status says so and the next reconcile repairs it.
    #[error("cannot write the target of {rollout}: {source}")]
    Target {
        /// namespace/name.
        rollout: String,
        /// What went wrong.
        source: TargetError,
    },
    /// The reconcile ran past `--reconcile-timeout` and was abandoned (the write order, status
    /// before target, leaves nothing half-written).
    #[error("the reconcile of {rollout} did not finish within {after:?}; abandoned")]
    Timeout {
        /// namespace/name.
        rollout: String,
        /// The deadline.
        after: Duration,
    },
    /// A write was due but this replica does not hold the Lease for longer than the write may
    /// take; nothing was written.
    #[error("not writing the {write} of {rollout}: the Lease is not held for {margin:?} more")]
    Fenced {
        /// namespace/name.
        rollout: String,
        /// `status`, `target` or `annotation`.
        write: &'static str,
        /// The write's own request timeout.
        margin: Duration,
    },
}

impl ReconcileError {
    /// A short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Status { .. } => "status_write",
            ReconcileError::Annotation { .. } => "annotation_write",
            ReconcileError::Target { .. } => "target_write",
            ReconcileError::Timeout { .. } => "timeout",
            ReconcileError::Fenced { .. } => "fenced",
        }
    }
}

/// Writes parked routine statuses for as long as the controller runs (see `parked.rs`).
pub(super) async fn flush_parked(ctx: Arc<Context>) {
    parked::flusher(ctx).await;
}

/// At shutdown, before the Lease is released: writes what is parked, for at most
/// `parked::SHUTDOWN_FLUSH`.
pub(super) async fn flush_parked_at_shutdown(ctx: &Context) {
    parked::flush(ctx, parked::SHUTDOWN_FLUSH).await;
}

/// Reconciles one Rollout; see the module documentation.
pub async fn reconcile(rollout: Arc<Rollout>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let namespace = namespace_of(&rollout);
    let name = rollout.metadata.name.clone().unwrap_or_default();
    let span = tracing::info_span!("reconcile", %namespace, %name);
    Reconcile {
        key: (namespace, name),
        ctx: &ctx,
    }
    .run(rollout)
    .instrument(span)
    .await
}

/// Requeues a failed reconcile: soon for a conflict; otherwise with a backoff per Rollout,
/// 5 s doubling to 5 minutes while its reconciles keep failing (a timeout included).
pub fn error_policy(rollout: Arc<Rollout>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    warn!(%error, reason = error.reason(), "reconcile failed; retrying");
    let conflict = matches!(
        error,
        ReconcileError::Status { source: kube::Error::Api(s), .. }
            | ReconcileError::Annotation { source: kube::Error::Api(s), .. }
            if s.code == 409
    );
    if conflict {
        return Action::requeue(Duration::from_millis(200));
    }
    if matches!(error, ReconcileError::Fenced { .. }) {
        // Not this rollout's fault: look again soon, as a standby does.
        return Action::requeue(FENCED_REQUEUE);
    }
    let key = (
        namespace_of(&rollout),
        rollout.metadata.name.clone().unwrap_or_default(),
    );
    let failures = ctx.memory().failed_attempt(&key);
    Action::requeue(backoff(ERROR_BACKOFF, failures))
}

/// The wait after a write was fenced (the Lease had too little time left).
const FENCED_REQUEUE: Duration = Duration::from_secs(5);

/// How long a leader's write waits for the renewal that gives it enough lease (one lease
/// duration at the default timings; the reconcile's own deadline may end it sooner).
const FENCE_WAIT: Duration = Duration::from_secs(15);

/// How often a write waiting on the fence looks at the lease again.
const FENCE_POLL: Duration = Duration::from_millis(200);

/// The first wait after a failed reconcile.
const ERROR_BACKOFF: Duration = Duration::from_secs(5);

/// The wait after `attempts` earlier tries: `base` doubled per try, at most 5 minutes.
fn backoff(base: Duration, attempts: u32) -> Duration {
    base.saturating_mul(1 << attempts.min(16)).min(MAX_REQUEUE)
}

/// How long a reconcile waits for one of its namespace's slots before it gives its place in
/// the controller's queue back and comes again (see `slots.rs`).
const SLOT_WAIT: Duration = Duration::from_secs(1);

struct Reconcile<'a> {
    key: RolloutKey,
    ctx: &'a Context,
}

impl Reconcile<'_> {
    fn api(&self) -> Api<Rollout> {
        Api::namespaced(self.ctx.client.clone(), &self.key.0)
    }

    fn label(&self) -> String {
        format!("{}/{}", self.key.0, self.key.1)
    }

    async fn run(&self, cached: Arc<Rollout>) -> Result<Action, ReconcileError> {
        let leader = self.ctx.leader.is_leader();
        match plan::triage(&cached, leader, leader && self.is_stale(&cached)) {
            Triage::Forget => {
                super::deleted::forget(self.ctx, &cached);
                return Ok(Action::await_change());
            }
            Triage::NotLeader => {
                debug!("not the leader: nothing is written");
                return Ok(Action::requeue(Duration::from_secs(5)));
            }
            Triage::Stale => {
                debug!("the cached Rollout predates this controller's last status write");
                return Ok(Action::requeue(STALE_REQUEUE));
            }
            Triage::Reconcile => {}
        }
        let Ok(_slot) = tokio::time::timeout(SLOT_WAIT, self.ctx.slots.acquire(&self.key.0)).await
        else {
            debug!("every slot of this namespace is taken: coming again");
            return Ok(Action::requeue(SLOT_WAIT));
        };
        let started_at = std::time::Instant::now();
        let deadline = self.ctx.reconcile_timeout;
        let result = match tokio::time::timeout(deadline, self.pipeline(cached)).await {
            Ok(result) => result,
            Err(_) => Err(ReconcileError::Timeout {
                rollout: self.label(),
                after: deadline,
            }),
        };
        if result.is_ok() {
            self.ctx.memory().clear_failures(&self.key);
        }
        if let Some(metrics) = &self.ctx.metrics {
            let outcome = if result.is_ok() { "success" } else { "error" };
            metrics.observe_reconcile(started_at.elapsed().as_secs_f64(), outcome);
            if let Err(error) = &result {
                metrics.count_error(error.reason());
            }
        }
        result
    }

    /// dereference → claim action → gather → plan → (fence +) write status → (fence +) write
    /// target and release → events → requeue.
    async fn pipeline(&self, cached: Arc<Rollout>) -> Result<Action, ReconcileError> {
        let api_status = status_digest(cached.status.as_ref());
        let Some(mut parked) = self.dereference(api_status) else {
            debug!("the flusher is writing this Rollout's parked status: coming again");
            return Ok(Action::requeue(PARKED_WRITING_REQUEUE));
        };
        let mut rollout = self.claim_action(cached).await?;
        if let Some(status) = parked.status() {
            rollout.status = Some(status.clone());
        }
        let now = self.ctx.clock.now();
        let gathered = self.gather(&rollout, now).await;
        let plan = plan::plan(&rollout, &gathered, now);
        self.write_status(&rollout, &plan, &mut parked, api_status)
            .await?;
        let rest = self.write_target_and_release(&rollout, &plan).await;
        self.publish(&rollout, &plan).await;
        notifications::send(self.ctx, &rollout, &plan.status, now).await;
        rest?;
        Ok(self.requeue(plan.wake))
    }

    /// The status to decide from: this Rollout's parked routine status when one is (it is
    /// newer than the cached one), else the cached one (whose status digests to
    /// `api_status`). `None` while the flusher writes it.
    fn dereference(&self, api_status: u64) -> Option<parked::Guard<'_>> {
        let taken = self.ctx.memory().parked.take(&self.key, api_status);
        match taken {
            Taken::Writing => None,
            Taken::Nothing => Some(parked::Guard::new(self.ctx, self.key.clone(), None)),
            Taken::Entry(entry) => {
                Some(parked::Guard::new(self.ctx, self.key.clone(), Some(*entry)))
            }
        }
    }

    /// Reads everything the plan needs: the live percent, the owner claim and pre-checks
    /// before the start, the gates at a due checkpoint, a refusal met as the ServiceAccount.
    async fn gather(&self, rollout: &Rollout, now: Timestamp) -> Gathered {
        let live = self.ctx.targets.read(rollout).await;
        let before = rollout.status.clone().unwrap_or_default();
        let valid = validate_spec(&rollout.spec).is_ok();
        let uid = rollout.metadata.uid.clone().unwrap_or_default();
        let claim = action::claimed(rollout);
        let action = plan::pending_action(claim.as_ref(), &before);
        let generation = rollout.metadata.generation;
        let start = engine::pending_start(&rollout.spec, &before, generation, action);
        let before_start = match start {
            Some(start) if valid => {
                prechecks::before_start(rollout, &before, start, &live, self.ctx, now).await
            }
            _ => BeforeStart::Failed(Vec::new()),
        };
        let readings = if valid && engine::checkpoint_due(&before, now) {
            self.ctx.observer.observe(rollout, &before, now).await
        } else {
            Vec::new()
        };
        let denial = self
            .ctx
            .identities
            .take_denial(rollout)
            .map(|d| d.to_string());
        let finished = before.phase.is_some_and(Phase::is_terminal);
        let (live_input, repair, settled) = if finished {
            finished::live_input(self.ctx, rollout, &before, &live, &uid).await
        } else {
            let (input, repair) = self.live_input(&before, &live, &uid);
            (input, repair, false)
        };
        // Recorded with a final write (rule 8): a cached version or the live answer, no call.
        let target_token = finished::target_token(self.ctx, rollout, &live).await;
        Gathered {
            claim,
            before_start,
            readings,
            denial,
            live,
            live_input,
            repair,
            settled,
            target_token,
        }
    }

    /// Records what this reconcile did in the controller's metrics.
    fn count(&self, rollout: &Rollout, plan: &Plan, events: usize) {
        let Some(metrics) = &self.ctx.metrics else {
            return;
        };
        let (namespace, name) = (&self.key.0, &self.key.1);
        metrics.set_rollout(namespace, name, plan.status.percent, plan.status.phase);
        if let Some(checkpoint) = plan.outcome.checkpoint {
            metrics.count_checkpoint(namespace, name, checkpoint.verdict);
            for gate in &plan.status.gates {
                metrics.set_gate_value(namespace, name, &gate.name, gate.last_value);
            }
            let names: Vec<&str> = rollout
                .spec
                .analysis
                .gates
                .iter()
                .map(|g| g.name.as_str())
                .collect();
            metrics.retain_gates(namespace, name, &names);
        }
        for transition in &plan.outcome.transitions {
            metrics.count_transition(namespace, name, transition.kind.as_str());
        }
        for _ in 0..events {
            metrics.count_write("event");
        }
    }

    fn count_write(&self, kind: &str) {
        if let Some(metrics) = &self.ctx.metrics {
            metrics.count_write(kind);
        }
    }

    /// Confirms, immediately before a write, that this replica holds the Lease for longer
    /// than the write's own request timeout `margin`. A leader whose last renewal leaves less
    /// than `margin` waits for its next renewal (at most [`FENCE_WAIT`], within the reconcile's
    /// deadline) instead of failing: the Lease is renewed only `renew_grace` (5 s) before it
    /// runs out, so a write longer than that (a webhook's 10 s) would otherwise find enough
    /// time left only in the seconds after each renewal, and retries that keep missing them
    /// could starve it. A replica that does not lead fails at once.
    async fn fence(&self, write: &'static str, margin: Duration) -> Result<(), ReconcileError> {
        let give_up = tokio::time::Instant::now() + FENCE_WAIT;
        while !self.ctx.leader.held_for(margin) {
            if !self.ctx.leader.is_leader() || tokio::time::Instant::now() >= give_up {
                return Err(ReconcileError::Fenced {
                    rollout: self.label(),
                    write,
                    margin,
                });
            }
            tokio::time::sleep(FENCE_POLL).await;
        }
        Ok(())
    }

    fn is_stale(&self, rollout: &Rollout) -> bool {
        self.ctx
            .memory()
            .is_stale(&self.key, rollout.metadata.resource_version.as_deref())
    }

    /// Claims a pending `rollgate.dev/action` once the rollout has started; returns the
    /// Rollout to decide on.
    async fn claim_action(&self, cached: Arc<Rollout>) -> Result<Rollout, ReconcileError> {
        let rollout = Arc::unwrap_or_clone(cached);
        if action::requested(&rollout).is_none() || !started(&rollout) {
            return Ok(rollout);
        }
        if action::claimed(&rollout).is_some() {
            // Apply the earlier claim first; this one is claimed at the next reconcile.
            return Ok(rollout);
        }
        info!(
            action = action::requested(&rollout),
            "claiming the action annotation"
        );
        self.ctx.budget.acquire(Priority::Transition).await;
        self.fence("annotation", fence::WRITE_TIMEOUT).await?;
        let claimed = fence::within(fence::WRITE_TIMEOUT, action::claim(&self.api(), &rollout))
            .await
            .map_err(|source| ReconcileError::Annotation {
                rollout: self.label(),
                source,
            })?;
        self.count_write("annotation");
        Ok(claimed)
    }

    /// The live percent to give the engine, and a write to finish: a status whose target
    /// write was never confirmed is repaired (not read as drift) when the target still holds
    /// something else.
    fn live_input(
        &self,
        status: &RolloutStatus,
        live: &Result<Option<Percent>, TargetError>,
        uid: &str,
    ) -> (Option<Percent>, Option<Percent>) {
        let live = match live {
            Ok(Some(p)) => *p,
            Ok(None) => return (None, status.percent.filter(|_| status.target_pending)),
            Err(error) => {
                warn!(%error, "cannot read the target's live percent");
                return (None, None);
            }
        };
        let Some(expected) = status.percent else {
            return (Some(live), None);
        };
        let mut memory = self.ctx.memory();
        if live == expected {
            memory.confirm(uid, live);
            return (Some(live), None);
        }
        if status.target_pending && !memory.confirmed(uid, expected) {
            info!(
                %live,
                %expected, "finishing a target write the status records as not yet confirmed"
            );
            return (None, Some(expected));
        }
        (Some(live), None)
    }

    /// The status first, and only when it changed. A routine checkpoint's status that finds no
    /// token free at once is parked (folding any parked before it) instead of waiting; any
    /// other write supersedes what is parked.
    async fn write_status(
        &self,
        rollout: &Rollout,
        plan: &Plan,
        parked: &mut parked::Guard<'_>,
        api_status: u64,
    ) -> Result<(), ReconcileError> {
        let before = rollout.status.clone().unwrap_or_default();
        if plan.status == before {
            // Nothing new; a parked status stays parked (the guard gives it back).
            return Ok(());
        }
        let priority = plan.priority();
        if priority == Priority::Routine && !self.ctx.budget.try_acquire(priority) {
            let earlier = parked.supersede();
            let folded = earlier.is_some();
            self.ctx.memory().parked.park(
                &self.key,
                plan.status.clone(),
                rollout.metadata.resource_version.clone(),
                api_status,
                earlier,
                tokio::time::Instant::now(),
            );
            debug!(folded, "no API token free: the routine status is parked");
            return Ok(());
        }
        if priority == Priority::Transition {
            self.ctx.budget.acquire(priority).await;
        }
        self.fence("status", fence::WRITE_TIMEOUT).await?;
        self.ctx
            .memory()
            .triggers
            .writing_status(&self.key, &plan.status);
        let api = self.api();
        let apply = status::apply(&api, rollout, &plan.status);
        let written = fence::within(fence::WRITE_TIMEOUT, apply)
            .await
            .map_err(|source| ReconcileError::Status {
                rollout: self.label(),
                source,
            })?;
        // Written: it includes what was parked, which is now superseded.
        parked.supersede();
        self.count_write("status");
        self.ctx
            .memory()
            .wrote_status(self.key.clone(), written.metadata.resource_version);
        Ok(())
    }

    /// Then the target, then the claim's release.
    async fn write_target_and_release(
        &self,
        rollout: &Rollout,
        plan: &Plan,
    ) -> Result<(), ReconcileError> {
        let api = self.api();
        if let Some(percent) = plan.target {
            let timeout = fence::target_timeout(rollout);
            self.ctx.budget.acquire(Priority::Transition).await;
            self.fence("target", timeout).await?;
            info!(%percent, "writing the target");
            // The target is written as the status just recorded it (its `targetSequence`).
            let mut recorded = rollout.clone();
            recorded.status = Some(plan.status.clone());
            let write = self.ctx.targets.write(&recorded, percent, WriteMode::Apply);
            tokio::time::timeout(timeout, write)
                .await
                .map_err(|_| ReconcileError::Timeout {
                    rollout: self.label(),
                    after: timeout,
                })?
                .map_err(|source| ReconcileError::Target {
                    rollout: self.label(),
                    source,
                })?;
            self.count_write("target");
            let uid = rollout.metadata.uid.as_deref().unwrap_or_default();
            self.ctx.memory().confirm(uid, percent);
        }
        if plan.claim.is_some() {
            self.ctx.budget.acquire(Priority::Transition).await;
            self.fence("annotation", fence::WRITE_TIMEOUT).await?;
            fence::within(fence::WRITE_TIMEOUT, action::release(&api, rollout))
                .await
                .map_err(|source| ReconcileError::Annotation {
                    rollout: self.label(),
                    source,
                })?;
            self.count_write("annotation");
        }
        Ok(())
    }

    /// The plan's Events, and the metrics. A transition's Events are part of it and take
    /// transition tokens; a routine checkpoint's (a gate error, a compare gate waiting) wait
    /// at most [`ROUTINE_EVENT_WAIT`] for a routine token and are skipped otherwise: the
    /// status carries the same text, and the reconcile never waits behind the budget.
    async fn publish(&self, rollout: &Rollout, plan: &Plan) {
        let mut granted = 0;
        for _ in &plan.notices {
            if plan.outcome.transitions.is_empty() {
                let token = self.ctx.budget.acquire(Priority::Routine);
                if tokio::time::timeout(ROUTINE_EVENT_WAIT, token)
                    .await
                    .is_err()
                {
                    debug!(
                        skipped = plan.notices.len() - granted,
                        "no API token for a routine Event: skipped (the status says the same)"
                    );
                    break;
                }
            } else {
                self.ctx.budget.acquire(Priority::Transition).await;
            }
            granted += 1;
        }
        events::publish(self.ctx, rollout, &plan.notices[..granted]).await;
        self.count(rollout, plan, granted);
    }

    fn requeue(&self, wake: Wake) -> Action {
        let wait = match wake {
            Wake::Backoff => {
                let attempts = self.ctx.memory().pending_attempt(&self.key);
                backoff(self.ctx.pending_backoff, attempts)
            }
            Wake::After(wait) => {
                self.ctx.memory().clear_pending(&self.key);
                wait
            }
        };
        Action::requeue(wait.min(MAX_REQUEUE))
    }
}
