//! The OFREP determinism gate against loopback OFREP servers: a correct evaluator (the real
//! flagd evaluator from PyPI where installed, and the tests' own), evaluators on older
//! bucketing versions, replicas that disagree, a random one, and broken ones.

use crate::support_ofrep;

use rollgate::api::Percent;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rollgate::api::OfrepMemory;
use rollgate::api::{FlagdBucketing, Gate, GateVerdict, OfrepGate};
use rollgate::engine::{Observation, judge};
use rollgate::gates::GateContext;
use rollgate::gates::ofrep::{DEFAULT_PROBE_DEADLINE, OfrepProbe, probe};
use serde_json::Value;
use support_ofrep::flagd_eval::rollout_definition;
use support_ofrep::ofrep_server::{Behaviour, start};
use support_ofrep::real_flagd;

const FLAG: &str = "passenger_favorites_matching";
const SAMPLE: u32 = 500;

fn allowlist() -> Vec<String> {
    (1001..=1012).map(|i| format!("u-{i}")).collect()
}

fn gate(address: &str, bucketing: Option<FlagdBucketing>) -> OfrepGate {
    OfrepGate {
        address: address.to_string(),
        sample: SAMPLE,
        bucketing,
        ..OfrepGate::default()
    }
}

async fn check(
    gate: &OfrepGate,
    percent: u8,
    allowlist: &[String],
    previous: Option<&OfrepMemory>,
) -> OfrepProbe {
    let ctx = GateContext {
        rollout: "passenger-favorites-matching",
        namespace: "kaviar",
        flag: Some(FLAG),
        allowlist,
        stage: 0,
        percent: Percent::whole(percent),
        at: Timestamp::UNIX_EPOCH,
    };
    probe(
        &support_ofrep::loopback_ofrep_client(),
        gate,
        &ctx,
        previous,
        DEFAULT_PROBE_DEADLINE,
    )
    .await
}

fn verdict(observation: &Observation) -> GateVerdict {
    let gate = Gate {
        name: "determinism".into(),
        ofrep: Some(OfrepGate::default()),
        ..Gate::default()
    };
    judge(&gate, observation)
}

fn flagd(percent: u8, version: FlagdBucketing) -> Behaviour {
    Behaviour::Flagd {
        definition: rollout_definition(FLAG, percent, &allowlist()),
        version,
    }
}

fn error_message(result: &OfrepProbe) -> &str {
    match &result.observation {
        Observation::Error(message) => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_evaluator_passes() {
    let server = start(flagd(10, FlagdBucketing::V3)).await;
    let result = check(
        &gate(&server.url(), Some(FlagdBucketing::V3)),
        10,
        &allowlist(),
        None,
    )
    .await;
    let violations = result.violations.clone().expect("violations");
    assert_eq!(result.observation, Observation::Value(0.0), "{violations}");
    assert_eq!(verdict(&result.observation), GateVerdict::Pass);
    assert_eq!(violations.sampled, SAMPLE);
    assert!(
        violations.with_flag > 20 && violations.with_flag < 80,
        "{violations}"
    );
    let memory = result.memory.expect("memory");
    assert_eq!(
        (memory.flag.as_str(), memory.percent),
        (FLAG, Percent::whole(10))
    );
    assert!(!memory.with_flag.is_empty() && memory.with_flag.len() <= 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_flagd_evaluator_passes_and_buckets_as_v3() {
    let definition = rollout_definition(FLAG, 10, &allowlist());
    let Some(real) = real_flagd::start(&definition) else {
        return;
    };
    let result = check(
        &gate(&real.url, Some(FlagdBucketing::V3)),
        10,
        &allowlist(),
        None,
    )
    .await;
    let violations = result.violations.expect("violations");
    assert_eq!(result.observation, Observation::Value(0.0), "{violations}");

    // Declaring v2 (what Go flagd 0.15 uses) against this v3 evaluator disagrees on many keys.
    let result = check(
        &gate(&real.url, Some(FlagdBucketing::V2)),
        10,
        &allowlist(),
        None,
    )
    .await;
    let violations = result.violations.expect("violations");
    assert!(violations.bucketing > 20, "{violations}");
    assert_eq!(violations.total(), violations.bucketing, "{violations}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_answers_are_caught() {
    let server = start(Behaviour::Random).await;
    let result = check(&gate(&server.url(), None), 10, &allowlist(), None).await;
    let violations = result.violations.expect("violations");
    assert!(violations.unstable > 100, "{violations}");
    assert!(
        violations.share == 1 && violations.allowlist > 0,
        "{violations}"
    );
    assert_eq!(verdict(&result.observation), GateVerdict::Fail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluator_on_older_bucketing_is_caught() {
    for old in [FlagdBucketing::V2, FlagdBucketing::V1] {
        let server = start(flagd(10, old)).await;
        let result = check(
            &gate(&server.url(), Some(FlagdBucketing::V3)),
            10,
            &allowlist(),
            None,
        )
        .await;
        let violations = result.violations.expect("violations");
        // About 2 * 0.1 * 0.9 of the keys land in the other bucket.
        assert!(violations.bucketing > 40, "{old:?}: {violations}");
        assert_eq!(
            violations.unstable + violations.allowlist + violations.share,
            0,
            "{old:?}: {violations}"
        );
        assert_eq!(verdict(&result.observation), GateVerdict::Fail);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_different_bucketing_are_caught_without_declaring_one() {
    let definition = rollout_definition(FLAG, 10, &allowlist());
    let versions = vec![FlagdBucketing::V2, FlagdBucketing::V3];
    let server = start(Behaviour::Replicas {
        definition,
        versions,
    })
    .await;
    let result = check(&gate(&server.url(), None), 10, &allowlist(), None).await;
    let violations = result.violations.expect("violations");
    // Half the keys get their two answers from different replicas; those disagree on ~18%.
    assert!(violations.unstable > 10, "{violations}");
    assert_eq!(verdict(&result.observation), GateVerdict::Fail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowlisted_key_without_the_flag_is_a_violation() {
    // The service's definition lacks the allowlist rule.
    let definition = rollout_definition(FLAG, 0, &[]);
    let server = start(Behaviour::Flagd {
        definition,
        version: FlagdBucketing::V3,
    })
    .await;
    let result = check(&gate(&server.url(), None), 0, &allowlist(), None).await;
    let violations = result.violations.expect("violations");
    assert_eq!(violations.allowlist, 12, "{violations}");
    assert_eq!(result.observation, Observation::Value(12.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_outside_the_binomial_tolerance_is_a_violation() {
    let server = start(flagd(50, FlagdBucketing::V3)).await;
    let result = check(&gate(&server.url(), None), 10, &allowlist(), None).await;
    let violations = result.violations.expect("violations");
    assert_eq!(violations.share, 1, "{violations}");
    assert_eq!(result.observation, Observation::Value(1.0), "{violations}");

    // Within tolerance: the expected 50 ± (4 * sqrt(45) + 2).
    let result = check(&gate(&server.url(), None), 50, &allowlist(), None).await;
    assert_eq!(result.observation, Observation::Value(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_lost_the_flag_is_caught_through_the_memory() {
    let first = start(flagd(10, FlagdBucketing::V3)).await;
    let checkpoint1 = check(&gate(&first.url(), None), 10, &allowlist(), None).await;
    assert_eq!(checkpoint1.observation, Observation::Value(0.0));
    let memory1 = checkpoint1.memory.expect("memory");
    // The memory fits in a status field.
    let stored: OfrepMemory =
        serde_json::from_value(serde_json::to_value(&memory1).unwrap()).unwrap();

    // Same percent, but the evaluator now buckets differently: the share still looks right.
    let reshuffled = start(flagd(10, FlagdBucketing::V2)).await;
    let checkpoint2 = check(
        &gate(&reshuffled.url(), None),
        10,
        &allowlist(),
        Some(&stored),
    )
    .await;
    let violations = checkpoint2.violations.expect("violations");
    assert_eq!(violations.share, 0, "{violations}");
    assert!(violations.lost > 0, "{violations}");
    assert_eq!(violations.total(), violations.lost, "{violations}");
    let memory2 = checkpoint2.memory.expect("memory");

    // It keeps counting while the percent does not go down...
    let checkpoint3 = check(
        &gate(&reshuffled.url(), None),
        10,
        &allowlist(),
        Some(&memory2),
    )
    .await;
    assert_eq!(
        checkpoint3.violations.expect("violations").lost,
        violations.lost
    );

    // ...and a lower percent may take the flag away from anyone.
    let lowered = start(flagd(5, FlagdBucketing::V2)).await;
    let checkpoint4 = check(&gate(&lowered.url(), None), 5, &allowlist(), Some(&memory2)).await;
    assert_eq!(checkpoint4.observation, Observation::Value(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_the_percent_keeps_everyone_who_had_the_flag() {
    let at10 = start(flagd(10, FlagdBucketing::V3)).await;
    let memory = check(
        &gate(&at10.url(), Some(FlagdBucketing::V3)),
        10,
        &allowlist(),
        None,
    )
    .await
    .memory;
    let at20 = start(flagd(20, FlagdBucketing::V3)).await;
    let result = check(
        &gate(&at20.url(), Some(FlagdBucketing::V3)),
        20,
        &allowlist(),
        memory.as_ref(),
    )
    .await;
    assert_eq!(
        result.observation,
        Observation::Value(0.0),
        "{:?}",
        result.violations
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_service_is_an_error() {
    let port = crate::support::loopback::unused_address().port();
    let result = check(
        &gate(&format!("http://127.0.0.1:{port}"), None),
        10,
        &allowlist(),
        None,
    )
    .await;
    let message = error_message(&result);
    assert!(
        message.contains(&format!("127.0.0.1:{port}/ofrep/v1/evaluate/flags/{FLAG}")),
        "{message}"
    );
    assert!(message.to_lowercase().contains("connect"), "{message}");
    assert_eq!(result.memory, None);
    assert_eq!(verdict(&result.observation), GateVerdict::Error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_flag_is_an_error_naming_it() {
    let server = start(Behaviour::Flagd {
        definition: Value::Null,
        version: FlagdBucketing::V3,
    })
    .await;
    let result = check(&gate(&server.url(), None), 10, &allowlist(), None).await;
    let message = error_message(&result);
    assert!(
        message.contains("HTTP 404") && message.contains("FLAG_NOT_FOUND"),
        "{message}"
    );
    // errorDetails is the service's free text: never kept.
    assert!(!message.contains("not found"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_answer_is_an_error_that_quotes_none_of_it() {
    let server = start(Behaviour::Garbage).await;
    let result = check(&gate(&server.url(), None), 10, &allowlist(), None).await;
    let message = error_message(&result);
    assert!(
        message.contains("not an OFREP evaluation") && message.contains("line 1, column 1"),
        "{message}"
    );
    assert!(!message.contains("<html>"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_service_times_out() {
    let definition = rollout_definition(FLAG, 10, &allowlist());
    let server = start(Behaviour::Slow {
        definition,
        delay: Duration::from_secs(3),
    })
    .await;
    let mut slow = gate(&server.url(), None);
    slow.timeout = Some(Duration::from_millis(200).into());
    let started = std::time::Instant::now();
    let result = check(&slow, 10, &allowlist(), None).await;
    let message = error_message(&result);
    assert!(message.contains("timed out after 200ms"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_gate_without_a_flag_is_an_error() {
    let ctx = GateContext {
        rollout: "r",
        namespace: "n",
        flag: None,
        allowlist: &[],
        stage: 0,
        percent: Percent::whole(1),
        at: Timestamp::UNIX_EPOCH,
    };
    let result = probe(
        &support_ofrep::loopback_ofrep_client(),
        &gate("http://127.0.0.1:9", None),
        &ctx,
        None,
        DEFAULT_PROBE_DEADLINE,
    )
    .await;
    assert!(error_message(&result).contains("no flag to probe"));
}
