//! `mcp-warden tools export`: the tools the configured backends serve, written once as a
//! saved catalog (`tools.json`) so that `policy validate|test|explain|schema` check
//! policies against the real tools offline, without starting a backend each time.
//! `tools pin` and `tools diff`: the lock file of reviewed tool definitions
//! ([`mcp_warden::pinning`]) written from, and compared with, what the backends serve.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

use mcp_warden::{Config, ProxyHandle};

use super::source::Source;

#[derive(Subcommand)]
pub enum ToolsCommand {
    /// Start the configured backends (no listener, no audit log), read their tool lists and
    /// write them as a catalog; fails, writing nothing, if a backend does not list
    Export {
        #[command(flatten)]
        source: Source,
        /// Write the catalog here (replaced atomically) instead of to standard output
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Start the configured backends and write what they serve as the lock file
    /// (`[tools] lock`): each tool's title, description, schemas and annotations with
    /// their hashes. Reports what changed since the previous pin and what the description
    /// rules find
    Pin {
        #[command(flatten)]
        source: Source,
        /// The lock file (default: `[tools] lock`)
        #[arg(long)]
        lock: Option<PathBuf>,
    },
    /// Start the configured backends and compare what they serve with the lock file:
    /// tools added, removed or changed (which parts, and how), and description findings.
    /// Exit status 1 when anything differs or is found, 0 otherwise
    Diff {
        #[command(flatten)]
        source: Source,
        /// The lock file (default: `[tools] lock`)
        #[arg(long)]
        lock: Option<PathBuf>,
        /// One JSON object instead of text
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: ToolsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ToolsCommand::Pin { source, lock } => super::pins::pin(source.load()?, lock).await,
        ToolsCommand::Diff { source, lock, json } => {
            super::pins::diff(source.load()?, lock, json).await
        }
        ToolsCommand::Export { source, out } => {
            let config = source.load()?;
            let backends = config.backends.len();
            let groups = config.tools.clone();
            let (catalog, count) = with_backends(config, |handle| {
                (handle.catalog_json(), handle.tool_names().len())
            })
            .await
            .context("no catalog written")?;
            let catalog = with_groups(catalog.context("cannot write the catalog")?, &groups)?;
            match out {
                Some(path) => {
                    mcp_warden::files::replace(&path, catalog.as_bytes())
                        .with_context(|| format!("writing {}", path.display()))?;
                    err!(
                        "wrote {count} tools of {} backend(s) to {}; check policies against them with `mcp-warden policy validate --config FILE --tools {}` (or `[authz] tools = \"{}\"`)",
                        backends,
                        path.display(),
                        path.display(),
                        path.display()
                    );
                }
                None => out!("{}", catalog.trim_end()),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `catalog` with each tool's `[tools.groups]` (`"groups"`), so that policies naming
/// `Mcp::Action::"group:<name>"` validate against it offline.
fn with_groups(
    catalog: String,
    settings: &mcp_warden::config::ToolsSettings,
) -> anyhow::Result<String> {
    if settings.groups.is_empty() {
        return Ok(catalog);
    }
    let mut tools: Vec<serde_json::Value> = serde_json::from_str(&catalog)?;
    for tool in &mut tools {
        let name = tool["name"].as_str().unwrap_or_default().to_owned();
        let groups = settings.groups_of(&name);
        if !groups.is_empty() {
            tool["groups"] = groups.into();
        }
    }
    let mut text = serde_json::to_string_pretty(&tools)?;
    text.push('\n');
    Ok(text)
}

/// Starts the configuration's backends, with neither the audit log (it belongs to the proxy
/// serving this configuration, which may be running) nor its policies (the tools are what
/// policies are fixed against), and reads what `read` wants once every backend has listed;
/// a backend that did not is an error.
pub async fn with_backends<T>(
    mut config: Config,
    read: impl FnOnce(&ProxyHandle) -> T,
) -> anyhow::Result<T> {
    config.audit = None;
    // Integrity findings are `tools diff`'s to report; the groups stay.
    config.tools.integrity = Default::default();
    config.authz.policies.clear();
    config.authz.catalog = None;
    let names: Vec<String> = config.backends.iter().map(|b| b.name.clone()).collect();
    let proxy = mcp_warden::Proxy::from_config(config).await?;
    let handle = proxy.handle();
    let up = handle.backends_up();
    let value = read(&handle);
    handle.shutdown().await;
    let missing: Vec<&str> = names
        .iter()
        .filter(|n| !up.contains(n))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        bail!(
            "backend(s) {} did not list their tools: the tool list would be incomplete",
            missing.join(", ")
        );
    }
    Ok(value)
}
