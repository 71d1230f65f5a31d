//! `rollgate pause|resume|promote|abort|retry NAME`: one merge patch that sets the one-shot
//! `rollgate.dev/action` annotation (or, with `--gitops`, `spec.paused`), after asking the
//! engine what the action would do in the rollout's current state. An action the engine would
//! ignore is refused (exit 2) with the phases where it applies, so the decision rules live in
//! one place: `engine::decide`.

use std::io::Write;

use clap::Args;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Patch, PatchParams};
use rollgate::api::{Percent, Phase, Rollout, RolloutStatus, stage_label};
use rollgate::controller::ACTION_ANNOTATION;
use rollgate::engine::{Inputs, ManualAction, PreChecks, Transition, TransitionKind, decide};
use serde_json::json;

use super::kube_client::{KubeArgs, OpsError, Target};

/// The field manager of the command line's patches.
pub const CLI_FIELD_MANAGER: &str = "rollgate-cli";

/// `abort` and `retry`: a rollout's name and where to find it.
#[derive(Args, Debug, Clone)]
pub struct ActionArgs {
    /// The Rollout's name.
    #[arg(add = super::complete::rollout_names())]
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `promote`: also `--full`.
#[derive(Args, Debug, Clone)]
pub struct PromoteArgs {
    /// The Rollout's name.
    #[arg(add = super::complete::rollout_names())]
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Go to the last stage now, skipping the stages between and their bake time (at the
    /// last stage already: complete). Recorded in the history as done by hand.
    #[arg(long)]
    pub full: bool,
}

/// `pause` and `resume`: also `--gitops`.
#[derive(Args, Debug, Clone)]
pub struct PauseArgs {
    /// The Rollout's name.
    #[arg(add = super::complete::rollout_names())]
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Set `spec.paused` instead of the one-shot annotation. A GitOps tool reverts a spec
    /// edit made in the cluster, so where one syncs the Rollout change `paused` in the
    /// repository instead; use this where the cluster's spec is the source of truth.
    #[arg(long)]
    pub gitops: bool,
}

/// How an action reaches the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The one-shot `rollgate.dev/action` annotation, applied once and removed.
    Annotation,
    /// `spec.paused` (pause and resume only): a new spec generation.
    SpecPaused,
}

/// Sets `action` on the Rollout in one merge patch, guarded by the resourceVersion that was
/// read, and writes what will happen to `out`. Refuses (exit 2) when the engine says the
/// action changes nothing in the rollout's state, or when another action is still pending.
pub async fn act(
    client: &Client,
    target: &Target,
    action: ManualAction,
    via: Via,
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let rollout = target.get(client).await?;
    let word = action.as_str();
    let who = format!("{}/{}", target.namespace, target.name);
    if via == Via::Annotation
        && let Some(pending) = rollout
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ACTION_ANNOTATION))
    {
        return Err(OpsError::Refused(format!(
            "{word}: {who} already has the action {pending:?} waiting for the controller \
             ({ACTION_ANNOTATION}); wait for it to be applied, or remove it with \
             `kubectl annotate rollout {} -n {} {ACTION_ANNOTATION}-`",
            target.name, target.namespace
        )));
    }
    if via == Via::SpecPaused {
        let wanted = action == ManualAction::Pause;
        if rollout.spec.paused == wanted {
            return Err(OpsError::Refused(format!(
                "{word} --gitops: {who} already has spec.paused: {wanted}"
            )));
        }
    }
    let transitions = preview(&rollout, rollout.status.as_ref(), action, via, now);
    if transitions.is_empty() {
        return Err(OpsError::Refused(refusal(&rollout, action, via, now, &who)));
    }
    let version = rollout.metadata.resource_version.clone();
    let patch = match via {
        Via::Annotation => json!({
            "metadata": {"resourceVersion": version, "annotations": {ACTION_ANNOTATION: word}}
        }),
        Via::SpecPaused => json!({
            "metadata": {"resourceVersion": version},
            "spec": {"paused": action == ManualAction::Pause}
        }),
    };
    let params = PatchParams {
        field_manager: Some(CLI_FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    target
        .api(client)
        .patch(&target.name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| target.error(e))?;
    let status = rollout.status.unwrap_or_default();
    let effect = describe(&status, rollout.spec.stages.len(), &transitions);
    let how = match via {
        Via::Annotation => format!("set {ACTION_ANNOTATION}={word}"),
        Via::SpecPaused => format!("set spec.paused={}", action == ManualAction::Pause),
    };
    writeln!(
        out,
        "{word}: {} will {effect} at its next reconcile ({how})",
        target.name
    )?;
    Ok(())
}

/// What the engine would do with the action now: its transitions (empty when it would
/// change nothing). A rollout that has not started stays so (its pre-checks are not run
/// here), as the controller keeps an action until the start.
fn preview(
    rollout: &Rollout,
    status: Option<&RolloutStatus>,
    action: ManualAction,
    via: Via,
    now: Timestamp,
) -> Vec<Transition> {
    let mut status = status.cloned().unwrap_or_default();
    let mut spec = rollout.spec.clone();
    let not_started = ["not started".to_owned()];
    // A rollout that has not started stays so in the preview; a retry of a RolledBack one is
    // shown as the start it makes once its pre-checks pass.
    let retrying = action == ManualAction::Retry && status.phase == Some(Phase::RolledBack);
    let prechecks = if retrying {
        PreChecks::Passed
    } else {
        PreChecks::Failed(&not_started)
    };
    let mut inputs = Inputs::at(now).with_prechecks(prechecks);
    match via {
        Via::Annotation => {
            inputs = inputs
                .with_generation(status.observed_generation)
                .with_action(action);
        }
        Via::SpecPaused => {
            spec.paused = action == ManualAction::Pause;
            let next = status.observed_generation.map_or(1, |g| g + 1);
            inputs = inputs.with_generation(Some(next));
        }
    }
    decide(&spec, &mut status, &inputs)
        .transitions
        .into_iter()
        .filter(|t| t.kind != TransitionKind::Pending)
        .collect()
}

/// Why the action is refused, with the phases in which the engine would apply it.
fn refusal(rollout: &Rollout, action: ManualAction, via: Via, now: Timestamp, who: &str) -> String {
    let status = rollout.status.clone().unwrap_or_default();
    let word = action.as_str();
    let state = match status.phase {
        Some(phase) => format!("is {}", phase.as_str()),
        None => "has no status yet (the controller has not taken it up)".to_owned(),
    };
    // Failed is left out: its spec is invalid, and nothing applies until the spec is fixed
    // (trying it with this rollout's spec would not say that).
    let phases = [
        Phase::Pending,
        Phase::Progressing,
        Phase::Paused,
        Phase::Succeeded,
        Phase::RolledBack,
    ];
    let applies: Vec<&str> = phases
        .into_iter()
        .filter(|phase| {
            let mut other = status.clone();
            other.phase = Some(*phase);
            !preview(rollout, Some(&other), action, via, now).is_empty()
        })
        .map(Phase::as_str)
        .collect();
    let hint = match applies.as_slice() {
        [] => String::new(),
        [one] => format!(" ({word} applies to a {one} rollout)"),
        [rest @ .., last] => format!(
            " ({word} applies to a {} or {last} rollout)",
            rest.join(", ")
        ),
    };
    format!("{word}: {who} {state}: {word} would change nothing{hint}")
}

/// The transitions in words, from the stage and percent the rollout is at.
fn describe(before: &RolloutStatus, stages: usize, transitions: &[Transition]) -> String {
    let label = |stage: u32| stage_label(stage, stages);
    let percent = before.percent.unwrap_or(Percent::ZERO);
    let here = format!("{} ({percent}%)", label(before.stage));
    let words: Vec<String> = transitions
        .iter()
        .map(|t| match t.kind {
            TransitionKind::Advance => {
                format!("advance from {here} to {} ({}%)", label(t.stage), t.percent)
            }
            TransitionKind::Complete => format!("complete at {here}, its last stage"),
            TransitionKind::Rollback => format!("roll back from {here} to {}%", t.percent),
            TransitionKind::Pause => {
                format!("pause at {here} (checkpoints go on and a failing gate still rolls back)")
            }
            TransitionKind::Resume => format!("resume at {here}"),
            TransitionKind::Start => format!(
                "start again from {} ({}%) once its pre-checks pass",
                label(t.stage),
                t.percent
            ),
            other => format!("{} at {} ({}%)", other.as_str(), label(t.stage), t.percent),
        })
        .collect();
    words.join(", then ")
}

/// An action on the command line: connects, patches, prints; exit 2 when refused.
pub fn run(action: ManualAction, name: &str, kube: &KubeArgs, via: Via) -> std::process::ExitCode {
    let command = match action {
        ManualAction::PromoteFull => "promote",
        other => other.as_str(),
    };
    super::kube_client::run_command(command, || async move {
        let client = kube.connect().await?;
        let target = Target::new(&client, kube.namespace.as_deref(), name);
        act(
            &client,
            &target,
            action,
            via,
            Timestamp::now(),
            &mut std::io::stdout().lock(),
        )
        .await?;
        Ok(std::process::ExitCode::SUCCESS)
    })
}
