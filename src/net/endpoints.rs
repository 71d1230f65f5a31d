//! The API server's endpoints (docs/design.md §8, issue 11 rule 2): the addresses behind the
//! `kubernetes` Service of `default`, read from its EndpointSlices
//! (`discovery.k8s.io/v1`, label `kubernetes.io/service-name=kubernetes`) at the start and again
//! every [`REFRESH_PERIOD`], so a Rollout cannot reach the API server by one of its endpoint
//! addresses (the `kubernetes` Service's own address, `KUBERNETES_SERVICE_HOST`, and the
//! kubeconfig's host are guarded from the flags and the environment).
//!
//! Failing soft: when the controller may not list EndpointSlices in `default` (a chart
//! without that Role, a cluster that serves none), it says so once in its log and keeps the
//! other guards; the addresses it read last stay guarded.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// The namespace of the `kubernetes` Service.
pub const API_SERVER_NAMESPACE: &str = "default";

/// The label selector of the `kubernetes` Service's EndpointSlices.
pub const API_SERVER_SLICES: &str = "kubernetes.io/service-name=kubernetes";

/// How often the endpoints are read again (one small LIST in `default`).
pub const REFRESH_PERIOD: Duration = Duration::from_secs(60);

/// How long one read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The API server's endpoint addresses as last read, shared by every clone (and by every
/// [`AddressPolicy`](super::AddressPolicy) holding it): a refresh is seen at once by every
/// check.
#[derive(Clone, Debug, Default)]
pub struct ApiServerEndpoints(Arc<RwLock<Vec<IpAddr>>>);

impl ApiServerEndpoints {
    /// A set holding `addresses` (for tests and for a caller that read them itself).
    pub fn of(addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        let set = Self::default();
        set.replace(addresses.into_iter().collect());
        set
    }

    /// Replaces the addresses with `addresses`.
    pub fn replace(&self, mut addresses: Vec<IpAddr>) {
        for ip in &mut addresses {
            *ip = ip.to_canonical();
        }
        addresses.sort();
        addresses.dedup();
        match self.0.write() {
            Ok(mut current) => *current = addresses,
            Err(poisoned) => *poisoned.into_inner() = addresses,
        }
    }

    /// The addresses as last read, sorted.
    pub fn addresses(&self) -> Vec<IpAddr> {
        match self.0.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether `ip` is one of them.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match self.0.read() {
            Ok(current) => current.contains(&ip),
            Err(poisoned) => poisoned.into_inner().contains(&ip),
        }
    }
}

impl PartialEq for ApiServerEndpoints {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.addresses() == other.addresses()
    }
}

impl Eq for ApiServerEndpoints {}

/// The endpoint addresses of the `kubernetes` Service, from its EndpointSlices in `default`
/// (addresses that are not IPs, as in an `FQDN` slice, are left out).
pub async fn read_api_server_endpoints(client: &Client) -> Result<Vec<IpAddr>, kube::Error> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), API_SERVER_NAMESPACE);
    let slices = api
        .list(&ListParams::default().labels(API_SERVER_SLICES))
        .await?;
    Ok(slices
        .items
        .iter()
        .flat_map(|slice| slice.endpoints.iter().flatten())
        .flat_map(|endpoint| endpoint.addresses.iter())
        .filter_map(|address| address.trim().parse::<IpAddr>().ok())
        .collect())
}

/// Reads the endpoints into `endpoints` once (waiting at most a few seconds), then keeps them
/// current every `period` in a task on the current runtime (abort it to stop). Never fails:
/// a read that is refused or fails is logged (once until a read succeeds again) and the
/// addresses read last stay guarded.
pub async fn guard_api_server_endpoints(
    client: Client,
    endpoints: ApiServerEndpoints,
    period: Duration,
) -> JoinHandle<()> {
    let mut refresher = Refresher {
        client,
        endpoints,
        failing: false,
    };
    refresher.read().await;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            refresher.read().await;
        }
    })
}

struct Refresher {
    client: Client,
    endpoints: ApiServerEndpoints,
    /// Whether the last read failed (and was logged).
    failing: bool,
}

impl Refresher {
    async fn read(&mut self) {
        let read = tokio::time::timeout(READ_TIMEOUT, read_api_server_endpoints(&self.client));
        let problem = match read.await {
            Ok(Ok(addresses)) => {
                if addresses != self.endpoints.addresses() {
                    info!(?addresses, "guarding the API server's endpoints");
                }
                self.endpoints.replace(addresses);
                if self.failing {
                    info!("the API server's endpoints can be read again");
                }
                self.failing = false;
                return;
            }
            Ok(Err(kube::Error::Api(status))) if matches!(status.code, 401 | 403 | 404) => {
                format!(
                    "{} ({}); give the controller list on endpointslices in namespace default",
                    status.message, status.code
                )
            }
            Ok(Err(error)) => error.to_string(),
            Err(_elapsed) => format!("no answer within {READ_TIMEOUT:?}"),
        };
        if self.failing {
            debug!(%problem, "still cannot read the API server's endpoints");
        } else {
            warn!(
                %problem,
                kept = ?self.endpoints.addresses(),
                "cannot read the API server's endpoints (EndpointSlices of default/kubernetes); \
                 gates keep the other guards (the kubernetes Service's address and the \
                 kubeconfig's host) and the endpoints read last"
            );
        }
        self.failing = true;
    }
}
