//! What the operator commands (`status`, `get`, `list`, `pause` …) share: connecting like
//! kubectl, choosing the namespace, reading one Rollout, and turning failures into the exit
//! statuses of the command line (2 bad input, 3 I/O or environment).

use std::process::ExitCode;

use clap::Args;
use kube::api::Api;
use kube::{Client, Error as KubeError};
use rollgate::api::Rollout;

/// Exit status 2: the command was refused (no such Rollout, an action that makes no sense).
pub const EXIT_REFUSED: u8 = 2;
/// Exit status 3: the cluster could not be reached or answered with an error.
pub const EXIT_ENVIRONMENT: u8 = 3;

/// `-n/--namespace`, as kubectl spells it.
#[derive(Args, Debug, Clone, Default)]
pub struct NamespaceArg {
    /// The Rollout's namespace (default: the kubeconfig context's namespace, else `default`).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,
}

/// Why an operator command did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// No kubeconfig or in-cluster configuration could be loaded.
    #[error("cannot connect to a cluster: {0}")]
    Connect(#[source] KubeError),
    /// The Rollout does not exist.
    #[error("rollout {namespace}/{name} not found")]
    NotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The command makes no sense now (an action in the wrong phase, for example).
    #[error("{0}")]
    Refused(String),
    /// The Rollout changed between reading it and patching it.
    #[error(
        "rollout {namespace}/{name} changed while the command ran (409 Conflict): nothing was \
         changed; run the command again"
    )]
    Conflict {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The API server answered with an error or could not be reached.
    #[error("the API server failed: {0}")]
    Api(#[source] KubeError),
    /// The output could not be written or rendered.
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
}

impl OpsError {
    /// The exit status this failure maps to: 2 when the command was refused (bad input),
    /// 3 when the cluster or the output failed.
    pub fn exit_status(&self) -> u8 {
        match self {
            OpsError::NotFound { .. } | OpsError::Refused(_) => EXIT_REFUSED,
            OpsError::Connect(_)
            | OpsError::Conflict { .. }
            | OpsError::Api(_)
            | OpsError::Output(_) => EXIT_ENVIRONMENT,
        }
    }
}

impl From<std::io::Error> for OpsError {
    fn from(e: std::io::Error) -> Self {
        OpsError::Output(e)
    }
}

/// A Rollout's coordinates: the namespace it lives in and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl Target {
    /// The Rollout `name` in the namespace given, else the client's default namespace.
    pub fn new(client: &Client, namespace: Option<&str>, name: &str) -> Self {
        Self {
            namespace: namespace
                .map_or_else(|| client.default_namespace().to_owned(), str::to_owned),
            name: name.to_owned(),
        }
    }

    /// The Rollouts API of this namespace.
    pub fn api(&self, client: &Client) -> Api<Rollout> {
        Api::namespaced(client.clone(), &self.namespace)
    }

    /// Maps an API error about this Rollout to the command's failure: 404 is "not found",
    /// 409 a conflict, anything else an API failure.
    pub fn error(&self, e: KubeError) -> OpsError {
        match &e {
            KubeError::Api(status) if status.is_not_found() => OpsError::NotFound {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
            },
            KubeError::Api(status) if status.code == 409 => OpsError::Conflict {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
            },
            _ => OpsError::Api(e),
        }
    }

    /// Reads the Rollout.
    pub async fn get(&self, client: &Client) -> Result<Rollout, OpsError> {
        self.api(client)
            .get(&self.name)
            .await
            .map_err(|e| self.error(e))
    }
}

/// Connects the way kubectl does: `KUBECONFIG`, `~/.kube/config`, or in-cluster.
pub async fn connect() -> Result<Client, OpsError> {
    Client::try_default().await.map_err(OpsError::Connect)
}

/// Runs an operator command on a runtime of its own and maps its result to an exit status,
/// printing a failure as `rollgate COMMAND: problem` on standard error.
pub fn run_command<F, Fut>(command: &str, body: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, OpsError>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("rollgate {command}: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ENVIRONMENT);
        }
    };
    match runtime.block_on(body()) {
        Ok(code) => code,
        Err(OpsError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rollgate {command}: {e}");
            ExitCode::from(e.exit_status())
        }
    }
}
