//! `rollgate backtest`: the plan replayed over a real Prometheus' past.

use std::io::{self, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use k8s_openapi::jiff::Timestamp;
use rollgate::backtest::{PrometheusHistory, QueryMode};
use rollgate::gates::prometheus::ClientError;
use rollgate::gates::prometheus::PrometheusEndpoint;
use rollgate::gates::{GateEnv, GateEnvError, Secret};
use rollgate::net::{AddressPolicy, AllowRule};
use rollgate::sim::load::load_rollout;
use rollgate::sim::run;
use rollgate::sim::scenario::{Scenario, check_budget};
use rollgate::sim::timeline::TimelineWriter;

use rollgate::report::{Recorder, Source};

use super::output::{ExpectedPhase, OutputFormat, bad_input, finish};
use super::prometheus_auth::{LegacyFlags, PrometheusAuthArgs};
use super::report::{file_name, write_report_file};

/// The most checkpoints one backtest may replay.
const BACKTEST_BUDGET: u64 = 200_000;

/// The most requests one backtest may send to Prometheus.
const REQUEST_BUDGET: u64 = 20_000;

/// How `--query-mode` reads history.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum QueryModeArg {
    /// Range queries, one request per gate per stretch of up to 11,000 checkpoints.
    Range,
    /// One instant query per gate per checkpoint (slow; for comparison).
    Instant,
}

/// Arguments of `rollgate backtest`.
#[derive(Args, Debug)]
pub struct BacktestArgs {
    /// The Rollout manifest (YAML).
    rollout: PathBuf,
    /// Base URL of the Prometheus HTTP API for gates without an address of their own.
    #[arg(long, env = "ROLLGATE_PROMETHEUS")]
    prometheus: String,
    /// When the replayed rollout starts (RFC 3339, e.g. 2026-02-01T19:18:00Z).
    #[arg(long)]
    start: String,
    /// When the replay stops (RFC 3339; default now).
    #[arg(long)]
    end: Option<String>,
    /// How to print the timeline.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    /// Exit with status 1 unless the replay ends in this phase.
    #[arg(long, value_enum)]
    expect: Option<ExpectedPhase>,
    /// Treat this gate as passing: required for each OFREP or HTTP gate, which observe only
    /// the present.
    #[arg(long = "assume-pass", value_name = "GATE")]
    assume_pass: Vec<String>,
    /// Also allow gates to reach this address: a host name, `*.domain`, an address or CIDR
    /// range (for example 127.0.0.1 or 10.0.0.0/8) or a URL prefix. Repeatable. Without it,
    /// only the --prometheus address and in-cluster Service names (`svc.NS` and longer, of
    /// any namespace) are reached; loopback, link-local and metadata addresses need a rule
    /// naming the address itself.
    #[arg(long = "allow-address", value_name = "VALUE")]
    allow_address: Vec<AllowRule>,
    /// How history is read: range queries (default) or one instant query per checkpoint.
    #[arg(long, value_enum, default_value_t = QueryModeArg::Range)]
    query_mode: QueryModeArg,
    /// Deprecated (one release): the bearer token itself; use --prometheus-token-file.
    #[arg(
        long,
        env = "ROLLGATE_PROMETHEUS_TOKEN",
        hide_env_values = true,
        hide = true
    )]
    prometheus_token: Option<Secret<String>>,
    /// Deprecated (one release): the basic-auth password itself; use
    /// --prometheus-password-file.
    #[arg(
        long,
        env = "ROLLGATE_PROMETHEUS_PASSWORD",
        hide_env_values = true,
        hide = true
    )]
    prometheus_password: Option<Secret<String>>,
    /// Deprecated (one release): use --prometheus-ca-file.
    #[arg(long, hide = true)]
    prometheus_ca: Option<PathBuf>,
    /// Credentials, headers and TLS for --prometheus, and the extra CA bundle.
    #[command(flatten)]
    auth: PrometheusAuthArgs,
    /// Accept any TLS certificate from Prometheus.
    #[arg(long)]
    prometheus_insecure_skip_verify: bool,
    /// Time allowed for one query, as a Go duration.
    #[arg(long, default_value = "10s")]
    prometheus_timeout: String,
    /// Also write a release report to this Markdown file, and its chart beside it (same name,
    /// `.svg`).
    #[arg(long, value_name = "FILE.md")]
    report: Option<PathBuf>,
}

/// Runs the backtest; exit status 0, 1 when `--expect` differs, 2 on bad input, 3 when the
/// timeline cannot be written.
pub fn backtest(args: BacktestArgs) -> ExitCode {
    let rollout = match load_rollout(&args.rollout) {
        Ok(rollout) => rollout,
        Err(e) => return bad_input(&e),
    };
    let (start, end) = match window(&args) {
        Ok(window) => window,
        Err(e) => return bad_input(&format!("rollgate backtest: {e}")),
    };
    if let Err(problem) = check_budget(&rollout.spec, end.duration_since(start), BACKTEST_BUDGET) {
        return bad_input(&format!("rollgate backtest: --start to --end: {problem}"));
    }
    let endpoint = match endpoint(&args) {
        Ok(endpoint) => endpoint,
        Err(e) => return bad_input(&format!("rollgate backtest: {e}")),
    };
    let mut policy = AddressPolicy::new(args.allow_address.clone());
    match args.auth.extra_ca() {
        Ok(None) => {}
        Ok(Some(pem)) => match policy.with_extra_ca(pem) {
            Ok(with_ca) => policy = with_ca,
            Err(e) => return bad_input(&format!("rollgate backtest: --ca-file: {e}")),
        },
        Err(e) => return bad_input(&format!("rollgate backtest: {e}")),
    }
    let env = match GateEnv::with_policy(Some(endpoint), policy) {
        Ok(env) => env.without_namespace_scope(),
        Err(e) => return bad_input(&format!("rollgate backtest: {}", flag_error(&e))),
    };
    let mode = match args.query_mode {
        QueryModeArg::Range => QueryMode::Range,
        QueryModeArg::Instant => QueryMode::Instant,
    };
    let checkpoints = checkpoints(&rollout.spec, end.duration_since(start));
    let needed = PrometheusHistory::request_estimate(&rollout, mode, checkpoints);
    if needed > REQUEST_BUDGET {
        return bad_input(&format!(
            "rollgate backtest: --start to --end: {}",
            rollgate::backtest::BacktestError::Budget {
                needed,
                budget: REQUEST_BUDGET
            }
        ));
    }
    let mut history = match PrometheusHistory::new(&rollout, env, &args.assume_pass, mode, end) {
        Ok(history) => history,
        Err(e) => return bad_input(&format!("rollgate backtest: {e}")),
    };
    let scenario = Scenario {
        start,
        until: end.duration_since(start),
        series: Vec::new(),
        events: Vec::new(),
    };
    let stdout = io::stdout().lock();
    let mut timeline = TimelineWriter::new(
        BufWriter::new(stdout),
        args.output.into(),
        start,
        rollout.spec.stages.len(),
    );
    let summary = match &args.report {
        None => run(&rollout.spec, &scenario, &mut history, &mut timeline),
        Some(path) => {
            let mut recorder = Recorder::new(&mut timeline);
            let summary = run(&rollout.spec, &scenario, &mut history, &mut recorder);
            let source = Source::Backtest {
                plan: file_name(&args.rollout),
                start,
                end,
            };
            let report = recorder.into_report(&rollout, source);
            if summary.is_ok()
                && let Err(code) = write_report_file(&report, path, "backtest")
            {
                return code;
            }
            summary
        }
    };
    tracing::info!(requests = history.requests(), "backtest done");
    finish("backtest", summary, args.expect)
}

/// Checkpoints in `span` at the plan's interval (an upper bound: one per interval).
fn checkpoints(spec: &rollgate::api::RolloutSpec, span: k8s_openapi::jiff::SignedDuration) -> u64 {
    let interval = std::time::Duration::from(spec.analysis.interval)
        .as_nanos()
        .max(1);
    let span = u128::try_from(span.as_nanos()).unwrap_or(0);
    u64::try_from(span / interval).unwrap_or(u64::MAX)
}

/// A connection error named after the flag that caused it.
fn flag_error(error: &GateEnvError) -> String {
    match error {
        GateEnvError::Prometheus(e @ ClientError::Ca(_)) => format!("--prometheus-ca-file: {e}"),
        GateEnvError::Prometheus(e @ ClientError::Identity(_)) => {
            format!("--prometheus-cert-file/--prometheus-key-file: {e}")
        }
        GateEnvError::Prometheus(e @ ClientError::ServerName(_)) => {
            format!("--prometheus-tls-server-name: {e}")
        }
        GateEnvError::Prometheus(e @ ClientError::Header(_)) => {
            format!("--prometheus-header: {e}")
        }
        GateEnvError::Prometheus(e @ ClientError::Credentials(what)) => {
            format!("--prometheus-{what}: {e}")
        }
        other => other.to_string(),
    }
}

fn window(args: &BacktestArgs) -> Result<(Timestamp, Timestamp), String> {
    let parse = |flag: &str, text: &str| {
        text.parse::<Timestamp>().map_err(|e| {
            format!("{flag} {text:?} is not an RFC 3339 time such as 2026-02-01T19:18:00Z ({e})")
        })
    };
    let start = parse("--start", &args.start)?;
    let end = match &args.end {
        Some(text) => parse("--end", text)?,
        None => Timestamp::now(),
    };
    if end <= start {
        return Err(format!("--end ({end}) must be after --start ({start})"));
    }
    Ok((start, end))
}

fn endpoint(args: &BacktestArgs) -> Result<PrometheusEndpoint, String> {
    check_credentials(args)?;
    let legacy = LegacyFlags {
        token: args.prometheus_token.as_ref(),
        password: args.prometheus_password.as_ref(),
        ca: args.prometheus_ca.as_deref(),
    };
    let mut settings = args.auth.settings(legacy)?;
    if args.prometheus_insecure_skip_verify && settings.tls_server_name.is_some() {
        return Err(
            "--prometheus-insecure-skip-verify and --prometheus-tls-server-name: give one"
                .to_owned(),
        );
    }
    settings.insecure_skip_verify = args.prometheus_insecure_skip_verify;
    check_address(&args.prometheus)?;
    let timeout = rollgate::api::parse_duration(&args.prometheus_timeout)
        .map_err(|e| format!("--prometheus-timeout: {e}"))?;
    if timeout.is_negative() || std::time::Duration::from(timeout).is_zero() {
        return Err("--prometheus-timeout must be positive".to_owned());
    }
    settings.timeout = timeout.into();
    Ok(PrometheusEndpoint {
        address: args.prometheus.clone(),
        settings,
    })
}

/// `--prometheus` is an http:// or https:// URL with a host.
fn check_address(address: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(address).map_err(|e| {
        format!("--prometheus {address:?} is not a URL such as http://127.0.0.1:9090 ({e})")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "--prometheus {address:?}: the scheme must be http or https, not {}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("--prometheus {address:?}: the URL names no host"));
    }
    Ok(())
}

/// Token, user name and password can travel in a header (no line breaks or other control
/// characters); the message never repeats them.
fn check_credentials(args: &BacktestArgs) -> Result<(), String> {
    let fields = [
        (
            "--prometheus-token",
            args.prometheus_token.as_ref().map(|t| t.expose()),
        ),
        (
            "--prometheus-password",
            args.prometheus_password.as_ref().map(|p| p.expose()),
        ),
    ];
    for (flag, value) in fields {
        if let Some(value) = value
            && http::HeaderValue::from_str(value).is_err()
        {
            return Err(format!(
                "{flag}: contains a character an HTTP header cannot carry (a line break or another control character)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn args(extra: &[&str]) -> BacktestArgs {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: BacktestArgs,
        }
        let mut argv = vec!["backtest", "plan.yaml", "--start", "2026-01-01T00:00:00Z"];
        if !extra.contains(&"--prometheus") {
            argv.extend_from_slice(&["--prometheus", "http://127.0.0.1:9090"]);
        }
        argv.extend_from_slice(extra);
        Wrapper::try_parse_from(argv).expect("flags parse").args
    }

    #[track_caller]
    fn refused(extra: &[&str], expected: &str) {
        let error = endpoint(&args(extra)).expect_err("refused");
        assert!(error.contains(expected), "{error}");
        assert!(
            !error.contains("gate error-rate"),
            "blamed on a gate: {error}"
        );
        assert!(!error.contains("s3cr3t"), "repeats a secret: {error}");
    }

    #[test]
    fn good_flags_make_an_endpoint() {
        let endpoint =
            endpoint(&args(&["--prometheus-header", "X-Scope-OrgID: team"])).expect("an endpoint");
        assert_eq!(endpoint.address, "http://127.0.0.1:9090");
    }

    #[test]
    fn bad_flags_are_named_as_flags() {
        refused(
            &["--prometheus", "ftp://127.0.0.1/"],
            "--prometheus \"ftp://127.0.0.1/\": the scheme must be http or https",
        );
        refused(
            &["--prometheus", "http://[::1"],
            "--prometheus \"http://[::1\" is not a URL",
        );
        refused(
            &["--prometheus-header", "Bad Name: v"],
            "--prometheus-header: \"Bad Name\" is not a valid header name",
        );
        refused(
            &["--prometheus-header", "X-Tenant: s3cr3t\u{7}"],
            "the value of X-Tenant contains a character",
        );
        refused(
            &["--prometheus-token", "s3cr3t\nInjected: yes"],
            "--prometheus-token: contains a character",
        );
        refused(&["--prometheus-timeout", "1h-5m"], "--prometheus-timeout");
    }

    #[test]
    fn the_ca_file_is_read_with_a_cap_and_checked() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "not a certificate").expect("written");
        let path = not_pem.to_str().expect("UTF-8 path");
        refused(&["--prometheus-ca", path], "holds no PEM certificate");
        if std::path::Path::new("/dev/zero").exists() {
            refused(
                &["--prometheus-ca", "/dev/zero"],
                "--prometheus-ca /dev/zero: the file is larger than 1 MiB",
            );
        }
    }
}
