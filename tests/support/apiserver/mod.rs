//! A stand-in Kubernetes API server for end-to-end tests of the real binary: enough of the
//! API for `rollgate controller` (LIST and WATCH with resourceVersion, bookmarks and 410
//! Gone, GET/POST/PUT/DELETE, the status subresource, JSON merge patch, server-side apply
//! with field ownership and conflicts, dry runs, resourceVersion preconditions), generic over
//! the resources in [`resources::SERVED`], on a loopback port. Every request is logged for
//! the tests to inspect; requests it does not understand are printed loudly and kept in
//! [`ApiServer::unknown_requests`].

pub mod controller;
pub mod discovery;
pub mod error;
pub mod fields;
pub mod flagd;
pub mod handler;
pub mod log;
pub mod managed;
pub mod ops;
pub mod patch;
pub mod rbac;
pub mod resources;
pub mod select;
pub mod store;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::task::JoinHandle;

#[allow(unused_imports)]
pub use log::{Logged, Verb};

use handler::Shared;
use ops::WriteOptions;
use resources::{SERVED, Target};
use store::Store;

/// A running stand-in; stops when dropped.
pub struct ApiServer {
    shared: Arc<Shared>,
    address: std::net::SocketAddr,
    task: JoinHandle<()>,
}

impl ApiServer {
    /// Starts a server on a free loopback port (inside the current tokio runtime).
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            log: Mutex::new(Vec::new()),
            unknown: Mutex::new(Vec::new()),
            rbac: Mutex::new(rbac::Rbac::default()),
            metadata_only: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(handler::handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the stand-in API server");
        let address = listener.local_addr().expect("stand-in address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            shared,
            address,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Writes a kubeconfig naming this server (default namespace `namespace`) into `dir` and
    /// returns its path, for `KUBECONFIG`.
    pub fn write_kubeconfig(&self, dir: &Path, namespace: &str) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: {}\n\
             users:\n- name: tester\n  user: {{}}\ncontexts:\n- name: stand-in\n  context:\n    \
             cluster: stand-in\n    user: tester\n    namespace: {namespace}\n\
             current-context: stand-in\n",
            self.url()
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// A `kube::Client` for this server (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        let url = self.url().parse().expect("stand-in URL");
        let config = kube::Config::new(url);
        kube::Client::try_from(config).expect("kube client for the stand-in")
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared.log.lock().expect("log lock").clone()
    }

    /// Writes that reached the store (not dry runs, not refused), in order.
    pub fn writes(&self) -> Vec<Logged> {
        self.requests()
            .into_iter()
            .filter(Logged::is_write)
            .collect()
    }

    /// Every request answered so far, in order, each with whether it asked for metadata only
    /// (`Accept: application/json;as=PartialObjectMetadata…;g=meta.k8s.io;v=v1`).
    pub fn requests_with_accept(&self) -> Vec<(Logged, bool)> {
        let log = self.shared.log.lock().expect("log lock");
        let marks = self.shared.metadata_only.lock().expect("marks lock");
        log.iter().cloned().zip(marks.iter().copied()).collect()
    }

    /// Number of requests logged so far (a mark for [`ApiServer::requests_since`]).
    pub fn mark(&self) -> usize {
        self.shared.log.lock().expect("log lock").len()
    }

    /// Requests logged after `mark`.
    pub fn requests_since(&self, mark: usize) -> Vec<Logged> {
        self.shared.log.lock().expect("log lock")[mark..].to_vec()
    }

    /// Requests the stand-in did not understand or does not serve.
    pub fn unknown_requests(&self) -> Vec<String> {
        self.shared.unknown.lock().expect("unknown lock").clone()
    }

    /// Lets `user` (an impersonated user such as `system:serviceaccount:NS:NAME`) make `verb`
    /// on `resource` (plural) in `namespace`, on the object `name` only when given. Requests
    /// impersonating a user are refused (403) unless a grant allows them; requests without
    /// impersonation are the controller's own and always allowed.
    pub fn grant(
        &self,
        user: &str,
        verb: &str,
        resource: &str,
        namespace: &str,
        name: Option<&str>,
    ) {
        let mut rbac = self.shared.rbac.lock().expect("rbac lock");
        rbac.users
            .entry(user.to_owned())
            .or_default()
            .push(rbac::Rule {
                verb: verb.to_owned(),
                resource: resource.to_owned(),
                namespace: Some(namespace.to_owned()),
                name: name.map(str::to_owned),
            });
    }

    /// Refuses (403) every request that impersonates anyone, as an API server does when the
    /// caller lacks `impersonate` on `serviceaccounts`.
    pub fn deny_impersonation(&self) {
        self.shared
            .rbac
            .lock()
            .expect("rbac lock")
            .impersonation_denied = true;
    }

    /// Holds every LIST and WATCH request in `namespace` unanswered until
    /// [`ApiServer::release`]: that namespace's caches cannot sync meanwhile.
    pub fn hold(&self, namespace: &str) {
        self.shared
            .held
            .lock()
            .expect("held lock")
            .push(namespace.to_owned());
    }

    /// Answers `namespace`'s LIST and WATCH requests again (those held, and any new ones).
    pub fn release(&self, namespace: &str) {
        self.shared
            .held
            .lock()
            .expect("held lock")
            .retain(|n| n != namespace);
    }

    /// Forgets the change history: a watch resuming from any earlier resourceVersion gets 410.
    pub fn compact(&self) {
        self.shared.store.lock().expect("store lock").compact();
    }

    /// The stored object of `plural` (`rollouts`, `configmaps`, …) `namespace/name`.
    pub fn object(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let resource = SERVED
            .iter()
            .find(|r| r.plural == plural && r.kind != "Event")?;
        let key = store::key(resource, Some(namespace), name);
        let store = self.shared.store.lock().expect("store lock");
        store.get(&key).map(|o| (*o).clone())
    }

    /// How many stored objects of `plural` satisfy `predicate`.
    pub fn count(&self, plural: &str, predicate: impl Fn(&Value) -> bool) -> usize {
        let Some(resource) = SERVED
            .iter()
            .find(|r| r.plural == plural && r.kind != "Event")
        else {
            return 0;
        };
        let store = self.shared.store.lock().expect("store lock");
        store
            .list(resource, None)
            .filter(|(_, object)| predicate(object))
            .count()
    }

    /// Creates or replaces `object` directly (not through HTTP, not logged), as manager
    /// `manager`; its `apiVersion` and `kind` pick the resource. Panics when refused.
    pub fn put(&self, object: Value, manager: &str) -> Value {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let resource = resources::by_kind(api_version, kind)
            .unwrap_or_else(|| panic!("the stand-in does not serve {api_version}/{kind}"));
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let target = Target {
            resource,
            namespace: object["metadata"]["namespace"].as_str().map(str::to_owned),
            name: None,
            subresource: None,
        };
        let options = WriteOptions {
            manager: manager.to_owned(),
            dry_run: false,
            force: false,
        };
        let mut store = self.shared.store.lock().expect("store lock");
        let existing = store
            .get(&store::key(resource, target.namespace.as_deref(), &name))
            .is_some();
        let written = if existing {
            ops::update(&mut store, &target, &name, object, &options)
        } else {
            ops::create(&mut store, &target, object, &options)
        };
        (*written.expect("stand-in accepts the object").object).clone()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
