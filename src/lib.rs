//! mcp-warden: a zero-trust gateway for the Model Context Protocol.
//!
//! MCP clients connect to one endpoint; the proxy aggregates many backend MCP servers
//! (stdio child processes and streamable-HTTP servers) under namespaces and relays
//! everything MCP carries. The request path, outer to inner:
//!
//! ```text
//! http (axum + rmcp streamable HTTP) -> mcp::ProxySession (one per client session)
//!   -> mcp::catalog (exposed name -> backend + its own name; the ONE place for
//!      namespaces, aliases and filters)
//!   -> stack::build (the call stack; layer order lives there)
//!   -> backend::Backend::request (shared connection, cancellation, origin tracking)
//! ```
//!
//! Library use:
//! ```no_run
//! # async fn run() -> Result<(), mcp_warden::Error> {
//! let config = mcp_warden::Config::from_path("mcp-warden.toml")?;
//! let proxy = mcp_warden::Proxy::from_config(config).await?;
//! let handle = proxy.handle();
//! let app = axum::Router::new().merge(proxy.into_router());
//! # let _ = (app, handle);
//! # Ok(()) }
//! ```

// The API: what an embedding application uses.
pub use authn::{AuthError, Authenticate, Principal};
pub use config::{BackendSettings, Config, ConfigError};
pub use error::{CallError, Error};
pub use hub::reload::{GenerationInfo, Outcome as ReloadOutcome, ReloadReport};
pub use proxy::{Proxy, ProxyBuilder, ProxyHandle};
pub use stack::{Call, CallService, StackPoint};

// Modules the binary, the micro-benchmarks and the integration tests reach into. Not part
// of the API: hidden from the documentation, no stability promise.
#[doc(hidden)]
pub mod audit;
#[doc(hidden)]
pub mod authn;
#[doc(hidden)]
pub mod authz;
#[doc(hidden)]
pub mod config;
#[doc(hidden)]
pub mod demo;
#[doc(hidden)]
pub mod error;
#[doc(hidden)]
pub mod files;
#[doc(hidden)]
pub mod hub;
#[doc(hidden)]
pub mod stack;

#[doc(hidden)]
pub mod approvals;
mod backend;
mod envelope;
#[doc(hidden)]
pub mod federation;
mod governance;
mod http;
mod ids;
mod mcp;
#[doc(hidden)]
pub mod pinning;
mod proxy;
#[doc(hidden)]
pub mod replay;
mod switches;
mod sync;
mod telemetry;
#[doc(hidden)]
pub mod trace;

/// The configuration used when none is given: the demo backend built into this binary,
/// anonymous callers on loopback, allow-all policy, and the audit log in the user's state
/// directory (`config::laptop`).
pub fn embedded_default_config(exe: &std::path::Path) -> Result<Config, ConfigError> {
    let home = config::laptop::instance_home("the embedded default").map_err(|e| ConfigError {
        issues: vec![config::ConfigIssue {
            path: "audit".to_owned(),
            message: e.to_string(),
        }],
    })?;
    let audit = config::laptop::audit_section(&home);
    Config::from_toml_str(&format!(
        "[auth]\nanonymous = true\n[authz]\npolicy = {}\n\n[audit]\norigin = {}\nstore = {}\nstate_dir = {}\n\n[[backends]]\nname = \"demo\"\ncommand = {}\nargs = [\"demo-server\"]\n",
        toml_string(config::ALLOW_ALL),
        toml_string(audit.origin.as_deref().unwrap_or_default()),
        toml_string(audit.store.as_deref().unwrap_or_default()),
        toml_string(audit.state_dir.as_deref().unwrap_or_default()),
        toml_string(&exe.display().to_string())
    ))
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}
