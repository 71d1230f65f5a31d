//! One reconcile of one Rollout, as a pipeline of small steps:
//!
//! 1. skip a cached copy older than the status this controller last wrote;
//! 2. claim a one-shot action annotation (see `action.rs`);
//! 3. read the target's live percent (watch cache first);
//! 4. pre-checks while not started; gates when a checkpoint is due;
//! 5. `engine::decide`, the only decider;
//! 6. write the status (only when it changed), *then* the target, then release the claim;
//! 7. publish Events; requeue at the next checkpoint.
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

use super::action::{self, Claim};
use super::budget::Priority;
use super::context::{Context, RolloutKey};
use super::events::{self, Notice, cap};
use super::fence;
use super::finished;
use super::notifications;
use super::observe::GateReading;
use super::ownership::TARGET_OWNED;
use super::prechecks::{self, BeforeStart};
use super::status;
use super::target::namespace_of;
use crate::api::{Percent, Phase, REASON_FORBIDDEN, Rollout, RolloutStatus, validate_spec};
use crate::engine::{self, Inputs, Observation, Outcome, PreChecks};
use crate::targets::{TargetError, WriteMode};

/// The longest wait between two reconciles of a Rollout: a lost watch event never strands it.
const MAX_REQUEUE: Duration = Duration::from_secs(300);

/// The wait before a reconcile whose cached copy was stale.
const STALE_REQUEUE: Duration = Duration::from_secs(1);

/// The most text a remote answer may put into status.
const STATUS_TEXT_LIMIT: usize = 400;

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

/// What the reconcile decided to write.
struct Plan {
    status: RolloutStatus,
    outcome: Outcome,
    target: Option<Percent>,
    claim: Option<Claim>,
}

impl Plan {
    /// A status write that carries a transition or comes with a target write goes first;
    /// a routine checkpoint's does not (see `budget.rs`).
    fn priority(&self) -> Priority {
        if self.outcome.transitions.is_empty() && self.target.is_none() && self.claim.is_none() {
            Priority::Routine
        } else {
            Priority::Transition
        }
    }
}

impl Reconcile<'_> {
    fn api(&self) -> Api<Rollout> {
        Api::namespaced(self.ctx.client.clone(), &self.key.0)
    }

    fn label(&self) -> String {
        format!("{}/{}", self.key.0, self.key.1)
    }

    async fn run(&self, cached: Arc<Rollout>) -> Result<Action, ReconcileError> {
        if cached.metadata.deletion_timestamp.is_some() {
            self.ctx
                .memory()
                .forget(&self.key, cached.metadata.uid.as_deref());
            self.ctx.identities.forget(&cached);
            return Ok(Action::await_change());
        }
        if !self.ctx.leader.is_leader() {
            debug!("not the leader: nothing is written");
            return Ok(Action::requeue(Duration::from_secs(5)));
        }
        if self.is_stale(&cached) {
            debug!("the cached Rollout predates this controller's last status write");
            return Ok(Action::requeue(STALE_REQUEUE));
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

    async fn pipeline(&self, cached: Arc<Rollout>) -> Result<Action, ReconcileError> {
        let rollout = self.claim_action(cached).await?;
        let now = self.ctx.clock.now();
        let live = self.ctx.targets.read(&rollout).await;
        let plan = self.decide(&rollout, &live, now).await;
        self.write_status(&rollout, &plan).await?;
        let rest = self.write_target_and_release(&rollout, &plan).await;
        let notices = self.notices(&rollout, &plan, &live);
        for _ in &notices {
            self.ctx.budget.acquire(Priority::Routine).await;
        }
        events::publish(self.ctx, &rollout, &notices).await;
        self.count(&rollout, &plan, notices.len());
        notifications::send(self.ctx, &rollout, &plan.status, now).await;
        rest?;
        Ok(self.requeue(&plan.status, now))
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
    /// than the write's own request timeout `margin`.
    fn fence(&self, write: &'static str, margin: Duration) -> Result<(), ReconcileError> {
        if self.ctx.leader.held_for(margin) {
            return Ok(());
        }
        Err(ReconcileError::Fenced {
            rollout: self.label(),
            write,
            margin,
        })
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
        self.fence("annotation", fence::WRITE_TIMEOUT)?;
        let claimed = fence::within(fence::WRITE_TIMEOUT, action::claim(&self.api(), &rollout))
            .await
            .map_err(|source| ReconcileError::Annotation {
                rollout: self.label(),
                source,
            })?;
        self.count_write("annotation");
        Ok(claimed)
    }

    async fn decide(
        &self,
        rollout: &Rollout,
        live: &Result<Option<Percent>, TargetError>,
        now: Timestamp,
    ) -> Plan {
        let spec = &rollout.spec;
        let before = rollout.status.clone().unwrap_or_default();
        let mut status = before.clone();
        let valid = validate_spec(spec).is_ok();
        let uid = rollout.metadata.uid.clone().unwrap_or_default();

        let claim = action::claimed(rollout);
        let pending_action = claim
            .as_ref()
            .filter(|c| before.last_action.as_deref() != Some(c.token.as_str()))
            .and_then(|c| c.action);
        let generation = rollout.metadata.generation;
        let start = engine::pending_start(spec, &before, generation, pending_action);
        let mut before_start = match start {
            Some(start) if valid => {
                prechecks::before_start(rollout, &before, start, live, self.ctx, now).await
            }
            _ => BeforeStart::Failed(Vec::new()),
        };
        let readings = if valid && engine::checkpoint_due(&before, now) {
            self.ctx.observer.observe(rollout, &before, now).await
        } else {
            Vec::new()
        };
        // A refusal met as the rollout's ServiceAccount, here or by the last target write.
        let denial = self
            .ctx
            .identities
            .take_denial(rollout)
            .map(|d| d.to_string());
        if let Some(denial) = &denial
            && start.is_some()
            && let BeforeStart::Failed(failures) = &mut before_start
        {
            failures.insert(0, denial.clone());
        }
        let observations: Vec<Observation> = readings
            .iter()
            .map(|r| match &r.observation {
                Observation::Error(m) => Observation::Error(cap(m, STATUS_TEXT_LIMIT)),
                other => other.clone(),
            })
            .collect();

        let finished = before.phase.is_some_and(Phase::is_terminal);
        let (live_input, repair, settled) = if finished {
            finished::live_input(self.ctx, rollout, &before, live, &uid).await
        } else {
            let (input, repair) = self.live_input(&before, live, &uid);
            (input, repair, false)
        };

        let mut inputs =
            Inputs::at(now)
                .with_generation(generation)
                .with_prechecks(match &before_start {
                    BeforeStart::Failed(failures) => PreChecks::Failed(failures),
                    BeforeStart::Owned(message) => PreChecks::Blocked {
                        reason: TARGET_OWNED,
                        message,
                    },
                });
        if let Some(percent) = live_input {
            inputs = inputs.with_live_percent(percent);
        }
        if let Some(action) = pending_action {
            inputs = inputs.with_action(action);
        }
        if let Some(denial) = &denial {
            inputs = inputs.with_forbidden(denial);
        }
        if !readings.is_empty() || spec.analysis.gates.is_empty() {
            inputs = inputs.with_observations(&observations);
        }
        let outcome = engine::decide(spec, &mut status, &inputs);
        if status.percent.is_some() && status.percent != before.percent {
            status.target_sequence = Some(before.target_sequence.unwrap_or(0).saturating_add(1));
        }
        keep_determinism_memory(&mut status, rollout, &readings, &outcome);

        // Paused because the ServiceAccount was refused: no repair is tried until a resume,
        // and the write stays unconfirmed (so the old percent is not taken for a drift).
        let held = repair.is_some() && paused_forbidden(&status);
        let repair = repair.filter(|_| !held);
        let mut target = outcome.write.or(repair);
        if target.is_some() && matches!(live, Ok(Some(p)) if Some(*p) == target) {
            target = None;
        }
        if let Some(claim) = &claim {
            status.last_action = Some(claim.token.clone());
        }
        status.target_pending = if held {
            true
        } else if changed(&before, &status) || target.is_some() {
            target.is_some()
        } else {
            before.target_pending && !settled
        };
        if target.is_some() && outcome.write.is_some() {
            // A final write records the target's version before it: after a restart, the
            // write is finished only while nobody changed the target since (rule 8).
            status.target_version = if status.phase.is_some_and(Phase::is_terminal) {
                finished::target_token(self.ctx, rollout, live).await
            } else {
                None
            };
        }
        status.update_conditions(now);
        Plan {
            status,
            outcome,
            target,
            claim,
        }
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

    /// The status first, and only when it changed.
    async fn write_status(&self, rollout: &Rollout, plan: &Plan) -> Result<(), ReconcileError> {
        let before = rollout.status.clone().unwrap_or_default();
        if plan.status == before {
            return Ok(());
        }
        self.ctx.budget.acquire(plan.priority()).await;
        self.fence("status", fence::WRITE_TIMEOUT)?;
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
            self.fence("target", timeout)?;
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
            self.fence("annotation", fence::WRITE_TIMEOUT)?;
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

    fn notices(
        &self,
        rollout: &Rollout,
        plan: &Plan,
        live: &Result<Option<Percent>, TargetError>,
    ) -> Vec<Notice> {
        let mut notices = events::notices(&plan.outcome, &plan.status, rollout.spec.stages.len());
        let before = rollout.status.as_ref();
        if let Some(claim) = &plan.claim
            && claim.action.is_none()
            && before.and_then(|s| s.last_action.as_deref()) != Some(claim.token.as_str())
        {
            notices.push(Notice {
                warning: true,
                reason: "InvalidAction",
                action: "Annotate".into(),
                note: format!(
                    "{} {:?} is not pause, resume, promote, abort or retry; it was removed",
                    action::ACTION_ANNOTATION,
                    cap(claim.word(), 64)
                ),
            });
        }
        if let Err(error) = live
            && started(rollout)
        {
            notices.push(Notice {
                warning: true,
                reason: "TargetUnreadable",
                action: "ReadTarget".into(),
                note: error.to_string(),
            });
        }
        notices
    }

    fn requeue(&self, status: &RolloutStatus, now: Timestamp) -> Action {
        let wait = match status.phase {
            Some(Phase::Pending) => {
                let attempts = self.ctx.memory().pending_attempt(&self.key);
                backoff(self.ctx.pending_backoff, attempts)
            }
            _ => {
                self.ctx.memory().clear_pending(&self.key);
                match &status.next_checkpoint_at {
                    Some(next) => {
                        let until = next.0.duration_since(now);
                        Duration::try_from(until).unwrap_or(Duration::ZERO)
                    }
                    None => MAX_REQUEUE,
                }
            }
        };
        Action::requeue(wait.min(MAX_REQUEUE))
    }
}

/// Whether the rollout has started (it is neither new nor Pending).
fn started(rollout: &Rollout) -> bool {
    rollout
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(|p| p != Phase::Pending)
}

/// Whether the rollout is paused because its ServiceAccount was refused.
fn paused_forbidden(status: &RolloutStatus) -> bool {
    status.phase == Some(Phase::Paused) && status.reason.as_deref() == Some(REASON_FORBIDDEN)
}

/// Whether anything but the bookkeeping fields (`targetPending`, conditions) changed.
fn changed(before: &RolloutStatus, after: &RolloutStatus) -> bool {
    let strip = |s: &RolloutStatus| RolloutStatus {
        target_pending: false,
        conditions: Vec::new(),
        ..s.clone()
    };
    strip(before) != strip(after)
}

/// Stores each OFREP probe's new memory in its gate's status after a checkpoint.
fn keep_determinism_memory(
    status: &mut RolloutStatus,
    rollout: &Rollout,
    readings: &[GateReading],
    outcome: &Outcome,
) {
    if outcome.checkpoint.is_none() {
        return;
    }
    for (gate, reading) in rollout.spec.analysis.gates.iter().zip(readings) {
        if let Some(memory) = &reading.memory
            && let Some(entry) = status.gates.iter_mut().find(|g| g.name == gate.name)
        {
            entry.determinism = Some(memory.clone());
        }
    }
}
