//! The Grafana dashboard, `dashboards/rollgate.json`, is built on the metrics the controller
//! really exports: every PromQL expression in it (panel targets, annotations, variable
//! queries) parses with a PromQL parser, names only metrics and labels that
//! `Metrics::new()`'s registry encodes, reads counters and histograms through `rate` or
//! `increase` and gauges directly, and every exported metric appears on the dashboard.
//! Prometheus' own `promtool` checks the same expressions, and a real Prometheus scraping two
//! replicas' `/metrics` answers every query with the leader's data (both from Debian's
//! `prometheus` package; skipped loudly without it, and failing under `CI=true`).

use crate::support;

use rollgate::api::Percent;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use promql_parser::label::Matchers;
use promql_parser::parser::{self, Expr, LabelModifier, VectorSelector};
use rollgate::api::{CheckpointVerdict, Phase};
use rollgate::telemetry::{Metrics, Readiness, Servers};
use serde_json::Value;
use support::eventually;
use support::prometheus::{Prometheus, binary, tool};

const DASHBOARD: &str = "dashboards/rollgate.json";
/// Where the Helm chart keeps its copy (a chart can only package files inside itself).
const CHART_COPY: &str = "charts/rollgate/dashboards/rollgate.json";
/// Labels Prometheus adds when it scrapes: `job` and `instance` always, the rest when a
/// Prometheus Operator ServiceMonitor finds the target.
const SCRAPE_LABELS: [&str; 6] = ["job", "instance", "pod", "service", "container", "endpoint"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dashboard_text() -> String {
    let path = root().join(DASHBOARD);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {DASHBOARD}: {e}"))
}

fn dashboard() -> Value {
    serde_json::from_str(&dashboard_text()).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

/// What kind of series a name is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Gauge,
    Counter,
    /// A histogram's `_bucket`, `_sum` or `_count` series: counters too.
    HistogramPart,
}

/// A series name the controller exports, with its family and labels.
#[derive(Debug)]
struct Exported {
    family: String,
    kind: Kind,
    labels: BTreeSet<String>,
}

/// Every series name in the controller's `/metrics`, after each recording method ran once so
/// that labelled families have a sample to show their labels.
fn exported() -> BTreeMap<String, Exported> {
    let m = Metrics::new().expect("metrics");
    m.set_rollout("ns", "r", Some(Percent::whole(5)), Some(Phase::Progressing));
    m.set_gate_value("ns", "r", "error-rate", Some(0.002));
    m.count_checkpoint("ns", "r", CheckpointVerdict::Pass);
    m.count_transition("ns", "r", "advance");
    m.observe_reconcile(0.02, "success");
    m.count_error("kube_api");
    m.count_write("status");
    m.set_leader(true);
    let text = m.encode().expect("encode");

    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            types.insert(name.to_owned(), kind.to_owned());
        }
    }
    let mut out: BTreeMap<String, Exported> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let series = line.rsplit_once(' ').expect("a sample has a value").0;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("labels end with }");
                let labels: BTreeSet<String> = inner
                    .split("\",")
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| kv.split_once('=').expect("label=value").0.to_owned())
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeSet::new()),
        };
        let (family, kind) = match types.get(&name).map(String::as_str) {
            Some("gauge") => (name.clone(), Kind::Gauge),
            Some("counter") => (name.clone(), Kind::Counter),
            Some(other) => panic!("{name}: a metric type the test does not know: {other}"),
            None => {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
                    .unwrap_or_else(|| panic!("{name} has no # TYPE line"));
                (family.to_owned(), Kind::HistogramPart)
            }
        };
        out.entry(name)
            .or_insert_with(|| Exported {
                family,
                kind,
                labels: BTreeSet::new(),
            })
            .labels
            .extend(labels);
    }
    assert!(out.len() >= 9, "too few metrics found:\n{text}");
    out
}

/// One PromQL text of the dashboard, where it was found.
#[derive(Debug)]
struct Query {
    at: String,
    expr: String,
    legend: Option<String>,
}

/// Every PromQL expression: panel targets, annotations, and the selectors inside the
/// variables' `label_values(selector, label)` queries.
fn queries(dash: &Value) -> (Vec<Query>, Vec<(String, String, String)>) {
    let mut out = Vec::new();
    for panel in panels(dash) {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {title:?} has a target without expr"));
            out.push(Query {
                at: format!("panel {title:?} target {}", target["refId"]),
                expr: expr.to_owned(),
                legend: target["legendFormat"].as_str().map(str::to_owned),
            });
        }
    }
    for annotation in dash["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(expr) = annotation["expr"].as_str() {
            out.push(Query {
                at: format!("annotation {}", annotation["name"]),
                expr: expr.to_owned(),
                legend: None,
            });
        }
    }
    let mut label_values = Vec::new();
    for var in dash["templating"]["list"].as_array().into_iter().flatten() {
        if var["type"] != "query" {
            continue;
        }
        let name = var["name"].as_str().unwrap_or("?");
        let query = var["query"]["query"]
            .as_str()
            .or_else(|| var["query"].as_str())
            .unwrap_or_else(|| panic!("variable {name} has no query"));
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| {
                panic!("variable {name}: expected label_values(selector, label): {query}")
            });
        let (selector, label) = inner.rsplit_once(',').unwrap_or_else(|| {
            panic!("variable {name}: label_values needs a selector and a label: {query}")
        });
        out.push(Query {
            at: format!("variable {name}"),
            expr: selector.trim().to_owned(),
            legend: None,
        });
        label_values.push((
            name.to_owned(),
            selector.trim().to_owned(),
            label.trim().to_owned(),
        ));
    }
    (out, label_values)
}

/// Every panel, rows' nested panels included.
fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        out.push(panel);
        for inner in panel["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

/// The expression with Grafana's variables replaced by what they stand for: intervals by a
/// duration, the others by a plain value (they sit inside label matchers' strings).
fn substitute(expr: &str) -> String {
    let mut out = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if braced {
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
            }
        }
        assert!(!name.is_empty(), "a lone $ in {expr}");
        match name.as_str() {
            "__rate_interval" | "__interval" | "__range" => out.push_str("5m"),
            other if other.starts_with("__") => panic!("unknown Grafana variable ${other}"),
            _ => out.push('x'),
        }
    }
    out
}

/// A metric selector found in an expression, and the function it is an argument of.
#[derive(Debug)]
struct Use {
    metric: String,
    labels: Vec<String>,
    range: bool,
    function: Option<String>,
}

#[derive(Default, Debug)]
struct Found {
    uses: Vec<Use>,
    /// Labels named in by/without/on/ignoring.
    grouping: Vec<String>,
}

fn selector_labels(matchers: &Matchers) -> Vec<String> {
    matchers
        .matchers
        .iter()
        .chain(matchers.or_matchers.iter().flatten())
        .map(|m| m.name.clone())
        .collect()
}

fn selector(vs: &VectorSelector, range: bool, function: Option<&str>, found: &mut Found) {
    let named = vs.matchers.matchers.iter().find(|m| m.name == "__name__");
    let metric = vs
        .name
        .clone()
        .or_else(|| named.map(|m| m.value.clone()))
        .unwrap_or_default();
    found.uses.push(Use {
        metric,
        labels: selector_labels(&vs.matchers)
            .into_iter()
            .filter(|l| l != "__name__")
            .collect(),
        range,
        function: function.map(str::to_owned),
    });
}

fn grouping(modifier: Option<&LabelModifier>, found: &mut Found) {
    if let Some(m) = modifier {
        found.grouping.extend(m.labels().labels.iter().cloned());
    }
}

fn walk(expr: &Expr, function: Option<&str>, found: &mut Found) {
    match expr {
        Expr::Aggregate(a) => {
            grouping(a.modifier.as_ref(), found);
            if let Some(p) = &a.param {
                walk(p, None, found);
            }
            walk(&a.expr, None, found);
        }
        Expr::Unary(u) => walk(&u.expr, None, found),
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier {
                grouping(m.matching.as_ref(), found);
            }
            walk(&b.lhs, None, found);
            walk(&b.rhs, None, found);
        }
        Expr::Paren(p) => walk(&p.expr, function, found),
        Expr::Subquery(s) => walk(&s.expr, None, found),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::VectorSelector(vs) => selector(vs, false, function, found),
        Expr::MatrixSelector(ms) => selector(&ms.vs, true, function, found),
        Expr::Call(call) => {
            for arg in &call.args.args {
                walk(arg, Some(call.func.name), found);
            }
        }
        Expr::Extension(_) => panic!("the parser made an extension node"),
    }
}

fn parse(query: &Query) -> Found {
    let text = substitute(&query.expr);
    let expr = parser::parse(&text)
        .unwrap_or_else(|e| panic!("{}: {:?} does not parse: {e}", query.at, query.expr));
    let mut found = Found::default();
    walk(&expr, None, &mut found);
    assert!(
        !found.uses.is_empty(),
        "{}: {:?} reads no metric",
        query.at,
        query.expr
    );
    found
}

#[test]
fn every_expression_names_only_metrics_the_controller_exports() {
    let exported = exported();
    let (queries, _) = queries(&dashboard());
    assert!(queries.len() >= 12, "only {} expressions", queries.len());
    for query in &queries {
        for u in parse(query).uses {
            assert!(
                exported.contains_key(&u.metric),
                "{}: {:?} reads {:?}, which the controller does not export; it exports {:?}",
                query.at,
                query.expr,
                u.metric,
                exported.keys().collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn every_label_is_one_the_series_has() {
    let exported = exported();
    let (queries, label_values) = queries(&dashboard());
    for query in &queries {
        let found = parse(query);
        let mut available: BTreeSet<String> = SCRAPE_LABELS.map(str::to_owned).into();
        for u in &found.uses {
            let Some(series) = exported.get(&u.metric) else {
                continue; // reported by the test above
            };
            for label in &u.labels {
                assert!(
                    series.labels.contains(label) || SCRAPE_LABELS.contains(&label.as_str()),
                    "{}: {} has no label {label:?} (it has {:?})",
                    query.at,
                    u.metric,
                    series.labels
                );
            }
            available.extend(series.labels.iter().cloned());
        }
        for label in &found.grouping {
            assert!(
                available.contains(label),
                "{}: groups by {label:?}, which no series in {:?} has",
                query.at,
                query.expr
            );
        }
        let legend = query.legend.as_deref().unwrap_or_default();
        for piece in legend.split("{{").skip(1) {
            let label = piece.split("}}").next().unwrap_or_default().trim();
            assert!(
                available.contains(label),
                "{}: legend {legend:?} names {label:?}, which no series in {:?} has",
                query.at,
                query.expr
            );
        }
    }
    for (name, selector, label) in label_values {
        let metric = selector.split('{').next().unwrap_or_default().trim();
        let series = exported
            .get(metric)
            .unwrap_or_else(|| panic!("variable {name}: {metric} is not exported"));
        assert!(
            series.labels.contains(&label) || SCRAPE_LABELS.contains(&label.as_str()),
            "variable {name}: {metric} has no label {label:?}"
        );
    }
}

#[test]
fn counters_are_read_through_rate_and_gauges_directly() {
    let exported = exported();
    let (queries, _) = queries(&dashboard());
    for query in queries.iter().filter(|q| !q.at.starts_with("variable")) {
        for u in parse(query).uses {
            let Some(series) = exported.get(&u.metric) else {
                continue;
            };
            let function = u.function.as_deref();
            match series.kind {
                Kind::Counter | Kind::HistogramPart => assert!(
                    u.range && matches!(function, Some("rate" | "increase" | "irate")),
                    "{}: the counter {} must be read through rate() or increase() over a range: {:?}",
                    query.at,
                    u.metric,
                    query.expr
                ),
                Kind::Gauge => assert!(
                    !matches!(function, Some("rate" | "increase" | "irate")),
                    "{}: the gauge {} read through {function:?}: {:?}",
                    query.at,
                    u.metric,
                    query.expr
                ),
            }
        }
    }
}

#[test]
fn every_exported_metric_is_on_the_dashboard() {
    let exported = exported();
    let (queries, _) = queries(&dashboard());
    let read: BTreeSet<String> = queries
        .iter()
        .flat_map(|q| parse(q).uses)
        .filter_map(|u| exported.get(&u.metric).map(|s| s.family.clone()))
        .collect();
    let families: BTreeSet<String> = exported.values().map(|s| s.family.clone()).collect();
    let missing: Vec<_> = families.difference(&read).collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}

#[test]
fn panels_are_laid_out_and_use_the_datasource_variable() {
    let dash = dashboard();
    assert_eq!(dash["uid"], "rollgate");
    assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()));
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for wanted in ["datasource", "job", "namespace", "rollout"] {
        assert!(vars.contains(&wanted), "no variable {wanted}: {vars:?}");
    }
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for panel in panels(&dash) {
        let title = panel["title"].as_str().expect("every panel has a title");
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} twice");
        let grid = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| {
            grid[k]
                .as_u64()
                .unwrap_or_else(|| panic!("panel {title:?}: gridPos.{k}"))
        });
        assert!(x + w <= 24 && w > 0 && h > 0, "panel {title:?}: {grid}");
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title.to_owned()) {
                    panic!("panels {other:?} and {title:?} overlap at ({cx}, {cy})");
                }
            }
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {title:?} must use the datasource variable"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        let refs: BTreeSet<&str> = targets
            .iter()
            .map(|t| t["refId"].as_str().expect("refId"))
            .collect();
        assert_eq!(refs.len(), targets.len(), "panel {title:?}: refIds repeat");
    }
}

#[test]
fn the_charts_copy_is_the_same_dashboard() {
    let copy = root().join(CHART_COPY);
    if !copy.exists() {
        let _ignored = writeln!(
            std::io::stderr(),
            "note: {CHART_COPY} does not exist yet; nothing to compare"
        );
        return;
    }
    let text = std::fs::read_to_string(&copy).expect("read the chart's copy");
    assert!(
        text == dashboard_text(),
        "{CHART_COPY} differs from {DASHBOARD}: cp {DASHBOARD} {CHART_COPY}"
    );
}

/// Prometheus' own parser, through `promtool check rules` on a rules file of every
/// expression. Skipped loudly without promtool; CI (`CI=true`) installs it and requires it.
#[test]
fn promtool_accepts_every_expression() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let (queries, _) = queries(&dashboard());
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, query) in queries.iter().enumerate() {
        let expr = serde_json::to_string(&substitute(&query.expr)).expect("a JSON string");
        rules.push_str(&format!(
            "      - record: dashboard:expression_{n}\n        expr: {expr}\n"
        ));
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("dashboard.rules.yaml");
    std::fs::write(&file, &rules).expect("write the rules");
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool rejects an expression:\n{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The per-rollout gauges a standby keeps from its time as leader are stale: every query that
/// reads them keeps only the series of the replica that leads now.
#[test]
fn per_rollout_series_come_from_the_leader() {
    let (queries, _) = queries(&dashboard());
    for query in queries.iter().filter(|q| !q.at.starts_with("variable")) {
        let uses = parse(query).uses;
        let per_rollout = uses.iter().any(|u| {
            [
                "rollgate_rollout_percent",
                "rollgate_rollout_phase",
                "rollgate_gate_value",
            ]
            .contains(&u.metric.as_str())
        });
        if per_rollout {
            assert!(
                query
                    .expr
                    .contains(r#"and on (job, instance) (rollgate_leader{job=~"$job"} == 1)"#),
                "{}: {:?} must keep only the leader's series",
                query.at,
                query.expr
            );
        }
    }
}

/// Serves `metrics` on a loopback port the way the controller does; the server stops when
/// the returned sender is dropped.
async fn serve(metrics: Metrics) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let servers = Servers::bind(Some(any), None, metrics, Readiness::new())
        .await
        .expect("bind the metrics server");
    let address = servers.metrics_address().expect("metrics bound");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(servers.serve(async {
        let _stopped = stopped.await;
    }));
    (address, stop)
}

/// The expression as Grafana sends it with every variable at "All" and a 10 s rate window.
fn as_sent(expr: &str) -> String {
    expr.replace("$__rate_interval", "10s")
        .replace("$job", ".*")
        .replace("$namespace", ".*")
        .replace("$rollout", ".*")
}

/// An instant query's result vector: each series' labels and value.
async fn query(prometheus: &Prometheus, expr: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let answer = reqwest::Client::new()
        .get(format!("{}/api/v1/query", prometheus.address))
        .query(&[("query", expr)])
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("prometheus answers")
        .text()
        .await
        .expect("an answer");
    let answer: Value = serde_json::from_str(&answer).expect("a JSON answer");
    assert_eq!(answer["status"], "success", "{expr}: {answer}");
    let mut out = Vec::new();
    for series in answer["data"]["result"].as_array().into_iter().flatten() {
        let labels = series["metric"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let value = series["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("a sample value");
        out.push((labels, value));
    }
    out
}

fn value_of(result: &[(BTreeMap<String, String>, f64)], labels: &[(&str, &str)]) -> Option<f64> {
    result
        .iter()
        .find(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| *v)
}

/// A real Prometheus scrapes two replicas' real `/metrics`, a leader and a standby that still
/// holds stale series for the same rollout; every dashboard query returns data, and the
/// per-rollout panels show the leader's values only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_returns_the_leaders_data_from_a_real_prometheus() {
    let Some(binary) = binary() else {
        return;
    };
    let leader = Metrics::new().expect("metrics");
    leader.set_leader(true);
    leader.set_rollout(
        "kaviar",
        "pfm",
        Some(Percent::whole(5)),
        Some(Phase::Progressing),
    );
    leader.set_gate_value("kaviar", "pfm", "error-rate", Some(0.002));
    leader.set_rollout(
        "kaviar",
        "done",
        Some(Percent::whole(10)),
        Some(Phase::Succeeded),
    );
    let standby = Metrics::new().expect("metrics");
    standby.set_leader(false);
    standby.set_rollout(
        "kaviar",
        "pfm",
        Some(Percent::whole(50)),
        Some(Phase::Paused),
    );
    standby.set_gate_value("kaviar", "pfm", "error-rate", Some(0.5));

    let (leader_at, _stop_leader) = serve(leader.clone()).await;
    let (standby_at, _stop_standby) = serve(standby).await;
    let prometheus = Prometheus::start(
        &binary,
        &[
            ("rollgate", leader_at.to_string()),
            ("rollgate-standby", standby_at.to_string()),
        ],
        "",
    )
    .await;

    // The leader keeps deciding while Prometheus scrapes, so every counter moves.
    let driving = leader.clone();
    let driver = tokio::spawn(async move {
        for _ in 0..600 {
            driving.count_checkpoint("kaviar", "pfm", CheckpointVerdict::Pass);
            driving.count_transition("kaviar", "pfm", "advance");
            driving.count_transition("kaviar", "pfm", "rollback");
            driving.count_write("status");
            driving.count_error("kube_api");
            driving.observe_reconcile(0.02, "success");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let (queries, label_values) = queries(&dashboard());
    for q in &queries {
        let expr = as_sent(&q.expr);
        eventually(
            &format!("{}: {expr}", q.at),
            || query(&prometheus, &expr),
            |result| !result.is_empty(),
        )
        .await;
    }
    for (name, selector, label) in &label_values {
        let result = query(&prometheus, &as_sent(selector)).await;
        assert!(
            result.iter().any(|(l, _)| l.contains_key(label)),
            "variable {name}: no {label} in {result:?}"
        );
    }

    let expr_of = |title: &str, n: usize| {
        let dash = dashboard();
        let panel = panels(&dash)
            .into_iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("no panel {title:?}"))
            .clone();
        as_sent(panel["targets"][n]["expr"].as_str().expect("expr"))
    };
    let by_phase = query(&prometheus, &expr_of("Rollouts by phase", 0)).await;
    assert_eq!(
        value_of(&by_phase, &[("phase", "Progressing")]),
        Some(1.0),
        "{by_phase:?}"
    );
    assert_eq!(
        value_of(&by_phase, &[("phase", "Succeeded")]),
        Some(1.0),
        "{by_phase:?}"
    );
    // The phase is one series per rollout (its current phase): the standby's stale Paused
    // series is dropped by the leader filter, so no Paused row shows at all.
    assert_eq!(
        value_of(&by_phase, &[("phase", "Paused")]),
        None,
        "the standby's stale phase: {by_phase:?}"
    );
    let now = query(&prometheus, &expr_of("Rollouts now", 0)).await;
    assert_eq!(now.len(), 2, "one row per rollout: {now:?}");
    let percent = query(&prometheus, &expr_of("Percent per rollout", 0)).await;
    assert_eq!(
        value_of(&percent, &[("name", "pfm")]),
        Some(5.0),
        "{percent:?}"
    );
    assert_eq!(
        value_of(&percent, &[("name", "done")]),
        Some(10.0),
        "{percent:?}"
    );
    let gates = query(&prometheus, &expr_of("Gate values", 0)).await;
    assert_eq!(
        value_of(&gates, &[("name", "pfm"), ("gate", "error-rate")]),
        Some(0.002),
        "{gates:?}"
    );
    // The rollback annotation keeps the rollout's labels, so it can name it.
    let dash = dashboard();
    let rollbacks = dash["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == "Rollbacks")
        .and_then(|a| a["expr"].as_str())
        .map(as_sent)
        .expect("the Rollbacks annotation");
    let rollbacks = query(&prometheus, &rollbacks).await;
    assert!(
        value_of(&rollbacks, &[("namespace", "kaviar"), ("name", "pfm")]).is_some_and(|v| v > 0.0),
        "{rollbacks:?}"
    );
    let transitions = query(&prometheus, &expr_of("Transitions by kind", 0)).await;
    assert!(
        value_of(&transitions, &[("kind", "rollback")]).is_some_and(|v| v > 0.0),
        "{transitions:?}"
    );
    let leaders = query(&prometheus, &expr_of("Leaders", 0)).await;
    assert_eq!(leaders.first().map(|(_, v)| *v), Some(1.0), "{leaders:?}");
    let p50 = query(&prometheus, &expr_of("Reconcile duration", 0)).await;
    let p50 = p50.first().map(|(_, v)| *v).expect("a p50");
    assert!(
        (0.01..=0.025).contains(&p50),
        "0.02 s reconciles fall in the 0.025 bucket: {p50}"
    );
    driver.abort();
}

/// The decision panels and the rollback annotation follow the dashboard's namespace and
/// rollout variables, and the annotation says which rollout rolled back.
#[test]
fn decision_panels_and_the_rollback_annotation_filter_by_namespace_and_rollout() {
    let dash = dashboard();
    let filters = [r#"namespace=~"$namespace""#, r#"name=~"$rollout""#];
    for title in ["Checkpoints by verdict", "Transitions by kind"] {
        let panel = panels(&dash)
            .into_iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("no panel {title:?}"));
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            for filter in filters {
                assert!(
                    expr.contains(filter),
                    "panel {title:?}: {expr} lacks {filter}"
                );
            }
        }
    }
    let annotation = dash["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == "Rollbacks")
        .expect("the Rollbacks annotation");
    let expr = annotation["expr"].as_str().expect("expr");
    for filter in filters {
        assert!(
            expr.contains(filter),
            "the Rollbacks annotation: {expr} lacks {filter}"
        );
    }
    // The query keeps the labels it names: aggregated by (namespace, name), never summed away.
    let mut outer = parser::parse(&substitute(expr)).expect("the annotation parses");
    let kept = loop {
        outer = match outer {
            Expr::Binary(b) => *b.lhs,
            Expr::Paren(p) => *p.expr,
            Expr::Aggregate(a) => match a.modifier {
                Some(LabelModifier::Include(labels)) => break labels.labels,
                other => panic!("the annotation must aggregate by labels: {other:?}"),
            },
            other => panic!("the annotation must aggregate: {other:?}"),
        };
    };
    assert!(
        kept.iter().any(|l| l == "namespace") && kept.iter().any(|l| l == "name"),
        "{kept:?}"
    );
    let names_it = |field: &str| {
        annotation[field]
            .as_str()
            .is_some_and(|t| t.contains("{{namespace}}/{{name}}"))
    };
    assert!(
        names_it("titleFormat") && names_it("textFormat"),
        "{annotation}"
    );
}

#[test]
fn the_kustomize_configmap_ships_the_dashboard_with_the_sidecar_label() {
    let path = root().join("dashboards/kustomization.yaml");
    let text = std::fs::read_to_string(&path).expect("read dashboards/kustomization.yaml");
    let k: Value = serde_saphyr::from_str(&text).expect("dashboards/kustomization.yaml parses");
    let generator = &k["configMapGenerator"][0];
    assert_eq!(generator["files"][0], "rollgate.json");
    assert_eq!(generator["options"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(generator["options"]["disableNameSuffixHash"], true);
}

#[test]
fn substitute_replaces_grafana_variables() {
    assert_eq!(
        substitute(r#"rate(x{job=~"$job", a="${namespace}"}[$__rate_interval])"#),
        r#"rate(x{job=~"x", a="x"}[5m])"#
    );
}
