//! Where a command's configuration comes from: a TOML file, an `mcpServers` JSON file, or
//! (with neither) the embedded default next to the executable.

use anyhow::Context;
use clap::Args;
use mcp_warden::Config;
use std::path::PathBuf;

/// Where a command's configuration comes from.
#[derive(Args)]
pub struct Source {
    /// TOML configuration file
    #[arg(long, conflicts_with = "mcp_json")]
    config: Option<PathBuf>,
    /// An `mcpServers` JSON file (Claude Desktop, Claude Code, Cursor)
    #[arg(long)]
    mcp_json: Option<PathBuf>,
}

impl Source {
    /// The file the configuration is read from, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.config.as_deref().or(self.mcp_json.as_deref())
    }

    pub fn load(&self) -> anyhow::Result<Config> {
        Ok(match (&self.config, &self.mcp_json) {
            (Some(path), _) => Config::from_path(path)?,
            (None, Some(path)) => Config::from_mcp_json_path(path)?,
            (None, None) => {
                let exe = std::env::current_exe().context("cannot locate this executable")?;
                mcp_warden::embedded_default_config(&exe)?
            }
        })
    }
}
