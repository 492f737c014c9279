//! The binary's logs, on stderr (stdout belongs to the MCP stream in stdio modes): text or
//! one JSON object per line (`--log-format`), coloured only on a terminal and never with
//! `NO_COLOR`, filtered by `MCP_WARDEN_LOG`, else by `[server] log_level` once the
//! configuration is read, else by the default.

use std::io::IsTerminal;

use tracing_subscriber::{
    EnvFilter, Registry, layer::SubscriberExt, reload, util::SubscriberInitExt,
};

/// The environment variable that sets the log filter (named in `--help`).
pub const LOG_ENV: &str = "MCP_WARDEN_LOG";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (time, level, target, message, fields, spans).
    Json,
}

/// The installed logger; the configuration's level is applied through it.
pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
    /// The filter came from the environment: the configuration does not change it.
    from_env: bool,
}

/// Whether to colour: stderr is a terminal and `NO_COLOR` is not set (to anything).
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the logger, with `default` as the filter unless `MCP_WARDEN_LOG` is set.
pub fn init(format: LogFormat, default: &str) -> Logging {
    let env = EnvFilter::try_from_env(LOG_ENV).ok();
    let from_env = env.is_some();
    let (filter, handle) = reload::Layer::new(env.unwrap_or_else(|| EnvFilter::new(default)));
    let registry = tracing_subscriber::registry().with(filter);
    // A write error on stderr (a reader that went away) is not reported on stderr again:
    // that report would panic, taking the MCP stream on stdout with it.
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(colour())
                    .with_writer(std::io::stderr)
                    .log_internal_errors(false),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr)
                    .log_internal_errors(false),
            )
            .init(),
    }
    Logging {
        filter: handle,
        from_env,
    }
}

impl Logging {
    /// Applies the configuration's `[server] log_level` (validated with the file), unless
    /// the environment set the filter.
    pub fn apply(&self, level: Option<&str>) {
        let Some(level) = level.filter(|_| !self.from_env) else {
            return;
        };
        if let Ok(filter) = EnvFilter::try_new(level) {
            let _ = self.filter.reload(filter);
        }
    }
}
