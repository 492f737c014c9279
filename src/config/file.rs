//! What the operator wrote: serde types of the TOML file, with no defaults applied and no
//! I/O. `validate` turns this into the runtime [`super::Settings`].

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    /// Path of an `mcpServers` JSON file (Claude Desktop, Claude Code, Cursor) whose servers
    /// are added as backends. Relative to the config file.
    #[serde(default)]
    pub import: Option<String>,
    #[serde(default)]
    pub backends: Vec<BackendSection>,
}

/// `[server]`: the client-facing endpoint.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// `host:port`; default `127.0.0.1:8808`.
    pub bind: Option<String>,
    /// Path of the MCP endpoint; default `/mcp`.
    pub path: Option<String>,
    /// Between a backend's namespace and a tool or prompt name; default `__`.
    pub separator: Option<String>,
    /// Largest accepted request body; default 4 MiB.
    pub max_body_bytes: Option<usize>,
    /// Items per page of an aggregated list; default 100.
    pub page_size: Option<usize>,
    /// Host headers accepted (DNS-rebinding protection); default loopback names only.
    pub allowed_hosts: Option<Vec<String>>,
    /// How long shutdown waits for in-flight calls, in milliseconds; default 10 000.
    pub drain_timeout_ms: Option<u64>,
}

/// `[[backends]]`: one MCP server behind the proxy.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSection {
    pub name: Option<String>,
    /// Prefix of exposed tool and prompt names; defaults to `name`; `""` exposes the
    /// backend's names unchanged.
    pub namespace: Option<String>,
    /// stdio: the program to start.
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// stdio: variables set for the child.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// stdio: variables passed through from the proxy's own environment (nothing else is).
    pub env_allow: Option<Vec<String>>,
    pub cwd: Option<String>,
    /// http: the streamable-HTTP endpoint.
    pub url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Connecting and initializing, in milliseconds; default 30 000.
    pub connect_timeout_ms: Option<u64>,
    /// One request, in milliseconds; default 300 000.
    pub request_timeout_ms: Option<u64>,
    /// Globs over the backend's own tool and prompt names; only matches are exposed.
    pub expose: Option<Vec<String>>,
    /// Globs over the backend's own names that are never exposed (wins over `expose`).
    #[serde(default)]
    pub hide: Vec<String>,
    /// Backend tool name -> exposed name (used as is, without the namespace).
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Start without this backend instead of failing when it is down; default true.
    pub optional: Option<bool>,
    /// How the proxy opens its connection: `initialize` (default; the 2025-11-25
    /// handshake) or `auto` (probe `server/discover` and speak 2026-07-28 when the backend
    /// serves it, else fall back to `initialize`).
    pub protocol: Option<String>,
}
