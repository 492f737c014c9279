//! The HTTP face: the streamable-HTTP MCP endpoint (rmcp inside axum) behind the
//! authentication layer, the protected-resource metadata, and the health probes.

pub mod auth;
mod sessions;

use std::sync::Arc;

use axum::{Json, Router, http::StatusCode, middleware, routing::get};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;

use crate::{hub::Hub, mcp::Audited};

pub fn router(hub: Arc<Hub>) -> Router {
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hub.server.allowed_hosts.clone())
        .with_cancellation_token(hub.close_streams.child_token())
        .with_max_request_body_bytes(hub.server.max_body_bytes);
    let factory_hub = hub.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(Audited::new(factory_hub.clone())),
        Arc::new(sessions::Sessions::new(
            rmcp::transport::streamable_http_server::session::local::SessionConfig::DEFAULT_KEEP_ALIVE,
        )),
        config,
    );
    let ready_hub = hub.clone();
    let auth = Arc::new(auth::AuthState::new(
        hub.clone(),
        hub.authn.clone(),
        hub.metrics.clone(),
        hub.auth.resource.clone(),
        hub.server.path.clone(),
    ));
    // Authentication wraps only the MCP endpoint: probes and metadata stay public.
    let protected =
        Router::new()
            .nest_service(&hub.server.path, mcp)
            .layer(middleware::from_fn_with_state(
                auth.clone(),
                auth::require_auth,
            ));
    let metadata = Router::new()
        .route("/.well-known/oauth-protected-resource", get(auth::metadata))
        .route(
            &format!("/.well-known/oauth-protected-resource{}", hub.server.path),
            get(auth::metadata),
        )
        .with_state(auth);
    Router::new()
        .merge(protected)
        .merge(metadata)
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get({
                let metrics = hub.metrics.clone();
                move || {
                    let metrics = metrics.clone();
                    async move {
                        let content_type = (
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        );
                        ([content_type], metrics.encode())
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let hub = ready_hub.clone();
                async move {
                    let backends: serde_json::Map<_, _> = hub
                        .backends
                        .iter()
                        .map(|b| {
                            (
                                b.name().to_owned(),
                                json!(if b.is_up() { "up" } else { "down" }),
                            )
                        })
                        .collect();
                    let ready =
                        !hub.stopping.is_cancelled() && hub.backends.iter().any(|b| b.is_up());
                    let status = if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (
                        status,
                        Json(json!({ "ready": ready, "backends": backends })),
                    )
                }
            }),
        )
}
