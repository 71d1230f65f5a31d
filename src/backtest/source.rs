//! Gate observations from Prometheus' past, one instant query per gate at each checkpoint.

use std::io;

use k8s_openapi::jiff::Timestamp;
use tokio::runtime::Runtime;

use crate::api::{AlertsGate, PrometheusGate, Provider, Rollout, RolloutStatus};
use crate::engine::Observation;
use crate::gates::prometheus::{GateConnection, PrometheusClient, PrometheusEndpoint};
use crate::gates::{GateContext, alerts, prometheus};
use crate::sim::ObservationSource;

/// How one gate is replayed.
#[derive(Debug)]
pub enum GateReplay<'a> {
    /// A PromQL query evaluated at each checkpoint's time.
    Prometheus(PrometheusClient, &'a PrometheusGate),
    /// Firing alerts counted at each checkpoint's time.
    Alerts(PrometheusClient, &'a AlertsGate),
    /// A gate that cannot be replayed, assumed to pass with this value (its lower bound, else
    /// its upper bound, else 0).
    AssumedPass(f64),
}

/// A plan that cannot be backtested as asked.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// Gates whose past cannot be asked for, not named with `--assume-pass`.
    #[error(
        "gates {} cannot be replayed from Prometheus' past (OFREP and HTTP gates observe the \
         present); name each with --assume-pass to treat it as passing",
        .0.join(", ")
    )]
    NotReplayable(Vec<String>),
    /// `--assume-pass` names a gate the plan does not have.
    #[error("--assume-pass {0}: the plan has no gate of that name")]
    UnknownGate(String),
    /// A gate's Prometheus connection cannot be built.
    #[error("gate {gate}: {problem}")]
    Connection {
        /// The gate.
        gate: String,
        /// What is wrong.
        problem: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
}

/// Observations from a Prometheus' past.
pub struct PrometheusHistory<'a> {
    rollout: &'a Rollout,
    gates: Vec<GateReplay<'a>>,
    runtime: Runtime,
}

impl<'a> PrometheusHistory<'a> {
    /// Prepares a client per gate. `default` is the `--prometheus` endpoint for gates without
    /// an address of their own; `assume_pass` names the gates that cannot be replayed and are
    /// to be taken as passing.
    pub fn new(
        rollout: &'a Rollout,
        default: &PrometheusEndpoint,
        assume_pass: &[String],
    ) -> Result<Self, BacktestError> {
        let gates = &rollout.spec.analysis.gates;
        if let Some(unknown) = assume_pass
            .iter()
            .find(|name| !gates.iter().any(|g| &g.name == *name))
        {
            return Err(BacktestError::UnknownGate(unknown.clone()));
        }
        let mut not_replayable = Vec::new();
        let mut replays = Vec::with_capacity(gates.len());
        for gate in gates {
            let replay = if assume_pass.contains(&gate.name) {
                let (min, max) = gate.bounds();
                GateReplay::AssumedPass(min.or(max).unwrap_or(0.0))
            } else {
                match gate.provider() {
                    Some(Provider::Prometheus(p)) => {
                        GateReplay::Prometheus(client_for(&gate.name, p.into(), default)?, p)
                    }
                    Some(Provider::Alerts(a)) => {
                        GateReplay::Alerts(client_for(&gate.name, a.into(), default)?, a)
                    }
                    _ => {
                        not_replayable.push(gate.name.clone());
                        continue;
                    }
                }
            };
            replays.push(replay);
        }
        if !not_replayable.is_empty() {
            return Err(BacktestError::NotReplayable(not_replayable));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BacktestError::Runtime)?;
        Ok(Self {
            rollout,
            gates: replays,
            runtime,
        })
    }
}

/// A client for a gate's Prometheus: its own address, or the command line's default endpoint.
fn client_for(
    gate: &str,
    connection: GateConnection<'_>,
    default: &PrometheusEndpoint,
) -> Result<PrometheusClient, BacktestError> {
    let fail = |problem: String| BacktestError::Connection {
        gate: gate.to_owned(),
        problem,
    };
    if connection.secret_name.is_some() {
        tracing::warn!(
            gate,
            "the gate's secretRef is not read outside the cluster; \
             credentials come from the command line"
        );
    }
    let endpoint = connection
        .endpoint(Some(default))
        .map_err(|e| fail(e.to_string()))?;
    PrometheusClient::new(&endpoint).map_err(|e| fail(e.to_string()))
}

impl ObservationSource for PrometheusHistory<'_> {
    fn observe(
        &mut self,
        at: Timestamp,
        status: &RolloutStatus,
        into: &mut Vec<Observation>,
    ) -> io::Result<()> {
        let spec = &self.rollout.spec;
        let ctx = GateContext {
            rollout: self.rollout.metadata.name.as_deref().unwrap_or_default(),
            namespace: self
                .rollout
                .metadata
                .namespace
                .as_deref()
                .unwrap_or("default"),
            flag: spec.target.flag_name(),
            allowlist: spec
                .target
                .flagd
                .as_ref()
                .map_or(&[][..], |f| f.allowlist.as_slice()),
            stage: status.stage,
            percent: status.percent.unwrap_or(0),
            at,
        };
        let queries = self.gates.iter().map(|replay| {
            let ctx = &ctx;
            async move {
                match replay {
                    GateReplay::Prometheus(client, gate) => {
                        prometheus::observe(client, gate, ctx).await
                    }
                    GateReplay::Alerts(client, gate) => alerts::observe(client, gate, ctx).await,
                    GateReplay::AssumedPass(value) => Observation::Value(*value),
                }
            }
        });
        let observations = self
            .runtime
            .block_on(futures_util::future::join_all(queries));
        into.clear();
        into.extend(observations);
        Ok(())
    }
}
