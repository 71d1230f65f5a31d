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

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::json;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn mock() -> (Client, Handle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(service, "default"), handle)
    }

    /// Answers the next request, which must be the EndpointSlice list, with `code` and `body`.
    async fn answer_list(handle: &mut Handle, code: u16, body: serde_json::Value) {
        let (request, respond) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), http::Method::GET);
        assert_eq!(
            request.uri().path(),
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
        );
        let query = request.uri().query().unwrap_or_default();
        assert!(
            query.contains("labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes"),
            "{query}"
        );
        respond.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&body).expect("json")))
                .expect("response"),
        );
    }

    fn slices(addresses: &[&[&str]]) -> serde_json::Value {
        let items: Vec<_> = addresses
            .iter()
            .enumerate()
            .map(|(i, addresses)| {
                json!({
                    "metadata": {"name": format!("kubernetes-{i}"), "namespace": "default"},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": addresses}],
                })
            })
            .collect();
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList",
               "metadata": {"resourceVersion": "1"}, "items": items})
    }

    fn forbidden() -> serde_json::Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "reason": "Forbidden", "code": 403,
               "message": "endpointslices.discovery.k8s.io is forbidden"})
    }

    fn ips(text: &[&str]) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = text.iter().map(|t| t.parse().expect("an IP")).collect();
        out.sort();
        out
    }

    #[tokio::test(start_paused = true)]
    async fn the_endpoints_are_read_at_the_start_and_kept_current_and_a_refusal_keeps_the_last() {
        let (client, mut handle) = mock();
        let endpoints = ApiServerEndpoints::default();
        let period = Duration::from_secs(60);
        let server = tokio::spawn(async move {
            // At the start: two slices, one address not an IP (left out).
            answer_list(
                &mut handle,
                200,
                slices(&[&["10.255.0.7", "10.255.0.8"], &["fd12::7", "not-an-ip"]]),
            )
            .await;
            // A minute later: the control plane moved.
            answer_list(&mut handle, 200, slices(&[&["10.255.0.9"]])).await;
            // Then the Role is gone: refused, twice.
            answer_list(&mut handle, 403, forbidden()).await;
            answer_list(&mut handle, 403, forbidden()).await;
            // And back.
            answer_list(&mut handle, 200, slices(&[&["10.255.0.10"]])).await;
            handle
        });
        let task = guard_api_server_endpoints(client, endpoints.clone(), period).await;
        // Read before the guard returns: the controller starts with them guarded.
        assert_eq!(
            endpoints.addresses(),
            ips(&["10.255.0.7", "10.255.0.8", "fd12::7"])
        );
        tokio::time::sleep(period + Duration::from_secs(1)).await;
        assert_eq!(endpoints.addresses(), ips(&["10.255.0.9"]));
        tokio::time::sleep(period * 2).await;
        assert_eq!(
            endpoints.addresses(),
            ips(&["10.255.0.9"]),
            "a refused read keeps the addresses read last"
        );
        tokio::time::sleep(period).await;
        assert_eq!(endpoints.addresses(), ips(&["10.255.0.10"]));
        task.abort();
        let _handle = server.await.expect("the fake API answered every read");
    }

    #[tokio::test(start_paused = true)]
    async fn a_controller_that_may_not_read_them_starts_anyway_with_none() {
        let (client, mut handle) = mock();
        let endpoints = ApiServerEndpoints::default();
        let server = tokio::spawn(async move {
            answer_list(&mut handle, 403, forbidden()).await;
            handle
        });
        let task = guard_api_server_endpoints(client, endpoints.clone(), REFRESH_PERIOD).await;
        assert!(endpoints.addresses().is_empty());
        task.abort();
        let _handle = server.await.expect("answered");
    }

    #[tokio::test(start_paused = true)]
    async fn an_api_server_that_does_not_answer_delays_the_start_by_a_few_seconds_only() {
        let (client, _handle) = mock();
        let endpoints = ApiServerEndpoints::default();
        let started = tokio::time::Instant::now();
        let task = guard_api_server_endpoints(client, endpoints.clone(), REFRESH_PERIOD).await;
        assert_eq!(started.elapsed(), READ_TIMEOUT);
        assert!(endpoints.addresses().is_empty());
        task.abort();
    }
}
