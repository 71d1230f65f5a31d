//! The operator commands that need no cluster, run as the real binary: `lint` on good and bad
//! plans (exit statuses, each problem naming the file and the field, the CRD's CEL rules
//! evaluated offline), `completions`, and the kubectl plugin's name in help and usage.

#![allow(dead_code)]

use rollgate::lint;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

fn rollgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rollgate"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

const GOOD: &str = "\
apiVersion: rollgate.dev/v1alpha1
kind: Rollout
metadata: {name: passenger-favorites-matching, namespace: kaviar}
spec:
  target:
    flagd: {configMap: feature-flags, flag: passenger_favorites_matching}
  stages:
    - {percent: 1, duration: 2h}
    - {percent: 5, duration: 2h}
  analysis:
    interval: 1h
    gates:
      - name: error-rate
        prometheus: {query: 'sum(rate(errors[5m]))'}
        max: 0.01
";

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write the plan");
    path
}

fn lint(files: &[&Path]) -> Output {
    rollgate()
        .arg("lint")
        .args(files)
        .output()
        .expect("rollgate runs")
}

#[test]
fn lint_accepts_a_good_plan() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let good = write(dir.path(), "good.yaml", GOOD);
    let output = lint(&[&good]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        format!(
            "{}: document 1: Rollout kaviar/passenger-favorites-matching: ok\n\
             lint: 1 Rollout in 1 file, 0 with problems; 0 other documents skipped\n",
            good.display()
        )
    );
}

#[test]
fn lint_names_the_file_place_and_field_of_each_problem_and_exits_2() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let good = write(dir.path(), "good.yaml", GOOD);
    let bad = write(
        dir.path(),
        "bad.yaml",
        &GOOD
            .replace("{percent: 5, duration: 2h}", "{percent: 1, duration: 2h}")
            .replace("max: 0.01", "max: 0.01\n        failureLimit: 0")
            .replace("interval: 1h", "interval: 1h\n    errorLimt: 3"),
    );
    let output = lint(&[&good, &bad]);
    assert_eq!(output.status.code(), Some(2));
    let out = text(&output.stdout);
    let bad = bad.display().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{}: document 1: ", good.display())),
        "{out}"
    );
    // The unknown field stops the strict reading before the plan rules; the CRD's CEL rules
    // still report the rest. Each line leads with FILE:LINE:COL of the field.
    for (place, field) in [
        (
            "12:16",
            "spec.analysis.errorLimt: unknown field; did you mean errorLimit?",
        ),
        (
            "8:5",
            "spec.stages: stage percents must be strictly increasing (CRD validation rule)",
        ),
        (
            "17:23",
            "spec.analysis.gates[0].failureLimit: failureLimit must be at least 1 (CRD validation rule)",
        ),
    ] {
        let wanted = format!("{bad}:{place}: document 1: {field}");
        assert!(
            lines.contains(&wanted.as_str()),
            "{wanted} not found:\n{out}"
        );
    }
    assert_eq!(
        lines.last().copied(),
        Some("lint: 2 Rollouts in 2 files, 1 with problems; 0 other documents skipped")
    );
}

/// The README's own example of a notification filter, before and after the rename of `on`.
fn with_notifications(filter: &str) -> String {
    format!(
        "{GOOD}  notifications:\n    - webhook: {{urlSecretRef: {{name: hooks, key: url}}}}\n    - slack: {{urlSecretRef: {{name: slack, key: url}}}}\n      {filter}: [rollback, pause, complete]\n"
    )
}

#[test]
fn lint_and_simulate_refuse_the_old_notification_key_naming_when() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let good = write(dir.path(), "when.yaml", &with_notifications("when"));
    let output = lint(&[&good]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    let scenario = write(
        dir.path(),
        "scenario.yaml",
        "until: 1h\ngates:\n  error-rate:\n    - {at: 0s, value: 0.001}\n",
    );
    // `on` as written, `"true"` as kubectl stores it after reading YAML 1.1.
    for (name, key) in [("on.yaml", "on"), ("true.yaml", "\"true\"")] {
        let bad = write(dir.path(), name, &with_notifications(key));
        let shown = bad.display().to_string();
        let output = lint(&[&bad]);
        assert_eq!(output.status.code(), Some(2), "{key}");
        let out = text(&output.stdout);
        assert!(
            out.starts_with(&format!("{shown}:"))
                && out.contains(": document 1: spec.notifications[1].on: renamed to when"),
            "{key}: {out}"
        );
        let output = rollgate()
            .args(["simulate", &shown, "--scenario"])
            .arg(&scenario)
            .output()
            .expect("rollgate runs");
        assert_eq!(output.status.code(), Some(2), "{key}");
        let err = text(&output.stderr);
        assert!(
            err.contains("spec.notifications[1].on: renamed to when"),
            "{key}: {err}"
        );
    }
}

#[test]
fn lint_reports_a_syntax_error_by_place_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let bad = write(
        dir.path(),
        "duration.yaml",
        &GOOD.replacen("duration: 2h", "duration: 2hours", 1),
    );
    let output = lint(&[&bad]);
    assert_eq!(output.status.code(), Some(2));
    let out = text(&output.stdout);
    assert_eq!(
        out.lines().count(),
        2,
        "one problem and the summary:\n{out}"
    );
    assert!(out.contains("\"2hours\" is not a Go duration"), "{out}");
    assert!(out.starts_with(&format!("{}:8:", bad.display())), "{out}");
}

#[test]
fn a_cel_rule_that_cannot_run_adds_no_second_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let bad = write(
        dir.path(),
        "no-percent.yaml",
        &GOOD.replace("{percent: 5, duration: 2h}", "{duration: 2h}"),
    );
    let output = lint(&[&bad]);
    assert_eq!(output.status.code(), Some(2));
    let out = text(&output.stdout);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.contains(":9:7: document 1: spec.stages[1].percent: missing; this field is required"),
        "{out}"
    );
    assert!(
        !out.to_lowercase().contains("rule evaluation error"),
        "{out}"
    );
}

#[test]
fn lint_of_a_missing_path_cannot_read_it_and_exits_3() {
    let output = lint(&[Path::new("no-such-plan.yaml")]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        text(&output.stdout).starts_with("no-such-plan.yaml: cannot read"),
        "{}",
        text(&output.stdout)
    );
}

/// A GitOps tree: kustomize output with a ConfigMap, an Argo Rollout and a broken rollgate
/// Rollout in one stream, a good plan in a subdirectory, a README that is not read and a
/// `.git` directory that is passed over.
fn gitops_tree(root: &Path) -> String {
    std::fs::create_dir_all(root.join("apps/kaviar")).expect("dirs");
    std::fs::create_dir_all(root.join(".git")).expect("dirs");
    std::fs::write(root.join(".git/broken.yaml"), "a: [\n").expect("write");
    std::fs::write(root.join("README.md"), "not: [yaml\n").expect("write");
    write(&root.join("apps/kaviar"), "rollout.yml", GOOD);
    let stream = format!(
        "# kustomize build overlays/prod\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: feature-flags}}\ndata: {{a: b}}\n---\n\
         apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {{name: backend}}\nspec: {{replicas: 3}}\n---\n{}",
        GOOD.replace("{percent: 5, duration: 2h}", "{percent: 1, duration: 2h}")
    );
    write(&root.join("apps"), "all.yaml", &stream);
    stream
}

#[test]
fn lint_walks_a_gitops_tree_and_skips_what_is_not_ours() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    gitops_tree(dir.path());
    let output = lint(&[dir.path()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let out = text(&output.stdout);
    let all = dir.path().join("apps/all.yaml").display().to_string();
    let good = dir
        .path()
        .join("apps/kaviar/rollout.yml")
        .display()
        .to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "{all}:21:17: document 3: spec.stages[1].percent: stage percents must be strictly increasing (1 follows 1)"
            )
            .as_str(),
            &format!("{good}: document 1: Rollout kaviar/passenger-favorites-matching: ok"),
            "lint: 2 Rollouts in 2 files, 1 with problems; 2 other documents skipped",
        ],
        "{out}"
    );
}

#[test]
fn lint_reads_standard_input_and_prints_json_or_github_annotations() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let stream = gitops_tree(dir.path());
    let run = |format: &str| {
        let mut child = rollgate()
            .args(["lint", "--output", format, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("rollgate runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stream.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("rollgate ends")
    };
    let output = run("json");
    assert_eq!(output.status.code(), Some(2));
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["rollouts"], 1);
    assert_eq!(report["skipped"], 2);
    assert_eq!(report["invalid"], 1);
    let problem = &report["problems"][0];
    assert_eq!(problem["file"], "<stdin>");
    assert_eq!(problem["documentIndex"], 2);
    assert_eq!(problem["line"], 21);
    assert_eq!(problem["column"], 17);
    assert_eq!(problem["field"], "spec.stages[1].percent");

    let output = run("github");
    assert_eq!(output.status.code(), Some(2));
    let out = text(&output.stdout);
    assert!(
        out.starts_with(
            "::error file=<stdin>,line=21,col=17,title=rollgate lint::document 3: spec.stages[1].percent: "
        ),
        "{out}"
    );
}

#[test]
fn the_crd_cel_rules_are_evaluated_offline() {
    let mut object: serde_json::Value = serde_saphyr::from_str(GOOD).expect("yaml");
    assert_eq!(lint::cel_problems(&object), Vec::new());
    object["spec"]["stages"][1]["percent"] = json!(1);
    object["spec"]["rollback"] = json!({"percent": 5});
    let problems = lint::cel_problems(&object);
    assert_eq!(
        problems,
        [
            (
                "spec".to_owned(),
                "rollback.percent must not exceed the first stage's percent: a rollback never \
                 raises exposure"
                    .to_owned()
            ),
            (
                "spec.stages".to_owned(),
                "stage percents must be strictly increasing".to_owned()
            ),
        ]
    );
}

#[test]
fn a_cel_rule_the_reading_did_not_report_is_added_with_its_field() {
    // Every CEL rule has a twin in `validate_spec` today; a rule without one (a CRD rule added
    // later) still reaches the report, and a twin is not reported twice.
    let reading = vec![
        "spec.stages[1].percent: stage percents must be strictly increasing".to_owned(),
        "spec.rollback.percent: 5 is above the first stage's percent (1)".to_owned(),
    ];
    let cel = vec![
        (
            "spec.stages".to_owned(),
            "stage percents must be strictly increasing".to_owned(),
        ),
        (
            "spec.analysis".to_owned(),
            "gate names must be unique".to_owned(),
        ),
        (
            "spec".to_owned(),
            "rollback.percent must not exceed the first stage's percent".to_owned(),
        ),
        ("spec".to_owned(), "a rule about the whole spec".to_owned()),
    ];
    assert_eq!(
        lint::merge(reading, cel),
        [
            "spec.stages[1].percent: stage percents must be strictly increasing",
            "spec.rollback.percent: 5 is above the first stage's percent (1)",
            "spec.analysis: gate names must be unique (CRD validation rule)",
            "spec: a rule about the whole spec (CRD validation rule)",
        ]
    );
}

#[test]
fn completions_print_a_script_for_each_shell() {
    for (shell, marker) in [
        (
            "bash",
            "complete -o nospace -o bashdefault -o nosort -F _clap_complete_rollgate rollgate",
        ),
        ("zsh", "#compdef rollgate"),
        (
            "fish",
            "complete --keep-order --exclusive --command rollgate",
        ),
    ] {
        let output = rollgate()
            .args(["completions", shell])
            .output()
            .expect("rollgate runs");
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let script = text(&output.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        // The script asks the binary at every TAB (dynamic completion).
        assert!(script.contains("COMPLETE="), "{shell}: {script}");
    }
    let output = rollgate()
        .args(["completions", "tcsh"])
        .output()
        .expect("rollgate runs");
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

/// What the binary answers a completion script (`COMPLETE=bash rollgate -- WORD…`).
fn complete_bash(words: &[&str]) -> Vec<String> {
    let output = rollgate()
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
        .env("_CLAP_IFS", "\n")
        .arg("--")
        .args(words)
        .output()
        .expect("rollgate runs");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    text(&output.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn dynamic_completion_completes_commands_and_flags() {
    let commands = complete_bash(&["rollgate", "pro"]);
    assert_eq!(commands, ["promote"], "{commands:?}");
    let flags = complete_bash(&["rollgate", "status", "--req"]);
    assert_eq!(flags, ["--request-timeout"], "{flags:?}");
    let flags = complete_bash(&["rollgate", "promote", "--fu"]);
    assert_eq!(flags, ["--full"], "{flags:?}");
}

#[test]
fn installed_as_kubectl_rollgate_it_calls_itself_kubectl_rollgate() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let plugin = dir.path().join("kubectl-rollgate");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rollgate"), &plugin).expect("symlink");
    let output = Command::new(&plugin)
        .args(["status", "--help"])
        .output()
        .expect("the plugin runs");
    assert_eq!(output.status.code(), Some(0));
    let help = text(&output.stdout);
    assert!(
        help.contains("Usage: kubectl rollgate status [OPTIONS] <NAME>"),
        "{help}"
    );
    let output = rollgate()
        .args(["status", "--help"])
        .output()
        .expect("rollgate runs");
    assert!(
        text(&output.stdout).contains("Usage: rollgate status [OPTIONS] <NAME>"),
        "{}",
        text(&output.stdout)
    );
}
