//! The Argo CD health check (`gitops/argocd/health.lua`) run by a real Lua interpreter on one
//! fixture Rollout per phase, with the expected results of `gitops/argocd/health_test.yaml`.
//!
//! Argo CD hands the script the live object as the global `obj` (JSON objects as tables,
//! arrays as sequences, null as absent) and reads `status` and `message` from the table it
//! returns; the runner here does the same. Every interpreter found among `lua5.1` (Argo CD's
//! gopher-lua is a Lua 5.1) and `lua5.4` runs every case. `.ci/gitops.sh` installs both; with
//! neither on PATH the test says SKIPPED loudly, and fails under `CI=true`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use rollgate::api::{Phase, Rollout};
use serde::Deserialize;
use serde_json::Value;

const DIR: &str = "gitops/argocd";
const INTERPRETERS: [&str; 2] = ["lua5.1", "lua5.4"];

/// Runs the health check the way Argo CD does: `obj` is set, the script's chunk is called, and
/// its result is printed as two lines, status then message.
const RUNNER: &str = r#"
local script = assert(loadfile(arg[1]))
local hs = script()
assert(type(hs) == "table", "the health check must return a table")
io.write(tostring(hs.status), "\n", tostring(hs.message), "\n")
"#;

#[derive(Deserialize)]
struct HealthTests {
    tests: Vec<HealthTest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthTest {
    input_path: String,
    health_status: Health,
}

#[derive(Deserialize, Debug, PartialEq, Clone)]
struct Health {
    status: String,
    message: String,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn cases() -> Vec<HealthTest> {
    let path = dir().join("health_test.yaml");
    let tests: HealthTests =
        serde_saphyr::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    tests.tests
}

fn fixture(input_path: &str) -> Value {
    let path = dir().join(input_path);
    let text = read(&path);
    // Each fixture is a Rollout the controller could have written: it reads as the typed
    // resource, so a renamed status field shows up here rather than in a cluster.
    let _typed: Rollout = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a Rollout: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Lua string literal for any text: printable ASCII as is, everything else as decimal
/// escapes, which Lua 5.1 and 5.4 both read.
fn lua_string(text: &str) -> String {
    let mut out = String::from("\"");
    for byte in text.bytes() {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => out.push_str(&format!("\\{byte:03}")),
        }
    }
    out.push('"');
    out
}

/// The Lua table constructor for a JSON value, as Argo CD converts it: null is absent.
fn lua_value(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_value).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_value(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// The interpreters on PATH, by name.
fn interpreters() -> Vec<&'static str> {
    INTERPRETERS
        .into_iter()
        .filter(|name| {
            Command::new(name)
                .arg("-v")
                .output()
                .is_ok_and(|out| out.status.success())
        })
        .collect()
}

/// The interpreters to run, or `None` (after saying so) when none is installed outside CI.
fn interpreters_or_skip() -> Option<Vec<&'static str>> {
    let found = interpreters();
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if in_ci {
        let missing: Vec<_> = INTERPRETERS
            .into_iter()
            .filter(|name| !found.contains(name))
            .collect();
        assert!(
            missing.is_empty(),
            "CI=true but {missing:?} not on PATH: run `bash .ci/gitops.sh` first"
        );
    }
    if found.is_empty() {
        // Straight to the process' stderr: the test harness captures `eprintln!` of passing
        // tests, and a skip must be seen.
        let _ignored = writeln!(
            std::io::stderr(),
            "\n******** SKIPPED: argocd_health: no Lua interpreter ({}) on PATH; \
             install them with `bash .ci/gitops.sh` ********\n",
            INTERPRETERS.join(", ")
        );
        return None;
    }
    Some(found)
}

/// Runs the health check on one object with one interpreter.
fn health(interpreter: &str, object: &Value, work: &Path) -> Health {
    let runner = work.join("runner.lua");
    let script = format!("obj = {}\n{RUNNER}", lua_value(object));
    std::fs::write(&runner, script).expect("write the runner");
    let out = Command::new(interpreter)
        .arg(&runner)
        .arg(dir().join("health.lua"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {interpreter}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{interpreter} failed ({}):\n{}{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let message = lines.next().unwrap_or_default().to_owned();
    Health { status, message }
}

#[test]
fn health_check_gives_the_expected_status_for_each_fixture() {
    let Some(found) = interpreters_or_skip() else {
        return;
    };
    let work = tempfile::tempdir().expect("a temporary directory");
    let cases = cases();
    assert!(!cases.is_empty(), "health_test.yaml lists no tests");
    for interpreter in found {
        for case in &cases {
            let object = fixture(&case.input_path);
            let got = health(interpreter, &object, work.path());
            assert_eq!(
                got, case.health_status,
                "{interpreter} on {}",
                case.input_path
            );
        }
    }
}

#[test]
fn a_lagging_observed_generation_is_progressing_in_every_phase() {
    let Some(found) = interpreters_or_skip() else {
        return;
    };
    let work = tempfile::tempdir().expect("a temporary directory");
    for case in cases() {
        let mut object = fixture(&case.input_path);
        let Some(observed) = object
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
        else {
            continue;
        };
        object["metadata"]["generation"] = Value::from(observed + 1);
        for interpreter in &found {
            let got = health(interpreter, &object, work.path());
            assert_eq!(
                got.status, "Progressing",
                "{interpreter} on {}",
                case.input_path
            );
            assert_eq!(
                got.message,
                format!(
                    "Waiting for the rollgate controller to observe generation {} (status describes {observed})",
                    observed + 1
                ),
                "{interpreter} on {}",
                case.input_path
            );
        }
        // Without an observedGeneration at all, the status describes no known generation.
        if let Some(status) = object["status"].as_object_mut() {
            status.remove("observedGeneration");
        }
        for interpreter in &found {
            let got = health(interpreter, &object, work.path());
            assert_eq!(
                got.status, "Progressing",
                "{interpreter} on {}",
                case.input_path
            );
        }
    }
}

#[test]
fn every_phase_has_a_fixture_and_every_fixture_a_test() {
    let cases = cases();
    let listed: Vec<&str> = cases.iter().map(|c| c.input_path.as_str()).collect();
    let mut on_disk = Vec::new();
    for entry in std::fs::read_dir(dir().join("fixtures")).expect("the fixtures directory") {
        let name = entry.expect("a directory entry").file_name();
        on_disk.push(format!("fixtures/{}", name.to_string_lossy()));
    }
    for file in &on_disk {
        assert!(
            listed.contains(&file.as_str()),
            "{file} has no test in health_test.yaml"
        );
    }
    let phases: Vec<String> = listed
        .iter()
        .filter_map(|p| {
            fixture(p)
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    for phase in [
        Phase::Pending,
        Phase::Progressing,
        Phase::Paused,
        Phase::Succeeded,
        Phase::RolledBack,
        Phase::Failed,
    ] {
        assert!(
            phases.iter().any(|p| p == phase.as_str()),
            "no fixture in phase {}",
            phase.as_str()
        );
    }
}

#[test]
fn argocd_cm_snippet_carries_the_script_verbatim() {
    #[derive(Deserialize)]
    struct ConfigMap {
        data: std::collections::BTreeMap<String, String>,
    }
    let path = dir().join("argocd-cm.yaml");
    let cm: ConfigMap =
        serde_saphyr::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let key = "resource.customizations.health.rollgate.dev_Rollout";
    let embedded = cm
        .data
        .get(key)
        .unwrap_or_else(|| panic!("{} has no data key {key}", path.display()));
    let script = read(&dir().join("health.lua"));
    if let Some((line, (a, b))) = embedded
        .lines()
        .zip(script.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        panic!(
            "argocd-cm.yaml's script differs from health.lua at line {}:\n  argocd-cm: {a:?}\n  health.lua: {b:?}",
            line + 1
        );
    }
    assert_eq!(
        embedded, &script,
        "argocd-cm.yaml's script differs from health.lua at the end"
    );
}

#[test]
fn lua_literals_escape_what_lua_would_misread() {
    assert_eq!(lua_string("a\"b\\c"), r#""a\"b\\c""#);
    assert_eq!(lua_string("5%\n"), r#""5%\010""#);
    assert_eq!(lua_string("é"), r#""\195\169""#);
    let object = serde_json::json!({"a": [1, 2.5], "b": null, "c": true});
    assert_eq!(lua_value(&object), r#"{["a"] = {1, 2.5}, ["c"] = true}"#);
}
