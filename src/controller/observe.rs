//! The one place the controller turns gates into observations, so the gates module's entry
//! point can replace the body without touching the reconcile. Every gate of a checkpoint runs
//! in parallel under one overall deadline; a gate's `secretRef` Secret is read by name (GET
//! only, never list or watch).

use std::time::Duration;

use futures_util::future::{BoxFuture, join_all};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;

use crate::api::{Gate, Provider, Rollout, RolloutStatus};
use crate::engine::Observation;
use crate::gates::ofrep_memory::OfrepMemory;
use crate::gates::prometheus::{GateConnection, PrometheusClient, PrometheusEndpoint};
use crate::gates::{GateContext, alerts, http, ofrep, prometheus};

/// One gate's observation, and the determinism probe's memory for the next checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct GateReading {
    /// What the provider saw.
    pub observation: Observation,
    /// The OFREP probe's new memory (kept in `status.gates[].determinism`).
    pub memory: Option<OfrepMemory>,
}

impl GateReading {
    /// A reading without memory.
    pub fn of(observation: Observation) -> Self {
        Self {
            observation,
            memory: None,
        }
    }
}

/// Observes a Rollout's gates. Tests inject their own.
pub trait GateObserver: Send + Sync {
    /// One reading per gate of `rollout.spec.analysis.gates`, in order, at `at`.
    fn observe<'a>(
        &'a self,
        rollout: &'a Rollout,
        status: &'a RolloutStatus,
        at: Timestamp,
    ) -> BoxFuture<'a, Vec<GateReading>>;
}

/// The providers of [`crate::gates`], against the cluster and the default Prometheus.
pub struct ProviderObserver {
    client: kube::Client,
    default: Option<PrometheusEndpoint>,
    http: reqwest::Client,
    deadline: Duration,
}

impl ProviderObserver {
    /// Observes with `default` as the Prometheus of gates without an address of their own,
    /// every checkpoint's gates within `deadline`.
    pub fn new(
        client: kube::Client,
        default: Option<PrometheusEndpoint>,
        deadline: Duration,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            default,
            http,
            deadline,
        })
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Secret, String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        api.get(name)
            .await
            .map_err(|e| format!("cannot read Secret {namespace}/{name}: {e}"))
    }

    async fn client_for(
        &self,
        connection: GateConnection<'_>,
        namespace: &str,
    ) -> Result<PrometheusClient, String> {
        let mut endpoint = connection
            .endpoint(self.default.as_ref())
            .map_err(|e| e.to_string())?;
        if let Some(name) = connection.secret_name {
            let secret = self.secret(namespace, name).await?;
            let data = secret.data.unwrap_or_default();
            endpoint
                .settings
                .apply_secret(data.iter().map(|(k, v)| (k.as_str(), v.0.as_slice())))
                .map_err(|e| format!("Secret {namespace}/{name}: {e}"))?;
        }
        PrometheusClient::new(&endpoint).map_err(|e| e.to_string())
    }

    async fn observe_gate(
        &self,
        gate: &Gate,
        ctx: &GateContext<'_>,
        previous: Option<&OfrepMemory>,
    ) -> GateReading {
        let failed = |message: String| GateReading::of(Observation::Error(message));
        match gate.provider() {
            Some(Provider::Prometheus(p)) => match self.client_for(p.into(), ctx.namespace).await {
                Ok(client) => GateReading::of(prometheus::observe(&client, p, ctx).await),
                Err(message) => failed(message),
            },
            Some(Provider::Alerts(a)) => match self.client_for(a.into(), ctx.namespace).await {
                Ok(client) => GateReading::of(alerts::observe(&client, a, ctx).await),
                Err(message) => failed(message),
            },
            Some(Provider::Ofrep(o)) => self.probe(o, ctx, previous).await,
            Some(Provider::Http(h)) => GateReading::of(http::check(&self.http, h).await),
            None => failed("the gate must set exactly one provider".to_owned()),
        }
    }

    /// The OFREP probe runs on a blocking thread of the runtime: its future is not provably
    /// `Send` (a higher-ranked closure inside), so it is driven there with owned copies.
    async fn probe(
        &self,
        gate: &crate::api::OfrepGate,
        ctx: &GateContext<'_>,
        previous: Option<&OfrepMemory>,
    ) -> GateReading {
        let (http, gate, previous) = (self.http.clone(), gate.clone(), previous.cloned());
        let (rollout, namespace) = (ctx.rollout.to_owned(), ctx.namespace.to_owned());
        let flag = ctx.flag.map(str::to_owned);
        let allowlist = ctx.allowlist.to_vec();
        let (stage, percent, at) = (ctx.stage, ctx.percent, ctx.at);
        let handle = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || {
            let ctx = GateContext {
                rollout: &rollout,
                namespace: &namespace,
                flag: flag.as_deref(),
                allowlist: &allowlist,
                stage,
                percent,
                at,
            };
            let probe = handle.block_on(ofrep::probe(&http, &gate, &ctx, previous.as_ref()));
            GateReading {
                observation: probe.observation,
                memory: probe.memory,
            }
        });
        task.await.unwrap_or_else(|e| {
            GateReading::of(Observation::Error(format!("the OFREP probe stopped: {e}")))
        })
    }

    async fn observe_all(
        &self,
        rollout: &Rollout,
        status: &RolloutStatus,
        at: Timestamp,
    ) -> Vec<GateReading> {
        let spec = &rollout.spec;
        let ctx = GateContext {
            rollout: rollout.metadata.name.as_deref().unwrap_or_default(),
            namespace: rollout.metadata.namespace.as_deref().unwrap_or("default"),
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
        let deadline = tokio::time::Instant::now() + self.deadline;
        let readings = spec.analysis.gates.iter().map(|gate| {
            let previous = status
                .gates
                .iter()
                .find(|g| g.name == gate.name)
                .and_then(|g| g.determinism.as_ref());
            let ctx = &ctx;
            async move {
                tokio::time::timeout_at(deadline, self.observe_gate(gate, ctx, previous))
                    .await
                    .unwrap_or_else(|_| {
                        GateReading::of(Observation::Error(format!(
                            "no answer within the checkpoint's deadline of {}s",
                            self.deadline.as_secs()
                        )))
                    })
            }
        });
        join_all(readings).await
    }
}

impl GateObserver for ProviderObserver {
    fn observe<'a>(
        &'a self,
        rollout: &'a Rollout,
        status: &'a RolloutStatus,
        at: Timestamp,
    ) -> BoxFuture<'a, Vec<GateReading>> {
        Box::pin(self.observe_all(rollout, status, at))
    }
}
