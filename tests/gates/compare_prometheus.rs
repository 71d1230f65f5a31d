//! The compare gate's provider against a real Prometheus (Debian's `prometheus`) scraping two
//! apps, one per variant (the scrape job stands for `feature_flag_variant`): four instant
//! queries with `{{variant}}` and `{{window}}` filled in, an empty result counted as 0, a query
//! error as an error, the pre-check's empty control arm caught, and the engine's verdict on the
//! counts (a flagged cohort with five times the control's error rate fails; equal rates pass).

use crate::support;

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rollgate::api::{CompareGate, Gate, GateVerdict};
use rollgate::engine::{Conditions, Observation, assess};
use rollgate::gates::GateContext;
use rollgate::gates::compare::{CompareScope, observe};
use support::app::App;
use support::eventually;
use support::prometheus::{Prometheus, binary};

const UNITS: &str = r#"sum(increase(http_requests_total{job="{{variant}}"}[{{window}}]))"#;
const EVENTS: &str =
    r#"sum(increase(http_requests_total{job="{{variant}}",code=~"5.."}[{{window}}]))"#;

fn ctx(at: Timestamp) -> GateContext<'static> {
    GateContext {
        rollout: "checkout",
        namespace: "shop",
        flag: Some("passenger_favorites_matching"),
        allowlist: &[],
        stage: 0,
        percent: rollgate::api::Percent::whole(50),
        at,
    }
}

fn compare_gate(treatment: &str, control: &str) -> CompareGate {
    CompareGate {
        units: UNITS.into(),
        events: EVENTS.into(),
        treatment: Some(treatment.into()),
        control: Some(control.into()),
        min_units: 100,
        ..CompareGate::default()
    }
}

fn scope(window: Duration, precheck: bool) -> CompareScope<'static> {
    CompareScope {
        treatment: "on",
        control: "off",
        window,
        precheck,
    }
}

fn counts(observation: &Observation) -> Option<[f64; 4]> {
    match observation {
        Observation::Arms { treatment, control } => Some([
            treatment.units,
            treatment.events,
            control.units,
            control.events,
        ]),
        _ => None,
    }
}

#[tokio::test]
async fn compare_counts_both_arms_and_the_engine_judges_them() {
    let Some(binary) = binary() else {
        return;
    };
    // "five": 5 % errors with the flag; "even" and "off": 1 % errors.
    let rates: [(&str, f64, f64); 3] =
        [("five", 95.0, 5.0), ("even", 99.0, 1.0), ("off", 99.0, 1.0)];
    let apps: Vec<App> = rates
        .iter()
        .map(|(_, ok, errors)| {
            let app = App::start();
            app.set_rate(200, *ok);
            app.set_rate(500, *errors);
            app
        })
        .collect();
    let targets: Vec<(&str, String)> = rates
        .iter()
        .zip(&apps)
        .map(|((job, _, _), app)| (*job, app.target()))
        .collect();
    let prometheus = Prometheus::start(&binary, &targets, "").await;
    let client = prometheus.client(Duration::from_secs(5));
    let window = Duration::from_secs(30);
    let gate = Gate {
        name: "errors-vs-control".into(),
        failure_limit: 1,
        compare: Some(compare_gate("five", "off")),
        ..Gate::default()
    };
    let Some(five) = gate.compare.clone() else {
        unreachable!()
    };
    let conditions = Conditions {
        percent: rollgate::api::Percent::whole(50),
        ratio_settled: false,
    };
    // Five times the control's error rate: counted in both arms, and the gate fails.
    let regression = eventually(
        "both arms counted over 30s",
        || async {
            observe(
                &client,
                &five,
                &ctx(Timestamp::now()),
                &scope(window, false),
            )
            .await
        },
        |o| counts(o).is_some_and(|c| c[0] > 1000.0 && c[2] > 1000.0),
    )
    .await;
    let c = counts(&regression).unwrap_or_default();
    assert!((c[1] / c[0] - 0.05).abs() < 0.01, "{c:?}");
    assert!((c[3] / c[2] - 0.01).abs() < 0.005, "{c:?}");
    let assessed = assess(&gate, &regression, &conditions);
    assert_eq!(assessed.verdict, GateVerdict::Fail, "{assessed:?}");
    let message = assessed.message.unwrap_or_default();
    assert!(message.starts_with("with the flag 5"), "{message}");
    assert!(message.ends_with("requests"), "{message}");

    // Equal rates pass.
    let even_gate = Gate {
        compare: Some(compare_gate("even", "off")),
        ..gate.clone()
    };
    let Some(even) = even_gate.compare.clone() else {
        unreachable!()
    };
    let flat = observe(
        &client,
        &even,
        &ctx(Timestamp::now()),
        &scope(window, false),
    )
    .await;
    assert_eq!(
        assess(&even_gate, &flat, &conditions).verdict,
        GateVerdict::Pass,
        "{flat:?}"
    );

    // A variant nobody is served yet: an empty result is 0 units, and the engine waits.
    let nobody = compare_gate("nobody", "off");
    let empty = observe(
        &client,
        &nobody,
        &ctx(Timestamp::now()),
        &scope(window, false),
    )
    .await;
    let c = counts(&empty).unwrap_or_default();
    assert_eq!((c[0], c[1]), (0.0, 0.0), "{empty:?}");
    assert!(c[2] > 0.0, "{empty:?}");
    let waiting = Gate {
        compare: Some(nobody),
        ..gate.clone()
    };
    assert_eq!(
        assess(&waiting, &empty, &conditions).verdict,
        GateVerdict::Waiting
    );

    // The pre-check: a control variant with no series (a label typo) is caught.
    let typo = compare_gate("five", "of");
    let before = observe(&client, &typo, &ctx(Timestamp::now()), &scope(window, true)).await;
    match before {
        Observation::Error(message) => assert!(
            message.contains("control variant \"of\" returned nothing"),
            "{message}"
        ),
        other => panic!("expected an error, got {other:?}"),
    }
    let fine = observe(&client, &five, &ctx(Timestamp::now()), &scope(window, true)).await;
    assert!(counts(&fine).is_some(), "{fine:?}");

    // A query Prometheus refuses is an error naming the query.
    let broken = CompareGate {
        events: "sum(rate(".into(),
        ..compare_gate("five", "off")
    };
    match observe(
        &client,
        &broken,
        &ctx(Timestamp::now()),
        &scope(window, false),
    )
    .await
    {
        Observation::Error(message) => {
            assert!(message.starts_with("events with the flag: "), "{message}")
        }
        other => panic!("expected an error, got {other:?}"),
    }

    // At 100 % nothing is queried (no second cohort) and the engine skips the gate.
    let full = GateContext {
        percent: rollgate::api::Percent::whole(100),
        ..ctx(Timestamp::now())
    };
    let skipped = observe(&client, &broken, &full, &scope(window, false)).await;
    let at_full = Conditions {
        percent: rollgate::api::Percent::HUNDRED,
        ratio_settled: true,
    };
    assert_eq!(
        assess(&gate, &skipped, &at_full).verdict,
        GateVerdict::Skipped
    );
}
