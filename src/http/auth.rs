//! The authentication layer in front of the MCP endpoint, and the protected-resource
//! metadata (RFC 9728) that tells clients where to get a token.
//!
//! Why here: it runs before rmcp parses anything, so an unauthenticated request costs a
//! header lookup and never reaches MCP code. It also enforces session ownership and the
//! session limits ([`super::owners`]): a session belongs to the principal that opened it,
//! and a request presenting another principal's session id is answered exactly like an
//! unknown session (404). It names every request (`warden-request-id`, the `request_id` of
//! its record) and records the requests refused before an MCP handler saw them — here, or
//! by the MCP transport below (malformed JSON-RPC, a session it no longer has, a body too
//! large or too slow).
//!
//! Failures are bounded: every client-controlled field of their record is cut to a small
//! size (`hub::audit::MAX_FIELD_BYTES`), and each client address may have at most
//! `auth.failures_per_minute` of them recorded; past that it gets 429 with `Retry-After`,
//! one record says the limit was reached, and the rest are only counted
//! (`mcp_warden_http_rejections_total{reason="auth_failure_limit"}`).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use axum::{
    Json,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::client::{ClientAddr, client_addr, peer_of};
use super::endpoint::Next;
use super::failures::FailureLimit;
use super::owners::{Full, Owners, PendingSession};
use crate::{
    audit::Kind, authn::Authenticate, authn::Principal, hub::audit::bounded, ids,
    telemetry::Rejection,
};

const SESSION_HEADER: &str = "mcp-session-id";
/// The response header that tells the client the proxy's id for its request (the
/// `request_id` of its audit record).
pub const REQUEST_ID_HEADER: &str = "warden-request-id";

pub struct AuthState {
    pub authn: Arc<dyn Authenticate>,
    /// Where refused requests are recorded.
    hub: Arc<crate::hub::Hub>,
    metrics: Arc<crate::telemetry::Metrics>,
    /// The protected resource's URL (RFC 9728 `resource`), from configuration only: never
    /// from a request's `Host`.
    resource: String,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Peers whose `traceparent` the request's span continues.
    trace_trust: Vec<ipnet::IpNet>,
    failures: FailureLimit,
    /// Who owns each session; how many sessions each principal may hold.
    owners: Arc<Owners>,
}

impl AuthState {
    /// `resource` is the configured `auth.resource`, else the MCP endpoint on `listening`
    /// (the address the proxy listens on; validation allows that only on loopback).
    pub fn new(
        hub: Arc<crate::hub::Hub>,
        listening: std::net::SocketAddr,
        owners: Arc<Owners>,
    ) -> Self {
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
            trace_trust: hub.tracing.trust_traceparent_from.clone(),
            failures: FailureLimit::new(hub.auth.failures_per_minute),
            owners,
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
}

/// The principal a verified client certificate's subject names (`[[auth.certificates]]`).
fn certificate_principal(
    known: &[crate::config::CertificateSettings],
    certificate: &super::tls::ClientCertificate,
) -> Result<crate::authn::Principal, crate::authn::AuthError> {
    known
        .iter()
        .find(|k| {
            certificate.common_name.as_deref() == Some(k.common_name.as_str())
                && (k.organization.is_none() || k.organization == certificate.organization)
        })
        .map(|k| k.principal.clone())
        .ok_or_else(|| {
            crate::authn::AuthError::Invalid(format!(
                "client certificate CN={} names no principal in `auth.certificates`",
                certificate.common_name.as_deref().unwrap_or("")
            ))
        })
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

/// Who a parent gateway says the request is for, if `principal` is a configured parent and
/// its signed assertion opens.
fn actor(
    state: &AuthState,
    principal: &Principal,
    value: &HeaderValue,
) -> Result<(Principal, crate::federation::Via), String> {
    let parent = state
        .hub
        .auth
        .parents
        .iter()
        .find(|p| p.principal == principal.id)
        .ok_or("an actor assertion from a principal that is not a configured parent (`[[auth.parents]]`)")?;
    let text = value.to_str().map_err(|_| "the assertion is not text")?;
    parent.open(text)
}

/// 503 for a session only the shared store (`[sessions] redis`) knows, while it cannot be
/// asked: the session may well exist, so the client should retry rather than start over.
fn session_store_down() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "1")],
        "the session store cannot be reached; retry",
    )
        .into_response()
}

pub async fn require_auth(state: Arc<AuthState>, mut request: Request, next: Next) -> Response {
    // The proxy names every request; the name goes into its record and back to the client.
    let request_id = ids::request_id();
    request
        .extensions_mut()
        .insert(ids::RequestId(request_id.clone()));
    // Every log line of the request carries its id (the span goes into the call's task);
    // exported, it is the server side of the request's trace.
    let span = tracing::info_span!(
        target: crate::trace::REQUEST,
        "request",
        id = %request_id,
        otel.name = "mcp request",
        otel.kind = "server",
        mcp.method.name = tracing::field::Empty,
    );
    crate::trace::continue_trace(
        &span,
        request.headers(),
        peer_of(request.extensions()),
        &state.trace_trust,
    );
    let mut response =
        tracing::Instrument::instrument(authenticated(&state, request, next), span).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

async fn authenticated(state: &AuthState, mut request: Request, next: Next) -> Response {
    let client = client_addr(
        peer_of(request.extensions()),
        request.headers(),
        &state.trusted_proxies,
    );
    request.extensions_mut().insert(client);
    let presented = request.headers().contains_key(header::AUTHORIZATION);
    // A verified client certificate names its principal; a bearer token, when one is
    // presented as well, wins (a certificate shared by a machine, a token per caller).
    let certificate = request
        .extensions()
        .get::<super::tls::ClientCertificate>()
        .filter(|_| !presented)
        .map(|c| certificate_principal(&state.hub.auth.certificates, c));
    let authenticated = match certificate {
        Some(found) => found,
        None => state.authn.authenticate(request.headers()).await,
    };
    let principal = match authenticated {
        // Shared by every layer that reads it (records, the call stack, session owners).
        Ok(principal) => Arc::new(principal),
        Err(e) => {
            let reason = match e {
                crate::authn::AuthError::Missing => "missing",
                crate::authn::AuthError::Invalid(_) => "invalid",
            };
            state
                .metrics
                .auth_failures
                .get_or_create(&crate::telemetry::ReasonLabels { reason })
                .inc();
            if let Some(over) = state.failures.check(client) {
                state.metrics.reject(Rejection::AuthFailureLimit);
                if over.note {
                    tracing::warn!(client = %client.text(), "authentication failures over the limit: counted, not recorded, for a while");
                    let detail = BTreeMap::from([(
                        "reason".to_owned(),
                        "over `auth.failures_per_minute`: further failures from this client are counted, not recorded".to_owned(),
                    )]);
                    Box::pin(refused(state, &request, Kind::AuthFailure, 429, detail)).await;
                }
                return too_many_failures(over.retry_after);
            }
            let reason = bounded(&e.to_string());
            tracing::info!(reason = %reason, client = %client.text(), "authentication failed");
            let detail = BTreeMap::from([("reason".to_owned(), reason)]);
            Box::pin(refused(state, &request, Kind::AuthFailure, 401, detail)).await;
            return unauthorized(state, presented);
        }
    };
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut owner = session.as_deref().and_then(|s| state.owners.owner(s));
    let mut foreign = owner.is_some();
    if owner.is_none()
        && let Some(id) = session.as_deref()
        && let Some(portable) = state.owners.portable()
    {
        // A session this replica never held (or let expire): another replica opened it.
        let key = principal.key();
        match Box::pin(portable.owner(id)).await {
            Ok(Some(o)) if o == super::sessions::portable::owner_of(&key) => {
                match Box::pin(state.owners.reserve(&key)).await {
                    Ok(place) => {
                        place.bind(id);
                        owner = Some(key);
                    }
                    Err(full) => {
                        request.extensions_mut().insert(principal);
                        return Box::pin(sessions_full(state, &request, full)).await;
                    }
                }
            }
            Ok(found) => foreign = found.is_some(),
            Err(e) => {
                tracing::error!(error = %e, "the shared session store cannot be asked");
                request.extensions_mut().insert(principal);
                let detail = BTreeMap::from([(
                    "reason".to_owned(),
                    "the shared session store cannot be reached".to_owned(),
                )]);
                Box::pin(refused(state, &request, Kind::Request, 503, detail)).await;
                return session_store_down();
            }
        }
    }
    if session.is_some() && !owner.as_deref().is_some_and(|o| principal.has_key(o)) {
        if foreign {
            tracing::warn!("refused a session opened by another principal");
        }
        let reason = if foreign {
            "session of another principal"
        } else {
            "unknown session"
        };
        request.extensions_mut().insert(principal);
        let detail = BTreeMap::from([("reason".to_owned(), reason.to_owned())]);
        Box::pin(refused(state, &request, Kind::Request, 404, detail)).await;
        return unknown_session();
    }
    // A parent gateway may say who the call is for: decided and recorded as that
    // principal (the session stays the parent's).
    let principal = match request.headers().get(crate::federation::HEADER) {
        None => principal,
        Some(value) => match actor(state, &principal, value) {
            Ok((actor, via)) => {
                request.extensions_mut().insert(via);
                Arc::new(actor)
            }
            Err(reason) => {
                tracing::warn!(reason = %reason, "an actor assertion was refused");
                request.extensions_mut().insert(principal);
                let detail = BTreeMap::from([("reason".to_owned(), bounded(&reason))]);
                Box::pin(refused(state, &request, Kind::AuthFailure, 401, detail)).await;
                return unauthorized(state, true);
            }
        },
    };
    let method = request.method().clone();
    let method = &method;
    let deleting = *method == Method::DELETE;
    request.extensions_mut().insert(principal);
    // Set by the MCP handler once it has recorded the request: a status below says nothing
    // then about whether a record exists.
    let recorded = ids::Recorded::default();
    request.extensions_mut().insert(recorded.clone());
    // What a refusal record needs, should the MCP transport refuse the request.
    let refusal = state.hub.audit.is_some().then(|| Refusal::of(&request));
    let response: Response<Body> = next.run(request).await;
    if let Some(session) = session {
        if deleting && response.status().is_success() {
            state.owners.forget(&session);
        } else if response.status() == StatusCode::NOT_FOUND {
            Box::pin(state.owners.forget_if_gone(&session)).await;
        }
    }
    let status = response.status();
    let failed = status.is_client_error() || status.is_server_error();
    // A 200 to a POST is a handler's answer, streamed: its record may be written after the
    // head leaves, so only what no handler serves is recorded here.
    let unserved =
        *method == Method::GET || *method == Method::DELETE || status == StatusCode::ACCEPTED;
    if let Some(refusal) = refusal
        && !recorded.is_set()
        && (failed || unserved)
    {
        // No MCP handler records it: refused before one saw it (malformed JSON-RPC, a
        // session rmcp no longer has, a body too large or too slow), or a request no
        // handler serves (a notification or a client's answer to a server request: 202;
        // the GET stream; the DELETE that ends a session). Recorded here, once.
        let detail = if failed {
            let reason = format!(
                "refused by the MCP transport: {}",
                status.canonical_reason().unwrap_or("error")
            );
            BTreeMap::from([("reason".to_owned(), reason)])
        } else {
            BTreeMap::new()
        };
        Box::pin(refusal.record(state, Kind::Request, detail, status.as_u16())).await;
    }
    response
}

/// The session limits, on a request whose body has been read (inside [`super::body`]): an
/// `initialize` without a session — whatever revision it names — reserves a place for
/// its caller or is refused (429 / 503), and the session manager binds the place to the
/// session it opens. Other requests, stateless ones included, take no place.
///
/// A request in a session goes straight on, without a future of its own.
pub fn limit_sessions(
    state: Arc<AuthState>,
    request: Request,
    next: Next,
) -> futures::future::BoxFuture<'static, Response> {
    if request.method() != Method::POST || request.headers().contains_key(SESSION_HEADER) {
        return next.run(request);
    }
    Box::pin(without_session(state, request, next))
}

/// [`limit_sessions`] for a POST without a session.
async fn without_session(state: Arc<AuthState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    // Already read whole by the body layer: no copy.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let key = parts.extensions.get::<Arc<Principal>>().map(|p| p.key());
    let Some(key) = key.filter(|_| is_initialize(&bytes)) else {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    match Box::pin(state.owners.reserve(&key)).await {
        Ok(place) => {
            parts.extensions.insert(PendingSession::new(place));
            let opening = state.owners.portable().and_then(|portable| {
                let params = crate::envelope::Envelope::parse(&bytes)?.params?;
                let params = serde_json::from_str(params.get()).ok()?;
                portable.opening(&key, params)
            });
            let rest = next.run(Request::from_parts(parts, Body::from(bytes)));
            match opening {
                Some(opening) => super::sessions::portable::opening(opening, rest).await,
                None => rest.await,
            }
        }
        Err(full) => sessions_full(&state, &Request::from_parts(parts, Body::empty()), full).await,
    }
}

/// Whether a JSON-RPC body is an `initialize` request (the only one that opens a session).
/// A body without the word is not one: a byte search first, the parse only when it is there.
fn is_initialize(body: &[u8]) -> bool {
    memchr::memmem::find(body, b"initialize").is_some()
        && crate::envelope::Envelope::parse(body)
            .and_then(|m| m.method)
            .is_some_and(|m| m == "initialize")
}

/// 429 (this principal's sessions) or 503 (all sessions) for a session over the limit,
/// once it is recorded.
fn sessions_full(
    state: &AuthState,
    request: &Request,
    full: Full,
) -> impl Future<Output = Response> + Send + 'static {
    let (status, rejection, error) = match full {
        Full::Principal(n) => (
            StatusCode::TOO_MANY_REQUESTS,
            Rejection::SessionsPerPrincipal,
            format!(
                "too many sessions: this caller already holds {n} (`server.max_sessions_per_principal`); close one or let it expire"
            ),
        ),
        Full::Total(n) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Rejection::SessionsTotal,
            format!(
                "too many sessions: the proxy holds its maximum of {n} (`server.max_sessions`)"
            ),
        ),
    };
    state.metrics.reject(rejection);
    if let Some(recorded) = request.extensions().get::<ids::Recorded>() {
        // Recorded here, with its reason: not again as a transport refusal.
        recorded.set();
    }
    let detail = BTreeMap::from([("reason".to_owned(), error.clone())]);
    let record = refused(state, request, Kind::Request, status.as_u16(), detail);
    async move {
        record.await;
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        response
    }
}

/// What the record of a refused request holds: the proxy's request id, the client's own
/// (bounded), the client address, the principal when known, the method and path.
struct Refusal {
    request_id: Option<String>,
    client_request_id: Option<String>,
    client: ClientAddr,
    principal: Option<Arc<Principal>>,
    session: Option<String>,
    action: String,
}

impl Refusal {
    fn of(request: &Request) -> Refusal {
        let headers = request.headers();
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(bounded);
        Refusal {
            request_id: request
                .extensions()
                .get::<ids::RequestId>()
                .map(|id| id.0.clone()),
            client_request_id: text("x-request-id"),
            client: request
                .extensions()
                .get::<ClientAddr>()
                .copied()
                .unwrap_or(ClientAddr(None)),
            principal: request.extensions().get::<Arc<Principal>>().cloned(),
            session: text(SESSION_HEADER),
            action: format!("http {} {}", request.method(), request.uri().path()),
        }
    }

    fn record(
        self,
        state: &AuthState,
        kind: Kind,
        mut detail: BTreeMap<String, String>,
        status: u16,
    ) -> impl Future<Output = ()> + Send + 'static {
        if self.client.0.is_some() {
            detail.insert("client".to_owned(), self.client.text());
        }
        if let Some(id) = self.client_request_id {
            detail.insert("client_request_id".to_owned(), id);
        }
        let hub = state.hub.clone();
        async move {
            hub.record_refusal(crate::hub::audit::Refused {
                kind,
                request_id: self.request_id,
                session: self.session,
                principal: self.principal,
                action: self.action,
                status,
                detail,
            })
            .await;
        }
    }
}

/// Records a request refused before MCP saw it.
fn refused(
    state: &AuthState,
    request: &Request,
    kind: Kind,
    status: u16,
    detail: BTreeMap<String, String>,
) -> impl Future<Output = ()> + Send + 'static {
    Refusal::of(request).record(state, kind, detail, status)
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
