//! The determinism gate: probes the service that evaluates the flag over the OpenFeature Remote
//! Evaluation Protocol (OFREP) and counts violations of what a stable percentage rollout owes
//! its users.
//!
//! For the sample (the gate's `sample` keys of a fixed pseudo-random sequence, see
//! [`sample_key`](super::ofrep_sample::sample_key)) plus the allowlist, every key is evaluated
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
//!   ([`rollout_has_flag`](super::flagd_bucketing::rollout_has_flag)).
//!
//! Any failed evaluation (refused, timed out, an error status, an answer that is not OFREP)
//! makes the whole observation an error that names the URL and the cause.

use futures_util::stream::{self, StreamExt, TryStreamExt};
use tracing::{debug, info, warn};

use super::GateContext;
use super::flagd_bucketing::rollout_has_flag;
use super::http_util::timeout_of;
use super::ofrep_checks::{KeyResult, ProbeResults, Violations, assess};
use super::ofrep_client::{Answer, OfrepClient, OfrepError};
use super::ofrep_memory::OfrepMemory;
use super::ofrep_sample::sample_keys;
use crate::api::OfrepGate;
use crate::engine::Observation;

/// Evaluations in flight at once.
const CONCURRENCY: usize = 16;

/// Largest sample probed, whatever the spec says (the CRD caps it too).
const MAX_SAMPLE: u32 = 100_000;

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
}

/// Probes the gate's OFREP service at the context's percent. `previous` is the memory the last
/// probe of this gate returned in this rollout (kept in the gate's status); pass `None` on the
/// first checkpoint.
pub async fn probe(
    http: &reqwest::Client,
    gate: &OfrepGate,
    ctx: &GateContext<'_>,
    previous: Option<&OfrepMemory>,
) -> OfrepProbe {
    match run(http, gate, ctx, previous).await {
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
    http: &reqwest::Client,
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
    let client = OfrepClient::new(http.clone(), &gate.address, flag, timeout)
        .map_err(ProbeError::Address)?;
    let sample = sample_keys(gate.sample.clamp(1, MAX_SAMPLE));
    let keys: Vec<&str> = sample
        .iter()
        .chain(ctx.allowlist)
        .map(String::as_str)
        .collect();
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
    stream::iter(keys.iter().copied())
        .map(|key| async move {
            client
                .evaluate(key)
                .await
                .map_err(|source| ProbeError::Evaluation {
                    flag: flag.to_string(),
                    key: key.to_string(),
                    source,
                })
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}
