//! The metrics and probe endpoints on loopback ports the system chooses.

use rollgate::api::Percent;
use std::net::SocketAddr;
use std::time::Duration;

use rollgate::api::{CheckpointVerdict, Phase};
use rollgate::controller::leader::Leadership;
use rollgate::telemetry::{Metrics, Readiness, Role, Servers};
use tokio::sync::oneshot;

const ANY_PORT: &str = "127.0.0.1:0";

fn any_port() -> Option<SocketAddr> {
    Some(ANY_PORT.parse().expect("address"))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

async fn get(address: SocketAddr, path: &str) -> (u16, Option<String>, String) {
    let response = http()
        .get(format!("http://{address}{path}"))
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, kind, response.text().await.expect("body"))
}

struct Running {
    metrics: Option<SocketAddr>,
    probes: Option<SocketAddr>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), rollgate::telemetry::server::ServerError>>,
}

async fn start(
    metrics_at: Option<SocketAddr>,
    probes_at: Option<SocketAddr>,
    metrics: Metrics,
    readiness: Readiness,
) -> Running {
    let servers = Servers::bind(metrics_at, probes_at, metrics, readiness)
        .await
        .expect("bind");
    let (stop, stopped) = oneshot::channel::<()>();
    let metrics = servers.metrics_address();
    let probes = servers.probes_address();
    let task = tokio::spawn(servers.serve(async {
        let _ = stopped.await;
    }));
    Running {
        metrics,
        probes,
        stop,
        task,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("stops within 5 s")
            .expect("no panic")
            .expect("no serve error");
    }
}

#[tokio::test]
async fn serves_metrics_and_probes_on_separate_addresses() {
    let metrics = Metrics::new().expect("metrics");
    metrics.set_rollout(
        "kaviar",
        "pfm",
        Some(Percent::whole(5)),
        Some(Phase::Progressing),
    );
    metrics.count_checkpoint("kaviar", "pfm", CheckpointVerdict::Pass);
    let readiness = Readiness::new();
    readiness.set_role(Leadership::always());
    let running = start(any_port(), any_port(), metrics, readiness.clone()).await;
    let (m, p) = (
        running.metrics.expect("metrics bound"),
        running.probes.expect("probes bound"),
    );
    assert_ne!(m, p);

    let (status, kind, body) = get(m, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(kind.as_deref(), Some("text/plain; version=0.0.4"));
    assert!(
        body.contains("rollgate_rollout_percent{name=\"pfm\",namespace=\"kaviar\"} 5"),
        "{body}"
    );
    assert!(
        body.contains(
            "rollgate_checkpoints_total{name=\"pfm\",namespace=\"kaviar\",verdict=\"pass\"} 1"
        ),
        "{body}"
    );

    let (status, _, body) = get(p, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let (status, _, body) = get(p, "/readyz").await;
    assert_eq!(status, 503, "not ready before the caches sync");
    assert_eq!(
        body,
        "not ready: caches not synced yet; leader election off\n"
    );
    readiness.set_synced(true);
    let (status, _, body) = get(p, "/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(body, "ready: caches synced; leader election off\n");

    // Each address serves only its own paths.
    assert_eq!(get(m, "/healthz").await.0, 404);
    assert_eq!(get(p, "/metrics").await.0, 404);
    assert_eq!(get(p, "/nothing").await.0, 404);
    running.stop().await;
}

struct Standby;

impl Role for Standby {
    fn describe(&self) -> String {
        "standby (leader: replica-b)".to_owned()
    }
}

#[tokio::test]
async fn a_standby_is_ready_and_says_so() {
    let readiness = Readiness::new();
    readiness.set_synced(true);
    readiness.set_role(Standby);
    let running = start(
        None,
        any_port(),
        Metrics::new().expect("metrics"),
        readiness,
    )
    .await;
    assert_eq!(running.metrics, None);
    let (status, _, body) = get(running.probes.expect("probes"), "/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(body, "ready: caches synced; standby (leader: replica-b)\n");
    running.stop().await;
}

#[tokio::test]
async fn one_address_for_both_serves_every_path() {
    // Bind a free port first to learn a concrete address, then ask for it twice.
    let probe = std::net::TcpListener::bind(ANY_PORT).expect("free port");
    let address = probe.local_addr().expect("address");
    drop(probe);
    let running = start(
        Some(address),
        Some(address),
        Metrics::new().expect("metrics"),
        Readiness::new(),
    )
    .await;
    assert_eq!(running.metrics, Some(address));
    assert_eq!(running.probes, Some(address));
    assert_eq!(get(address, "/metrics").await.0, 200);
    assert_eq!(get(address, "/healthz").await.0, 200);
    assert_eq!(get(address, "/readyz").await.0, 503);
    running.stop().await;
}

#[tokio::test]
async fn both_off_serves_nothing_and_still_stops() {
    let running = start(
        None,
        None,
        Metrics::new().expect("metrics"),
        Readiness::new(),
    )
    .await;
    assert_eq!((running.metrics, running.probes), (None, None));
    running.stop().await;
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind(ANY_PORT).expect("free port");
    let address = taken.local_addr().expect("address");
    let error = Servers::bind(
        Some(address),
        None,
        Metrics::new().expect("metrics"),
        Readiness::new(),
    )
    .await
    .err()
    .expect("the port is taken");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("cannot listen on {address} for metrics: ")),
        "{text}"
    );
}

#[tokio::test]
async fn shutdown_stops_accepting_connections() {
    let running = start(
        any_port(),
        None,
        Metrics::new().expect("metrics"),
        Readiness::new(),
    )
    .await;
    let address = running.metrics.expect("metrics");
    assert_eq!(get(address, "/metrics").await.0, 200);
    running.stop().await;
    let after = http().get(format!("http://{address}/metrics")).send().await;
    assert!(after.is_err(), "nothing listens after shutdown");
}
