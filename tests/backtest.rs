//! `rollgate backtest` against a real Prometheus serving history built with `promtool tsdb
//! create-blocks-from openmetrics`: the backtest must make exactly the decisions `simulate`
//! makes on the same values.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::prometheus::{free_port, tool};

mod support;

const HOUR: i64 = 3600;

/// One gate's value over time, as (offset in seconds, value) steps; `None` is a gap with no
/// samples.
type Steps = &'static [(i64, Option<f64>)];

/// A case: its error-ratio steps, its critical-alert steps (1 = firing) and the phase the
/// replay must end in.
struct Case {
    name: &'static str,
    error_ratio: Steps,
    alert: Steps,
    expect: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "healthy",
        error_ratio: &[(0, Some(0.002))],
        alert: &[(0, None)],
        expect: "Succeeded",
    },
    Case {
        name: "breaches",
        error_ratio: &[(0, Some(0.002)), (9000, Some(0.03))],
        alert: &[(0, None)],
        expect: "RolledBack",
    },
    Case {
        name: "spike",
        error_ratio: &[(0, Some(0.002)), (9000, Some(0.03)), (12600, Some(0.004))],
        alert: &[(0, None)],
        expect: "Succeeded",
    },
    Case {
        name: "alert",
        error_ratio: &[(0, Some(0.002))],
        alert: &[(0, None), (5400, Some(1.0)), (9000, None)],
        expect: "RolledBack",
    },
    Case {
        name: "gap",
        error_ratio: &[(0, Some(0.002)), (9000, None)],
        alert: &[(0, None)],
        expect: "Paused",
    },
    Case {
        name: "nan",
        error_ratio: &[(0, Some(0.002)), (9000, Some(f64::NAN))],
        alert: &[(0, None)],
        expect: "Paused",
    },
];

/// The history lasts 12 hours from the start, one sample a minute.
const SPAN: i64 = 12 * HOUR;

fn value_at(steps: Steps, offset: i64) -> Option<f64> {
    steps
        .iter()
        .take_while(|(at, _)| *at <= offset)
        .last()
        .and_then(|(_, v)| *v)
}

fn openmetrics(start: i64) -> String {
    let mut text = String::from("# TYPE gate_error_ratio gauge\n");
    for case in CASES {
        for offset in (0..=SPAN).step_by(60) {
            if let Some(v) = value_at(case.error_ratio, offset) {
                let v = if v.is_nan() {
                    "NaN".to_owned()
                } else {
                    v.to_string()
                };
                let _ = writeln!(
                    text,
                    "gate_error_ratio{{case=\"{}\"}} {v} {}",
                    case.name,
                    start + offset
                );
            }
        }
    }
    text.push_str("# TYPE ALERTS gauge\n");
    for case in CASES {
        for offset in (0..=SPAN).step_by(60) {
            if value_at(case.alert, offset).is_some() {
                let _ = writeln!(
                    text,
                    "ALERTS{{alertname=\"Broken\",alertstate=\"firing\",case=\"{}\",severity=\"critical\"}} 1 {}",
                    case.name,
                    start + offset
                );
            }
        }
    }
    text.push_str("# EOF\n");
    text
}

/// The same steps as a simulate scenario series. A gap ends 5 minutes after the last sample
/// (Prometheus' lookback), so checkpoints on the hour see it as no data either way.
fn series(steps: Steps, empty_means: &str) -> String {
    let mut text = String::new();
    for (at, v) in steps {
        let entry = match v {
            Some(v) if v.is_nan() => "value: .nan".to_owned(),
            Some(v) => format!("value: {v}"),
            None => empty_means.to_owned(),
        };
        let _ = writeln!(text, "    - {{at: {at}s, {entry}}}");
    }
    text
}

fn plan(case: &str) -> String {
    format!(
        r#"apiVersion: rollgate.dev/v1alpha1
kind: Rollout
metadata: {{name: backtest-{case}, namespace: test}}
spec:
  target: {{configMap: {{name: cm, key: percent}}}}
  stages:
    - {{percent: 1, duration: 2h}}
    - {{percent: 5, duration: 2h}}
    - {{percent: 10, duration: 4h}}
  analysis:
    interval: 1h
    errorLimit: 3
    gates:
      - name: error-rate
        prometheus: {{query: 'gate_error_ratio{{case="{case}"}}'}}
        max: 0.01
        failureLimit: 2
      - name: critical-alerts
        alerts: {{matchers: ['severity="critical"', 'case="{case}"']}}
"#
    )
}

struct Server {
    child: Child,
    address: String,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ready(address: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return false;
    };
    let request = format!("GET /-/ready HTTP/1.0\r\nHost: {address}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

/// Builds TSDB blocks from `history` and starts Prometheus on them.
fn serve_history(prometheus: &Path, promtool: &Path, history: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("rollgate-backtest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("history.om");
    std::fs::write(&input, history).unwrap();
    let data = dir.join("data");
    let built = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .expect("promtool runs");
    assert!(
        built.status.success(),
        "promtool failed: {}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    std::fs::write(dir.join("prometheus.yml"), "global: {}\n").unwrap();
    for _attempt in 0..3 {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address={address}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let mut server = Server {
            child,
            address: format!("http://{address}"),
            dir: dir.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if server.child.try_wait().ok().flatten().is_some() {
                break;
            }
            if ready(&address) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = server.child.kill();
        let _ = server.child.wait();
        std::mem::forget(server);
    }
    panic!(
        "prometheus did not start: {}",
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    );
}

fn rollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(args)
        .output()
        .expect("rollgate runs")
}

fn events(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn rfc3339(seconds: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(seconds)
        .unwrap()
        .to_string()
}

#[test]
fn backtest_on_built_history_reproduces_simulate() {
    let (Some(prometheus), Some(promtool)) = (tool("prometheus"), tool("promtool")) else {
        return;
    };
    // Whole hours, three days back: old enough to lie in blocks, not in the head.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = (now - 3 * 24 * HOUR) / HOUR * HOUR;
    let server = serve_history(&prometheus, &promtool, &openmetrics(start));
    let dir = server.dir.clone();

    for case in CASES {
        let plan_path = dir.join(format!("{}.plan.yaml", case.name));
        std::fs::write(&plan_path, plan(case.name)).unwrap();
        let scenario_path = dir.join(format!("{}.scenario.yaml", case.name));
        std::fs::write(
            &scenario_path,
            format!(
                "start: {}\nuntil: {SPAN}s\ngates:\n  error-rate:\n{}  critical-alerts:\n{}",
                rfc3339(start),
                series(case.error_ratio, "nodata: true"),
                series(case.alert, "value: 0"),
            ),
        )
        .unwrap();
        let plan_arg = plan_path.to_str().unwrap();
        let simulated = events(&rollgate(&[
            "simulate",
            plan_arg,
            "--scenario",
            scenario_path.to_str().unwrap(),
            "--output",
            "json",
        ]));
        let replayed = events(&rollgate(&[
            "backtest",
            plan_arg,
            "--prometheus",
            &server.address,
            "--start",
            &rfc3339(start),
            "--end",
            &rfc3339(start + SPAN),
            "--output",
            "json",
        ]));
        assert_eq!(
            replayed, simulated,
            "case {}: the backtest must decide as simulate does",
            case.name
        );
        let summary = replayed.last().unwrap();
        assert_eq!(summary["phase"], case.expect, "case {}", case.name);
    }
}

#[test]
fn unreplayable_gates_are_refused_unless_assumed_to_pass() {
    let dir = std::env::temp_dir().join(format!("rollgate-backtest-refuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plan_path = dir.join("plan.yaml");
    let plan = plan("x").replace(
        "      - name: critical-alerts",
        "      - name: determinism\n        ofrep: {address: 'http://127.0.0.1:9'}\n      - name: health\n        http: {url: 'http://127.0.0.1:9', jsonPath: '$.ok'}\n      - name: critical-alerts",
    );
    std::fs::write(&plan_path, plan).unwrap();
    let base = [
        "backtest",
        plan_path.to_str().unwrap(),
        "--prometheus",
        "http://127.0.0.1:9",
        "--start",
        "2026-02-01T00:00:00Z",
        "--end",
        "2026-02-01T01:00:00Z",
    ];
    let refused = rollgate(&base);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("determinism, health") && err.contains("--assume-pass"),
        "{err}"
    );

    let mut one = base.to_vec();
    one.extend(["--assume-pass", "determinism"]);
    let still = rollgate(&one);
    assert_eq!(still.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&still.stderr).contains("gates health cannot"));

    let mut unknown = base.to_vec();
    unknown.extend(["--assume-pass", "nope"]);
    let out = rollgate(&unknown);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--assume-pass nope"));

    let mut bad_window = base.to_vec();
    bad_window[5] = "2026-02-02T00:00:00Z";
    let out = rollgate(&bad_window);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--end"));
    let _ = std::fs::remove_dir_all(&dir);
}
