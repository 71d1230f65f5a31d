//! A real Prometheus server for one test: its own loopback port, temporary TSDB, 1 s scrape
//! and rule-evaluation intervals, and a rule file. Killed when dropped.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rollgate::gates::prometheus::{ClientSettings, PrometheusClient, PrometheusEndpoint};
use tempfile::TempDir;

/// The `prometheus` binary, or `None` after a loud message when it is absent and the tests
/// run by hand. Under CI (`CI=true`) an absent binary fails the test, so CI never passes by
/// skipping.
pub fn binary() -> Option<PathBuf> {
    tool("prometheus")
}

/// A tool of the `prometheus` package (`prometheus`, `promtool`) found on PATH, or `None`
/// after a loud message when it is absent and the tests run by hand; under CI (`CI=true`)
/// absence fails the test.
pub fn tool(name: &str) -> Option<PathBuf> {
    if let Some(path) = find_in_path(name) {
        return Some(path);
    }
    let message = format!(
        "`{name}` is not installed; install it with .ci/install-prometheus.sh \
         (Debian package `prometheus`)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}; CI=true, so this test fails instead of skipping");
    }
    // Straight to stderr: the test harness captures eprintln! of passing tests.
    let banner = "!".repeat(72);
    let _ = writeln!(
        std::io::stderr(),
        "\n{banner}\n!!! SKIPPED: {message}\n{banner}\n"
    );
    None
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A running Prometheus.
pub struct Prometheus {
    child: Option<Child>,
    dir: TempDir,
    /// Base URL of its HTTP API, `http://127.0.0.1:<port>`.
    pub address: String,
}

impl Prometheus {
    /// Starts `binary` scraping `targets` (job name, `host:port`) every second and evaluating
    /// `rules` (a rule file's YAML; empty for none) every second, and waits until it is ready.
    pub async fn start(binary: &Path, targets: &[(&str, String)], rules: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        fs::write(
            dir.path().join("rules.yml"),
            if rules.is_empty() {
                "groups: []\n"
            } else {
                rules
            },
        )
        .expect("write rules");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nscrape_configs:\n",
        );
        for (job, target) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            ));
        }
        fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        let mut prometheus = Self {
            child: None,
            dir,
            address: String::new(),
        };
        // A port found free may be taken by another test before Prometheus binds it: retry.
        for _attempt in 0..3 {
            let port = free_port();
            prometheus.child = Some(spawn(binary, prometheus.dir.path(), port));
            prometheus.address = format!("http://127.0.0.1:{port}");
            if prometheus.wait_ready().await {
                return prometheus;
            }
            eprintln!(
                "prometheus did not start on port {port}:\n{}",
                prometheus.log()
            );
            prometheus.stop();
        }
        panic!("prometheus did not start:\n{}", prometheus.log());
    }

    async fn wait_ready(&mut self) -> bool {
        let http = reqwest::Client::new();
        let ready = format!("{}/-/ready", self.address);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(child) = &mut self.child
                && child.try_wait().ok().flatten().is_some()
            {
                return false;
            }
            if http
                .get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// A client for this server with `timeout`.
    pub fn client(&self, timeout: Duration) -> PrometheusClient {
        PrometheusClient::new(
            &PrometheusEndpoint {
                address: self.address.clone(),
                settings: ClientSettings {
                    timeout,
                    ..ClientSettings::default()
                },
            },
            &super::loopback_policy(),
        )
        .expect("client")
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Kills the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(binary: &Path, dir: &Path, port: u16) -> Child {
    let log = fs::File::create(dir.join("prometheus.log")).expect("log file");
    Command::new(binary)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus")
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    super::loopback::unused_address().port()
}
