//! The one entry point from a gate's spec to its observation, for the controller, `backtest`
//! and the pre-checks alike: [`observe`] for one gate, [`observe_all`] for a checkpoint's gates
//! in parallel under one deadline. Whatever goes wrong becomes an `Error` observation whose
//! message is capped and free of control characters, ready for status and timelines.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;

use super::prometheus::{ClientError, GateConnection, PrometheusClient, PrometheusEndpoint};
use super::secret::SecretData;
use super::{GateContext, alerts, compare, http, ofrep, prometheus};
use crate::api::{Gate, OfrepMemory, Provider};
use crate::engine::Observation;
use crate::net::{AddressPolicy, AllowRule, GuardedClient};
use crate::text;

/// Longest error message an observation carries, in characters.
pub const MAX_ERROR_MESSAGE: usize = text::ERROR_MESSAGE;

/// Clients kept for gates with an address of their own, most recent first.
const CACHED_CLIENTS: usize = 128;

/// Time one gate may take when the caller gives no deadline.
pub const DEFAULT_GATE_DEADLINE: Duration = Duration::from_secs(60);

/// What every gate observation shares: the default Prometheus with its credentials, the
/// operator's address policy, and the HTTP clients (built once, reused).
#[derive(Clone, Debug)]
pub struct GateEnv {
    default_prometheus: Option<(PrometheusEndpoint, PrometheusClient)>,
    policy: Arc<AddressPolicy>,
    http: GuardedClient,
    ofrep: GuardedClient,
    gate_deadline: Duration,
    /// Whether URLs are checked for the Rollout's namespace (the controller) or for none
    /// (`backtest`).
    scoped: bool,
    /// Clients for gates' own endpoints, by endpoint (Secret data included), so a checkpoint
    /// does not build a TLS client per gate.
    clients: Arc<Mutex<VecDeque<(PrometheusEndpoint, PrometheusClient)>>>,
}

/// An environment that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum GateEnvError {
    /// The default Prometheus' settings are unusable.
    #[error("--prometheus: {0}")]
    Prometheus(#[from] ClientError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

impl GateEnv {
    /// An environment with `default_prometheus` (for gates without an address of their own)
    /// and the operator's `allow` rules on top of the defaults (the default Prometheus and
    /// the Services of the Rollout's namespace).
    pub fn new(
        default_prometheus: Option<PrometheusEndpoint>,
        allow: Vec<AllowRule>,
    ) -> Result<Self, GateEnvError> {
        Self::with_policy(default_prometheus, AddressPolicy::new(allow))
    }

    /// An environment with `default_prometheus` and `policy` (the default Prometheus is
    /// added to it).
    pub fn with_policy(
        default_prometheus: Option<PrometheusEndpoint>,
        mut policy: AddressPolicy,
    ) -> Result<Self, GateEnvError> {
        if let Some(endpoint) = &default_prometheus {
            policy = policy.with_default_prometheus(&endpoint.address);
        }
        let policy = Arc::new(policy);
        let default_prometheus = match default_prometheus {
            Some(endpoint) => {
                let client = PrometheusClient::new(&endpoint, &policy)?;
                Some((endpoint, client))
            }
            None => None,
        };
        let http = GuardedClient::build(Arc::clone(&policy))
            .map_err(|e| GateEnvError::Http(e.to_string()))?;
        let ofrep = ofrep::spreading_client(Arc::clone(&policy))
            .map_err(|e| GateEnvError::Http(e.to_string()))?;
        Ok(Self {
            default_prometheus,
            policy,
            http,
            ofrep,
            gate_deadline: DEFAULT_GATE_DEADLINE,
            scoped: true,
            clients: Arc::default(),
        })
    }

    /// The same environment checking URLs for no namespace: Service names of every namespace
    /// are allowed, one-label names are not (`backtest`, run on a person's machine).
    pub fn without_namespace_scope(mut self) -> Self {
        self.scoped = false;
        self
    }

    /// The namespace URLs are checked for, from the rollout's context.
    fn scope<'a>(&self, ctx: &GateContext<'a>) -> Option<&'a str> {
        self.scoped.then_some(ctx.namespace)
    }

    /// The same environment with `deadline` for each gate [`observe`] runs (the OFREP probe's
    /// whole run included).
    pub fn with_gate_deadline(mut self, deadline: Duration) -> Self {
        self.gate_deadline = deadline;
        self
    }

    /// The address policy every gate's requests obey (other shells reuse it for their own
    /// clients, for example webhook targets).
    pub fn policy(&self) -> &Arc<AddressPolicy> {
        &self.policy
    }

    /// The default Prometheus endpoint, if any.
    pub fn default_prometheus(&self) -> Option<&PrometheusEndpoint> {
        self.default_prometheus
            .as_ref()
            .map(|(endpoint, _)| endpoint)
    }

    /// The client a Prometheus or alerts gate queries through: the default one (with the
    /// default credentials) for a gate without an address, else one for the gate's own
    /// address, checked for the Rollout's `namespace` (`None`: no namespace scope), with
    /// only its own headers and Secret (never over plain HTTP unless the operator allows
    /// it). A client for a gate's own address checked for a namespace keeps no text of its
    /// answers ([`PrometheusClient::withholding_remote_text`]).
    pub fn prometheus_client(
        &self,
        connection: GateConnection<'_>,
        secret: Option<&SecretData>,
        namespace: Option<&str>,
    ) -> Result<PrometheusClient, String> {
        let default = self.default_prometheus.as_ref();
        if connection.address.is_none() && connection.timeout.is_none() {
            // Nothing of the gate's own: the shared client, as configured.
            if let Some((_, client)) = default
                && connection.endpoint(default.map(|(e, _)| e)).is_ok()
            {
                return Ok(client.clone());
            }
        }
        let mut endpoint = connection
            .endpoint(default.map(|(endpoint, _)| endpoint))
            .map_err(|e| e.to_string())?;
        if connection.address.is_none() {
            return self.client_for(endpoint);
        }
        let url = reqwest::Url::parse(endpoint.address.trim_end_matches('/'))
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                format!(
                    "Prometheus address {:?} must be an http:// or https:// URL",
                    text::remote(&endpoint.address, text::QUOTE)
                )
            })?;
        let url = self
            .policy
            .admit(&url, namespace)
            .map_err(|e| e.to_string())?;
        endpoint.address = url.as_str().trim_end_matches('/').to_owned();
        if let Some(secret) = secret {
            self.policy
                .check_credentials(&url, "the credentials of the gate's secretRef")
                .map_err(|e| format!("secretRef: {e}"))?;
            endpoint
                .settings
                .apply_secret(secret.iter())
                .map_err(|e| format!("secretRef: {e}"))?;
        }
        let client = self.client_for(endpoint)?;
        // For a Rollout (a namespace), the address is the author's: keep none of its text.
        // Without one (`backtest` on a person's machine), the person reads their own answers.
        Ok(match namespace {
            Some(_) => client.withholding_remote_text(),
            None => client,
        })
    }

    /// A client for `endpoint`, reused while it stays among the most recent ones.
    fn client_for(&self, endpoint: PrometheusEndpoint) -> Result<PrometheusClient, String> {
        if let Ok(clients) = self.clients.lock()
            && let Some((_, client)) = clients.iter().find(|(e, _)| *e == endpoint)
        {
            return Ok(client.clone());
        }
        let client = PrometheusClient::new(&endpoint, &self.policy).map_err(|e| e.to_string())?;
        if let Ok(mut clients) = self.clients.lock() {
            clients.push_front((endpoint, client.clone()));
            clients.truncate(CACHED_CLIENTS);
        }
        Ok(client)
    }
}

/// One gate to observe, with what the caller knows for it.
#[derive(Clone, Copy, Debug)]
pub struct GateInput<'a> {
    /// The gate's spec.
    pub gate: &'a Gate,
    /// The rollout it observes for, and the instant.
    pub ctx: GateContext<'a>,
    /// The data of the gate's `secretRef` Secret, when it has one and the caller read it.
    pub secret: Option<&'a SecretData>,
    /// What the gate's last OFREP probe remembered (`status.gates[].determinism`).
    pub memory: Option<&'a OfrepMemory>,
    /// For a compare gate: the arms' default variants and the window its counts cover.
    pub compare: Option<compare::CompareScope<'a>>,
}

/// A gate's observation, and what to keep for its next one.
#[derive(Clone, Debug, PartialEq)]
pub struct GateOutput {
    /// The observation, for the engine.
    pub observation: Observation,
    /// For an OFREP gate, the memory to store in `status.gates[].determinism`: the probe's
    /// new memory, or the one it was given when the probe failed. `None` for other gates.
    pub memory: Option<OfrepMemory>,
}

/// Time a provider gets past the per-gate deadline to report its own, more precise, error.
const GRACE: Duration = Duration::from_secs(1);

/// Observes one gate, within the environment's per-gate deadline.
pub async fn observe(env: &GateEnv, input: GateInput<'_>) -> GateOutput {
    let deadline = env.gate_deadline;
    let output = match tokio::time::timeout(deadline + GRACE, run(env, &input)).await {
        Ok(output) => output,
        Err(_) => GateOutput {
            observation: Observation::Error(format!(
                "gate {} did not answer within {deadline:?}",
                text::remote(&input.gate.name, text::QUOTE)
            )),
            memory: input.memory.cloned(),
        },
    };
    bounded(output)
}

/// Observes every gate at once; a gate without an answer when `deadline` runs out is an
/// `Error` observation. The outputs are in the order of `inputs`.
pub async fn observe_all(
    env: &GateEnv,
    inputs: Vec<GateInput<'_>>,
    deadline: Duration,
) -> Vec<GateOutput> {
    let runs = inputs.iter().map(|input| async move {
        match tokio::time::timeout(deadline, observe(env, *input)).await {
            Ok(output) => output,
            Err(_) => GateOutput {
                observation: Observation::Error(format!(
                    "gate {} did not answer within the checkpoint's deadline of {deadline:?}",
                    text::remote(&input.gate.name, text::QUOTE)
                )),
                memory: input.memory.cloned(),
            },
        }
    });
    join_all(runs).await
}

/// The pre-check of an alerts gate: its matchers select at least one alerting rule the
/// gate's Prometheus knows (`None`), else what to fix. Other gates have nothing to check.
pub async fn alert_rules_problem(env: &GateEnv, input: GateInput<'_>) -> Option<String> {
    let Some(Provider::Alerts(gate)) = input.gate.provider() else {
        return None;
    };
    let check = async {
        let client = env.prometheus_client(
            (&gate.connection).into(),
            input.secret,
            env.scope(&input.ctx),
        )?;
        alerts::known_rules(&client, gate, &input.ctx).await
    };
    match tokio::time::timeout(env.gate_deadline + GRACE, check).await {
        Ok(Ok(())) => None,
        Ok(Err(problem)) => Some(text::remote(&problem, MAX_ERROR_MESSAGE)),
        Err(_) => Some(format!(
            "Prometheus' alerting rules did not come within {:?}",
            env.gate_deadline
        )),
    }
}

async fn run(env: &GateEnv, input: &GateInput<'_>) -> GateOutput {
    let ctx = &input.ctx;
    let scope = env.scope(ctx);
    let plain = |observation| GateOutput {
        observation,
        memory: None,
    };
    match input.gate.provider() {
        Some(Provider::Prometheus(gate)) => {
            match env.prometheus_client((&gate.connection).into(), input.secret, scope) {
                Ok(client) => plain(prometheus::observe(&client, gate, ctx).await),
                Err(problem) => plain(Observation::Error(problem)),
            }
        }
        Some(Provider::Alerts(gate)) => {
            match env.prometheus_client((&gate.connection).into(), input.secret, scope) {
                Ok(client) => plain(alerts::observe(&client, gate, ctx).await),
                Err(problem) => plain(Observation::Error(problem)),
            }
        }
        Some(Provider::Ofrep(gate)) => {
            let probe = ofrep::probe(&env.ofrep, gate, ctx, input.memory, env.gate_deadline).await;
            GateOutput {
                observation: probe.observation,
                memory: probe.memory.or_else(|| input.memory.cloned()),
            }
        }
        Some(Provider::Http(gate)) => plain(http::check(&env.http, gate, ctx.namespace).await),
        Some(Provider::Compare(gate)) => {
            let Some(scope) = &input.compare else {
                return plain(Observation::Error(
                    "a compare gate needs the stage's start to count its arms".to_owned(),
                ));
            };
            match env.prometheus_client((&gate.connection).into(), input.secret, env.scope(ctx)) {
                Ok(client) => plain(compare::observe(&client, gate, ctx, scope).await),
                Err(problem) => plain(Observation::Error(problem)),
            }
        }
        None => plain(Observation::Error(
            "the gate must set exactly one of prometheus, alerts, ofrep, http and compare"
                .to_owned(),
        )),
    }
}

/// The output with its error message made safe to store: capped, no control characters.
fn bounded(mut output: GateOutput) -> GateOutput {
    if let Observation::Error(message) = &output.observation {
        output.observation = Observation::Error(text::remote(message, MAX_ERROR_MESSAGE));
    }
    output
}
