//! The real `rollgate controller` binary run against the stand-in: a KUBECONFIG in a temporary
//! directory, the contract's flags, its log in a file, SIGKILL and SIGTERM, and its memory.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::ApiServer;

/// The `rollgate` binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rollgate"))
}

/// Fails loudly (never skips) when the binary has no `controller` subcommand yet.
pub fn require_controller_subcommand() {
    let out = Command::new(binary())
        .args(["controller", "--help"])
        .output()
        .expect("the rollgate binary runs");
    if !out.status.success() {
        let banner = "!".repeat(72);
        let _ = writeln!(
            std::io::stderr(),
            "\n{banner}\n!!! `rollgate controller` is not built (issue 6); this end-to-end test \
             FAILS until it is\n{banner}\n"
        );
        panic!(
            "`rollgate controller --help` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A running controller process; killed when dropped.
pub struct Controller {
    child: Option<Child>,
    dir: TempDir,
    /// `127.0.0.1:<port>` of `/healthz` and `/readyz`.
    pub health_address: String,
    /// `127.0.0.1:<port>` of `/metrics`.
    pub metrics_address: String,
    args: Vec<String>,
    runs: u32,
}

impl Controller {
    /// Starts `rollgate controller` against `server` with `--prometheus prometheus` and
    /// `extra` flags (e.g. `--namespace kaviar`).
    pub fn start(server: &ApiServer, prometheus: &str, extra: &[&str]) -> Self {
        require_controller_subcommand();
        let dir = tempfile::tempdir().expect("temporary directory");
        server.write_kubeconfig(dir.path(), "default");
        let health_address = format!("127.0.0.1:{}", super::super::prometheus::free_port());
        let metrics_address = format!("127.0.0.1:{}", super::super::prometheus::free_port());
        let defaults = [
            ("--prometheus", prometheus.to_owned()),
            ("--metrics-bind-address", metrics_address.clone()),
            ("--health-probe-bind-address", health_address.clone()),
            ("--log-format", "json".to_owned()),
            ("--log-level", "debug".to_owned()),
        ];
        let mut args: Vec<String> = vec!["controller".into()];
        // A flag in `extra` replaces its default.
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                args.push(flag.into());
                args.push(value);
            }
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let mut controller = Self {
            child: None,
            dir,
            health_address,
            metrics_address,
            args,
            runs: 0,
        };
        controller.spawn();
        controller
    }

    fn spawn(&mut self) {
        self.runs += 1;
        let log = fs::File::create(self.log_path(self.runs)).expect("controller log file");
        let child = Command::new(binary())
            .args(&self.args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env_remove("ROLLGATE_PROMETHEUS")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log)
            .spawn()
            .expect("start rollgate controller");
        self.child = Some(child);
    }

    fn log_path(&self, run: u32) -> PathBuf {
        self.dir.path().join(format!("controller-{run}.log"))
    }

    /// The process id of the running controller.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("a running controller")
    }

    /// What every run logged so far.
    pub fn log(&self) -> String {
        (1..=self.runs)
            .map(|run| {
                let text = fs::read_to_string(self.log_path(run)).unwrap_or_default();
                format!("--- run {run} ---\n{text}")
            })
            .collect()
    }

    /// Kills the controller with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the controller again with the same flags (after [`Controller::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Sends SIGTERM and waits up to `patience` for the exit status.
    pub fn terminate(&mut self, patience: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let start = Instant::now();
        while start.elapsed() < patience {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Panics with the log when the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!("the controller exited ({status}):\n{}", self.log());
        }
    }

    /// Whether the process has exited (and how).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// `VmRSS` and `VmHWM` in KiB from /proc.
    pub fn memory_kib(&self) -> (u64, u64) {
        memory_kib(self.pid())
    }

    /// The directory holding the kubeconfig and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("controller log:\n{}", self.log());
        }
    }
}

/// `VmRSS` and `VmHWM` of process `pid` in KiB (0 when unreadable).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
