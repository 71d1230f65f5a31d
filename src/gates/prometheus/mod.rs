//! The Prometheus gate: a PromQL instant query whose single value is the gate's value, with an
//! optional minimum sample below which there is no data.
//!
//! | Prometheus answers                         | Observation |
//! |--------------------------------------------|-------------|
//! | a scalar, or a vector with one sample      | its value (±Inf included) |
//! | an empty vector, or NaN                    | no data |
//! | several series, a matrix, `status: error`, a non-2xx reply, a body that is not the API's JSON or is over 4 MiB, a timeout, no connection | an error saying which |
//!
//! With `sampleQuery` and `minSample`, a sample below the minimum (or empty, or NaN) is no data.

mod answer;
mod client;
mod error;
mod range;
mod rules;
mod settings;
mod tls;

pub use answer::{Answer, parse as parse_answer};
pub use client::{ClientError, MAX_ANSWER_BYTES, PrometheusClient};
pub use error::{QueryError, WITHHELD};
pub use range::{Steps, parse_range};
pub use rules::{AlertingRule, parse_rules};
pub use settings::{
    ClientSettings, DEFAULT_TIMEOUT, GateConnection, PrometheusAuth, PrometheusEndpoint, SECRET_CA,
    SECRET_HEADER_PREFIX, SECRET_PASSWORD, SECRET_TOKEN, SECRET_USERNAME, SettingsError, TokenFile,
    TokenFileError,
};

use crate::api::PrometheusGate;
use crate::engine::Observation;

use super::GateContext;
use super::query::fill_query;
use crate::api::VarError;

/// Why a Prometheus gate has no observation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum GateError {
    #[error(transparent)]
    Var(#[from] VarError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("sampleQuery: {0}")]
    SampleQuery(QueryError),
    #[error("sampleQuery and minSample must be set together")]
    HalfSample,
}

/// Observes `gate` at `ctx.at` through `client`: its value, no data, or an error.
pub async fn observe(
    client: &PrometheusClient,
    gate: &PrometheusGate,
    ctx: &GateContext<'_>,
) -> Observation {
    evaluate(client, gate, ctx)
        .await
        .unwrap_or_else(|err| Observation::Error(err.to_string()))
}

async fn evaluate(
    client: &PrometheusClient,
    gate: &PrometheusGate,
    ctx: &GateContext<'_>,
) -> Result<Observation, GateError> {
    let query = fill_query(&gate.query, ctx)?;
    let (sample_query, min_sample) = match (&gate.sample_query, gate.min_sample) {
        (None, None) => return Ok(observation(client.query(&query, ctx.at).await?)),
        (Some(sample_query), Some(min_sample)) => (fill_query(sample_query, ctx)?, min_sample),
        _ => return Err(GateError::HalfSample),
    };
    let (value, sample) = tokio::join!(
        client.query(&query, ctx.at),
        client.query(&sample_query, ctx.at)
    );
    let value = value?;
    let sample = sample.map_err(GateError::SampleQuery)?;
    match sample {
        Answer::Value(n) if n >= min_sample => Ok(observation(value)),
        _ => {
            tracing::info!(
                rollout = ctx.rollout,
                namespace = ctx.namespace,
                ?sample,
                min_sample,
                "sample below the minimum: no data"
            );
            Ok(Observation::NoData)
        }
    }
}

/// The observation of a gate from the answers of its query and, when it has one, its sample
/// query: the same rules [`observe`] applies, for callers that fetched the answers themselves
/// (a backtest reading a range).
pub fn observation_of(
    gate: &PrometheusGate,
    value: Result<Answer, QueryError>,
    sample: Option<Result<Answer, QueryError>>,
) -> Observation {
    let value = match value {
        Ok(value) => value,
        Err(err) => return Observation::Error(err.to_string()),
    };
    match (sample, gate.min_sample) {
        (None, _) | (_, None) => observation(value),
        (Some(Err(err)), _) => Observation::Error(GateError::SampleQuery(err).to_string()),
        (Some(Ok(Answer::Value(n))), Some(min)) if n >= min => observation(value),
        (Some(Ok(_)), Some(_)) => Observation::NoData,
    }
}

/// An answer as an observation: NaN and an empty vector are no data.
fn observation(answer: Answer) -> Observation {
    match answer {
        Answer::Value(v) if v.is_nan() => Observation::NoData,
        Answer::Value(v) => Observation::Value(v),
        Answer::Empty => Observation::NoData,
    }
}
