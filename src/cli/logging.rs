//! The binary's logs, on stderr (stdout belongs to the MCP stream in stdio modes): text or
//! one JSON object per line (`--log-format`), coloured only on a terminal and never with
//! `NO_COLOR`, filtered by `MCP_WARDEN_LOG`, else by `[server] log_level` once the
//! configuration is read, else by the default. With the `otel` feature, the spans of
//! requests and backend calls are exported over OTLP when `[tracing]` or the standard
//! `OTEL_EXPORTER_OTLP_*` environment asks for it ([`super::otel`]).

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
    /// The filter the environment set: the configuration does not change it.
    from_env: Option<String>,
    /// The filter in force without the environment's.
    level: std::sync::Mutex<String>,
    #[cfg(feature = "otel")]
    otel: super::otel::Otel,
}

/// Whether to colour: stderr is a terminal and `NO_COLOR` is not set (to anything).
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the logger, with `default` as the filter unless `MCP_WARDEN_LOG` is set.
pub fn init(format: LogFormat, default: &str) -> Logging {
    let from_env = std::env::var(LOG_ENV)
        .ok()
        .filter(|text| EnvFilter::try_new(text).is_ok());
    let text = from_env.as_deref().unwrap_or(default);
    let (filter, handle) = reload::Layer::new(filter(text, false));
    let registry = tracing_subscriber::registry().with(filter);
    #[cfg(feature = "otel")]
    let (otel_layer, otel) = super::otel::layer();
    #[cfg(feature = "otel")]
    let registry = registry.with(otel_layer);
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
        level: std::sync::Mutex::new(default.to_owned()),
        #[cfg(feature = "otel")]
        otel,
    }
}

/// `text` (valid), with the spans traces need: the request and backend-call spans on when
/// traces are exported, the backend-call span off otherwise (logs do not show it).
fn filter(text: &str, traced: bool) -> EnvFilter {
    let mut filter = EnvFilter::try_new(text).unwrap_or_else(|_| EnvFilter::new("info"));
    let extra = if traced {
        [
            format!("{}=info", mcp_warden::trace::REQUEST),
            format!("{}=info", mcp_warden::trace::TRACE),
        ]
    } else {
        [String::new(), format!("{}=off", mcp_warden::trace::TRACE)]
    };
    for directive in extra.iter().filter(|d| !d.is_empty()) {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

impl Logging {
    /// Applies the configuration: its `[server] log_level` (validated with the file)
    /// unless the environment set the filter, and its `[tracing]` export.
    pub fn apply(&self, config: &mcp_warden::Config) -> anyhow::Result<()> {
        let mut level = self.level.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(configured) = &config.server.log_level {
            configured.clone_into(&mut level);
        }
        let text = self.from_env.as_deref().unwrap_or(&level);
        let traced = self.export(&config.tracing)?;
        let _ = self.filter.reload(filter(text, traced));
        Ok(())
    }

    /// Starts the trace export `settings` (or the environment) ask for; whether it runs.
    #[cfg(feature = "otel")]
    fn export(&self, settings: &mcp_warden::config::TracingSettings) -> anyhow::Result<bool> {
        if !super::otel::requested(settings) {
            return Ok(false);
        }
        self.otel.bind(settings)?;
        Ok(true)
    }

    #[cfg(not(feature = "otel"))]
    fn export(&self, _: &mcp_warden::config::TracingSettings) -> anyhow::Result<bool> {
        if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
            tracing::warn!(
                "OTEL_EXPORTER_OTLP_ENDPOINT is ignored: this build has no OpenTelemetry export (`--features otel`)"
            );
        }
        Ok(false)
    }

    /// Sends the spans still batched (the runtime must still run).
    pub fn shutdown(&self) {
        #[cfg(feature = "otel")]
        self.otel.shutdown();
    }
}
