//! Direct tests of [`plan`] and [`triage`]: every case the reconcile pipeline handles, from
//! plain values, without an API mock.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::*;
use crate::api::{RolloutSpec, RolloutStatus};
use crate::controller::observe::reading;
use crate::engine::{Inputs, Observation};

const H: i64 = 3600;

const PLAN: &str = r#"
target:
  configMap: {name: pct, key: percent}
stages:
  - {percent: 1, duration: 1h}
  - {percent: 5, duration: 1h}
  - {percent: 10, duration: 1h}
analysis:
  interval: 10m
  gates:
    - name: error-rate
      prometheus: {query: 'sum(rate(errors[5m]))'}
      max: 0.01
      failureLimit: 2
"#;

fn t(secs: i64) -> Timestamp {
    "2026-02-01T19:18:00Z"
        .parse::<Timestamp>()
        .expect("a time")
        .checked_add(SignedDuration::from_secs(secs))
        .expect("a time")
}

fn spec() -> RolloutSpec {
    serde_saphyr::from_str(PLAN).expect("a test plan")
}

fn rollout(status: Option<RolloutStatus>) -> Rollout {
    let mut r = Rollout::new("demo", spec());
    r.metadata.namespace = Some("kaviar".into());
    r.metadata.uid = Some("uid-1".into());
    r.metadata.generation = Some(1);
    r.metadata.resource_version = Some("10".into());
    r.status = status;
    r
}

/// The status of a rollout started at t = 0, target confirmed at 1%.
fn started() -> RolloutStatus {
    let mut status = RolloutStatus::default();
    engine::decide(
        &spec(),
        &mut status,
        &Inputs::at(t(0)).with_generation(Some(1)),
    );
    status.target_pending = false;
    status.target_sequence = Some(1);
    status.update_conditions(t(0));
    status
}

/// `started()` after checkpoints every 10 minutes with these values.
fn after(values: &[f64]) -> RolloutStatus {
    let mut status = started();
    for (i, value) in values.iter().enumerate() {
        let at = t((i as i64 + 1) * 600);
        let observations = [Observation::Value(*value)];
        engine::decide(
            &spec(),
            &mut status,
            &Inputs::at(at)
                .with_generation(Some(1))
                .with_live_percent(Percent::whole(1))
                .with_observations(&observations),
        );
        status.update_conditions(at);
    }
    status
}

fn at_one_percent() -> Gathered {
    Gathered {
        live: Ok(Some(Percent::whole(1))),
        live_input: Some(Percent::whole(1)),
        ..Gathered::empty()
    }
}

fn with_value(gathered: Gathered, value: f64) -> Gathered {
    Gathered {
        readings: vec![reading(Observation::Value(value))],
        ..gathered
    }
}

fn reasons(plan: &Plan) -> Vec<&'static str> {
    plan.notices.iter().map(|n| n.reason).collect()
}

// ── before the start ─────────────────────────────────────────────────────────────────────────

#[test]
fn a_failed_pre_check_keeps_it_pending_on_its_backoff_and_writes_no_target() {
    let gathered = Gathered {
        before_start: BeforeStart::Failed(vec!["ConfigMap kaviar/pct not found".into()]),
        ..Gathered::empty()
    };
    let plan = plan(&rollout(None), &gathered, t(0));
    assert_eq!(plan.status.phase, Some(Phase::Pending));
    assert!(
        plan.status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("ConfigMap kaviar/pct not found")),
        "{:?}",
        plan.status.message
    );
    assert_eq!(plan.target, None);
    assert!(!plan.status.target_pending);
    assert_eq!(plan.wake, Wake::Backoff);
    assert!(
        reasons(&plan).contains(&"PreCheckFailed"),
        "{:?}",
        reasons(&plan)
    );
}

#[test]
fn passed_pre_checks_start_it_and_write_the_first_stage_as_sequence_1() {
    let plan = plan(&rollout(None), &Gathered::empty(), t(0));
    assert_eq!(plan.status.phase, Some(Phase::Progressing));
    assert_eq!(plan.target, Some(Percent::whole(1)));
    assert!(plan.status.target_pending, "unconfirmed until written");
    assert_eq!(plan.status.target_sequence, Some(1));
    assert_eq!(plan.priority(), Priority::Transition);
    assert_eq!(
        plan.wake,
        Wake::After(MAX_REQUEUE),
        "the next checkpoint is 10 min away: capped"
    );
    assert!(reasons(&plan).contains(&"Started"), "{:?}", reasons(&plan));
}

#[test]
fn a_refused_service_account_before_the_start_keeps_it_pending_as_forbidden() {
    let gathered = Gathered {
        denial: Some("ServiceAccount kaviar/team may not patch configmaps pct".into()),
        ..Gathered::empty()
    };
    let plan = plan(&rollout(None), &gathered, t(0));
    assert_eq!(plan.status.phase, Some(Phase::Pending));
    assert_eq!(plan.status.reason.as_deref(), Some(REASON_FORBIDDEN));
    assert!(
        plan.status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("ServiceAccount kaviar/team")),
        "{:?}",
        plan.status.message
    );
    assert_eq!(plan.target, None);
    assert_eq!(plan.wake, Wake::Backoff);
}

#[test]
fn a_target_owned_by_another_rollout_keeps_it_pending_with_that_reason() {
    let gathered = Gathered {
        before_start: BeforeStart::Owned("the target is owned by kaviar/other".into()),
        ..Gathered::empty()
    };
    let plan = plan(&rollout(None), &gathered, t(0));
    assert_eq!(plan.status.phase, Some(Phase::Pending));
    assert_eq!(plan.status.reason.as_deref(), Some(TARGET_OWNED));
    assert_eq!(plan.target, None);
    assert!(
        reasons(&plan).contains(&"TargetOwned"),
        "{:?}",
        reasons(&plan)
    );
}

// ── after the start ──────────────────────────────────────────────────────────────────────────

#[test]
fn a_refused_service_account_after_the_start_pauses_it() {
    let gathered = Gathered {
        denial: Some("ServiceAccount kaviar/team may not patch configmaps pct".into()),
        ..at_one_percent()
    };
    let plan = plan(&rollout(Some(started())), &gathered, t(60));
    assert_eq!(plan.status.phase, Some(Phase::Paused));
    assert_eq!(plan.status.reason.as_deref(), Some(REASON_FORBIDDEN));
    assert_eq!(plan.target, None);
    assert!(
        reasons(&plan).contains(&REASON_FORBIDDEN),
        "{:?}",
        reasons(&plan)
    );
}

#[test]
fn paused_as_forbidden_holds_the_repair_and_keeps_the_write_unconfirmed() {
    let mut status = started();
    status.phase = Some(Phase::Paused);
    status.reason = Some(REASON_FORBIDDEN.into());
    status.target_pending = true;
    let gathered = Gathered {
        live: Ok(Some(Percent::ZERO)),
        repair: Some(Percent::whole(1)),
        ..Gathered::empty()
    };
    let plan = plan(&rollout(Some(status)), &gathered, t(60));
    assert_eq!(plan.target, None, "no repair until a resume");
    assert!(plan.status.target_pending);
}

#[test]
fn a_routine_checkpoint_writes_only_its_status_as_routine() {
    let plan = plan(
        &rollout(Some(started())),
        &with_value(at_one_percent(), 0.0),
        t(600),
    );
    assert!(plan.outcome.checkpoint.is_some());
    assert!(plan.outcome.transitions.is_empty());
    assert_eq!(plan.target, None);
    assert_eq!(plan.priority(), Priority::Routine);
    assert_ne!(plan.status.last_checkpoint, started().last_checkpoint);
    assert_eq!(
        plan.wake,
        Wake::After(MAX_REQUEUE),
        "the next checkpoint is 10 min away: capped"
    );
}

#[test]
fn a_passing_checkpoint_after_the_stage_advances_and_writes_the_next_percent() {
    let status = after(&[0.0, 0.0, 0.0, 0.0, 0.0]);
    let plan = plan(
        &rollout(Some(status)),
        &with_value(at_one_percent(), 0.0),
        t(H),
    );
    assert_eq!(plan.status.stage, 1);
    assert_eq!(plan.target, Some(Percent::whole(5)));
    assert_eq!(plan.status.target_sequence, Some(2));
    assert_eq!(plan.priority(), Priority::Transition);
    assert!(reasons(&plan).contains(&"Advanced"), "{:?}", reasons(&plan));
}

#[test]
fn failing_checkpoints_up_to_the_limit_roll_back_to_zero() {
    let status = after(&[0.5]);
    let plan = plan(
        &rollout(Some(status)),
        &with_value(at_one_percent(), 0.5),
        t(1200),
    );
    assert_eq!(plan.status.phase, Some(Phase::RolledBack));
    assert_eq!(plan.target, Some(Percent::ZERO));
    assert!(plan.status.target_pending);
    assert_eq!(plan.priority(), Priority::Transition);
    assert!(
        reasons(&plan).contains(&"RolledBack"),
        "{:?}",
        reasons(&plan)
    );
}

#[test]
fn a_final_write_records_the_targets_version_before_it() {
    let status = after(&[0.5]);
    let gathered = Gathered {
        target_token: Some("42".into()),
        ..with_value(at_one_percent(), 0.5)
    };
    let plan = plan(&rollout(Some(status)), &gathered, t(1200));
    assert_eq!(plan.status.target_version.as_deref(), Some("42"));
}

#[test]
fn a_hand_edit_of_the_target_is_a_drift_reverted_to_the_rollouts_percent() {
    let gathered = Gathered {
        live: Ok(Some(Percent::whole(7))),
        live_input: Some(Percent::whole(7)),
        ..Gathered::empty()
    };
    let plan = plan(&rollout(Some(started())), &gathered, t(60));
    assert_eq!(plan.target, Some(Percent::whole(1)));
    assert_eq!(plan.priority(), Priority::Transition);
    assert!(
        reasons(&plan).contains(&"DriftDetected"),
        "{:?}",
        reasons(&plan)
    );
}

#[test]
fn an_unconfirmed_write_is_repaired_not_read_as_drift() {
    let mut status = started();
    status.target_pending = true;
    let gathered = Gathered {
        live: Ok(Some(Percent::ZERO)),
        repair: Some(Percent::whole(1)),
        ..Gathered::empty()
    };
    let plan = plan(&rollout(Some(status)), &gathered, t(60));
    assert_eq!(plan.target, Some(Percent::whole(1)));
    assert!(plan.notices.is_empty(), "{:?}", reasons(&plan));
}

#[test]
fn a_target_that_already_holds_the_percent_is_not_written_again() {
    let gathered = Gathered {
        live: Ok(Some(Percent::whole(1))),
        ..Gathered::empty()
    };
    let plan = plan(&rollout(None), &gathered, t(0));
    assert_eq!(plan.status.phase, Some(Phase::Progressing));
    assert_eq!(plan.target, None);
    assert!(!plan.status.target_pending);
}

// ── finished ─────────────────────────────────────────────────────────────────────────────────

fn rolled_back() -> RolloutStatus {
    let mut status = after(&[0.5, 0.5]);
    assert_eq!(status.phase, Some(Phase::RolledBack));
    status.target_pending = false;
    status
}

#[test]
fn a_finished_rollout_leaves_a_hand_edited_target_alone() {
    let status = rolled_back();
    let gathered = Gathered {
        live: Ok(Some(Percent::whole(50))),
        ..Gathered::empty()
    };
    let plan = plan(&rollout(Some(status.clone())), &gathered, t(5 * H));
    assert_eq!(plan.target, None);
    assert!(plan.outcome.transitions.is_empty());
    assert_eq!(plan.status, status, "nothing to write");
    assert_eq!(plan.wake, Wake::After(MAX_REQUEUE));
}

#[test]
fn a_finished_rollouts_settled_final_write_clears_target_pending_and_writes_nothing() {
    let mut status = rolled_back();
    status.target_pending = true;
    let gathered = Gathered {
        live: Ok(Some(Percent::whole(50))),
        settled: true,
        ..Gathered::empty()
    };
    let plan = plan(&rollout(Some(status)), &gathered, t(5 * H));
    assert_eq!(plan.target, None);
    assert!(!plan.status.target_pending);
}

#[test]
fn a_finished_rollouts_final_write_that_never_happened_is_finished() {
    let mut status = rolled_back();
    status.target_pending = true;
    let gathered = Gathered {
        live: Ok(Some(Percent::whole(1))),
        repair: Some(Percent::ZERO),
        ..Gathered::empty()
    };
    let plan = plan(&rollout(Some(status)), &gathered, t(5 * H));
    assert_eq!(plan.target, Some(Percent::ZERO));
}

// ── actions, the target's reading ────────────────────────────────────────────────────────────

#[test]
fn a_claimed_pause_is_applied_once_and_recorded() {
    let claim = Claim {
        action: Some(ManualAction::Pause),
        token: "pause/11".into(),
    };
    let gathered = Gathered {
        claim: Some(claim.clone()),
        ..at_one_percent()
    };
    let plan = plan(&rollout(Some(started())), &gathered, t(60));
    assert_eq!(plan.status.phase, Some(Phase::Paused));
    assert_eq!(plan.status.last_action.as_deref(), Some("pause/11"));
    assert_eq!(plan.claim, Some(claim.clone()));
    // Already recorded: not applied again, only released.
    let again = super::plan(&rollout(Some(plan.status.clone())), &gathered, t(120));
    assert!(again.outcome.transitions.is_empty());
    assert_eq!(again.claim, Some(claim));
}

#[test]
fn an_unknown_action_word_is_reported() {
    let gathered = Gathered {
        claim: Some(Claim {
            action: None,
            token: "jump/11".into(),
        }),
        ..at_one_percent()
    };
    let plan = plan(&rollout(Some(started())), &gathered, t(60));
    assert!(
        reasons(&plan).contains(&"InvalidAction"),
        "{:?}",
        reasons(&plan)
    );
}

#[test]
fn an_unreadable_target_of_a_started_rollout_is_reported_and_not_written() {
    let gathered = Gathered {
        live: Err(TargetError::NotFound {
            object: "ConfigMap kaviar/pct".into(),
        }),
        ..Gathered::empty()
    };
    let plan = plan(&rollout(Some(started())), &gathered, t(60));
    assert_eq!(plan.target, None);
    assert!(
        reasons(&plan).contains(&"TargetUnreadable"),
        "{:?}",
        reasons(&plan)
    );
}

#[test]
fn the_same_inputs_give_the_same_plan() {
    let r = rollout(Some(after(&[0.5])));
    let a = plan(&r, &with_value(at_one_percent(), 0.5), t(1200));
    let b = plan(&r, &with_value(at_one_percent(), 0.5), t(1200));
    assert_eq!(a.status, b.status);
    assert_eq!(a.target, b.target);
    assert_eq!(reasons(&a), reasons(&b));
}

// ── triage: deleted, not leading, stale ──────────────────────────────────────────────────────

#[test]
fn triage_forgets_a_deleted_rollout_before_anything_else() {
    let mut r = rollout(Some(started()));
    assert_eq!(triage(&r, true, false), Triage::Reconcile);
    assert_eq!(triage(&r, false, false), Triage::NotLeader);
    assert_eq!(triage(&r, true, true), Triage::Stale);
    r.metadata.deletion_timestamp = Some(Time(t(0)));
    assert_eq!(triage(&r, false, true), Triage::Forget);
}
