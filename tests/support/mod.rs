//! Test support shared by the integration tests: a real Prometheus started per test, a small
//! app it scrapes, a fake Prometheus for answers a real one never gives, the stand-in API
//! server, the one verifier for Kubernetes calls (`verifier`), the one loopback HTTP server
//! (`loopback`), and polling helpers.

#![allow(dead_code)]

pub mod apiserver;
pub mod app;
pub mod examples;
pub mod fake;
pub mod loopback;
pub mod prometheus;
pub mod verifier;
pub mod wire;

#[allow(unused_imports)]
pub use examples::{example_json, example_rollout, example_text};

use std::future::Future;
use std::time::{Duration, Instant};

use std::sync::Arc;

use rollgate::engine::Observation;
use rollgate::net::AddressPolicy;

/// How long [`eventually`] waits for a condition.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Calls `probe` until its result satisfies `ok`, and returns that result; panics with the
/// last one after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F, ok: impl Fn(&T) -> bool) -> T
where
    T: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let start = Instant::now();
    loop {
        let result = probe().await;
        if ok(&result) {
            return result;
        }
        if start.elapsed() > PATIENCE {
            panic!("{what}: still {result:?} after {PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether `observation` is a value within `tolerance` of `expected`.
pub fn near(observation: &Observation, expected: f64, tolerance: f64) -> bool {
    matches!(observation, Observation::Value(v) if (v - expected).abs() <= tolerance)
}

/// The address policy tests use: the defaults plus loopback, where every test server listens
/// (the default policy refuses loopback; tests that show it do not use this).
pub fn loopback_policy() -> Arc<AddressPolicy> {
    Arc::new(AddressPolicy::new(vec![
        "127.0.0.0/8".parse().expect("rule"),
        "::1".parse().expect("rule"),
    ]))
}
