//! Many evaluations with the real flagd evaluator (PyPI `openfeature-flagd-core`) in one
//! process, run by `flagd_batch_eval.py`. Absent, a test skips with a loud message when run by
//! hand and fails under CI (`CI=true`), so CI cannot pass by skipping it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// One definition and the keys to evaluate its flag for.
pub struct Job<'a> {
    pub definition: &'a str,
    pub flag: &'a str,
    pub keys: &'a [String],
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support_ofrep/flagd_batch_eval.py")
}

fn available() -> bool {
    Command::new("python3")
        .args(["-c", "import openfeature.contrib.tools.flagd.core"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The variant the real evaluator serves each key of each job (`None`: no variant), or `None`
/// (after a loud message) when the evaluator is not installed and this is not CI.
pub fn evaluate(jobs: &[Job<'_>]) -> Option<Vec<Vec<Option<String>>>> {
    evaluate_in_contexts(jobs, &[])
}

/// As [`evaluate`], with each key's other context attributes (`attributes[i]` for `keys[i]`,
/// an object such as `{"tier": "gold"}`; none when `attributes` is empty).
pub fn evaluate_in_contexts(
    jobs: &[Job<'_>],
    attributes: &[Value],
) -> Option<Vec<Vec<Option<String>>>> {
    if !available() {
        let message = "the real flagd evaluator is not installed: \
                       pip install -r tests/support_ofrep/requirements.txt";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        let _ = writeln!(std::io::stderr(), "\n!!!! SKIPPED: {message} !!!!\n");
        return None;
    }
    let input: Vec<Value> = jobs
        .iter()
        .map(|j| {
            let mut job = json!({"definition": j.definition, "flag": j.flag, "keys": j.keys});
            if !attributes.is_empty() {
                job["attributes"] = Value::from(attributes.to_vec());
            }
            job
        })
        .collect();
    let mut child = Command::new("python3")
        .arg(script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut stdin = child.stdin.take().expect("stdin");
    let body = serde_json::to_vec(&input).expect("jobs");
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output().expect("evaluator output");
    writer.join().expect("writer").expect("write jobs");
    assert!(
        output.status.success(),
        "the real flagd evaluator failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).expect("evaluator answer"))
}
