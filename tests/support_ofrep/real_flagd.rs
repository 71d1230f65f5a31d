//! The real flagd evaluator (PyPI `openfeature-flagd-core`) behind an OFREP endpoint on
//! loopback, run by `flagd_ofrep_server.py`. Absent, a test skips with a loud message when run
//! by hand and fails under CI (`CI=true`), so CI cannot pass by skipping it.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A running real evaluator; it is killed when dropped.
pub struct RealFlagd {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for RealFlagd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support_ofrep/flagd_ofrep_server.py")
}

fn available() -> bool {
    Command::new("python3")
        .args(["-c", "import openfeature.contrib.tools.flagd.core"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts the real evaluator on `definition`, or `None` (after a loud message) when it is not
/// installed and this is not CI.
pub fn start(definition: &Value) -> Option<RealFlagd> {
    if !available() {
        let message = "the real flagd evaluator is not installed: \
                       pip install -r tests/support_ofrep/requirements.txt";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        // Straight to stderr, past the test harness' capture, so a skip is seen.
        let _ = writeln!(std::io::stderr(), "\n!!!! SKIPPED: {message} !!!!\n");
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let flags = dir.path().join("flags.json");
    std::fs::write(&flags, definition.to_string()).expect("write flags");
    let mut child = Command::new("python3")
        .arg(script())
        .arg(&flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read port");
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("bad port line {line:?}"));
    Some(RealFlagd {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    })
}
