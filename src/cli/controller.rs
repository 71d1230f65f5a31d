//! `rollgate controller`: runs the reconcile loop against the cluster kubectl would use.
//! Flags follow controller-runtime's names; `--log-format` and `--log-level` are the global
//! flags every command takes (default level `info` here). Exit status: 0 after SIGTERM (reconciles in
//! flight finished), 2 for a bad flag, 3 when the cluster or an address cannot be used.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Args};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use kube::runtime::events::Reporter;
use rollgate::controller::leader::{self, ElectionSettings, Leadership};
use rollgate::controller::{
    ApiBudget, Context, ControllerConfig, Identities, KubeTargets, ProviderObserver, Recorder,
    Slots, SystemClock, run,
};
use rollgate::gates::GateEnv;
use rollgate::gates::prometheus::{ClientSettings, PrometheusEndpoint};
use rollgate::net::{AddressPolicy, AllowRule, GuardedClient, api_server_from_env};
use rollgate::notify::{Endpoint, EndpointKind, Notifier, NotifierSettings};
use rollgate::telemetry::server::parse_bind_address;
use rollgate::telemetry::{Metrics, Readiness, Servers};
use tracing::{error, info};

/// Time every gate of one checkpoint gets, together.
const CHECKPOINT_DEADLINE: Duration = Duration::from_secs(30);

/// Flags of `rollgate controller`.
#[derive(Args, Debug)]
pub struct ControllerArgs {
    /// The default Prometheus for Prometheus and alerts gates without an address of their own.
    #[arg(long, env = "ROLLGATE_PROMETHEUS", value_name = "URL")]
    prometheus: Option<String>,
    /// A namespace to reconcile Rollouts in (repeatable); all namespaces when absent.
    #[arg(long = "namespace", value_name = "NS")]
    namespaces: Vec<String>,
    /// The kubeconfig file to use (default: `KUBECONFIG`, else `~/.kube/config`, else the
    /// in-cluster service account).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context to use (default: its current-context).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Where `/metrics` is served; `0` turns it off.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    metrics_bind_address: String,
    /// Where `/healthz` and `/readyz` are served; `0` turns them off.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8081")]
    health_probe_bind_address: String,
    /// Elect one active replica through a Lease (`--leader-elect` or `--leader-elect=true`).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", value_name = "BOOL")]
    leader_elect: bool,
    /// Namespace of the leader-election Lease (default: the controller's own namespace).
    #[arg(long, value_name = "NS")]
    leader_election_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, value_name = "NAME", default_value = "rollgate-controller")]
    leader_election_id: String,
    /// Reconciles at once, in all (reconciles mostly wait on I/O).
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Reconciles at once from one namespace; free slots go round-robin across namespaces.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_per_namespace: u16,
    /// The deadline of one whole reconcile, as a Go duration; past it the reconcile is
    /// abandoned (nothing half-written) and retried with backoff.
    #[arg(long, value_name = "DURATION", default_value = "45s", value_parser = positive_duration)]
    reconcile_timeout: Duration,
    /// Writes a second to the API server, on average (a client-side token bucket;
    /// transitions and target writes go before routine status updates and Events).
    #[arg(long, value_name = "QPS", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    kube_api_qps: u32,
    /// Writes to the API server at once, above the average.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    kube_api_burst: u32,
    /// The first wait of a Pending rollout's backoff (doubling up to 5 minutes); for tests.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = positive_duration,
          hide = true)]
    pending_backoff_base: Duration,
    /// An address Rollouts may reach (gates, webhook targets, notifications) besides the
    /// default Prometheus and the Services of their own namespace: a host, `*.domain`, an
    /// address or CIDR range, or a URL prefix (repeatable). Loopback, link-local, cloud
    /// metadata and API server addresses need a rule naming the address itself.
    #[arg(long = "allow-address", value_name = "RULE")]
    allow_address: Vec<String>,
    /// The cluster's DNS domain: Service names are resolved as
    /// `svc.NAMESPACE.svc.CLUSTER_DOMAIN.`.
    #[arg(long, value_name = "DOMAIN", default_value = rollgate::net::DEFAULT_CLUSTER_DOMAIN)]
    cluster_domain: String,
    /// Send credentials from a Secret a Rollout names (gate tokens and basic auth, webhook
    /// target headers, notification URLs) over plain http:// too.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", value_name = "BOOL")]
    allow_insecure_credentials: bool,
    /// A generic JSON webhook told about every rollout's transitions (repeatable).
    #[arg(long = "notify-webhook", value_name = "URL")]
    notify_webhook: Vec<String>,
    /// A Slack-compatible incoming webhook told about every rollout's transitions
    /// (repeatable).
    #[arg(long = "notify-slack", value_name = "URL")]
    notify_slack: Vec<String>,
    /// Lockdown: a Rollout without `spec.serviceAccountName` acts as this ServiceAccount of
    /// its own namespace (Secrets, target reads and writes are made impersonating it).
    #[arg(long, value_name = "NAME", value_parser = service_account_name)]
    default_service_account: Option<String>,
    /// Credentials, headers and TLS for --prometheus, and the extra CA bundle (--ca-file).
    #[command(flatten)]
    prometheus_auth: super::prometheus_auth::PrometheusAuthArgs,
}

/// A ServiceAccount name: a Kubernetes object name.
fn service_account_name(name: &str) -> Result<String, String> {
    if rollgate::api::limits::is_object_name(name) {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{name:?} is not a ServiceAccount name: lowercase letters, digits, '-' and '.', \
             starting and ending with a letter or digit, at most 253 characters"
        ))
    }
}

/// A positive Go duration from the command line.
fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = rollgate::api::parse_duration(text)?;
    if duration.is_negative() {
        return Err(format!("{text} is negative"));
    }
    let duration = Duration::from(duration);
    if duration.is_zero() {
        return Err(format!("{text} is not positive"));
    }
    Ok(duration)
}

/// Why the controller could not run.
enum Failure {
    /// A flag is unusable (exit 2).
    Usage(String),
    /// The environment is (the cluster, an address in use; exit 3).
    Environment(String),
}

/// Runs the controller; see the module documentation for the exit status.
pub fn controller(args: ControllerArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("rollgate controller: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run_controller(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            error!("{message}");
            eprintln!("rollgate controller: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Environment(message)) => {
            error!("{message}");
            eprintln!("rollgate controller: {message}");
            ExitCode::from(3)
        }
    }
}

/// A future that resolves once SIGTERM or SIGINT arrives; every clone resolves together.
fn shutdown_signal() -> Shared<BoxFuture<'static, ()>> {
    async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        info!("shutting down: finishing the reconciles in flight");
    }
    .boxed()
    .shared()
}

/// The gates' environment: the default Prometheus and the address policy from the flags, with
/// `api_server` (the addresses the controller reaches its API server at) guarded.
fn gate_env(args: &ControllerArgs, api_server: &[IpAddr]) -> Result<GateEnv, Failure> {
    let allow = args
        .allow_address
        .iter()
        .map(|rule| {
            rule.parse::<AllowRule>()
                .map_err(|e| Failure::Usage(format!("--allow-address {rule:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let domain = args.cluster_domain.trim_matches('.');
    let valid_domain = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid_domain {
        return Err(Failure::Usage(format!(
            "--cluster-domain {:?}: not a DNS domain (for example cluster.local)",
            args.cluster_domain
        )));
    }
    let mut policy = AddressPolicy::new(allow)
        .with_cluster_domain(domain)
        .with_api_server(api_server.iter().copied())
        .with_insecure_credentials(args.allow_insecure_credentials);
    if let Some(pem) = args.prometheus_auth.extra_ca().map_err(Failure::Usage)? {
        policy = policy
            .with_extra_ca(pem)
            .map_err(|e| Failure::Usage(format!("--ca-file: {e}")))?;
    }
    let settings = args
        .prometheus_auth
        .settings(Default::default())
        .map_err(Failure::Usage)?;
    if args.prometheus.is_none() && settings != ClientSettings::default() {
        return Err(Failure::Usage(
            "--prometheus-* credentials and TLS flags need --prometheus".to_owned(),
        ));
    }
    let default = args.prometheus.as_ref().map(|address| PrometheusEndpoint {
        address: address.clone(),
        settings,
    });
    GateEnv::with_policy(default, policy).map_err(|e| Failure::Usage(e.to_string()))
}

/// The notifier: the operator's endpoints from the flags, and the address guard for the
/// endpoints Rollout authors name.
fn notifier(args: &ControllerArgs, env: &GateEnv) -> Result<Notifier, Failure> {
    let mut global = Vec::new();
    for (kind, urls) in [
        (EndpointKind::Webhook, &args.notify_webhook),
        (EndpointKind::Slack, &args.notify_slack),
    ] {
        for (i, url) in urls.iter().enumerate() {
            let endpoint =
                Endpoint::from_flag(kind, url, i + 1).map_err(|e| Failure::Usage(e.to_string()))?;
            global.push(endpoint);
        }
    }
    let settings = NotifierSettings {
        global,
        extra_ca_pem: env.policy().extra_ca_pem().map(<[u8]>::to_vec),
        ..NotifierSettings::default()
    };
    let notifier = Notifier::new(settings.clone())
        .map_err(|e| Failure::Environment(format!("cannot build the HTTP client: {e}")))?;
    Ok(notifier.with_address_guard(address_guard(env)?))
}

/// A client that holds outgoing requests a Rollout names (webhook targets, notification
/// endpoints) to the operator's `--allow-address` policy for the Rollout's namespace, as
/// gates are.
fn address_guard(env: &GateEnv) -> Result<GuardedClient, Failure> {
    GuardedClient::build(Arc::clone(env.policy()))
        .map_err(|e| Failure::Environment(format!("cannot build the HTTP client: {e}")))
}

/// Where the controller reaches its API server: `KUBERNETES_SERVICE_HOST` (the `kubernetes`
/// Service) and the host of the cluster URL it connects to, when they are addresses.
fn api_server_addresses(config: &kube::Config) -> Vec<IpAddr> {
    let mut addresses = api_server_from_env();
    if let Some(ip) = config
        .cluster_url
        .host()
        .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|host| host.parse::<IpAddr>().ok())
        && !addresses.contains(&ip)
    {
        addresses.push(ip);
    }
    addresses
}

async fn run_controller(args: ControllerArgs) -> Result<(), Failure> {
    let metrics_address = parse_bind_address(&args.metrics_bind_address)
        .map_err(|e| Failure::Usage(format!("--metrics-bind-address: {e}")))?;
    let probes_address = parse_bind_address(&args.health_probe_bind_address)
        .map_err(|e| Failure::Usage(format!("--health-probe-bind-address: {e}")))?;
    // Flags first (exit 2 before any cluster is looked for), then the same environment with
    // the API server's addresses guarded.
    gate_env(&args, &[])?;
    let config =
        super::kube_client::controller_config(args.kubeconfig.clone(), args.context.clone())
            .await
            .map_err(|e| {
                Failure::Environment(format!("cannot find a cluster to connect to: {e}"))
            })?;
    let env = gate_env(&args, &api_server_addresses(&config))?;
    let notifier = Arc::new(notifier(&args, &env)?);
    let webhook_guard = address_guard(&env)?;
    let client = kube::Client::try_from(config.clone())
        .map_err(|e| Failure::Environment(format!("cannot build the Kubernetes client: {e}")))?;
    // The API server's endpoints join the guarded addresses (docs/security.md).
    let endpoints_guard = rollgate::net::guard_api_server_endpoints(
        client.clone(),
        env.policy().api_server_endpoints().clone(),
        rollgate::net::REFRESH_PERIOD,
    )
    .await;
    let shutdown = shutdown_signal();

    let metrics = Metrics::new()
        .map_err(|e| Failure::Environment(format!("cannot register the metrics: {e}")))?;
    let readiness = Readiness::new();
    let servers = Servers::bind(
        metrics_address,
        probes_address,
        metrics.clone(),
        readiness.clone(),
    )
    .await
    .map_err(|e| Failure::Environment(e.to_string()))?;
    let serving = tokio::spawn(servers.serve(shutdown.clone()));

    let identity = leader::default_identity();
    // The Lease is released only once the reconciles in flight at SIGTERM have finished or
    // been abandoned at their deadline: until then they may still write, fenced by the Lease.
    let (reconciles_done, lease_release) = tokio::sync::oneshot::channel::<()>();
    let lease_release = async move {
        let _ = lease_release.await;
    };
    let (leadership, election) = if args.leader_elect {
        let namespace = args
            .leader_election_namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let mut settings = ElectionSettings::new(namespace, args.leader_election_id.clone());
        settings.identity = identity.clone();
        let election_client = leader::dedicated_client(config.clone(), &settings)
            .map_err(|e| Failure::Environment(e.to_string()))?;
        let (leadership, task) = leader::spawn_election(election_client, settings, lease_release)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        (leadership, Some(task))
    } else {
        (Leadership::always(), None)
    };
    readiness.set_role(leadership.clone());
    let leader_metrics = leadership.report_to(metrics.clone());

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "rollgate".into(),
            instance: Some(identity),
        },
    );
    let identities = Arc::new(
        Identities::new(client.clone()).with_default_account(args.default_service_account.clone()),
    );
    let observer = Arc::new(
        ProviderObserver::new(client.clone(), env, CHECKPOINT_DEADLINE)
            .with_identities(Arc::clone(&identities)),
    );
    let controller_config = ControllerConfig {
        namespaces: args.namespaces.clone(),
        concurrency: args.concurrency,
        readiness: Some(readiness.clone()),
        default_service_account: args.default_service_account.clone(),
    };
    info!(
        namespaces = ?args.namespaces,
        concurrency = args.concurrency,
        per_namespace = args.max_concurrent_per_namespace,
        reconcile_timeout = ?args.reconcile_timeout,
        kube_api_qps = args.kube_api_qps,
        kube_api_burst = args.kube_api_burst,
        leader_elect = args.leader_elect,
        default_service_account = ?args.default_service_account,
        "rollgate controller starting"
    );
    let budget = ApiBudget::new(args.kube_api_qps, args.kube_api_burst);
    let slots = Slots::new(
        usize::from(args.concurrency),
        usize::from(args.max_concurrent_per_namespace),
    );
    let context_client = client.clone();
    run(
        client,
        controller_config,
        move |config_maps, feature_flags| {
            let targets =
                KubeTargets::new(context_client.clone(), Some(config_maps), feature_flags)
                    .with_webhook_guard(webhook_guard.clone())
                    .with_identities(Arc::clone(&identities));
            Context::new(
                context_client.clone(),
                recorder.clone(),
                Arc::new(SystemClock),
                observer.clone(),
                Arc::new(targets),
                Arc::new(leadership.clone()),
            )
            .with_metrics(metrics.clone())
            .with_notifier(Arc::clone(&notifier))
            .with_identities(Arc::clone(&identities))
            .with_slots(slots.clone())
            .with_budget(budget.clone())
            .with_reconcile_timeout(args.reconcile_timeout)
            .with_pending_backoff(args.pending_backoff_base)
        },
        shutdown.clone(),
    )
    .await;
    shutdown.await;
    info!("the reconciles in flight are done: releasing the Lease");
    let _ = reconciles_done.send(());
    if let Some(task) = election {
        let _ = task.await;
    }
    leader_metrics.abort();
    endpoints_guard.abort();
    match serving.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => error!(%e, "the metrics and probe endpoints stopped with an error"),
        Err(e) => error!(%e, "the metrics and probe endpoints stopped"),
    }
    info!("rollgate controller stopped");
    Ok(())
}
