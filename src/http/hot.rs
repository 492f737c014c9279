//! The MCP endpoint's hot path, served here rather than by rmcp's streamable-HTTP service:
//! a session's `tools/call`, `resources/read`, `prompts/get`, lists and `ping`, the
//! client's `notifications/cancelled` for those calls, and its answers to requests sent on
//! their streams. It sits innermost, after authentication, the body limits and session
//! ownership, and in front of rmcp, which serves everything else (initialize, the GET
//! stream, DELETE, stateless 2026-07-28 requests, batches) and every request the checks
//! here are not sure of — so rmcp's own answer (403, 406, 415, 400, 404) stays the one
//! clients get.
//!
//! One parse of the JSON-RPC envelope: the method, the id, and the params as raw JSON,
//! typed once for the session's handler (the same handler, audit layer and call stack rmcp
//! drives). The answer is `application/json` when the call produces nothing but its
//! result; a call whose backend sends progress, logging, sampling, elicitation or roots
//! gets a `text/event-stream` answer instead, with those messages in order before the
//! result (see [`crate::backend::CallStream`]).
//!
//! Each call is polled by the request's own task and, should the client go away, finished
//! on a task of its own ([`detached`]): as under rmcp, a client that goes away does not
//! cancel a call half way through its audit record.

use std::sync::Arc;

use futures::FutureExt;
use tracing::Instrument;

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{
        CallToolRequest, CallToolRequestParams, ClientRequest, ClientResult, GetPromptRequest,
        GetPromptRequestParams, ListPromptsRequest, ListResourceTemplatesRequest,
        ListResourcesRequest, ListToolsRequest, PaginatedRequestParams, PingRequest,
        ProtocolVersion, ReadResourceRequest, ReadResourceRequestParams, RequestId,
        RequestMetaObject, ServerJsonRpcMessage,
    },
    service::{RequestContext, Service},
};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::{endpoint::Next, sessions::Sessions};

mod detached;
mod stream;
use crate::{
    backend::CallStream,
    envelope::Envelope,
    mcp::live::{LiveSession, LiveSessions},
};

/// How long a call may take to be answered as plain JSON.
const JSON_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// What the hot path needs: the live sessions, rmcp's session table (to keep a session
/// in use from expiring), and the DNS-rebinding allow-list rmcp checks too.
pub struct Hot {
    pub live: Arc<LiveSessions>,
    pub sessions: Arc<Sessions>,
    pub allowed_hosts: AllowedHosts,
    /// How often (ms) a session in use is shown to rmcp's worker, whose idle timer would
    /// otherwise expire it: a quarter of the idle timeout.
    pub touch_every_ms: u64,
}

/// The middleware: serves what it can, hands everything else to rmcp unchanged.
pub async fn serve(hot: Arc<Hot>, request: Request, next: Next) -> Response {
    if request.method() == Method::DELETE {
        return end_session(&hot, request, next).await;
    }
    if request.method() != Method::POST && request.method() != Method::GET {
        return next.run(request).await;
    }
    let id = request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok());
    let Some((id, session)) = id.and_then(|id| Some((id, hot.live.get(id)?))) else {
        return next.run(request).await;
    };
    if session.due_for_touch(hot.touch_every_ms) {
        hot.sessions.touch(id).await;
    }
    if request.method() == Method::GET {
        // A call stream of the hot path, resumed; every other GET is rmcp's.
        let resumed = request
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .filter(|_| get_headers_ok(request.headers(), &hot.allowed_hosts))
            .and_then(|last| stream::resume(&session, last));
        return match resumed {
            Some(response) => response,
            None => next.run(request).await,
        };
    }
    if !headers_ok(request.headers(), &hot.allowed_hosts) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // Already read whole by the body layer: no copy.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let handled = Envelope::parse(&bytes).and_then(|envelope| handle(&session, envelope));
    match handled {
        Some(Handled::Accepted) => StatusCode::ACCEPTED.into_response(),
        Some(Handled::Call(call_of)) => {
            let (request, meta, id) = *call_of;
            call(session, request, meta, id, parts).await
        }
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

/// A session the client ends (rmcp answers the DELETE, 204 here) takes its calls in flight with it,
/// as rmcp does for the requests it serves: each is cancelled (its backend told), and the
/// id serves nothing more here.
async fn end_session(hot: &Hot, request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut response = next.run(request).await;
    if let Some(id) = id
        && response.status().is_success()
        && let Some(session) = hot.live.get(&id)
    {
        hot.live.remove(&id);
        session.cancel_all();
    }
    // rmcp answers 202; the session is gone, nothing is pending: 204, which clients
    // expect (the Python SDK warns on anything but 200 or 204).
    if response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

enum Handled {
    Accepted,
    Call(Box<(ClientRequest, RequestMetaObject, RequestId)>),
}

/// What the hot path serves of this message; `None` hands it to rmcp.
fn handle(session: &LiveSession, envelope: Envelope<'_>) -> Option<Handled> {
    if envelope.jsonrpc.as_deref() != Some("2.0") {
        return None;
    }
    match (envelope.method.as_deref(), envelope.id) {
        (Some(method), Some(id)) => {
            let (request, meta) = typed(method, envelope.params)?;
            crate::trace::name_method(method);
            // A per-request protocol revision (2026-07-28) is rmcp's to negotiate.
            if meta
                .0
                .keys()
                .any(|k| k.starts_with("io.modelcontextprotocol/"))
            {
                return None;
            }
            Some(Handled::Call(Box::new((request, meta, id))))
        }
        (Some("notifications/cancelled"), None) => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Cancelled {
                request_id: RequestId,
            }
            let cancelled: Cancelled = serde_json::from_str(envelope.params?.get()).ok()?;
            session
                .cancel(&cancelled.request_id)
                .then_some(Handled::Accepted)
        }
        (None, Some(RequestId::String(id))) if id.starts_with("warden-") => {
            let answer = match (envelope.result, envelope.error) {
                (Some(result), None) => {
                    Ok(serde_json::from_str::<ClientResult>(result.get()).ok()?)
                }
                (None, Some(error)) => Err(serde_json::from_str::<McpError>(error.get()).ok()?),
                _ => return None,
            };
            session.answer(&id, answer).then_some(Handled::Accepted)
        }
        _ => None,
    }
}

/// The request a hot method names, typed from its raw params, and its `_meta` (which
/// rmcp, too, takes out of the params into the request's context); `None` for any other
/// method and for params that do not parse (rmcp answers those).
fn typed(method: &str, params: Option<&RawValue>) -> Option<(ClientRequest, RequestMetaObject)> {
    fn parse<'a, P: Deserialize<'a>>(params: Option<&'a RawValue>) -> Option<P> {
        serde_json::from_str(params?.get()).ok()
    }
    fn page(
        params: Option<&RawValue>,
    ) -> Option<(Option<PaginatedRequestParams>, RequestMetaObject)> {
        let Some(raw) = params else {
            return Some((None, RequestMetaObject::default()));
        };
        let mut page: PaginatedRequestParams = serde_json::from_str(raw.get()).ok()?;
        let meta = page.meta.take().unwrap_or_default();
        Some((Some(page), meta))
    }
    Some(match method {
        "tools/call" => {
            let mut p: CallToolRequestParams = parse(params)?;
            let meta = p.meta.take().unwrap_or_default();
            (
                ClientRequest::CallToolRequest(CallToolRequest::new(p)),
                meta,
            )
        }
        "resources/read" => {
            let mut p: ReadResourceRequestParams = parse(params)?;
            let meta = p.meta.take().unwrap_or_default();
            (
                ClientRequest::ReadResourceRequest(ReadResourceRequest::new(p)),
                meta,
            )
        }
        "prompts/get" => {
            let mut p: GetPromptRequestParams = parse(params)?;
            let meta = p.meta.take().unwrap_or_default();
            (
                ClientRequest::GetPromptRequest(GetPromptRequest::new(p)),
                meta,
            )
        }
        "ping" => {
            // Params of a ping carry nothing but, at most, `_meta`.
            let meta = match params {
                Some(raw) => parse::<PingParams>(Some(raw))?.meta.unwrap_or_default(),
                None => RequestMetaObject::default(),
            };
            (ClientRequest::PingRequest(PingRequest::default()), meta)
        }
        "tools/list" => {
            let (params, meta) = page(params)?;
            let request = ListToolsRequest {
                params,
                ..Default::default()
            };
            (ClientRequest::ListToolsRequest(request), meta)
        }
        "prompts/list" => {
            let (params, meta) = page(params)?;
            let request = ListPromptsRequest {
                params,
                ..Default::default()
            };
            (ClientRequest::ListPromptsRequest(request), meta)
        }
        "resources/list" => {
            let (params, meta) = page(params)?;
            let request = ListResourcesRequest {
                params,
                ..Default::default()
            };
            (ClientRequest::ListResourcesRequest(request), meta)
        }
        "resources/templates/list" => {
            let (params, meta) = page(params)?;
            let request = ListResourceTemplatesRequest {
                params,
                ..Default::default()
            };
            (ClientRequest::ListResourceTemplatesRequest(request), meta)
        }
        _ => return None,
    })
}

#[derive(Deserialize)]
struct PingParams {
    #[serde(rename = "_meta", default)]
    meta: Option<RequestMetaObject>,
}

/// Whether the request's headers are ones rmcp would serve as they are; anything else
/// goes to rmcp, whose refusal is the answer.
fn headers_ok(headers: &HeaderMap, allowed_hosts: &AllowedHosts) -> bool {
    let has = |name: &str| headers.contains_key(name);
    // Browsers' requests (Origin) and the SEP-2243 routing headers are checked by rmcp
    // against its own rules and the body.
    if has(header::ORIGIN.as_str()) || has("mcp-method") || has("mcp-name") {
        return false;
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| essence(v).eq_ignore_ascii_case("application/json"));
    let accepts = |kind: &str| {
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|a| essence(a).eq_ignore_ascii_case(kind))
    };
    let accepts = accepts("application/json") && accepts("text/event-stream");
    let version = headers
        .get("mcp-protocol-version")
        .map(|v| {
            v.to_str().is_ok_and(|v| {
                ProtocolVersion::KNOWN_VERSIONS
                    .iter()
                    .any(|k| k.as_str() == v)
            })
        })
        .unwrap_or(true);
    json && accepts && version && host_allowed(headers, allowed_hosts)
}

/// A media type without its parameters.
fn essence(value: &str) -> &str {
    value.split_once(';').map_or(value, |(e, _)| e).trim()
}

/// Whether a GET that resumes a stream is one rmcp would serve as it is.
fn get_headers_ok(headers: &HeaderMap, allowed_hosts: &AllowedHosts) -> bool {
    let accepts_sse = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"));
    accepts_sse && !headers.contains_key(header::ORIGIN) && host_allowed(headers, allowed_hosts)
}

/// rmcp's DNS-rebinding rule, its allow-list read once: the Host's name (and port, when
/// the entry names one) is on the list; an empty list allows any.
pub struct AllowedHosts(Vec<(String, Option<u16>)>);

impl AllowedHosts {
    pub fn new(entries: &[String]) -> Self {
        let name = |h: &str| h.trim_matches(['[', ']']).to_ascii_lowercase();
        AllowedHosts(
            entries
                .iter()
                .map(|entry| entry.trim())
                .filter(|entry| !entry.is_empty())
                .map(|entry| match entry.parse::<http::uri::Authority>() {
                    Ok(a) => (name(a.host()), a.port_u16()),
                    Err(_) => (name(entry), None),
                })
                .collect(),
        )
    }
}

fn host_allowed(headers: &HeaderMap, allowed: &AllowedHosts) -> bool {
    if allowed.0.is_empty() {
        return true;
    }
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<http::uri::Authority>().ok())
    else {
        return false;
    };
    let (name, port) = (host.host().trim_matches(['[', ']']), host.port_u16());
    allowed
        .0
        .iter()
        .any(|(n, p)| n.eq_ignore_ascii_case(name) && p.is_none_or(|p| Some(p) == port))
}

/// Runs one call on the session's handler and answers it: JSON when nothing but the
/// result comes, an event stream as soon as the backend sends something for the call.
async fn call(
    session: Arc<LiveSession>,
    request: ClientRequest,
    meta: RequestMetaObject,
    id: RequestId,
    parts: http::request::Parts,
) -> Response {
    let Some(handler) = session.handler() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(ct) = session.begin_call(id.clone()) else {
        let refused = McpError::invalid_request(
            format!("request id {id} is already in use by a call in flight in this session"),
            None,
        );
        let message = ServerJsonRpcMessage::error(refused, Some(id));
        // 400: no handler saw it, so the authentication layer records the refusal.
        let mut response = json(crate::envelope::to_vec(&message).unwrap_or_default());
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    let (tx, mut rx) = mpsc::channel(32);
    let mut ctx = RequestContext::new(id.clone(), session.peer.clone());
    ctx.meta = meta;
    ctx.ct = ct;
    ctx.extensions.insert(parts);
    ctx.extensions.insert(CallStream(tx));
    let running = Running(session.clone(), id.clone());
    let answered = async move {
        // rmcp's own dispatch: it also shapes the result for the session's revision
        // (no `resultType` for older clients, error codes), as it does for its own calls.
        // Boxed where it is made: the dispatch future is as large as the largest of the
        // handler's methods (kilobytes), and every wrapper below would copy it again.
        let result = Box::pin(Service::<RoleServer>::handle_request(
            &handler, request, ctx,
        ))
        .await;
        let call_id = running.1.clone();
        drop(running);
        let message = match result {
            Ok(result) => ServerJsonRpcMessage::response(result, call_id),
            Err(error) => ServerJsonRpcMessage::error(error, Some(call_id)),
        };
        crate::envelope::to_vec(&message).unwrap_or_default()
    };
    // A call that panics is answered as an internal error, its connection kept.
    let panicked = id.clone();
    let answered = std::panic::AssertUnwindSafe(answered)
        .catch_unwind()
        .map(move |answer| {
            answer.unwrap_or_else(|_| {
                let error = McpError::internal_error("the call failed inside the gateway", None);
                crate::envelope::to_vec(&ServerJsonRpcMessage::error(error, Some(panicked)))
                    .unwrap_or_default()
            })
        });
    // The request's span (its id) goes with the call, wherever it finishes.
    let mut task = detached::Detached::new(answered.in_current_span());
    let first = tokio::select! {
        biased;
        Some(first) = rx.recv() => Some(first),
        done = &mut task => return json(done),
        // A slow call is answered on a stream: clients count a POST awaiting JSON against
        // their limit of requests in progress (rmcp's: 16), a stream not.
        _ = tokio::time::sleep(JSON_WAIT) => None,
    };
    stream::answer(session, first, rx, task)
}

/// A call in flight in its session until this is dropped: when it is answered, and even
/// if it panicked, so its id is free again either way.
struct Running(Arc<LiveSession>, RequestId);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.end_call(&self.1);
    }
}

fn json(body: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
