//! Opening one connection to a backend: a child process speaking stdio, or a
//! streamable-HTTP server. The child's environment holds only the allow-listed variables
//! of the proxy's own environment plus those configured; its stderr goes to the log.

use std::collections::HashMap;

use rmcp::{
    RoleClient,
    model::ProtocolVersion,
    service::{ClientLifecycleMode, ClientServiceExt, RunningService},
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{direct::Endpoint, pipe::Pipe, relay::Relay};
use crate::config::{BackendProtocol, BackendSettings, Transport};

pub type Connection = RunningService<RoleClient, Relay>;

/// Bytes in flight each way on an in-process backend's pipe.
const IN_PROCESS_BUFFER: usize = 256 * 1024;

/// Where calls go beside rmcp's client (on the handshake revisions).
#[derive(Clone)]
pub enum DirectPath {
    Http(Endpoint),
    Stdio(Pipe),
}

/// Opens the connection, and the path calls are sent on directly beside rmcp's client:
/// an HTTP backend's [`Endpoint`] (its pool and session), a stdio backend's [`Pipe`].
pub async fn connect(
    settings: &BackendSettings,
    relay: Relay,
    protocol: BackendProtocol,
) -> Result<(Connection, Option<DirectPath>), String> {
    let serve = async {
        match &settings.transport {
            Transport::Stdio {
                command,
                args,
                env,
                env_allow,
                cwd,
            } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).env_clear();
                for key in env_allow {
                    if let Ok(value) = std::env::var(key) {
                        cmd.env(key, value);
                    }
                }
                cmd.envs(env);
                if let Some(cwd) = cwd {
                    cmd.current_dir(cwd);
                }
                let (process, pipe, stderr) = super::pipe::spawn(cmd, relay.clone())
                    .map_err(|e| format!("cannot start `{command}`: {e}"))?;
                if let Some(stderr) = stderr {
                    let name = settings.name.clone();
                    tokio::spawn(async move {
                        let mut lines = BufReader::new(stderr).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            tracing::info!(target: "mcp_warden::backend::stderr", backend = %name, "{line}");
                        }
                    });
                }
                relay
                    .serve_with_lifecycle(process, lifecycle(protocol))
                    .await
                    .map(|connection| (connection, Some(DirectPath::Stdio(pipe))))
                    .map_err(|e| e.to_string())
            }
            Transport::InProcess(server) => {
                let (ours, theirs) = tokio::io::duplex(IN_PROCESS_BUFFER);
                server.start(theirs);
                let (transport, pipe) = super::pipe::in_memory(ours, relay.clone())
                    .map_err(|e| format!("cannot open a pipe to the server: {e}"))?;
                relay
                    .serve_with_lifecycle(transport, lifecycle(protocol))
                    .await
                    .map(|connection| (connection, Some(DirectPath::Stdio(pipe))))
                    .map_err(|e| e.to_string())
            }
            Transport::Http {
                url,
                headers,
                keep_alive,
            } => {
                let mut custom = HashMap::new();
                let mut auth = None;
                for (name, value) in headers {
                    let (Ok(n), Ok(v)) = (
                        http::HeaderName::try_from(name.as_str()),
                        http::HeaderValue::try_from(value.as_str()),
                    ) else {
                        return Err(format!("invalid header `{name}`"));
                    };
                    if n == http::header::AUTHORIZATION {
                        auth = Some(value.strip_prefix("Bearer ").unwrap_or(value).to_owned());
                    } else {
                        custom.insert(n, v);
                    }
                }
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .custom_headers(custom)
                    .reinit_on_expired_session(true);
                if let Some(token) = &auth {
                    config = config.auth_header(token.clone());
                }
                let endpoint =
                    Endpoint::new(http_client(*keep_alive)?, url.as_str(), auth, *keep_alive)
                        .with_actor(settings.actor.clone());
                let transport =
                    StreamableHttpClientTransport::with_client(endpoint.recording(), config);
                relay
                    .serve_with_lifecycle(transport, lifecycle(protocol))
                    .await
                    .map(|connection| (connection, Some(DirectPath::Http(endpoint))))
                    .map_err(|e| e.to_string())
            }
        }
    };
    match tokio::time::timeout(settings.connect_timeout, serve).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer to initialize within {} s",
            settings.connect_timeout.as_secs()
        )),
    }
}

/// The HTTP client of one backend connection: a keep-alive pool, so a call costs no new
/// TCP connection (rmcp's own default client keeps none, and every call paid a connection
/// set-up on both sides). Idle connections close after 4 s, before the 5 s keep-alive of
/// common servers, so the proxy never sends a call on a socket the server is closing.
/// Redirects are followed only within the backend's own origin: its credentials go nowhere
/// else.
fn http_client(keep_alive: bool) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .tcp_nodelay(true)
        .redirect(same_origin_redirects());
    let builder = if keep_alive {
        builder.pool_idle_timeout(std::time::Duration::from_secs(4))
    } else {
        builder.pool_max_idle_per_host(0)
    };
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Up to 5 redirects that keep the method and body (307, 308), all to the origin (scheme,
/// host, port) first asked. A 301, 302 or 303 would turn the POST into a GET without its
/// message: not followed.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let keeps_body = matches!(attempt.status().as_u16(), 307 | 308);
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if keeps_body && same && attempt.previous().len() <= 5 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

fn lifecycle(protocol: BackendProtocol) -> ClientLifecycleMode {
    match protocol {
        BackendProtocol::Initialize => ClientLifecycleMode::Initialize,
        BackendProtocol::Auto => ClientLifecycleMode::Auto {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            legacy_version: None,
        },
    }
}
