//! The Prometheus and alerts gates against a real Prometheus (Debian's `prometheus`) scraping
//! apps the tests drive: every kind of answer maps to a value, no data or an error as issue 3
//! requires. Each test starts its own server; Prometheus takes about 5 s to scrape its first
//! targets, so the checks are grouped into a few tests that each use one server.

use crate::support;

use rollgate::api::Percent;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rollgate::api::{AlertsGate, Gate, GateVerdict, PrometheusGate};
use rollgate::engine::{Observation, judge};
use rollgate::gates::GateContext;
use rollgate::gates::alerts;
use rollgate::gates::prometheus::{self, Answer, PrometheusClient};
use support::app::App;
use support::prometheus::{Prometheus, binary};
use support::{eventually, near};

/// Share of 5xx responses of the rollout's job (the job is named after the rollout) over 5 s.
const ERROR_RATIO: &str = r#"sum(rate(http_requests_total{job="{{rollout}}",code=~"5.."}[5s])) / sum(rate(http_requests_total{job="{{rollout}}"}[5s]))"#;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Alert rules: one that fires on a high error ratio, two that always fire.
const RULES: &str = r#"
groups:
  - name: test
    rules:
      - alert: HighErrorRate
        expr: sum(rate(http_requests_total{code=~"5.."}[5s])) / sum(rate(http_requests_total[5s])) > 0.05
        labels: {severity: critical}
      - alert: KnownNoise
        expr: vector(1)
        labels: {severity: critical}
      - alert: Chatter
        expr: vector(1)
        labels: {severity: info}
"#;

/// The context of rollout `rollout` (also the scrape job's name) at stage 2, 5 %, at `at`.
fn ctx(rollout: &'static str, at: Timestamp) -> GateContext<'static> {
    GateContext {
        rollout,
        namespace: "shop",
        flag: Some("passenger_favorites_matching"),
        allowlist: &[],
        stage: 2,
        percent: Percent::whole(5),
        at,
    }
}

fn gate(query: &str) -> PrometheusGate {
    PrometheusGate {
        query: query.into(),
        ..PrometheusGate::default()
    }
}

/// The engine's verdict on `observation` for a gate with `max` (or the provider's default).
fn verdict(provider: Gate, max: Option<f64>, observation: &Observation) -> GateVerdict {
    let gate = Gate {
        name: "g".into(),
        max,
        failure_limit: 1,
        ..provider
    };
    judge(&gate, observation)
}

fn prometheus_verdict(max: f64, observation: &Observation) -> GateVerdict {
    let provider = Gate {
        prometheus: Some(gate("x")),
        ..Gate::default()
    };
    verdict(provider, Some(max), observation)
}

/// `gate` observed now for rollout `rollout`.
async fn observe_now(
    client: &PrometheusClient,
    rollout: &'static str,
    gate: PrometheusGate,
) -> Observation {
    prometheus::observe(client, &gate, &ctx(rollout, Timestamp::now())).await
}

/// One app per `(job, [(code, requests per second)])`, a Prometheus scraping them with `rules`,
/// and a client; `None` when the binary is absent outside CI.
async fn setup(
    jobs: &[(&str, &[(u16, f64)])],
    rules: &str,
) -> Option<(Vec<App>, Prometheus, PrometheusClient)> {
    let binary = binary()?;
    let apps: Vec<App> = jobs
        .iter()
        .map(|(_, rates)| {
            let app = App::start();
            for (code, per_second) in *rates {
                app.set_rate(*code, *per_second);
            }
            app
        })
        .collect();
    let targets: Vec<(&str, String)> = jobs
        .iter()
        .zip(&apps)
        .map(|((job, _), app)| (*job, app.target()))
        .collect();
    let prometheus = Prometheus::start(&binary, &targets, rules).await;
    let client = prometheus.client(TIMEOUT);
    Some((apps, prometheus, client))
}

/// Waits until Prometheus has scraped every target at least once.
async fn wait_scraped(client: &PrometheusClient, jobs: usize) {
    let all_up = gate("count(up == 1)");
    eventually(
        "targets scraped",
        || observe_now(client, "any", all_up.clone()),
        |o| near(o, jobs as f64, 0.0),
    )
    .await;
}

#[tokio::test]
async fn values_pass_or_fail_by_their_bounds() {
    let jobs: &[(&str, &[(u16, f64)])] = &[
        ("healthy", &[(200, 199.0), (500, 1.0)]),
        ("breach", &[(200, 90.0), (500, 10.0)]),
        ("only-errors", &[(200, 0.0), (500, 5.0)]),
    ];
    let Some((apps, _prometheus, client)) = setup(jobs, "").await else {
        return;
    };
    // 99 of 100 requests in the (0.05, 0.1] bucket: p99 interpolates to 0.0995.
    apps[0].observe(0.07, 100);
    let p99 = r#"histogram_quantile(0.99, sum by (le) (http_request_duration_seconds_bucket{job="{{rollout}}"}))"#;
    let variables = r#"count(up{job="{{rollout}}"}) * {{percent}} + {{ stage }} + 0 * count(up{job!="{{namespace}}-{{flag}}"})"#;
    let (healthy, breach, infinite, latency, computed) = tokio::join!(
        eventually(
            "healthy ratio 0.005",
            || observe_now(&client, "healthy", gate(ERROR_RATIO)),
            |o| near(o, 0.005, 1e-9),
        ),
        eventually(
            "breached ratio 0.1",
            || observe_now(&client, "breach", gate(ERROR_RATIO)),
            |o| near(o, 0.1, 1e-9),
        ),
        eventually(
            "5 errors / 0 successes",
            || {
                let query = r#"sum(rate(http_requests_total{job="{{rollout}}",code="500"}[5s])) / sum(rate(http_requests_total{job="{{rollout}}",code="200"}[5s]))"#;
                observe_now(&client, "only-errors", gate(query))
            },
            |o| *o == Observation::Value(f64::INFINITY),
        ),
        eventually(
            "p99 latency",
            || observe_now(&client, "healthy", gate(p99)),
            |o| near(o, 0.0995, 1e-9),
        ),
        // 1 target * 5 % + stage 2: the variables reached Prometheus.
        eventually(
            "query variables",
            || observe_now(&client, "healthy", gate(variables)),
            |o| near(o, 7.0, 0.0),
        ),
    );
    assert_eq!(prometheus_verdict(0.01, &healthy), GateVerdict::Pass);
    assert_eq!(prometheus_verdict(0.01, &breach), GateVerdict::Fail);
    assert_eq!(prometheus_verdict(0.01, &infinite), GateVerdict::Fail);
    assert_eq!(prometheus_verdict(0.25, &latency), GateVerdict::Pass);
    assert_eq!(computed, Observation::Value(7.0));
}

#[tokio::test]
async fn empty_nan_thin_and_past_answers_are_no_data() {
    let jobs: &[(&str, &[(u16, f64)])] = &[
        ("busy", &[(200, 10.0), (500, 0.0)]),
        ("idle", &[(200, 0.0), (500, 0.0)]),
    ];
    let Some((_apps, _prometheus, client)) = setup(jobs, "").await else {
        return;
    };
    let with_minimum = |minimum: f64| PrometheusGate {
        sample_query: Some(r#"sum(increase(http_requests_total{job="{{rollout}}"}[5s]))"#.into()),
        min_sample: Some(minimum),
        ..gate(ERROR_RATIO)
    };
    // The idle job's series exist but do not grow: 0 / 0 is NaN.
    let idle_query = ERROR_RATIO.replace("{{rollout}}", "idle");
    let (nan, busy) = tokio::join!(
        eventually(
            "NaN from an idle job",
            || client.query(&idle_query, Timestamp::now()),
            |a| matches!(a, Ok(Answer::Value(v)) if v.is_nan()),
        ),
        // About 50 requests in 5 s: enough for a minimum sample of 10.
        eventually(
            "busy job above the minimum sample",
            || observe_now(&client, "busy", with_minimum(10.0)),
            |o| near(o, 0.0, 0.0),
        ),
    );
    assert!(matches!(nan, Ok(Answer::Value(v)) if v.is_nan()));
    assert_eq!(
        observe_now(&client, "idle", gate(ERROR_RATIO)).await,
        Observation::NoData
    );
    assert_eq!(prometheus_verdict(0.01, &busy), GateVerdict::Pass);

    // Below the minimum: no data, never a pass.
    let thin = observe_now(&client, "busy", with_minimum(1e6)).await;
    assert_eq!(thin, Observation::NoData);
    assert_eq!(prometheus_verdict(0.01, &thin), GateVerdict::Inconclusive);
    // An empty sample is below any minimum.
    let empty_sample = PrometheusGate {
        sample_query: Some(r#"sum(http_requests_total{code="404"})"#.into()),
        ..with_minimum(1.0)
    };
    assert_eq!(
        observe_now(&client, "busy", empty_sample).await,
        Observation::NoData
    );
    // A broken sample query is an error naming it.
    let broken = PrometheusGate {
        sample_query: Some("sum(".into()),
        ..with_minimum(1.0)
    };
    let observation = observe_now(&client, "busy", broken).await;
    assert!(
        matches!(&observation, Observation::Error(m) if m.starts_with("sampleQuery:")),
        "{observation:?}"
    );

    // A series that does not exist: an empty vector.
    let missing = observe_now(
        &client,
        "busy",
        gate(r#"sum(http_requests_total{code="404"})"#),
    )
    .await;
    assert_eq!(missing, Observation::NoData);
    assert_eq!(
        prometheus_verdict(0.01, &missing),
        GateVerdict::Inconclusive
    );

    // An hour ago nothing was scraped yet: the same query, evaluated then, has no data.
    let up = gate(r#"up{job="{{rollout}}"}"#);
    assert_eq!(
        observe_now(&client, "busy", up.clone()).await,
        Observation::Value(1.0)
    );
    let an_hour_ago = ctx("busy", Timestamp::now() - SignedDuration::from_hours(1));
    assert_eq!(
        prometheus::observe(&client, &up, &an_hour_ago).await,
        Observation::NoData
    );
}

#[tokio::test]
async fn ambiguous_or_failed_queries_are_errors_that_say_why() {
    let jobs: &[(&str, &[(u16, f64)])] = &[("app", &[(200, 10.0), (500, 1.0)])];
    let Some((_apps, mut prometheus, client)) = setup(jobs, "").await else {
        return;
    };
    wait_scraped(&client, 1).await;

    let several = eventually(
        "two series",
        || {
            observe_now(
                &client,
                "app",
                gate(r#"rate(http_requests_total{job="{{rollout}}"}[5s])"#),
            )
        },
        |o| matches!(o, Observation::Error(_)),
    )
    .await;
    let Observation::Error(message) = several else {
        unreachable!()
    };
    assert!(message.contains("2 series"), "{message}");
    assert!(message.contains(r#"code="500""#), "{message}");
    assert!(message.contains("sum(...)"), "{message}");

    let matrix = observe_now(
        &client,
        "app",
        gate(r#"http_requests_total{code="200"}[5s]"#),
    )
    .await;
    assert!(
        matches!(&matrix, Observation::Error(m) if m.contains("matrix")),
        "{matrix:?}"
    );

    let bad = observe_now(&client, "app", gate("sum(rate(http_requests_total[5s])")).await;
    let Observation::Error(message) = bad else {
        panic!("{bad:?}")
    };
    assert!(message.contains("bad_data"), "{message}");
    assert!(message.contains("parse error"), "{message}");

    let unknown = observe_now(&client, "app", gate(r#"up{job="{{job}}"}"#)).await;
    assert!(
        matches!(&unknown, Observation::Error(m) if m.contains("{{job}}")),
        "{unknown:?}"
    );

    // Prometheus stops: the kept-alive connection breaks, then new ones are refused.
    prometheus.stop();
    let up = gate(r#"up{job="app"}"#);
    let first = observe_now(&client, "app", up.clone()).await;
    assert!(
        matches!(&first, Observation::Error(m) if m.contains(&prometheus.address)),
        "{first:?}"
    );
    let refused = observe_now(&client, "app", up).await;
    let Observation::Error(message) = refused else {
        panic!("{refused:?}")
    };
    assert!(message.contains(&prometheus.address), "{message}");
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
}

#[tokio::test]
async fn alerts_gate_counts_firing_alerts_except_ignored_ones() {
    let jobs: &[(&str, &[(u16, f64)])] = &[("app", &[(200, 100.0), (500, 0.0)])];
    let Some((apps, _prometheus, client)) = setup(jobs, RULES).await else {
        return;
    };
    let alerts_gate = |matchers: &[&str], ignore: &[&str]| AlertsGate {
        matchers: matchers.iter().map(|m| m.to_string()).collect(),
        ignore: ignore.iter().map(|i| i.to_string()).collect(),
        ..AlertsGate::default()
    };
    let count = |gate: AlertsGate| {
        let client = &client;
        async move { alerts::observe(client, &gate, &ctx("app", Timestamp::now())).await }
    };
    let alerts_verdict = |observation: &Observation| {
        let provider = Gate {
            alerts: Some(AlertsGate::default()),
            ..Gate::default()
        };
        verdict(provider, None, observation)
    };
    let critical = [r#"severity="critical""#];

    // No alert has severity "page": an empty answer, which is zero, not no data.
    let before = count(alerts_gate(&[r#"severity="page""#], &[])).await;
    assert_eq!(before, Observation::Value(0.0));

    // KnownNoise fires at once; ignored, the critical gate passes.
    eventually(
        "KnownNoise firing",
        || count(alerts_gate(&critical, &[])),
        |o| near(o, 1.0, 0.0),
    )
    .await;
    let quiet = count(alerts_gate(&critical, &["KnownNoise"])).await;
    assert_eq!(quiet, Observation::Value(0.0));
    assert_eq!(alerts_verdict(&quiet), GateVerdict::Pass);
    // Every firing alert, whatever its severity, without matchers.
    assert_eq!(count(alerts_gate(&[], &[])).await, Observation::Value(2.0));

    // Errors climb to 50 %: HighErrorRate fires and fails the gate (max defaults to 0).
    apps[0].set_rate(500, 100.0);
    let loud = eventually(
        "HighErrorRate firing",
        || count(alerts_gate(&critical, &["KnownNoise"])),
        |o| near(o, 1.0, 0.0),
    )
    .await;
    assert_eq!(alerts_verdict(&loud), GateVerdict::Fail);
    assert_eq!(
        count(alerts_gate(&critical, &[])).await,
        Observation::Value(2.0)
    );
    assert_eq!(
        count(alerts_gate(&[r#"alertname=~"High.*|Chat.*""#], &[])).await,
        Observation::Value(2.0)
    );

    // A matcher that is not `label op "value"` never reaches Prometheus.
    let bad = count(alerts_gate(
        &[r#"severity="critical"} or vector(1) or {a="b""#],
        &[],
    ))
    .await;
    assert!(
        matches!(&bad, Observation::Error(m) if m.contains("matcher")),
        "{bad:?}"
    );
}

/// The controller's pre-check asks the real Prometheus which alerting rules it loaded: the
/// gate's matchers must select one, so a typo cannot make an alerts gate count nothing (and
/// pass) forever.
#[tokio::test]
async fn alert_rule_pre_check_finds_the_rules_prometheus_loaded() {
    let jobs: &[(&str, &[(u16, f64)])] = &[("app", &[(200, 1.0)])];
    let Some((_apps, _prometheus, client)) = setup(jobs, RULES).await else {
        return;
    };
    let rules = eventually(
        "rules loaded",
        || async { client.alerting_rules().await.map(|r| r.len()) },
        |r| matches!(r, Ok(3)),
    )
    .await;
    assert_eq!(rules.ok(), Some(3));
    let gate = |matchers: &[&str], ignore: &[&str]| AlertsGate {
        matchers: matchers.iter().map(|m| m.to_string()).collect(),
        ignore: ignore.iter().map(|i| i.to_string()).collect(),
        ..AlertsGate::default()
    };
    let check = |gate: AlertsGate| {
        let client = &client;
        async move { alerts::known_rules(client, &gate, &ctx("app", Timestamp::now())).await }
    };
    assert_eq!(check(gate(&[r#"severity="critical""#], &[])).await, Ok(()));
    assert_eq!(check(gate(&[r#"alertname=~"High.*""#], &[])).await, Ok(()));
    assert_eq!(check(gate(&[], &[])).await, Ok(()));
    for (typo, ignore) in [
        (r#"severity="crtical""#, &[][..]),
        (r#"sevrity="critical""#, &[][..]),
        (r#"severity="info""#, &["Chatter"][..]),
    ] {
        let problem = check(gate(&[typo], ignore)).await.expect_err(typo);
        assert!(
            problem.contains("select none of the 3 alerting rules"),
            "{typo}: {problem}"
        );
    }
}
