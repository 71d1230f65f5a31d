//! What the operator commands (`status`, `get`, `list`, `pause` …) share: connecting like
//! kubectl, choosing the namespace, reading one Rollout, and turning failures into the exit
//! statuses of the command line (2 bad input, 3 I/O or environment).

use std::process::ExitCode;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Error as KubeError};
use rollgate::api::Rollout;

/// Exit status 2: the command was refused (no such Rollout, an action that makes no sense).
pub const EXIT_REFUSED: u8 = 2;
/// Exit status 3: the cluster could not be reached or answered with an error.
pub const EXIT_ENVIRONMENT: u8 = 3;

/// kubectl's connection flags, with kubectl's meaning and precedence: `--kubeconfig` else
/// `KUBECONFIG` (several files merged) else `~/.kube/config` else in-cluster; `--context`
/// picks the context and `--cluster`/`--user` override its parts; the namespace is `-n`, else
/// the context's, else `default`.
#[derive(Args, Debug, Clone, Default)]
pub struct KubeArgs {
    /// The namespace (default: the kubeconfig context's namespace, else `default`).
    #[arg(short = 'n', long = "namespace", value_name = "NS", help_heading = CONNECTION)]
    pub namespace: Option<String>,
    /// The kubeconfig file to use (default: `KUBECONFIG`, several files merged, else
    /// `~/.kube/config`, else the in-cluster service account).
    #[arg(long, value_name = "FILE", help_heading = CONNECTION)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current-context).
    #[arg(long, value_name = "NAME", help_heading = CONNECTION)]
    pub context: Option<String>,
    /// The kubeconfig cluster to use instead of the context's.
    #[arg(long, value_name = "NAME", help_heading = CONNECTION)]
    pub cluster: Option<String>,
    /// The kubeconfig user to use instead of the context's.
    #[arg(long, value_name = "NAME", help_heading = CONNECTION)]
    pub user: Option<String>,
    /// The user to impersonate (`Impersonate-User`).
    #[arg(long = "as", value_name = "USER", help_heading = CONNECTION)]
    pub as_user: Option<String>,
    /// A group to impersonate (`Impersonate-Group`), repeatable.
    #[arg(long = "as-group", value_name = "GROUP", help_heading = CONNECTION)]
    pub as_group: Vec<String>,
    /// How long one request may take before giving up: `0` (no limit, the default), a bare
    /// number of seconds, or a duration such as `30s`, `1m`, `1h`.
    #[arg(long, value_name = "DURATION", value_parser = parse_request_timeout, help_heading = CONNECTION)]
    pub request_timeout: Option<RequestTimeout>,
}

/// The help heading of the connection flags.
const CONNECTION: &str = "Connection (as kubectl)";

/// `--request-timeout`: `None` inside means no limit (`0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestTimeout(pub Option<Duration>);

/// Parses kubectl's `--request-timeout` forms: `0` (no limit), a bare number of seconds, or
/// a number with the unit `ms`, `s`, `m` or `h` (combinations such as `1m30s` too).
pub fn parse_request_timeout(text: &str) -> Result<RequestTimeout, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "{text:?} is not a duration: use 0 (no limit), a number of seconds, or a number \
             with a unit such as 30s, 1m or 1h"
        )
    };
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(RequestTimeout(
            (seconds > 0).then(|| Duration::from_secs(seconds)),
        ));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::try_from_secs_f64(value * scale).map_err(|_| bad())?;
        rest = next;
    }
    Ok(RequestTimeout((!total.is_zero()).then_some(total)))
}

impl KubeArgs {
    /// The client configuration these flags select.
    pub async fn config(&self) -> Result<Config, OpsError> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
        };
        let mut config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                    OpsError::Kubeconfig(format!("--kubeconfig {}: {e}", path.display()))
                })?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| {
                        OpsError::Kubeconfig(format!("--kubeconfig {}: {e}", path.display()))
                    })?
            }
            None if self.context.is_some() || self.cluster.is_some() || self.user.is_some() => {
                let kubeconfig = Kubeconfig::read()
                    .map_err(|e| OpsError::Kubeconfig(format!("KUBECONFIG: {e}")))?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| OpsError::Kubeconfig(format!("KUBECONFIG: {e}")))?
            }
            None => Config::infer().await.map_err(|e| {
                OpsError::Kubeconfig(format!(
                    "no kubeconfig (KUBECONFIG, ~/.kube/config) and not in a cluster: {e}"
                ))
            })?,
        };
        if let Some(user) = &self.as_user {
            config.auth_info.impersonate = Some(user.clone());
        }
        if !self.as_group.is_empty() {
            config.auth_info.impersonate_groups = Some(self.as_group.clone());
        }
        if let Some(RequestTimeout(limit)) = self.request_timeout {
            config.connect_timeout = limit;
            config.read_timeout = limit;
            config.write_timeout = limit;
        }
        if let Some(namespace) = &self.namespace {
            config.default_namespace = namespace.clone();
        }
        Ok(config)
    }

    /// Connects with [`KubeArgs::config`]; the client's default namespace is the one these
    /// flags select.
    pub async fn connect(&self) -> Result<Client, OpsError> {
        let config = self.config().await?;
        Client::try_from(config).map_err(OpsError::Connect)
    }
}

/// The controller's client configuration: `--kubeconfig` and `--context` as kubectl reads
/// them, else what `kube::Config::infer` finds (KUBECONFIG, `~/.kube/config`, in-cluster).
pub async fn controller_config(
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
) -> Result<Config, OpsError> {
    KubeArgs {
        kubeconfig,
        context,
        ..KubeArgs::default()
    }
    .config()
    .await
}

/// Why an operator command did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The client could not be built from the configuration.
    #[error("cannot connect to a cluster: {0}")]
    Connect(#[source] KubeError),
    /// No kubeconfig or in-cluster configuration could be loaded (the message names the
    /// file or flag).
    #[error("cannot load the cluster configuration: {0}")]
    Kubeconfig(String),
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
            | OpsError::Kubeconfig(_)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timeout_takes_kubectls_forms() {
        let parse = |text: &str| parse_request_timeout(text).map(|t| t.0);
        assert_eq!(parse("0"), Ok(None), "0 means no limit");
        assert_eq!(parse("0s"), Ok(None));
        assert_eq!(
            parse("30"),
            Ok(Some(Duration::from_secs(30))),
            "bare seconds"
        );
        assert_eq!(parse("30s"), Ok(Some(Duration::from_secs(30))));
        assert_eq!(parse("1m"), Ok(Some(Duration::from_secs(60))));
        assert_eq!(parse("1h"), Ok(Some(Duration::from_secs(3600))));
        assert_eq!(parse("1m30s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse("500ms"), Ok(Some(Duration::from_millis(500))));
        for bad in ["", "soon", "1d", "-1", "s", "1x"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
