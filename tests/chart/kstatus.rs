//! The Rollout's conditions follow kstatus, so Flux (and anything else built on kstatus)
//! reads a rollout's health without a plug-in: for every phase, `RolloutStatus::
//! update_conditions` sets `Ready` True only when done, `Reconciling` True while the controller
//! still moves on its own, `Stalled` True on RolledBack and Failed, each with the observed
//! generation; kstatus' generic rules then give the result `gitops/flux/README.md` promises.
//! The Flux examples in `gitops/flux/` are checked too, their CEL health checks evaluated with
//! a CEL interpreter in Flux's order.

use std::path::PathBuf;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use rollgate::api::{Phase, Rollout, RolloutStatus};
use serde_json::Value;

const FLUX: &str = "gitops/flux";
const GENERATION: i64 = 3;

/// Every phase, and "no phase yet" as `None`.
const PHASES: [Option<Phase>; 7] = [
    None,
    Some(Phase::Pending),
    Some(Phase::Progressing),
    Some(Phase::Paused),
    Some(Phase::Succeeded),
    Some(Phase::RolledBack),
    Some(Phase::Failed),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

fn name(phase: Option<Phase>) -> &'static str {
    phase.map_or("(none yet)", Phase::as_str)
}

/// The status the controller writes in a phase: conditions set by `update_conditions`.
fn status(phase: Option<Phase>) -> RolloutStatus {
    let mut status = RolloutStatus {
        phase,
        message: Some(format!("the rollout is {}", name(phase))),
        observed_generation: Some(GENERATION),
        ..RolloutStatus::default()
    };
    let now = Timestamp::from_second(1_770_000_000).expect("a valid time");
    status.update_conditions(now);
    status
}

/// The example Rollout at [`GENERATION`] with the given status, as the unstructured object
/// kstatus and Flux read.
fn object(status: RolloutStatus) -> Value {
    let mut rollout: Rollout =
        serde_saphyr::from_str(&read("examples/passenger-favorites-matching.yaml"))
            .expect("the example Rollout parses");
    rollout.metadata.generation = Some(GENERATION);
    rollout.status = Some(status);
    serde_json::to_value(&rollout).expect("a Rollout serializes")
}

fn condition<'a>(status: &'a RolloutStatus, kind: &str) -> &'a Condition {
    let found: Vec<&Condition> = status
        .conditions
        .iter()
        .filter(|c| c.type_ == kind)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {kind} condition: {:?}",
        status.conditions
    );
    found[0]
}

fn is_true(status: &RolloutStatus, kind: &str) -> bool {
    condition(status, kind).status == "True"
}

/// kstatus' generic rules (sigs.k8s.io/cli-utils, `status.Compute` for a resource without
/// type-specific rules): Terminating when deleted; InProgress while `status.observedGeneration`
/// is present and differs from `metadata.generation`; then InProgress on `Reconciling=True`,
/// Failed on `Stalled=True`; Current otherwise.
fn kstatus(object: &Value) -> &'static str {
    if object
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
    {
        return "Terminating";
    }
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let observed = object
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    if let (Some(generation), Some(observed)) = (generation, observed)
        && generation != observed
    {
        return "InProgress";
    }
    let conditions = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in &conditions {
        if c["status"] == "True" {
            if c["type"] == "Reconciling" {
                return "InProgress";
            }
            if c["type"] == "Stalled" {
                return "Failed";
            }
        }
    }
    "Current"
}

#[test]
fn conditions_follow_kstatus_rules_in_every_phase() {
    for phase in PHASES {
        let status = status(phase);
        let at = name(phase);
        assert_eq!(
            is_true(&status, "Ready"),
            phase == Some(Phase::Succeeded),
            "{at}: Ready is True exactly when the rollout is done"
        );
        assert_eq!(
            is_true(&status, "Reconciling"),
            matches!(
                phase,
                None | Some(Phase::Pending | Phase::Progressing | Phase::Paused)
            ),
            "{at}: Reconciling is True exactly while the rollout is not done (a pause waits for a person)"
        );
        assert_eq!(
            is_true(&status, "Stalled"),
            matches!(phase, Some(Phase::RolledBack | Phase::Failed)),
            "{at}: Stalled is True exactly when only a new spec or a person moves it on"
        );
        assert!(
            !(is_true(&status, "Reconciling") && is_true(&status, "Stalled")),
            "{at}: never reconciling and stalled at once"
        );
        assert_eq!(status.observed_generation, Some(GENERATION), "{at}");
        for kind in ["Ready", "Reconciling", "Stalled"] {
            let c = condition(&status, kind);
            assert!(
                ["True", "False"].contains(&c.status.as_str()),
                "{at}: {kind} {}",
                c.status
            );
            assert_eq!(c.observed_generation, Some(GENERATION), "{at}: {kind}");
            let reason_ok = c.reason.chars().next().is_some_and(char::is_uppercase)
                && c.reason.chars().all(|ch| ch.is_ascii_alphanumeric());
            assert!(
                reason_ok,
                "{at}: {kind} reason {:?} is not CamelCase",
                c.reason
            );
            assert_eq!(c.message, format!("the rollout is {at}"), "{at}: {kind}");
            assert_ne!(c.last_transition_time, Time(Timestamp::UNIX_EPOCH), "{at}");
        }
    }
}

/// What kstatus makes of each phase, as the table in gitops/flux/README.md says.
fn expected_kstatus(phase: Option<Phase>) -> &'static str {
    match phase {
        None | Some(Phase::Pending | Phase::Progressing | Phase::Paused) => "InProgress",
        Some(Phase::Succeeded) => "Current",
        Some(Phase::RolledBack | Phase::Failed) => "Failed",
    }
}

#[test]
fn kstatus_reads_each_phase_as_documented() {
    for phase in PHASES {
        let object = object(status(phase));
        assert_eq!(kstatus(&object), expected_kstatus(phase), "{}", name(phase));
    }
}

#[test]
fn a_lagging_observed_generation_is_in_progress_whatever_the_phase() {
    for phase in PHASES {
        let mut object = object(status(phase));
        object["metadata"]["generation"] = Value::from(GENERATION + 1);
        assert_eq!(kstatus(&object), "InProgress", "{}", name(phase));
    }
    // Being deleted wins over everything.
    let mut object = object(status(Some(Phase::Progressing)));
    object["metadata"]["deletionTimestamp"] = Value::from("2026-02-01T19:18:00Z");
    assert_eq!(kstatus(&object), "Terminating");
}

#[test]
fn the_flux_readme_table_matches_the_conditions() {
    let readme = read(&format!("{FLUX}/README.md"));
    let mut rows = 0;
    for line in readme.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Some(phase) = PHASES.into_iter().find(|p| name(*p) == cells[0]) else {
            continue;
        };
        rows += 1;
        let status = status(phase);
        let at = name(phase);
        for (column, kind) in [(1, "Ready"), (2, "Reconciling"), (3, "Stalled")] {
            assert_eq!(
                cells[column],
                condition(&status, kind).status,
                "{at}: {kind}"
            );
        }
        assert_eq!(cells[4], condition(&status, "Ready").reason, "{at}: reason");
        assert_eq!(
            cells[5],
            kstatus(&object(status.clone())),
            "{at}: kstatus result"
        );
    }
    assert_eq!(rows, PHASES.len(), "one row per phase in {FLUX}/README.md");
}

/// The Kustomizations of one example file.
fn kustomizations(file: &str) -> Vec<Value> {
    let path = format!("{FLUX}/{file}");
    let docs: Vec<Value> =
        serde_saphyr::from_str_multiple(&read(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(!docs.is_empty(), "{path} is empty");
    for doc in &docs {
        assert_eq!(
            doc["apiVersion"], "kustomize.toolkit.fluxcd.io/v1",
            "{path}"
        );
        assert_eq!(doc["kind"], "Kustomization", "{path}");
        for field in ["interval", "path", "sourceRef"] {
            assert!(
                !doc["spec"][field].is_null(),
                "{path}: spec.{field} is required"
            );
        }
        assert!(
            doc["spec"]["prune"].is_boolean(),
            "{path}: spec.prune is required"
        );
    }
    docs
}

#[test]
fn flux_examples_wait_on_rollouts() {
    let wait = kustomizations("kustomization-wait.yaml");
    assert_eq!(wait[0]["spec"]["wait"], true);
    assert!(
        wait[0]["spec"]["timeout"].is_string(),
        "a timeout longer than the plan"
    );
    assert_eq!(
        wait[1]["spec"]["dependsOn"][0]["name"],
        wait[0]["metadata"]["name"]
    );

    let checks = kustomizations("kustomization-healthchecks.yaml");
    let check = &checks[0]["spec"]["healthChecks"][0];
    assert_eq!(check["apiVersion"], "rollgate.dev/v1alpha1");
    assert_eq!(check["kind"], "Rollout");
    let example: Value =
        serde_saphyr::from_str(&read("examples/passenger-favorites-matching.yaml"))
            .expect("the example Rollout parses");
    assert_eq!(check["name"], example["metadata"]["name"]);
    assert_eq!(check["namespace"], example["metadata"]["namespace"]);
    assert!(
        checks[0]["spec"]["wait"] != true,
        "with wait: true Flux ignores healthChecks"
    );
}

/// Flux's CEL health check: in progress while the observed generation differs, else the
/// first of inProgress, failed and current that holds, else in progress.
fn flux_cel_status(check: &Value, object: &Value) -> &'static str {
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let observed = object
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    if observed.is_some() && observed != generation {
        return "InProgress";
    }
    let mut context = cel::Context::default();
    for field in ["apiVersion", "kind", "metadata", "spec", "status"] {
        if let Some(value) = object.get(field) {
            context
                .add_variable(field, value.clone())
                .unwrap_or_else(|e| panic!("{field} as a CEL value: {e}"));
        }
    }
    for (key, result) in [
        ("inProgress", "InProgress"),
        ("failed", "Failed"),
        ("current", "Current"),
    ] {
        let Some(expr) = check[key].as_str() else {
            continue;
        };
        let program =
            cel::Program::compile(expr).unwrap_or_else(|e| panic!("{key}: {expr:?}: {e}"));
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => return result,
            Ok(cel::Value::Bool(false)) => {}
            other => panic!("{key}: {expr:?} gave {other:?}, not a boolean"),
        }
    }
    "InProgress"
}

#[test]
fn flux_cel_health_checks_hold_through_a_pause() {
    let docs = kustomizations("kustomization-cel.yaml");
    let check = &docs[0]["spec"]["healthCheckExprs"][0];
    assert_eq!(check["apiVersion"], "rollgate.dev/v1alpha1");
    assert_eq!(check["kind"], "Rollout");
    for phase in PHASES {
        let expected = match phase {
            None | Some(Phase::Pending | Phase::Progressing | Phase::Paused) => "InProgress",
            Some(Phase::Succeeded) => "Current",
            Some(Phase::RolledBack | Phase::Failed) => "Failed",
        };
        let object = object(status(phase));
        assert_eq!(flux_cel_status(check, &object), expected, "{}", name(phase));
        let mut stale = object.clone();
        stale["metadata"]["generation"] = Value::from(GENERATION + 1);
        assert_eq!(
            flux_cel_status(check, &stale),
            "InProgress",
            "{}",
            name(phase)
        );
    }
}
