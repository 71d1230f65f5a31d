//! OFREP test servers: a correct evaluator of a flagd definition, evaluators on other bucketing
//! versions, replicas that disagree, and broken ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rollgate::api::FlagdBucketing;
use serde_json::{Value, json};

use super::flagd_eval::{Evaluation, evaluate};
use crate::support::loopback::{Request, Response, TestServer};

const PREFIX: &str = "/ofrep/v1/evaluate/flags/";

/// How a test server answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Evaluates the definition with one bucketing version.
    Flagd {
        definition: Value,
        version: FlagdBucketing,
    },
    /// Replicas behind one Service, each on its own bucketing version; any may answer a call.
    Replicas {
        definition: Value,
        versions: Vec<FlagdBucketing>,
    },
    /// Answers `on` or `off` at random, whatever the key.
    Random,
    /// Answers 200 with a body that is not JSON.
    Garbage,
    /// Answers after a delay, correctly.
    Slow { definition: Value, delay: Duration },
}

/// Starts an OFREP server with a behaviour.
pub async fn start(behaviour: Behaviour) -> TestServer {
    let calls = Arc::new(AtomicU64::new(0));
    TestServer::start(move |request| {
        let call = calls.fetch_add(1, Ordering::Relaxed);
        answer(&behaviour, request, call)
    })
    .await
}

fn answer(behaviour: &Behaviour, request: &Request, call: u64) -> Response {
    let Some(flag) = request
        .path
        .strip_prefix(PREFIX)
        .filter(|_| request.method == "POST")
    else {
        return Response::json(404, r#"{"errorDetails":"no such route"}"#);
    };
    let flag = flag.to_string();
    let key = serde_json::from_slice::<Value>(&request.body)
        .ok()
        .and_then(|body| body["context"]["targetingKey"].as_str().map(str::to_string));
    let Some(key) = key else {
        return Response::json(
            400,
            json!({"key": flag, "errorCode": "TARGETING_KEY_MISSING"}).to_string(),
        );
    };
    match behaviour {
        Behaviour::Flagd {
            definition,
            version,
        } => resolved(&flag, evaluate(definition, &flag, &key, *version)),
        Behaviour::Replicas {
            definition,
            versions,
        } => {
            // Like a Service spreading connections over its pods: any replica may answer.
            let version = versions[(splitmix64(call) % versions.len() as u64) as usize];
            resolved(&flag, evaluate(definition, &flag, &key, version))
        }
        Behaviour::Random => {
            let on = splitmix64(call) & 1 == 1;
            let variant = if on { "on" } else { "off" };
            Response::json(
                200,
                json!({"key": flag, "value": on, "variant": variant, "reason": "SPLIT"})
                    .to_string(),
            )
        }
        Behaviour::Garbage => Response::json(200, "<html>not json</html>"),
        Behaviour::Slow { definition, delay } => {
            resolved(&flag, evaluate(definition, &flag, &key, FlagdBucketing::V3)).after(*delay)
        }
    }
}

fn resolved(flag: &str, evaluation: Evaluation) -> Response {
    match evaluation {
        Evaluation::Resolved { variant, value, reason } => Response::json(
            200,
            json!({"key": flag, "value": value, "variant": variant, "reason": reason}).to_string(),
        ),
        Evaluation::NotFound => Response::json(
            404,
            json!({"key": flag, "errorCode": "FLAG_NOT_FOUND", "errorDetails": format!("flag {flag} not found")})
                .to_string(),
        ),
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
