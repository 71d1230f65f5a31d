//! The determinism gate: probes the service that evaluates the flag over the OpenFeature Remote
//! Evaluation Protocol (OFREP) and counts violations of what a stable percentage rollout owes
//! its users.
//!
//! For the sample (the gate's `sample` keys of a fixed pseudo-random sequence, see
//! [`sample_key`](sample::sample_key)) plus the allowlist, every key is evaluated
//! twice, in two passes, each call on its own connection. The value is the number of
//! violations ([`Violations`]):
//!
//! - **unstable**: a key whose two answers differ (value or variant);
//! - **allowlist**: an allowlisted key that does not get the flag;
//! - **share**: the sampled keys with the flag stray from `percent` of the sample by more than
//!   `4 * sqrt(n p (1 - p)) + 2` keys (one violation);
//! - **lost**: a key that had the flag at an earlier checkpoint of this rollout and lost it
//!   while the percent did not go down (needs the [`OfrepMemory`] of the last probe);
//! - **bucketing**: when the gate declares the flagd bucketing, a sampled key whose answer
//!   disagrees with the bucket computed locally
//!   ([`rollout_has_flag`](bucketing::rollout_has_flag)).
//!
//! Any failed evaluation (refused, timed out, an error status, an answer that is not OFREP)
//! makes the whole observation an error that names the URL and the cause.

pub mod bucketing;
pub mod cbor;
pub mod checks;
pub mod client;
pub mod sample;

use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use tracing::{debug, info, warn};

use self::bucketing::rollout_has_flag;
use self::checks::{KeyResult, ProbeResults, Violations, assess};
use self::client::{Answer, OfrepClient, OfrepError};
use self::sample::sample_keys;
use super::GateContext;
use crate::api::{OfrepGate, OfrepMemory};
use crate::engine::Observation;
use crate::net::{GuardedClient, timeout_of};

/// Evaluations in flight at once.
const CONCURRENCY: usize = 16;

/// Largest sample probed, whatever the spec says (the CRD caps it too).
const MAX_SAMPLE: u32 = 100_000;

/// Most allowlisted keys probed; the rest are left out (and logged), so a long allowlist
/// cannot make a probe endless.
pub const MAX_ALLOWLIST_PROBED: usize = 1_000;

/// Time a whole probe (both passes over every key) may take when the caller names none.
pub const DEFAULT_PROBE_DEADLINE: Duration = Duration::from_secs(60);

/// A client for OFREP calls that spreads them over the replicas behind a Service, enforcing
/// `policy`: see [`spreading`].
pub fn spreading_client(
    policy: std::sync::Arc<crate::net::AddressPolicy>,
) -> Result<GuardedClient, reqwest::Error> {
    let http = spreading(crate::net::guarded_builder(&policy)).build()?;
    Ok(GuardedClient::new(http, policy))
}

/// `builder` made to spread calls over replicas: HTTP/1.1 only (over HTTPS, HTTP/2 would
/// ignore `Connection: close` and multiplex every call onto one connection, so one pod) and no
/// idle connection kept, so every call opens its own.
pub fn spreading(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    builder.http1_only().pool_max_idle_per_host(0)
}

/// The result of one probe.
#[derive(Clone, Debug, PartialEq)]
pub struct OfrepProbe {
    /// The gate's observation: the number of violations, or an error.
    pub observation: Observation,
    /// The memory to store for the next probe; `None` when the probe failed, in which case
    /// the caller keeps the memory it had.
    pub memory: Option<OfrepMemory>,
    /// The violations by rule, when the probe completed (for messages and events).
    pub violations: Option<Violations>,
}

/// Why a probe could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Neither the gate nor the target names a flag.
    #[error("no flag to probe: set ofrep.flag or use a flagd target")]
    NoFlag,
    /// The gate's timeout is unusable.
    #[error("ofrep.timeout: {0}")]
    Timeout(String),
    /// An evaluation failed.
    #[error("OFREP evaluation of flag {flag:?} for key {key:?} failed: {source}")]
    Evaluation {
        /// The flag.
        flag: String,
        /// The targeting key.
        key: String,
        /// What went wrong.
        source: OfrepError,
    },
    /// The address is unusable.
    #[error("ofrep.address: {0}")]
    Address(OfrepError),
    /// The whole probe took longer than its deadline.
    #[error(
        "the OFREP probe of flag {flag:?} did not finish within {deadline:?} ({keys} keys, \
         evaluated twice); lower ofrep.sample or check the service's latency"
    )]
    Deadline {
        /// The flag.
        flag: String,
        /// The deadline.
        deadline: Duration,
        /// Keys probed.
        keys: usize,
    },
}

/// Probes the gate's OFREP service at the context's percent, the whole probe within
/// `deadline`. `previous` is the memory the last probe of this gate returned in this rollout
/// (kept in the gate's status); pass `None` on the first checkpoint. `http` should come from
/// [`spreading_client`], so the calls reach every replica.
pub async fn probe(
    http: &GuardedClient,
    gate: &OfrepGate,
    ctx: &GateContext<'_>,
    previous: Option<&OfrepMemory>,
    deadline: Duration,
) -> OfrepProbe {
    let outcome = match tokio::time::timeout(deadline, run(http, gate, ctx, previous)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(ProbeError::Deadline {
            flag: gate
                .flag
                .as_deref()
                .or(ctx.flag)
                .unwrap_or_default()
                .to_owned(),
            deadline,
            keys: gate.sample.clamp(1, MAX_SAMPLE) as usize
                + ctx.allowlist.len().min(MAX_ALLOWLIST_PROBED),
        }),
    };
    match outcome {
        Ok((violations, memory)) => {
            if violations.total() > 0 {
                warn!(rollout = ctx.rollout, namespace = ctx.namespace, flag = %memory.flag, "{violations}");
            } else {
                info!(rollout = ctx.rollout, namespace = ctx.namespace, flag = %memory.flag, "{violations}");
            }
            OfrepProbe {
                observation: Observation::Value(f64::from(violations.total())),
                memory: Some(memory),
                violations: Some(violations),
            }
        }
        Err(error) => {
            warn!(rollout = ctx.rollout, namespace = ctx.namespace, %error, "OFREP probe failed");
            OfrepProbe {
                observation: Observation::Error(error.to_string()),
                memory: None,
                violations: None,
            }
        }
    }
}

async fn run(
    http: &GuardedClient,
    gate: &OfrepGate,
    ctx: &GateContext<'_>,
    previous: Option<&OfrepMemory>,
) -> Result<(Violations, OfrepMemory), ProbeError> {
    let flag = gate
        .flag
        .as_deref()
        .or(ctx.flag)
        .ok_or(ProbeError::NoFlag)?;
    let timeout = timeout_of(gate.timeout).map_err(ProbeError::Timeout)?;
    let client = OfrepClient::new(http, &gate.address, flag, timeout, Some(ctx.namespace))
        .map_err(ProbeError::Address)?;
    let sample = sample_keys(gate.sample.clamp(1, MAX_SAMPLE));
    if ctx.allowlist.len() > MAX_ALLOWLIST_PROBED {
        warn!(
            rollout = ctx.rollout,
            namespace = ctx.namespace,
            allowlist = ctx.allowlist.len(),
            probed = MAX_ALLOWLIST_PROBED,
            "the allowlist is longer than the probe checks; only its first keys are probed"
        );
    }
    let allowlist = &ctx.allowlist[..ctx.allowlist.len().min(MAX_ALLOWLIST_PROBED)];
    let keys: Vec<&str> = sample.iter().chain(allowlist).map(String::as_str).collect();
    debug!(url = %client.url(), keys = keys.len(), "probing OFREP twice per key");

    let first = evaluate_all(&client, flag, &keys).await?;
    let second = evaluate_all(&client, flag, &keys).await?;

    let on_variant = gate.on_variant.as_deref();
    let mut results = first.iter().zip(&second).map(|(a, b)| KeyResult {
        has_flag: a.has_flag(on_variant),
        stable: a == b,
    });
    let sampled: Vec<KeyResult> = results.by_ref().take(sample.len()).collect();
    let allowlist: Vec<KeyResult> = results.collect();
    let expected = gate.bucketing.map(|version| {
        sample
            .iter()
            .map(|key| rollout_has_flag(version, flag, key, ctx.percent))
            .collect()
    });
    let probe = ProbeResults {
        flag,
        percent: ctx.percent,
        sample: sampled,
        allowlist,
        expected,
    };
    Ok(assess(&probe, previous))
}

/// Evaluates every key once, in order, stopping at the first failure.
async fn evaluate_all(
    client: &OfrepClient,
    flag: &str,
    keys: &[&str],
) -> Result<Vec<Answer>, ProbeError> {
    // The futures are built first and only then streamed: a stream that maps with a closure
    // returning a borrowing future is not provably `Send` (a higher-ranked lifetime the
    // compiler cannot generalise), and the gate's future must be, to run on the runtime.
    let evaluations: Vec<_> = keys
        .iter()
        .map(|&key| evaluate_one(client, flag, key))
        .collect();
    stream::iter(evaluations)
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}

/// Evaluates one key.
async fn evaluate_one(client: &OfrepClient, flag: &str, key: &str) -> Result<Answer, ProbeError> {
    client
        .evaluate(key)
        .await
        .map_err(|source| ProbeError::Evaluation {
            flag: flag.to_string(),
            key: key.to_string(),
            source,
        })
}
