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

use crate::support;

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

/// Builds TSDB blocks from `history` and starts Prometheus on them; `name` keeps the
/// directories of tests running at once apart.
fn serve_history(prometheus: &Path, promtool: &Path, history: &str, name: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("rollgate-backtest-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("history.om");
    std::fs::write(&input, history).unwrap();
    let data = dir.join("data");
    let built = Command::new(promtool)
        .args([
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=744h",
        ])
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
    let server = serve_history(&prometheus, &promtool, &openmetrics(start), "cases");
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
        let instant = events(&rollgate(&[
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
            "--query-mode",
            "instant",
        ]));
        assert_eq!(
            instant, replayed,
            "case {}: instant queries must decide as range queries do",
            case.name
        );
        let summary = replayed.last().unwrap();
        assert_eq!(summary["phase"], case.expect, "case {}", case.name);
    }

    // A query with {{percent}} changes text at every stage change: each stage must read its
    // own text's history (0.002 × percent: 0.002, 0.01, then 0.02 over the 0.015 maximum).
    let plan_path = dir.join("percent.plan.yaml");
    std::fs::write(
        &plan_path,
        plan("healthy")
            .replace(
                r#"'gate_error_ratio{case="healthy"}'"#,
                r#"'gate_error_ratio{case="healthy"} * {{percent}}'"#,
            )
            .replace(
                "max: 0.01\n        failureLimit: 2",
                "max: 0.015\n        failureLimit: 1",
            ),
    )
    .unwrap();
    let replay = |mode: &str| {
        events(&rollgate(&[
            "backtest",
            plan_path.to_str().unwrap(),
            "--prometheus",
            &server.address,
            "--start",
            &rfc3339(start),
            "--end",
            &rfc3339(start + SPAN),
            "--output",
            "json",
            "--query-mode",
            mode,
        ]))
    };
    let before = requests_to(&server.address, "/api/v1/query_range");
    let ranged = replay("range");
    let range_requests = requests_to(&server.address, "/api/v1/query_range") - before;
    assert_eq!(ranged, replay("instant"));
    let summary = ranged.last().unwrap();
    assert_eq!(summary["phase"], "RolledBack", "{ranged:#?}");
    assert_eq!(summary["stage"], 2, "{ranged:#?}");
    // Three texts of the error-rate query (one per stage), one of the alerts query.
    assert_eq!(range_requests, 4, "{ranged:#?}");
}

/// How many successful requests Prometheus served on `handler`, from its own metrics.
fn requests_to(address: &str, handler: &str) -> u64 {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).unwrap();
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let series = format!("prometheus_http_requests_total{{code=\"200\",handler=\"{handler}\"}} ");
    answer
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[test]
fn a_138_day_replay_at_one_minute_takes_a_few_dozen_requests() {
    let (Some(prometheus), Some(promtool)) = (tool("prometheus"), tool("promtool")) else {
        return;
    };
    const DAY: i64 = 24 * HOUR;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = (now - 140 * DAY) / HOUR * HOUR;
    let span = 138 * DAY;
    let mut history = String::from("# TYPE gate_error_ratio gauge\n");
    for offset in (0..=span).step_by(60) {
        let _ = writeln!(
            history,
            "gate_error_ratio{{case=\"long\"}} 0.002 {}",
            start + offset
        );
    }
    history.push_str("# EOF\n");
    let server = serve_history(&prometheus, &promtool, &history, "long");
    let plan_path = server.dir.join("long.plan.yaml");
    std::fs::write(
        &plan_path,
        plan("long")
            .replace("interval: 1h", "interval: 1m")
            .replace("duration: 2h", "duration: 960h")
            .replace("duration: 4h", "duration: 960h")
            .replace(
                r#"'gate_error_ratio{case="long"}'"#,
                r#"'gate_error_ratio{case="long"} * {{percent}}'"#,
            )
            .replace("max: 0.01", "max: 0.05"),
    )
    .unwrap();
    let out = rollgate(&[
        "backtest",
        plan_path.to_str().unwrap(),
        "--prometheus",
        &server.address,
        "--start",
        &rfc3339(start),
        "--end",
        &rfc3339(start + span),
        "--output",
        "json",
    ]);
    let replayed = events(&out);
    let summary = replayed.last().unwrap();
    assert_eq!(summary["phase"], "Succeeded", "{summary}");
    let checkpoints = replayed
        .iter()
        .filter(|e| e["event"] == "checkpoint")
        .count();
    assert_eq!(checkpoints, 3 * 40 * 24 * 60);
    let requests = requests_to(&server.address, "/api/v1/query_range");
    let instant = requests_to(&server.address, "/api/v1/query");
    // 120 days of checkpoints: 18 stretches of the error-rate query (its text changes with
    // each stage of 57,600 checkpoints), 16 of the alerts query; no instant query at all.
    assert_eq!((requests, instant), (34, 0));
}

#[test]
fn connection_flags_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.yaml");
    std::fs::write(&plan_path, plan("x")).unwrap();
    let bad_ca = dir.path().join("ca.pem");
    std::fs::write(&bad_ca, "not a certificate").unwrap();
    let base = [
        "backtest",
        plan_path.to_str().unwrap(),
        "--start",
        "2026-02-01T00:00:00Z",
        "--end",
        "2026-02-01T01:00:00Z",
    ];
    let cases: [(&[&str], &str); 6] = [
        (&["--prometheus", "ftp://127.0.0.1:9"], "--prometheus"),
        (&["--prometheus", "http://[::1"], "--prometheus"),
        (
            &[
                "--prometheus",
                "http://127.0.0.1:9",
                "--prometheus-ca",
                bad_ca.to_str().unwrap(),
            ],
            "--prometheus-ca",
        ),
        (
            &[
                "--prometheus",
                "http://127.0.0.1:9",
                "--prometheus-header",
                "Bad Name: x",
            ],
            "--prometheus-header",
        ),
        (
            &[
                "--prometheus",
                "http://127.0.0.1:9",
                "--prometheus-token",
                "a\nb",
            ],
            "--prometheus-token",
        ),
        (
            &[
                "--prometheus",
                "http://127.0.0.1:9",
                "--allow-address",
                "ftp://x",
            ],
            "--allow-address",
        ),
    ];
    for (flags, named) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(flags);
        let out = rollgate(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(named), "{flags:?}: {stderr}");
        assert!(!stderr.contains("error-rate"), "{flags:?}: {stderr}");
        assert!(!stderr.contains("a\nb"), "the token was printed: {stderr}");
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

/// Request counters labelled with the flag's variant, one sample a minute: with the flag
/// (`on`) 100 requests a minute, `errors_on` of them failing; without it (`off`) 900 a minute,
/// 9 failing (1 %).
fn variant_history(start: i64, cases: &[(&str, u64)]) -> String {
    let mut text = String::from("# TYPE http_requests counter\n");
    for (case, errors_on) in cases {
        for (variant, code, per_minute) in [
            ("on", "200", 100 - errors_on),
            ("on", "500", *errors_on),
            ("off", "200", 891),
            ("off", "500", 9),
        ] {
            for minute in 0..=(SPAN / 60) {
                let _ = writeln!(
                    text,
                    "http_requests_total{{case=\"{case}\",code=\"{code}\",feature_flag_variant=\"{variant}\"}} {} {}",
                    per_minute * minute as u64,
                    start + minute * 60
                );
            }
        }
    }
    text.push_str("# EOF\n");
    text
}

fn compare_plan(case: &str) -> String {
    format!(
        r#"apiVersion: rollgate.dev/v1alpha1
kind: Rollout
metadata: {{name: backtest-{case}, namespace: test}}
spec:
  target: {{configMap: {{name: cm, key: percent}}}}
  stages:
    - {{percent: 10, duration: 2h}}
    - {{percent: 20, duration: 2h}}
  analysis:
    interval: 30m
    gates:
      - name: errors-vs-control
        compare:
          units: 'sum(increase(http_requests_total{{case="{case}",feature_flag_variant="{{{{variant}}}}"}}[{{{{window}}}}]))'
          events: 'sum(increase(http_requests_total{{case="{case}",code=~"5..",feature_flag_variant="{{{{variant}}}}"}}[{{{{window}}}}]))'
          maxRegression: 0.002
"#
    )
}

/// The decisions of a timeline: every event's word, time and stage, and each checkpoint's
/// gate verdicts (values may differ slightly between query modes: Prometheus extrapolates
/// each `increase`).
fn decisions(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let gates: Vec<String> = e["gates"]
                .as_array()
                .map(|g| g.iter().map(|g| g["verdict"].to_string()).collect())
                .unwrap_or_default();
            format!(
                "{} {} {} {}",
                e["event"],
                e["at"],
                e["stage"],
                gates.join(",")
            )
        })
        .collect()
}

#[test]
fn compare_backtest_reaches_the_same_decisions_in_both_query_modes() {
    let (Some(prometheus), Some(promtool)) = (tool("prometheus"), tool("promtool")) else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = (now - 3 * 24 * HOUR) / HOUR * HOUR;
    let cases = [("regression", 5), ("flat", 1)];
    let server = serve_history(
        &prometheus,
        &promtool,
        &variant_history(start, &cases),
        "compare",
    );
    for (case, expect) in [("regression", "RolledBack"), ("flat", "Succeeded")] {
        let plan_path = server.dir.join(format!("{case}.compare.yaml"));
        std::fs::write(&plan_path, compare_plan(case)).unwrap();
        let run = |mode: &[&str]| {
            let mut args = vec![
                "backtest",
                plan_path.to_str().unwrap(),
                "--prometheus",
                &server.address,
                "--output",
                "json",
            ];
            let (from, to) = (rfc3339(start), rfc3339(start + SPAN));
            let mut owned = vec![from, to];
            let to = owned.pop().unwrap();
            let from = owned.pop().unwrap();
            args.extend(["--start", &from, "--end", &to]);
            args.extend(mode);
            events(&rollgate(&args))
        };
        let ranged = run(&[]);
        let instant = run(&["--query-mode", "instant"]);
        assert_eq!(decisions(&ranged), decisions(&instant), "{case}");
        let summary = ranged.last().unwrap();
        assert_eq!(summary["phase"], expect, "{case}: {ranged:#?}");
        let first = ranged.iter().find(|e| e["event"] == "checkpoint").unwrap();
        let gate = &first["gates"][0];
        // 30 minutes: 3,000 requests with the flag, 27,000 without.
        let units = gate["treatment"]["units"].as_f64().unwrap();
        assert!((units - 3000.0).abs() < 150.0, "{case}: {gate}");
        let control = gate["control"]["units"].as_f64().unwrap();
        assert!((control - 27_000.0).abs() < 1350.0, "{case}: {gate}");
        if case == "regression" {
            assert_eq!(gate["verdict"], "fail", "{case}: {gate}");
        }
    }
}
