//! Calls to a streamable-HTTP backend sent by the proxy itself, beside rmcp's client: one
//! POST on the backend connection's keep-alive pool, the answer read to its end and parsed
//! once. rmcp still opens the connection (the `initialize` handshake), keeps the backend's
//! GET stream, reads lists and reconnects; [`Recording`] wraps its HTTP client to learn the
//! session id and headers it negotiated, and calls reuse them.
//!
//! What the backend sends on a call's response stream before its answer — progress,
//! logging, sampling, elicitation, roots — belongs to that call: it goes to the relay with
//! the call's own origin, in the order it came. A stream the backend closes before it
//! answered is resumed with `Last-Event-ID` (SSE polling, as the reference server does).
//!
//! A session the backend no longer knows (404) hands the call to rmcp's client, which opens
//! a new session; calls that follow use it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::{StreamExt, stream::BoxStream};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use rmcp::{
    ErrorData as McpError,
    model::{
        CallToolResult, CancelledNotificationParam, ClientJsonRpcMessage, ClientNotification,
        ClientRequest, GetMeta, ProgressToken, RequestId, ServerJsonRpcMessage, ServerResult,
    },
};
use sse_stream::Sse;
use tokio_util::sync::CancellationToken;

use super::{Origin, relay::Relay};
use crate::sync::Locked;
use crate::{envelope::Envelope, error::CallError};

mod events;
mod recording;
mod wire;
pub use recording::Recording;
use wire::{Answer, Wire};

/// A request as sent: the JSON-RPC frame around the typed request, serialized in place.
#[derive(serde::Serialize)]
struct Outgoing<'a> {
    jsonrpc: &'static str,
    id: &'a RequestId,
    #[serde(flatten)]
    request: &'a ClientRequest,
}

/// A call as the proxy sends it on its own path (HTTP or a stdio pipe): under `id`, with
/// `id` as the progress token when the client asked for progress (the relay maps it back
/// to the client's own), serialized by reference (a call this path cannot deliver goes
/// through rmcp's client, which sets its own token).
pub(super) fn frame(
    id: &RequestId,
    request: &mut ClientRequest,
    origin: &Origin,
) -> Result<Vec<u8>, CallError> {
    if origin.progress_token.is_some() {
        request
            .get_meta_mut()
            .set_progress_token(ProgressToken(id.clone()));
    }
    crate::envelope::to_vec(&Outgoing {
        jsonrpc: "2.0",
        id,
        request,
    })
    .map_err(|e| CallError::Internal(e.to_string()))
}
/// The largest answer read from a backend (a tool's result included), and the largest
/// event on a call's stream.
const MAX_ANSWER: usize = 64 * 1024 * 1024;
/// How many times a closed call stream is resumed before the call fails.
const MAX_RESUMES: usize = 16;

/// What the direct path needs of one HTTP backend connection.
#[derive(Clone)]
pub struct Endpoint {
    /// rmcp's client (see [`Recording`]).
    client: reqwest::Client,
    url: Arc<str>,
    /// How calls reach the backend; `None` for a URL neither client takes (rmcp's then).
    wire: Option<Wire>,
    /// `Authorization: Bearer …`, marked sensitive.
    auth: Option<HeaderValue>,
    seen: Arc<Mutex<Option<Negotiated>>>,
    /// Signs who each call is for (a child mcp-warden, `actor = true`).
    actor: Option<Arc<crate::federation::ActorSigner>>,
}

/// What rmcp's client sends with every request of its session.
#[derive(Clone)]
struct Negotiated {
    session: Arc<str>,
    headers: HashMap<HeaderName, HeaderValue>,
}

/// The direct path's outcome: the call's answer, or `None` when rmcp's client must send
/// it instead (no session yet, or the backend lost the session).
pub type Direct = Option<Result<ServerResult, CallError>>;

impl Endpoint {
    pub fn new(client: reqwest::Client, url: &str, auth: Option<String>, keep_alive: bool) -> Self {
        Endpoint {
            wire: Wire::new(client.clone(), url, keep_alive),
            client,
            url: Arc::from(url),
            auth: auth.and_then(|token| {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
                value.set_sensitive(true);
                Some(value)
            }),
            seen: Arc::default(),
            actor: None,
        }
    }

    /// Calls carry who they are for, signed by `actor` (a parent of a child mcp-warden).
    pub fn with_actor(mut self, actor: Option<Arc<crate::federation::ActorSigner>>) -> Self {
        self.actor = actor;
        self
    }

    /// The `warden-actor` header of a call made for `origin`: its principal, the request's
    /// id as its record names it, the decision that allowed it.
    fn actor_header(&self, origin: &Origin) -> Option<HeaderValue> {
        let signer = self.actor.as_ref()?;
        let request_id = origin
            .recorded
            .as_ref()
            .map_or_else(|| origin.request_id.to_string(), |r| r.request.clone());
        signer.header(&origin.principal, &request_id, origin.notes.receipt())
    }

    /// rmcp's HTTP client, recording the session it negotiates into this endpoint.
    pub fn recording(&self) -> Recording {
        Recording {
            inner: self.client.clone(),
            seen: self.seen.clone(),
        }
    }

    fn negotiated(&self) -> Option<Negotiated> {
        self.seen.locked().clone()
    }

    /// The headers of every request on the session: what rmcp sends, the session id and
    /// the credentials.
    fn headers(&self, session: &Negotiated, accept: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(session.headers.len() + 4);
        for (name, value) in &session.headers {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
        if let Ok(id) = HeaderValue::from_str(&session.session) {
            headers.insert("mcp-session-id", id);
        }
        if let Some(auth) = &self.auth {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        headers
    }

    async fn post(
        &self,
        session: &Negotiated,
        body: Vec<u8>,
        actor: Option<HeaderValue>,
    ) -> Result<Answer, String> {
        let wire = self.wire.as_ref().ok_or("no HTTP client for this URL")?;
        let mut headers = self.headers(session, "application/json, text/event-stream");
        if let Some(actor) = actor {
            headers.insert(crate::federation::HEADER, actor);
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // The backend's spans join the call's trace.
        crate::trace::inject(&mut headers);
        wire.send(Method::POST, headers, body).await
    }

    /// Sends one request and reads its answer. `relay` takes what the backend sends for
    /// the call before answering, with the call's `origin`.
    pub async fn request(
        &self,
        name: &str,
        request: &mut ClientRequest,
        origin: &Origin,
        relay: &Relay,
        cancel: &CancellationToken,
    ) -> Direct {
        self.wire.as_ref()?;
        let session = self.negotiated()?;
        let id = RequestId::String(crate::ids::request_id().into());
        let tool = matches!(request, ClientRequest::CallToolRequest(_));
        let body = match frame(&id, request, origin) {
            Ok(body) => body,
            Err(e) => return Some(Err(e)),
        };
        let mut guard = CancelOnDrop {
            endpoint: Some((self.clone(), session.clone())),
            id: id.clone(),
        };
        let exchange = self.exchange(name, &session, body, (&id, tool), origin, relay);
        let outcome = tokio::select! {
            outcome = exchange => outcome,
            _ = cancel.cancelled() => return Some(Err(CallError::Cancelled)),
        };
        guard.endpoint = None;
        outcome
    }

    async fn exchange(
        &self,
        name: &str,
        session: &Negotiated,
        body: Vec<u8>,
        (id, tool): (&RequestId, bool),
        origin: &Origin,
        relay: &Relay,
    ) -> Direct {
        let unavailable = |e: &dyn std::fmt::Display| {
            Some(Err(CallError::UnavailableBecause {
                backend: name.to_owned(),
                reason: e.to_string(),
            }))
        };
        let actor = match &self.actor {
            Some(_) => match self.actor_header(origin) {
                Some(value) => Some(value),
                None => {
                    return unavailable(&"who the call is for could not be signed");
                }
            },
            None => None,
        };
        let response = match self.post(session, body, actor).await {
            Ok(response) => response,
            Err(e) => return unavailable(&e),
        };
        let status = response.status;
        // A session the backend lost, or a redirect the plain client does not follow:
        // rmcp's client sends the call.
        if status == StatusCode::NOT_FOUND || status.is_redirection() {
            return None;
        }
        if !status.is_success() {
            return unavailable(&format!("HTTP {status}"));
        }
        if !response.sse {
            let bytes = match read_bounded(response).await {
                Ok(bytes) => bytes,
                Err(e) => return unavailable(&e),
            };
            return match answer(name, &bytes, id, tool) {
                Some(result) => Some(result),
                None => unavailable(&"the answer is not a JSON-RPC response to the call"),
            };
        }
        let mut events = events::events(response.body, MAX_ANSWER);
        let mut last_event: Option<String> = None;
        let mut resumes = 0;
        loop {
            match events.next().await {
                Some(Ok(event)) => {
                    if let Some(event_id) = &event.id {
                        last_event = Some(event_id.to_string());
                    }
                    let Some(data) = event.data.filter(|d| !d.trim().is_empty()) else {
                        continue;
                    };
                    if let Some(result) = answer(name, data.as_bytes(), id, tool) {
                        return Some(result);
                    }
                    self.relay_message(session, data.as_bytes(), origin, relay)
                        .await;
                }
                Some(Err(e)) => return unavailable(&e),
                None => {
                    // Closed before the answer: resume where it stopped, if it said where.
                    let Some(from) = last_event.clone() else {
                        return unavailable(
                            &"the backend closed the call's stream without answering",
                        );
                    };
                    resumes += 1;
                    if resumes > MAX_RESUMES {
                        return unavailable(&"the backend kept closing the call's stream");
                    }
                    match self.resume(session, &from).await {
                        Ok(stream) => events = stream,
                        Err(e) => return unavailable(&e),
                    }
                }
            }
        }
    }

    /// Reopens a call's stream after `last_event` (GET with `Last-Event-ID`).
    async fn resume(
        &self,
        session: &Negotiated,
        last_event: &str,
    ) -> Result<BoxStream<'static, Result<Sse, String>>, String> {
        let wire = self.wire.as_ref().ok_or("no HTTP client for this URL")?;
        let mut headers = self.headers(session, "text/event-stream");
        let last = HeaderValue::from_str(last_event).map_err(|e| e.to_string())?;
        headers.insert("last-event-id", last);
        let response = wire.send(Method::GET, headers, Vec::new()).await?;
        if !response.status.is_success() {
            return Err(format!(
                "resuming the call's stream: HTTP {}",
                response.status
            ));
        }
        Ok(events::events(response.body, MAX_ANSWER))
    }

    /// A message on a call's stream that is not its answer: a notification or a request
    /// of the backend's, for the call's client.
    async fn relay_message(
        &self,
        session: &Negotiated,
        data: &[u8],
        origin: &Origin,
        relay: &Relay,
    ) {
        let message = match serde_json::from_slice::<ServerJsonRpcMessage>(data) {
            Ok(message) => message,
            Err(e) => {
                tracing::debug!(backend = %relay.name, error = %e, "unreadable message on a call's stream, skipped");
                return;
            }
        };
        match message {
            ServerJsonRpcMessage::Notification(notification) => {
                relay
                    .notification(notification.notification, Some(origin.clone()))
                    .await;
            }
            ServerJsonRpcMessage::Request(request) => {
                let answer = relay.request(request.request, Some(origin.clone())).await;
                let reply = match answer {
                    Ok(result) => ClientJsonRpcMessage::response(result, request.id),
                    Err(error) => ClientJsonRpcMessage::error(error, Some(request.id)),
                };
                self.send_message(session, &reply).await;
            }
            _ => {}
        }
    }

    /// Posts a response or notification of the proxy's to the backend (202 expected).
    async fn send_message(&self, session: &Negotiated, message: &ClientJsonRpcMessage) {
        let Ok(body) = crate::envelope::to_vec(message) else {
            return;
        };
        if let Err(e) = self.post(session, body, None).await {
            tracing::debug!(url = %self.url, error = %e, "a message to the backend was not delivered");
        }
    }
}

/// The call's answer, when `data` is the JSON-RPC response to `id`. A tool's result is
/// read as one directly (`tool`), unless it may be another kind (input rounds, a task):
/// `ServerResult` is an untagged union of twenty kinds, tried in turn from a buffered copy.
pub(super) fn answer(
    name: &str,
    data: &[u8],
    id: &RequestId,
    tool: bool,
) -> Option<Result<ServerResult, CallError>> {
    let envelope = Envelope::parse(data)?;
    if envelope.id.as_ref() != Some(id) {
        return None;
    }
    let unreadable = |e: serde_json::Error| {
        CallError::Internal(format!("{name} sent an unreadable result: {e}"))
    };
    Some(match (envelope.result, envelope.error) {
        (Some(result), _)
            if tool
                && !result.get().contains("\"inputRequests\"")
                && !result.get().contains("\"task\"") =>
        {
            match serde_json::from_str::<CallToolResult>(result.get()) {
                Ok(result) => Ok(ServerResult::CallToolResult(result)),
                Err(_) => serde_json::from_str::<ServerResult>(result.get()).map_err(unreadable),
            }
        }
        (Some(result), _) => serde_json::from_str::<ServerResult>(result.get()).map_err(unreadable),
        (None, Some(error)) => match serde_json::from_str::<McpError>(error.get()) {
            Ok(error) => Err(CallError::from_service(
                name,
                rmcp::ServiceError::McpError(error),
            )),
            Err(e) => Err(CallError::Internal(format!(
                "{name} sent an unreadable error: {e}"
            ))),
        },
        (None, None) => return None,
    })
}

async fn read_bounded(mut response: Answer) -> Result<Vec<u8>, String> {
    if response
        .content_length
        .is_some_and(|n| n > MAX_ANSWER as u64)
    {
        return Err("the answer is too large".to_owned());
    }
    let mut body = Vec::with_capacity(response.content_length.unwrap_or(0) as usize);
    while let Some(chunk) = response.body.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err("the answer is too large".to_owned());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Tells the backend a call was abandoned (cancelled by the client, timed out, or its
/// caller gone), unless it was answered first.
struct CancelOnDrop {
    endpoint: Option<(Endpoint, Negotiated)>,
    id: RequestId,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some((endpoint, session)) = self.endpoint.take() else {
            return;
        };
        let params = CancelledNotificationParam::new(
            Some(self.id.clone()),
            Some("cancelled by the client".to_owned()),
        );
        let message =
            ClientJsonRpcMessage::notification(ClientNotification::CancelledNotification(
                rmcp::model::CancelledNotification::new(params),
            ));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { endpoint.send_message(&session, &message).await });
        }
    }
}
