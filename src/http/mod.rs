//! The HTTP face. Two listeners: the data listener serves the streamable-HTTP MCP endpoint
//! behind the authentication layer, the protected-resource metadata and `/healthz`; the
//! admin listener (`[admin] bind`, loopback only) serves `/metrics`, `/readyz` and
//! `/healthz`, which say things about the proxy that callers have no business reading, and
//! the authenticated admin API (`admin`).
//! Both are served by [`serve::serve`], which bounds every connection.

mod admin;
pub mod auth;
pub mod body;
pub mod client;
mod endpoint;
mod failures;
mod health;
mod hot;
mod owners;
pub mod serve;
mod sessions;
pub mod tls;

use std::{net::SocketAddr, sync::Arc};

use axum::{Router, routing::get};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::{hub::Hub, mcp::Audited};

/// The data listener's routes: [`mcp_router`] and `/healthz`.
pub fn router(hub: Arc<Hub>, listening: SocketAddr) -> Router {
    mcp_router(hub, listening).route("/healthz", get(|| async { "ok" }))
}

/// The MCP endpoint and its protected-resource metadata, nothing else (a host application
/// with routes of its own merges this). `listening` is the address clients reach the proxy
/// on, which names the protected resource when `auth.resource` is not configured.
pub fn mcp_router(hub: Arc<Hub>, listening: SocketAddr) -> Router {
    let portable = sessions::portable::Portable::new(
        &hub.server.sessions,
        hub.server.session_idle_timeout,
        &hub.shutdown,
    );
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hub.server.allowed_hosts.clone())
        .with_cancellation_token(hub.close_streams.child_token())
        .with_max_request_body_bytes(hub.server.max_body_bytes);
    if let Some(portable) = &portable {
        config.session_store = Some(Arc::new(sessions::portable::Store(portable.clone())));
    }
    let factory_hub = hub.clone();
    let sessions = Arc::new(sessions::Sessions::new(
        hub.server.session_idle_timeout,
        portable,
    ));
    let live = Arc::new(crate::mcp::live::LiveSessions::default());
    let factory_live = live.clone();
    let mcp = StreamableHttpService::new(
        move || {
            Ok(Audited::with_live(
                factory_hub.clone(),
                Some(factory_live.clone()),
            ))
        },
        sessions.clone(),
        config,
    );
    let hot = Arc::new(hot::Hot {
        live,
        sessions: sessions.clone(),
        allowed_hosts: hot::AllowedHosts::new(&hub.server.allowed_hosts),
        touch_every_ms: (hub.server.session_idle_timeout.as_millis() / 4).max(1) as u64,
    });
    let owners = Arc::new(owners::Owners::new(
        sessions.clone(),
        owners::SessionLimits {
            total: hub.server.max_sessions,
            per_principal: hub.server.max_sessions_per_principal,
        },
    ));
    hub.authority
        .approvals
        .set_asker(Arc::new(crate::mcp::approvers::Approvers::new(
            hot.live.clone(),
            Arc::downgrade(&hub),
        )));
    let _ = hub.session_directory.set(Arc::new(Directory {
        sessions: sessions.clone(),
        owners: owners.clone(),
        live: hot.live.clone(),
    }));
    let auth = Arc::new(auth::AuthState::new(hub.clone(), listening, owners));
    let body = Arc::new(body::BodyLimits {
        timeout: hub.server.connections.body_read_timeout,
        max_bytes: hub.server.max_body_bytes,
        metrics: hub.metrics.clone(),
    });
    // The endpoint's steps and their order: `endpoint`.
    let endpoint = endpoint::service(endpoint::Endpoint {
        auth: auth.clone(),
        body,
        hot,
        mcp,
    });
    let protected = Router::new().route_service(&hub.server.path, endpoint);
    let metadata = Router::new()
        .route("/.well-known/oauth-protected-resource", get(auth::metadata))
        .route(
            &format!("/.well-known/oauth-protected-resource{}", hub.server.path),
            get(auth::metadata),
        )
        .with_state(auth);
    Router::new().merge(protected).merge(metadata)
}

/// The HTTP endpoint's sessions as the admin API sees them.
struct Directory {
    sessions: Arc<sessions::Sessions>,
    owners: Arc<owners::Owners>,
    live: Arc<crate::mcp::live::LiveSessions>,
}

impl crate::hub::SessionDirectory for Directory {
    fn list(&self) -> futures::future::BoxFuture<'_, Vec<crate::hub::SessionInfo>> {
        Box::pin(async move {
            let mut owned = self.owners.list();
            owned.sort();
            let ids: Vec<String> = owned.iter().map(|(id, _)| id.clone()).collect();
            let alive = self.sessions.alive(&ids).await;
            owned
                .into_iter()
                .zip(alive)
                .filter(|(_, alive)| *alive)
                .map(|((id, principal), _)| crate::hub::SessionInfo {
                    calls: self.live.get(&id).map_or(0, |s| s.calls()),
                    id,
                    principal,
                })
                .collect()
        })
    }

    fn end<'a>(&'a self, id: &'a str) -> futures::future::BoxFuture<'a, bool> {
        Box::pin(async move {
            let closed = self.sessions.close(id).await;
            if let Some(session) = self.live.get(id) {
                self.live.remove(id);
                session.cancel_all();
            }
            self.owners.forget(id);
            closed
        })
    }
}

/// The admin listener's routes: metrics, readiness and liveness, and the admin API.
pub fn admin_router(hub: Arc<Hub>) -> Router {
    let ready_hub = hub.clone();
    admin::routes(hub.clone())
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get({
                let hub = hub.clone();
                move || {
                    let hub = hub.clone();
                    async move {
                        let content_type = (
                            axum::http::header::CONTENT_TYPE,
                            crate::telemetry::CONTENT_TYPE,
                        );
                        ([content_type], hub.metrics_text())
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let hub = ready_hub.clone();
                async move { health::readiness(&hub).await }
            }),
        )
}
