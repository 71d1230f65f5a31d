//! The controller's HTTP endpoints: `/metrics` on the metrics address, `/healthz` and
//! `/readyz` on the health-probe address (controller-runtime's layout). Either address may be
//! turned off (`0`); when both are the same, one listener serves all three paths.
//!
//! - `/healthz`: 200 while the process serves HTTP at all (liveness).
//! - `/readyz`: 200 once the controller's caches have synced, else 503. The body says which
//!   role this replica has (leader, standby, election off): a standby is ready too, so a
//!   rolling update is not held up by the replica that waits for the lease.
//! - `/metrics`: the [`Metrics`] in the Prometheus text format.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::FutureExt as _;
use tokio::net::TcpListener;
use tracing::{info, warn};

use super::metrics::{CONTENT_TYPE, Metrics};

/// Something that can say which role this replica plays, for `/readyz` (the controller's
/// leadership handle implements it).
pub trait Role: Send + Sync + 'static {
    /// A few words: `leader`, `standby (leader: replica-b)`, `leader election off`, ….
    fn describe(&self) -> String;
}

/// The readiness the controller reports on `/readyz`. Cheap to clone; clones share state.
#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

#[derive(Default)]
struct ReadinessInner {
    synced: AtomicBool,
    role: RwLock<Option<Arc<dyn Role>>>,
}

impl Readiness {
    /// Not ready, with no role yet.
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// Marks the watch caches as synced (ready) or not.
    pub fn set_synced(&self, synced: bool) {
        self.inner.synced.store(synced, Ordering::SeqCst);
    }

    /// Whether the caches have synced.
    pub fn is_synced(&self) -> bool {
        self.inner.synced.load(Ordering::SeqCst)
    }

    /// Sets what `/readyz` reports as this replica's role.
    pub fn set_role(&self, role: impl Role) {
        let mut slot = self
            .inner
            .role
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some(Arc::new(role));
    }

    /// The role's description, or `unknown` before one was set.
    pub fn role(&self) -> String {
        let slot = self
            .inner
            .role
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.as_ref()
            .map_or_else(|| "unknown".to_owned(), |r| r.describe())
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("synced", &self.is_synced())
            .field("role", &self.role())
            .finish()
    }
}

/// Parses a `--metrics-bind-address` / `--health-probe-bind-address` value: `0` turns the
/// endpoint off (`None`), otherwise `HOST:PORT` with an IP address (`0.0.0.0:8080`,
/// `127.0.0.1:0`, `[::]:8081`).
pub fn parse_bind_address(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.trim() == "0" {
        return Ok(None);
    }
    text.trim().parse::<SocketAddr>().map(Some).map_err(|_| {
        format!(
            "{text:?} is not an address such as 0.0.0.0:8080 or [::]:8080 (or 0 to turn it off)"
        )
    })
}

/// The bound listeners, ready to serve. Binding first lets the caller report a port in use
/// before anything else starts, and learn the ports the system chose for `:0`.
pub struct Servers {
    metrics: Option<TcpListener>,
    probes: Option<TcpListener>,
    /// Whether the metrics listener also serves the probes (same address for both).
    shared: bool,
    state: AppState,
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    readiness: Readiness,
}

/// Why an endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound (in use, not permitted, not local).
    #[error("cannot listen on {address} for {what}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// `metrics` or `health probes`.
        what: &'static str,
        /// The system's reason.
        source: io::Error,
    },
    /// Serving failed.
    #[error("serving {what} failed: {source}")]
    Serve {
        /// `metrics` or `health probes`.
        what: &'static str,
        /// The system's reason.
        source: io::Error,
    },
}

impl Servers {
    /// Binds the metrics and probe addresses (`None` turns one off; the same address twice
    /// binds once and serves every path there, except port 0, which binds two free ports).
    pub async fn bind(
        metrics_address: Option<SocketAddr>,
        probes_address: Option<SocketAddr>,
        metrics: Metrics,
        readiness: Readiness,
    ) -> Result<Servers, ServerError> {
        // Port 0 asks the system for any free port: twice means two listeners.
        let shared =
            metrics_address.is_some_and(|a| a.port() != 0) && metrics_address == probes_address;
        let metrics_listener = match metrics_address {
            Some(address) => Some(listen(address, "metrics").await?),
            None => None,
        };
        let probes_listener = match probes_address {
            Some(address) if !shared => Some(listen(address, "health probes").await?),
            _ => None,
        };
        Ok(Servers {
            metrics: metrics_listener,
            probes: probes_listener,
            shared,
            state: AppState { metrics, readiness },
        })
    }

    /// Where `/metrics` is served, if anywhere.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where `/healthz` and `/readyz` are served, if anywhere.
    pub fn probes_address(&self) -> Option<SocketAddr> {
        if self.shared {
            return self.metrics_address();
        }
        self.probes.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight and returns.
    /// With both endpoints off it just waits for `shutdown`.
    pub async fn serve<F>(self, shutdown: F) -> Result<(), ServerError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let shutdown = shutdown.boxed().shared();
        let metrics_router = if self.shared {
            metrics_routes().merge(probe_routes())
        } else {
            metrics_routes()
        }
        .with_state(self.state.clone());
        let probes_router = probe_routes().with_state(self.state);

        let metrics = run(self.metrics, metrics_router, shutdown.clone(), "metrics");
        let probes = run(
            self.probes,
            probes_router,
            shutdown.clone(),
            "health probes",
        );
        let (metrics, probes) = tokio::join!(metrics, probes);
        metrics.and(probes)
    }
}

async fn listen(address: SocketAddr, what: &'static str) -> Result<TcpListener, ServerError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ServerError::Bind {
            address,
            what,
            source,
        })?;
    if let Ok(bound) = listener.local_addr() {
        info!(address = %bound, what, "listening");
    }
    Ok(listener)
}

async fn run<F>(
    listener: Option<TcpListener>,
    router: Router,
    shutdown: F,
    what: &'static str,
) -> Result<(), ServerError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let Some(listener) = listener else {
        shutdown.await;
        return Ok(());
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServerError::Serve { what, source })
}

fn metrics_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(serve_metrics))
}

fn probe_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn serve_metrics(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            warn!(%error, "encoding the metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding the metrics failed\n",
            )
                .into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    let role = state.readiness.role();
    if state.readiness.is_synced() {
        (StatusCode::OK, format!("ready: caches synced; {role}\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: caches not synced yet; {role}\n"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses() {
        assert_eq!(parse_bind_address("0"), Ok(None));
        assert_eq!(
            parse_bind_address("0.0.0.0:8080"),
            Ok(Some(SocketAddr::from(([0, 0, 0, 0], 8080))))
        );
        assert_eq!(
            parse_bind_address("[::]:8081")
                .ok()
                .flatten()
                .map(|a| a.port()),
            Some(8081)
        );
        for bad in [":8080", "localhost:8080", "8080", "", "0.0.0.0"] {
            let error = parse_bind_address(bad).expect_err(bad);
            assert!(error.contains("0.0.0.0:8080"), "{error}");
        }
    }

    struct Fixed(&'static str);

    impl Role for Fixed {
        fn describe(&self) -> String {
            self.0.to_owned()
        }
    }

    #[test]
    fn readiness_state() {
        let readiness = Readiness::new();
        assert!(!readiness.is_synced());
        assert_eq!(readiness.role(), "unknown");
        let clone = readiness.clone();
        clone.set_synced(true);
        clone.set_role(Fixed("standby"));
        assert!(readiness.is_synced());
        assert_eq!(readiness.role(), "standby");
    }
}
