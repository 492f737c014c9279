//! The authentication layer in front of the MCP endpoint, and the protected-resource
//! metadata (RFC 9728) that tells clients where to get a token.
//!
//! Why here: it runs before rmcp parses anything, so an unauthenticated request costs a
//! header lookup and never reaches MCP code. It also owns session ownership: a session
//! belongs to the principal that opened it, and a request presenting another principal's
//! session id is answered exactly like an unknown session (404).
//!
//! Failures are bounded: every client-controlled field of their record is cut to a small
//! size (`hub::audit::MAX_FIELD_BYTES`), and each client address may have at most
//! `auth.failures_per_minute` of them recorded; past that it gets 429 with `Retry-After`,
//! one record says the limit was reached, and the rest are only counted
//! (`mcp_warden_http_rejections_total{reason="auth_failure_limit"}`).

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv4Addr},
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use governor::{
    Quota, RateLimiter, clock::Clock, middleware::NoOpMiddleware, state::keyed::DashMapStateStore,
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

use super::client::{ClientAddr, client_addr, limit_key, peer_of};
use crate::{
    audit::Kind, authn::Authenticator, governance::rate::TokioClock, hub::audit::bounded,
    telemetry::Rejection,
};

const SESSION_HEADER: &str = "mcp-session-id";
/// Checks of the failure limiter between sweeps of its idle buckets.
const SWEEP_EVERY: u32 = 1_024;

type Limiter = RateLimiter<IpAddr, DashMapStateStore<IpAddr>, TokioClock, NoOpMiddleware<Duration>>;

/// Authentication failures per client address: how many are recorded, and one record per
/// minute saying a client went over that.
struct FailureLimit {
    recorded: Limiter,
    noted: Limiter,
    clock: TokioClock,
    checks: AtomicU32,
}

/// A failure over the limit: when to retry, and whether to record that the limit was hit.
struct OverLimit {
    retry_after: Duration,
    note: bool,
}

impl FailureLimit {
    fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let clock = TokioClock::default();
        FailureLimit {
            recorded: RateLimiter::new(
                Quota::per_minute(per_minute),
                DashMapStateStore::default(),
                clock.clone(),
            ),
            noted: RateLimiter::new(
                Quota::per_minute(NonZeroU32::MIN),
                DashMapStateStore::default(),
                clock.clone(),
            ),
            clock,
            checks: AtomicU32::new(0),
        }
    }

    /// Counts one failure of `client`; `Some` when it is over the limit.
    fn check(&self, client: ClientAddr) -> Option<OverLimit> {
        // Requests whose peer is unknown (a host application without connect info) share
        // one bucket: limited together rather than not at all.
        let key = limit_key(client.0.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.recorded.retain_recent();
            self.noted.retain_recent();
        }
        let not_until = self.recorded.check_key(&key).err()?;
        Some(OverLimit {
            retry_after: not_until.wait_time_from(self.clock.now()),
            note: self.noted.check_key(&key).is_ok(),
        })
    }
}

pub struct AuthState {
    pub authn: Arc<Authenticator>,
    /// Where refused requests are recorded.
    hub: Arc<crate::hub::Hub>,
    metrics: Arc<crate::telemetry::Metrics>,
    /// The protected resource's URL (RFC 9728 `resource`), from configuration only: never
    /// from a request's `Host`.
    resource: String,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    trusted_proxies: Vec<ipnet::IpNet>,
    failures: FailureLimit,
    /// Session id -> key of the principal that opened it.
    owners: Mutex<HashMap<String, String>>,
}

impl AuthState {
    /// `resource` is the configured `auth.resource`, else the MCP endpoint on `listening`
    /// (the address the proxy listens on; validation allows that only on loopback).
    pub fn new(hub: Arc<crate::hub::Hub>, listening: std::net::SocketAddr) -> Self {
        let resource = hub
            .auth
            .resource
            .clone()
            .unwrap_or_else(|| format!("http://{listening}{}", hub.server.path));
        AuthState {
            authn: hub.authn.clone(),
            metrics: hub.metrics.clone(),
            resource,
            trusted_proxies: hub.server.trusted_proxies.clone(),
            failures: FailureLimit::new(hub.auth.failures_per_minute),
            owners: Mutex::default(),
            hub,
        }
    }

    /// RFC 9728 §3.1: the well-known path inserted between the resource's origin and path.
    fn metadata_url(&self) -> String {
        let resource = &self.resource;
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
fn unauthorized(state: &AuthState, presented: bool) -> Response {
    let mut challenge = format!("Bearer resource_metadata=\"{}\"", state.metadata_url());
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

/// 429 for a client over its authentication failure limit.
fn too_many_failures(retry_after: Duration) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({"error": "too many failed authentications"})),
    )
        .into_response();
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
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
    let client = client_addr(
        peer_of(request.extensions()),
        request.headers(),
        &state.trusted_proxies,
    );
    request.extensions_mut().insert(client);
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let presented = authorization.is_some();
    let principal = match state.authn.authenticate(authorization).await {
        Ok(principal) => principal,
        Err(e) => {
            state.metrics.auth_failures.inc();
            if let Some(over) = state.failures.check(client) {
                state.metrics.reject(Rejection::AuthFailureLimit);
                if over.note {
                    tracing::warn!(client = %client.text(), "authentication failures over the limit: counted, not recorded, for a while");
                    let detail = BTreeMap::from([
                        ("client".to_owned(), client.text()),
                        (
                            "reason".to_owned(),
                            "over `auth.failures_per_minute`: further failures from this client are counted, not recorded".to_owned(),
                        ),
                    ]);
                    refused(&state, &request, Kind::AuthFailure, 429, detail).await;
                }
                return too_many_failures(over.retry_after);
            }
            let reason = bounded(&e.to_string());
            tracing::info!(reason = %reason, client = %client.text(), "authentication failed");
            let detail = BTreeMap::from([
                ("client".to_owned(), client.text()),
                ("reason".to_owned(), reason),
            ]);
            refused(&state, &request, Kind::AuthFailure, 401, detail).await;
            return unauthorized(&state, presented);
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
            ("client".to_owned(), client.text()),
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
pub async fn metadata(State(state): State<Arc<AuthState>>) -> Response {
    Json(json!({
        "resource": state.resource,
        "authorization_servers": state.authn.issuer_names(),
        "bearer_methods_supported": ["header"],
        "resource_name": "mcp-warden",
    }))
    .into_response()
}
