//! `rollgate backtest --report`: the report of a replay is built from the same events as a
//! simulation's, with the backtest named as its source and each checkpoint's value from the
//! (fake, loopback) Prometheus.
//!
//! The fake answers each query on its own and by time: the error-rate gate's value grows with
//! the time it is asked about, the latency gate's stays put, so a report that shows the right
//! value at the right checkpoint proves backtest asked each query at that checkpoint's time
//! (instant queries) or over the right range and step (range queries), and read the answers
//! back in order. The fake also records every query and time it was asked.

use crate::support;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;

use support::wire::{read_request, write_response};

const ERROR_RATE: &str = r#"sum(rate(http_requests_total{code=~"5.."}[5m]))"#;
const LATENCY: &str =
    r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"#;

const PLAN: &str = r#"
apiVersion: rollgate.dev/v1alpha1
kind: Rollout
metadata: {name: checkout-v2, namespace: shop}
spec:
  target: {configMap: {name: rollout, key: percent}}
  stages:
    - {percent: 10, duration: 1h}
    - {percent: 50, duration: 1h}
  analysis:
    interval: 30m
    gates:
      - name: error-rate
        prometheus: {query: 'sum(rate(http_requests_total{code=~"5.."}[5m]))'}
        max: 0.01
      - name: latency
        prometheus: {query: 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))'}
        max: 0.5
"#;

/// The replay's window.
const START: &str = "2026-02-01T19:18:00Z";
const END: &str = "2026-02-01T22:18:00Z";
/// `START` in Unix seconds.
const START_SECONDS: i64 = 1_769_973_480;
/// The interval, in seconds.
const STEP: i64 = 1_800;

/// The fake's answer for `query` at Unix second `t`: the error rate grows by 0.001 every half
/// hour after the window's start; the latency is 0.25 s throughout; anything else has no data.
fn value(query: &str, t: i64) -> Option<f64> {
    match query {
        ERROR_RATE => Some(0.001 * ((t - START_SECONDS) / STEP) as f64),
        LATENCY => Some(0.25),
        _ => None,
    }
}

/// One query as the fake received it: the PromQL and its form fields (`time`, or `start`,
/// `end`, `step`).
#[derive(Clone, Debug)]
struct Asked {
    path: String,
    query: String,
    fields: BTreeMap<String, String>,
}

impl Asked {
    fn seconds(&self, field: &str) -> i64 {
        let text = self
            .fields
            .get(field)
            .unwrap_or_else(|| panic!("{self:?} has no {field}"));
        let seconds: f64 = text
            .parse()
            .unwrap_or_else(|_| panic!("{field}={text} is not a number of seconds"));
        assert_eq!(seconds.fract(), 0.0, "{field}={text}: whole seconds");
        seconds as i64
    }
}

/// A fake Prometheus answering `/api/v1/query` and `/api/v1/query_range` from [`value`].
struct PerQuery {
    address: SocketAddr,
    asked: Arc<Mutex<Vec<Asked>>>,
}

impl PerQuery {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake");
        let address = listener.local_addr().expect("address");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                thread::spawn(move || answer(&stream, &log));
            }
        });
        Self { address, asked }
    }

    fn address(&self) -> String {
        format!("http://{}", self.address)
    }

    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().expect("lock").clone()
    }
}

fn answer(stream: &TcpStream, log: &Mutex<Vec<Asked>>) {
    let Ok(request) = read_request(stream) else {
        return;
    };
    let target = request.line.split(' ').nth(1).unwrap_or_default();
    let (path, query_string) = target.split_once('?').unwrap_or((target, ""));
    let mut fields: BTreeMap<String, String> = form(query_string);
    fields.extend(form(&request.body));
    let query = fields.remove("query").unwrap_or_default();
    let asked = Asked {
        path: path.to_owned(),
        query: query.clone(),
        fields,
    };
    let body = match path {
        "/api/v1/query" => {
            let t = asked.seconds("time");
            let result: Vec<serde_json::Value> = value(&query, t)
                .map(|v| serde_json::json!({"metric": {}, "value": [t, v.to_string()]}))
                .into_iter()
                .collect();
            serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}})
        }
        "/api/v1/query_range" => {
            let (start, end, step) = (
                asked.seconds("start"),
                asked.seconds("end"),
                asked.seconds("step"),
            );
            let values: Vec<serde_json::Value> = (0..)
                .map(|i| start + i * step.max(1))
                .take_while(|t| *t <= end)
                .filter_map(|t| value(&query, t).map(|v| serde_json::json!([t, v.to_string()])))
                .collect();
            let result: Vec<serde_json::Value> = if values.is_empty() {
                Vec::new()
            } else {
                vec![serde_json::json!({"metric": {}, "values": values})]
            };
            serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": result}})
        }
        _ => {
            serde_json::json!({"status": "error", "errorType": "bad_data", "error": "unknown path"})
        }
    };
    if let Ok(mut log) = log.lock() {
        log.push(asked);
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let _ = write_response(stream, 200, "application/json", &bytes, true);
}

/// `a=1&b=x%20y` as a map (form encoding: `+` is a space).
fn form(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the backtest of [`PLAN`] against `fake` in `mode` and returns the report's Markdown.
fn backtest(fake: &PerQuery, mode: &str) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let plan = dir.path().join("checkout.yaml");
    std::fs::write(&plan, PLAN).expect("plan written");
    let report = dir.path().join("replay.md");
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args([
            "backtest",
            plan.to_str().expect("UTF-8"),
            "--prometheus",
            &fake.address(),
            "--start",
            START,
            "--end",
            END,
            "--query-mode",
            mode,
            "--report",
            report.to_str().expect("UTF-8"),
        ])
        .output()
        .expect("the rollgate binary runs");
    assert!(
        out.status.success(),
        "backtest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let markdown = std::fs::read_to_string(&report).expect("the report was written");
    assert!(markdown.contains("![Percent and gate values over time](replay.svg)"));
    let svg = std::fs::read_to_string(dir.path().join("replay.svg")).expect("the chart");
    roxmltree::Document::parse(&svg).expect("well-formed SVG");
    markdown
}

/// The checkpoint rows of a report.
fn checkpoints(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter(|l| l.contains("| checkpoint |"))
        .map(str::to_owned)
        .collect()
}

/// What both modes must report: the window, the outcome, and at the checkpoint `k` half hours
/// after the start, the error rate `0.00k` and the latency 0.25.
fn assert_report(markdown: &str) {
    assert!(
        markdown.contains(&format!(
            "| Source | backtest of checkout.yaml over Prometheus history from {START} to {END} |"
        )),
        "{markdown}"
    );
    assert!(
        markdown.contains("# Release report: shop/checkout-v2"),
        "{markdown}"
    );
    assert!(
        markdown.contains(
            "| Outcome | **Succeeded** at stage 2 of 2, 50% on the target, +2h after the start |"
        ),
        "{markdown}"
    );
    let rows = checkpoints(markdown);
    assert_eq!(rows.len(), 4, "{markdown}");
    let times = ["19:48", "20:18", "20:48", "21:18"];
    for (k, (row, time)) in rows.iter().zip(times).enumerate() {
        let k = k + 1;
        assert!(
            row.starts_with(&format!("| 2026-02-01T{time}:00Z |")),
            "checkpoint {k} at {time}: {row}"
        );
        assert!(
            row.ends_with(&format!(
                "| pass | error-rate 0.00{k} pass; latency 0.25 pass |"
            )),
            "checkpoint {k} (+{}m) shows the values asked for at its time: {row}",
            k * 30
        );
    }
}

#[test]
fn an_instant_backtest_asks_each_query_at_each_checkpoint_and_reports_each_answer() {
    let fake = PerQuery::start();
    let markdown = backtest(&fake, "instant");
    assert_report(&markdown);
    let asked = fake.asked();
    assert!(
        asked.iter().all(|a| a.path == "/api/v1/query"),
        "instant queries only: {asked:#?}"
    );
    // Each gate's query, once at each checkpoint: +30m, +60m, +90m, +120m.
    let checkpoint_times: Vec<i64> = (1..=4).map(|k| START_SECONDS + k * STEP).collect();
    for query in [ERROR_RATE, LATENCY] {
        let mut times: Vec<i64> = asked
            .iter()
            .filter(|a| a.query == query)
            .map(|a| a.seconds("time"))
            .collect();
        times.sort_unstable();
        assert_eq!(times, checkpoint_times, "{query}");
    }
    assert_eq!(asked.len(), 8, "no other query: {asked:#?}");
}

#[test]
fn a_range_backtest_asks_each_query_over_the_window_by_the_interval_and_reports_each_step() {
    let fake = PerQuery::start();
    let markdown = backtest(&fake, "range");
    assert_report(&markdown);
    let asked = fake.asked();
    assert!(
        asked.iter().all(|a| a.path == "/api/v1/query_range"),
        "range queries only: {asked:#?}"
    );
    for query in [ERROR_RATE, LATENCY] {
        let ranges: Vec<(i64, i64, i64)> = asked
            .iter()
            .filter(|a| a.query == query)
            .map(|a| (a.seconds("start"), a.seconds("end"), a.seconds("step")))
            .collect();
        // One request per gate: from the first checkpoint to the end of the window, one step
        // per interval.
        assert_eq!(
            ranges,
            [(START_SECONDS + STEP, START_SECONDS + 6 * STEP, STEP)],
            "{query}"
        );
    }
    assert_eq!(asked.len(), 2, "no other query: {asked:#?}");
}
