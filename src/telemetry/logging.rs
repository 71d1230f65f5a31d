//! Log initialisation, shared by every command: text for people by default, JSON lines for
//! log pipelines; the level comes from `--log-level`, else `RUST_LOG`, else `info`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;

/// How log lines are written (to standard error).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global `tracing` subscriber. `level` is a filter in `RUST_LOG` syntax
/// (`info`, `rollgate=debug,kube=warn`); `None` reads `RUST_LOG` and falls back to `default`.
/// A `level` that does not parse is refused with a message naming it; a bad `RUST_LOG` falls
/// back to `default`. Calling it twice is harmless: the first subscriber stays in place.
pub fn init_logging(format: LogFormat, level: Option<&str>, default: &str) -> Result<(), String> {
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| {
            format!("--log-level {l:?} is not a log filter such as info or rollgate=debug: {e}")
        })?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    };
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _already_set = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}
