//! Backends built in code by an embedding application: a `[[backends]]` entry given as
//! TOML and checked as the file's are, and backends served inside the application itself
//! (an rmcp `ServerHandler` reached over an in-memory pipe, as a stdio child would be).

use std::sync::Arc;

use rmcp::{ServerHandler, ServiceExt};

use super::{BackendSettings, ConfigError, Transport};

/// A server in this process: each connection the proxy opens is an in-memory pipe whose
/// far end `start` is given (to serve MCP on it, line-delimited JSON-RPC as over stdio).
#[derive(Clone)]
pub struct InProcess {
    start: Arc<dyn Fn(tokio::io::DuplexStream) + Send + Sync>,
}

impl InProcess {
    /// Hands the server its end of a new connection.
    pub fn start(&self, io: tokio::io::DuplexStream) {
        (self.start)(io)
    }
}

impl std::fmt::Debug for InProcess {
    /// Two in-process servers are the same server only if they are the same value: a
    /// reload that finds another one in its place restarts the backend.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InProcess({:p})", Arc::as_ptr(&self.start))
    }
}

impl BackendSettings {
    /// One backend from the keys of a `[[backends]]` entry (`name = "db"`, `url = …` or
    /// `command = …`, and any other key the file takes), checked as the file's entries are;
    /// the rules between backends are checked when it joins the others.
    pub fn from_toml(entry: &str) -> Result<BackendSettings, ConfigError> {
        let file = super::parse_toml(&format!("[[backends]]\n{entry}\n"))?;
        let mut backends = super::validate::backends_of(&file)?;
        Ok(backends.remove(0))
    }

    /// A backend served in this process by the `ServerHandler` `make` returns (one per
    /// connection: a restart gets a fresh one). `entry` holds any further keys of a
    /// `[[backends]]` entry (`namespace`, `aliases`, `tools`, …), or is empty.
    pub fn in_process<S, F>(
        name: &str,
        entry: &str,
        make: F,
    ) -> Result<BackendSettings, ConfigError>
    where
        S: ServerHandler,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let name = toml::Value::String(name.to_owned());
        let mut settings = BackendSettings::from_toml(&format!(
            "name = {name}\ncommand = \"in-process\"\n{entry}"
        ))?;
        settings.transport = Transport::InProcess(InProcess {
            start: Arc::new(move |io| {
                let server = make();
                tokio::spawn(async move {
                    match server.serve(io).await {
                        Ok(running) => {
                            let _ = running.waiting().await;
                        }
                        Err(e) => tracing::warn!(error = %e, "an in-process backend did not start"),
                    }
                });
            }),
        });
        Ok(settings)
    }
}
