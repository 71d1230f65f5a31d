//! Property tests for every parser of what a remote server answers — the Prometheus API
//! (instant and range), OFREP evaluations and HTTP-check JSON: whatever the bytes, no panic,
//! and an error says where it went wrong, stays bounded and carries no control characters.

use proptest::prelude::*;
use rollgate::api::HttpGate;
use rollgate::gates::http::read_answer;
use rollgate::gates::ofrep::client::parse_evaluation;
use rollgate::gates::prometheus::{Steps, parse_answer, parse_range};
use serde_json::Value;
use serde_json_path::JsonPath;

/// Longest error message any parser may produce, in characters.
const MESSAGE_BOUND: usize = 1_500;

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("NaN"),
            Just("+Inf"),
            Just("1e3"),
            Just("0.5"),
            Just("\u{1b}[2J")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("metric".to_owned()),
                    Just("value".to_owned()),
                    Just("values".to_owned()),
                    Just("histogram".to_owned()),
                    Just("variant".to_owned()),
                    Just("errorCode".to_owned()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A Prometheus envelope around an arbitrary result, as a hostile or broken server might send.
fn envelope() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just("success"), Just("error"), Just("odd")],
        prop_oneof![
            Just("scalar"),
            Just("vector"),
            Just("matrix"),
            Just("string"),
            Just("x")
        ],
        json(),
        json(),
    )
        .prop_map(|(status, result_type, result, error)| {
            serde_json::json!({
                "status": status,
                "data": {"resultType": result_type, "result": result},
                "errorType": "bad_data",
                "error": error,
                "warnings": ["w"],
            })
            .to_string()
            .into_bytes()
        })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        envelope(),
        json().prop_map(|v| v.to_string().into_bytes()),
    ]
}

#[track_caller]
fn clean(message: &str) {
    assert!(!message.is_empty());
    assert!(
        message.chars().count() <= MESSAGE_BOUND,
        "{} chars",
        message.len()
    );
    assert!(!message.chars().any(char::is_control), "{message:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn instant_answers_never_panic(status in prop_oneof![Just(200u16), 100u16..600], body in bytes()) {
        if let Err(error) = parse_answer(status, &body) {
            let message = error.to_string();
            clean(&message);
            // A body that is not the API's JSON names where it went wrong: the line and column
            // where it stopped parsing, or the field of the wrong shape.
            if message.contains("is not the Prometheus API's JSON (") {
                prop_assert!(
                    message.contains("line ")
                        || message.contains("data.result")
                        || message.contains("`data`")
                        || message.contains("sample"),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn range_answers_never_panic(
        status in prop_oneof![Just(200u16), 100u16..600],
        body in bytes(),
        start_ms in -1_000_000i64..1_000_000,
        step_ms in 1i64..100_000,
        count in 0usize..50,
    ) {
        let steps = Steps { start_ms, step_ms, count };
        match parse_range(status, &body, steps) {
            Ok(answers) => {
                prop_assert_eq!(answers.len(), count);
                for error in answers.iter().filter_map(|a| a.as_ref().err()) {
                    clean(&error.to_string());
                }
            }
            Err(error) => {
                let message = error.to_string();
                clean(&message);
                if message.contains("is not the Prometheus API's JSON (") {
                    prop_assert!(
                        message.contains("line ")
                            || message.contains("data.result")
                            || message.contains("`data`"),
                        "{message}"
                    );
                }
            }
        }
    }

    #[test]
    fn ofrep_answers_never_panic(status in prop_oneof![Just(200u16), 100u16..600], body in bytes()) {
        let url = "http://flagd.kaviar:8016/ofrep/v1/evaluate/flags/fav";
        if let Err(error) = parse_evaluation(url, status, &body) {
            let message = error.to_string();
            clean(&message);
            prop_assert!(message.contains(url), "{message}");
        }
    }

    #[test]
    fn http_check_answers_never_panic(
        status in prop_oneof![Just(200u16), 100u16..600],
        body in bytes(),
        path in prop_oneof![Just("$.ok"), Just("$..value"), Just("$[0]"), Just("$.metric.*"), Just("$")],
    ) {
        let gate = HttpGate {
            url: "http://status.kaviar/health".into(),
            json_path: path.into(),
            ..HttpGate::default()
        };
        let parsed = JsonPath::parse(path).unwrap();
        if let Err(error) = read_answer(&gate, &parsed, "GET", gate.url.clone(), status, &body) {
            let message = error.to_string();
            clean(&message);
            prop_assert!(message.contains("http://status.kaviar/health"), "{message}");
            if message.contains("not JSON") {
                prop_assert!(message.contains("line "), "{message}");
            }
        }
    }
}
