//! The authentication layer in front of the MCP endpoint, and the protected-resource
//! metadata (RFC 9728) that tells clients where to get a token.
//!
//! Why here: it runs before rmcp parses anything, so an unauthenticated request costs a
//! header lookup and never reaches MCP code. It also owns session ownership: a session
//! belongs to the principal that opened it, and a request presenting another principal's
//! session id is answered exactly like an unknown session (404).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use axum::{
    Json,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{audit::Kind, authn::Authenticator};

const SESSION_HEADER: &str = "mcp-session-id";

pub struct AuthState {
    pub authn: Arc<Authenticator>,
    /// Where refused requests are recorded.
    hub: Arc<crate::hub::Hub>,
    metrics: Arc<crate::telemetry::Metrics>,
    /// The protected resource's URL (RFC 9728 `resource`) when configured; otherwise it is
    /// the MCP endpoint on the host the client used.
    resource: Option<String>,
    /// Path of the MCP endpoint.
    path: String,
    /// Session id -> key of the principal that opened it.
    owners: Mutex<HashMap<String, String>>,
}

impl AuthState {
    pub fn new(
        hub: Arc<crate::hub::Hub>,
        authn: Arc<Authenticator>,
        metrics: Arc<crate::telemetry::Metrics>,
        resource: Option<String>,
        path: String,
    ) -> Self {
        AuthState {
            hub,
            authn,
            metrics,
            resource,
            path,
            owners: Mutex::default(),
        }
    }

    fn resource(&self, headers: &axum::http::HeaderMap) -> String {
        match &self.resource {
            Some(resource) => resource.clone(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                format!("http://{host}{}", self.path)
            }
        }
    }

    /// RFC 9728 §3.1: the well-known path inserted between the resource's origin and path.
    fn metadata_url(&self, headers: &axum::http::HeaderMap) -> String {
        let resource = self.resource(headers);
        let after_scheme = resource.find("://").map_or(0, |i| i + 3);
        let path_at = resource[after_scheme..]
            .find('/')
            .map_or(resource.len(), |i| after_scheme + i);
        let (origin, path) = resource.split_at(path_at);
        format!("{origin}/.well-known/oauth-protected-resource{path}")
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `WWW-Authenticate` for a 401: where the metadata is, and `invalid_token` when a token
/// was presented. Nothing about why it was refused.
fn unauthorized(state: &AuthState, headers: &axum::http::HeaderMap, presented: bool) -> Response {
    let mut challenge = format!(
        "Bearer resource_metadata=\"{}\"",
        state.metadata_url(headers)
    );
    if presented {
        challenge.push_str(", error=\"invalid_token\"");
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "unauthorized"})),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn unknown_session() -> Response {
    (StatusCode::NOT_FOUND, "session not found").into_response()
}

pub async fn require_auth(
    State(state): State<Arc<AuthState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let presented = authorization.is_some();
    let principal = match state.authn.authenticate(authorization).await {
        Ok(principal) => principal,
        Err(e) => {
            tracing::info!(reason = %e, "authentication failed");
            state.metrics.auth_failures.inc();
            let detail = BTreeMap::from([("reason".to_owned(), e.to_string())]);
            refused(&state, &request, Kind::AuthFailure, 401, detail).await;
            return unauthorized(&state, request.headers(), presented);
        }
    };
    let key = principal.key();
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(session) = &session
        && state.owners().get(session) != Some(&key)
    {
        let foreign = state.owners().contains_key(session);
        if foreign {
            tracing::warn!(principal = %principal.id, "refused a session opened by another principal");
        }
        let detail = BTreeMap::from([
            ("principal".to_owned(), principal.id.clone()),
            (
                "reason".to_owned(),
                if foreign {
                    "session of another principal"
                } else {
                    "unknown session"
                }
                .to_owned(),
            ),
        ]);
        refused(&state, &request, Kind::Request, 404, detail).await;
        return unknown_session();
    }
    let deleting = request.method() == Method::DELETE;
    request.extensions_mut().insert(principal);
    let response: Response<Body> = next.run(request).await;
    match session {
        None => {
            if let Some(new) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                state.owners().insert(new.to_owned(), key);
            }
        }
        Some(session) => {
            if (deleting && response.status().is_success())
                || response.status() == StatusCode::NOT_FOUND
            {
                state.owners().remove(&session);
            }
        }
    }
    response
}

/// Records a request refused before MCP saw it.
fn refused(
    state: &AuthState,
    request: &Request,
    kind: Kind,
    status: u16,
    detail: BTreeMap<String, String>,
) -> impl Future<Output = ()> + Send + 'static {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let action = format!("http {} {}", request.method(), request.uri().path());
    let hub = state.hub.clone();
    async move {
        hub.record_refusal(kind, request_id, action, status, detail)
            .await;
    }
}

/// RFC 9728 protected-resource metadata.
pub async fn metadata(
    State(state): State<Arc<AuthState>>,
    headers: axum::http::HeaderMap,
) -> Response {
    Json(json!({
        "resource": state.resource(&headers),
        "authorization_servers": state.authn.issuer_names(),
        "bearer_methods_supported": ["header"],
        "resource_name": "mcp-warden",
    }))
    .into_response()
}
