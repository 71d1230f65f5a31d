//! `rollgate version`: the client's version and, when a cluster answers, the controller's,
//! read from the image tag of the Deployments labelled `app.kubernetes.io/name=rollgate`
//! (every namespace when that may be listed, else the namespace of the context).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use kube::{Client, Error as KubeError};

use super::kube_client::{KubeArgs, OpsError, RequestTimeout};

/// The label the chart puts on the controller's Deployment.
pub const CONTROLLER_LABEL: &str = "app.kubernetes.io/name=rollgate";

/// How long asking the cluster may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// `rollgate version`.
#[derive(Args, Debug, Clone)]
pub struct VersionArgs {
    /// Print the client's version only; do not ask the cluster.
    #[arg(long)]
    pub client: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// One controller Deployment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    /// `namespace/name` of the Deployment.
    pub deployment: String,
    /// The container image.
    pub image: String,
}

impl Controller {
    /// The image's tag (`0.3.1` of `ghcr.io/x/rollgate:0.3.1`), or its digest, or `latest`
    /// when it names neither.
    pub fn version(&self) -> String {
        let (name, digest) = match self.image.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (self.image.as_str(), None),
        };
        let last = name.rsplit('/').next().unwrap_or(name);
        match (last.split_once(':'), digest) {
            (Some((_, tag)), _) => tag.to_owned(),
            (None, Some(digest)) => digest.to_owned(),
            (None, None) => "latest".to_owned(),
        }
    }
}

/// The controller Deployments `client` may see: all namespaces, else (when listing them all
/// is forbidden) the client's default namespace.
pub async fn controllers(client: &Client) -> Result<Vec<Controller>, KubeError> {
    let params = ListParams::default().labels(CONTROLLER_LABEL);
    let listed = match Api::<Deployment>::all(client.clone()).list(&params).await {
        Ok(listed) => listed,
        Err(KubeError::Api(status)) if status.code == 403 => {
            Api::<Deployment>::default_namespaced(client.clone())
                .list(&params)
                .await?
        }
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for deployment in listed.items {
        let namespace = deployment.metadata.namespace.clone().unwrap_or_default();
        let name = deployment.metadata.name.clone().unwrap_or_default();
        let containers = deployment
            .spec
            .template
            .spec
            .map(|s| s.containers)
            .unwrap_or_default();
        let image = containers
            .iter()
            .find(|c| c.name == "rollgate" || c.name == "controller")
            .or(containers.first())
            .and_then(|c| c.image.clone());
        if let Some(image) = image {
            found.push(Controller {
                deployment: format!("{namespace}/{name}"),
                image,
            });
        }
    }
    Ok(found)
}

/// The `controller:` line(s): each Deployment's version, or `unknown (why)`.
pub async fn controller_lines(kube: &KubeArgs) -> Vec<String> {
    let mut kube = kube.clone();
    kube.request_timeout
        .get_or_insert(RequestTimeout(Some(ASK_TIMEOUT)));
    let asked = async {
        let client = kube.connect().await?;
        controllers(&client).await.map_err(OpsError::Api)
    };
    match tokio::time::timeout(ASK_TIMEOUT, asked).await {
        Err(_) => vec![format!(
            "controller: unknown (the cluster did not answer within {}s)",
            ASK_TIMEOUT.as_secs()
        )],
        Ok(Err(e)) => vec![format!("controller: unknown ({e})")],
        Ok(Ok(found)) if found.is_empty() => vec![format!(
            "controller: unknown (no Deployment labelled {CONTROLLER_LABEL} is visible)"
        )],
        Ok(Ok(found)) => found
            .iter()
            .map(|c| {
                format!(
                    "controller: {} (Deployment {}, image {})",
                    c.version(),
                    c.deployment,
                    c.image
                )
            })
            .collect(),
    }
}

/// `rollgate version` on the command line: always exit 0 once written.
pub fn run(args: VersionArgs) -> ExitCode {
    super::kube_client::run_command("version", || async move {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "client: {}", env!("CARGO_PKG_VERSION"))?;
        stdout.flush()?;
        if !args.client {
            for line in controller_lines(&args.kube).await {
                writeln!(stdout, "{line}")?;
            }
        }
        stdout.flush()?;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_image_tag() {
        let version = |image: &str| {
            Controller {
                deployment: "d/d".to_owned(),
                image: image.to_owned(),
            }
            .version()
        };
        assert_eq!(version("ghcr.io/o/rollgate:0.3.1"), "0.3.1");
        assert_eq!(version("localhost:5000/rollgate:v1"), "v1");
        assert_eq!(version("localhost:5000/rollgate"), "latest");
        assert_eq!(version("rollgate@sha256:abc"), "sha256:abc");
        assert_eq!(version("rollgate:1.2@sha256:abc"), "1.2");
    }
}
