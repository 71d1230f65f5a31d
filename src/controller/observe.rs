//! The one place the controller turns gates into observations, through the gates module's
//! entry point ([`crate::gates::observe_all`]): every gate of a checkpoint in parallel under
//! one overall deadline, a gate's `secretRef` Secret read by name (GET only, never list or
//! watch), the OFREP probe's memory carried from and back to `status.gates[].determinism`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{BoxFuture, join_all};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;

use super::identity::Identities;
use crate::api::{Gate, Percent, Provider, Rollout, RolloutStatus};
use crate::engine::Observation;
use crate::gates::compare;
use crate::gates::prometheus::GateConnection;
use crate::gates::{GateContext, GateEnv, GateInput, SecretData, alert_rules_problem, observe_all};

pub use crate::gates::GateOutput as GateReading;

/// A reading without memory, from an observation.
pub fn reading(observation: Observation) -> GateReading {
    GateReading {
        observation,
        memory: None,
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

    /// The pre-check of the rollout's alerts gates: one problem per gate whose matchers select
    /// no alerting rule its Prometheus knows. Observers without Prometheus have none.
    fn alert_rule_problems<'a>(
        &'a self,
        rollout: &'a Rollout,
        at: Timestamp,
    ) -> BoxFuture<'a, Vec<String>> {
        let _ = (rollout, at);
        Box::pin(async { Vec::new() })
    }
}

/// The providers of [`crate::gates`], against the cluster and the default Prometheus.
#[derive(Clone)]
pub struct ProviderObserver {
    /// The client of each Rollout's Secret reads: its ServiceAccount's, or the controller's.
    identities: Arc<Identities>,
    env: GateEnv,
    deadline: Duration,
}

impl ProviderObserver {
    /// Observes in `env`, every checkpoint's gates within `deadline`.
    pub fn new(client: kube::Client, env: GateEnv, deadline: Duration) -> Self {
        Self {
            identities: Arc::new(Identities::new(client)),
            env,
            deadline,
        }
    }

    /// Gates' Secrets are read as each Rollout's ServiceAccount, when `identities` gives it
    /// one; a refusal is remembered there for the reconcile.
    pub fn with_identities(mut self, identities: Arc<Identities>) -> Self {
        self.identities = identities;
        self
    }

    /// The data of the gate's `secretRef` Secret, or why it cannot be read.
    async fn secret(
        &self,
        rollout: &Rollout,
        namespace: &str,
        gate: &Gate,
    ) -> Option<Result<SecretData, String>> {
        let connection: GateConnection<'_> = match gate.provider()? {
            Provider::Prometheus(p) => (&p.connection).into(),
            Provider::Alerts(a) => (&a.connection).into(),
            Provider::Compare(c) => (&c.connection).into(),
            _ => return None,
        };
        let name = connection.secret_name?;
        let client = match self.identities.client_for(rollout) {
            Ok(client) => client,
            Err(e) => return Some(Err(e.to_string())),
        };
        let api: Api<Secret> = Api::namespaced(client, namespace);
        Some(
            api.get(name)
                .await
                .map(|s| SecretData::from_secret(&s))
                .map_err(|e| {
                    self.identities.record(rollout, "get", &e);
                    format!("cannot read Secret {namespace}/{name}: {e}")
                }),
        )
    }

    /// Every alerts gate's rule check, all at once (each within the per-gate deadline).
    async fn alert_rule_problems(&self, rollout: &Rollout, at: Timestamp) -> Vec<String> {
        let namespace = rollout.metadata.namespace.as_deref().unwrap_or("default");
        // Before the start: the first stage's percent is the one the gates will see.
        let percent = rollout
            .spec
            .stages
            .first()
            .map_or(Percent::ZERO, |s| s.percent);
        let ctx = context(rollout, 0, percent, at);
        let checks = rollout
            .spec
            .analysis
            .gates
            .iter()
            .filter(|gate| matches!(gate.provider(), Some(Provider::Alerts(_))))
            .map(|gate| async move {
                let secret = match self.secret(rollout, namespace, gate).await {
                    Some(Ok(data)) => Some(data),
                    Some(Err(problem)) => return Some(format!("gate {}: {problem}", gate.name)),
                    None => None,
                };
                let input = GateInput {
                    gate,
                    ctx,
                    secret: secret.as_ref(),
                    memory: None,
                    compare: None,
                };
                alert_rules_problem(&self.env, input)
                    .await
                    .map(|problem| format!("gate {}: {problem}", gate.name))
            });
        join_all(checks).await.into_iter().flatten().collect()
    }

    async fn observe_all(
        &self,
        rollout: &Rollout,
        status: &RolloutStatus,
        at: Timestamp,
    ) -> Vec<GateReading> {
        let spec = &rollout.spec;
        let namespace = rollout.metadata.namespace.as_deref().unwrap_or("default");
        let ctx = context(
            rollout,
            status.stage,
            status.percent.unwrap_or(Percent::ZERO),
            at,
        );
        let gates = &spec.analysis.gates;
        // A compare gate counts from the stage's start; before the start (the pre-check) over
        // the last analysis interval.
        let scope = compare::scope(spec, status.stage_started_at.as_ref().map(|t| t.0), at);
        let secrets = join_all(
            gates
                .iter()
                .map(|gate| self.secret(rollout, namespace, gate)),
        )
        .await;
        let mut inputs = Vec::with_capacity(gates.len());
        let mut unreadable = Vec::new();
        for (i, (gate, secret)) in gates.iter().zip(&secrets).enumerate() {
            let secret = match secret {
                Some(Ok(data)) => Some(data),
                Some(Err(problem)) => {
                    unreadable.push((i, problem.clone()));
                    None
                }
                None => None,
            };
            let memory = status
                .gates
                .iter()
                .find(|g| g.name == gate.name)
                .and_then(|g| g.determinism.as_ref());
            inputs.push(GateInput {
                gate,
                ctx,
                secret,
                memory,
                compare: gate.compare.is_some().then_some(scope),
            });
        }
        let mut readings = observe_all(&self.env, inputs, self.deadline).await;
        for (i, problem) in unreadable {
            if let Some(r) = readings.get_mut(i) {
                r.observation = Observation::Error(problem);
            }
        }
        readings
    }
}

/// What the gates know of `rollout` at `stage` and `percent`, at `at`.
fn context(rollout: &Rollout, stage: u32, percent: Percent, at: Timestamp) -> GateContext<'_> {
    let spec = &rollout.spec;
    GateContext {
        rollout: rollout.metadata.name.as_deref().unwrap_or_default(),
        namespace: rollout.metadata.namespace.as_deref().unwrap_or("default"),
        flag: spec.target.flag_name(),
        allowlist: spec
            .target
            .flagd
            .as_ref()
            .map_or(&[][..], |f| f.allowlist.as_slice()),
        stage,
        percent,
        at,
    }
}

impl GateObserver for ProviderObserver {
    fn alert_rule_problems<'a>(
        &'a self,
        rollout: &'a Rollout,
        at: Timestamp,
    ) -> BoxFuture<'a, Vec<String>> {
        Box::pin(ProviderObserver::alert_rule_problems(self, rollout, at))
    }

    /// Every gate's future is `Send`: it runs on the runtime like any other task.
    fn observe<'a>(
        &'a self,
        rollout: &'a Rollout,
        status: &'a RolloutStatus,
        at: Timestamp,
    ) -> BoxFuture<'a, Vec<GateReading>> {
        Box::pin(self.observe_all(rollout, status, at))
    }
}
