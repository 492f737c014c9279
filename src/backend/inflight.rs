//! Calls in flight on one backend connection, and the client session each came from.
//!
//! Backend connections are shared by all client sessions, so when a backend sends a
//! request (sampling, elicitation, roots) or a notification (progress, logging) the proxy
//! must find the client session that caused it. Progress carries a token the proxy chose;
//! over streamable HTTP a server request arrives on the response stream of the call it
//! belongs to. Over stdio nothing on the wire says which call it belongs to: it goes to the
//! only session with calls in flight, and is refused when several sessions have calls in
//! flight (refused, never guessed: a guess could hand one principal's data to another).
//!
//! A call is known here from before it is sent ([`Inflight::expect`]) until its answer: a
//! fast backend can ask for sampling before the send returns the call's id, and such a
//! request must find the call too.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::authn::Principal;
use crate::sync::Locked;
use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{
        ClientCapabilities, ClientResult, GetExtensions, ProgressToken, RequestId,
        ServerNotification, ServerRequest,
    },
    service::{InboundStreamOrigin, Peer},
};

/// The client side of a forwarded call.
#[derive(Debug, Clone)]
pub struct Origin {
    pub session: u64,
    /// How the call's own record names it, for the records of what the call causes (none
    /// when the proxy keeps no audit log: nothing to compute on the call's path then).
    pub recorded: Option<RecordedAs>,
    /// Who made the call: server-initiated requests it causes are decided for them.
    pub principal: Arc<Principal>,
    pub peer: Peer<RoleServer>,
    pub request_id: RequestId,
    pub progress_token: Option<ProgressToken>,
    /// The client came over stdio (`serve --stdio`).
    pub stdio: bool,
    /// The client's address (`""` when unknown), for policies deciding what its call causes.
    pub client: String,
    /// The call's own response stream, when the HTTP hot path serves it (`None`: the
    /// session's rmcp peer routes what the call causes).
    pub stream: Option<CallStream>,
    /// The client's revision and capabilities as this request states them: a client on
    /// 2026-07-28 carries its capabilities in each request (`None`: a client on the
    /// handshake revisions, whose session holds them).
    pub modern: Option<Arc<ClientCapabilities>>,
    /// The request's audit notes (its decision, guard, redactions).
    pub notes: crate::stack::audit::Notes,
}

/// A call's own response stream: what the backend sends for the call is written there,
/// in order, before the call's result.
#[derive(Debug, Clone)]
pub struct CallStream(pub tokio::sync::mpsc::Sender<ToClient>);

/// What goes to the client on a call's stream. Boxed: every call opens such a channel,
/// whose first block holds 32 messages (10 KB unboxed), and most calls send none.
#[derive(Debug)]
pub enum ToClient {
    Notify(Box<ServerNotification>),
    /// A request the client must answer; the answer comes back through the sender.
    Ask(Box<(ServerRequest, Answer)>),
}

/// The client's answer to a request sent on a call's stream.
pub type Answer = tokio::sync::oneshot::Sender<Result<ClientResult, McpError>>;

/// The ids a call's record carries.
#[derive(Debug, Clone)]
pub struct RecordedAs {
    /// The session id as the client knows it.
    pub session: Option<String>,
    /// The call's `request_id` (the proxy's id; the client's JSON-RPC id where the
    /// transport has none of the proxy's).
    pub request: String,
}

impl Origin {
    /// How the client reached the proxy, for policies (`context.request.transport`).
    pub fn transport(&self) -> &'static str {
        if self.stdio { "stdio" } else { "http" }
    }

    /// What the client can be asked (roots, sampling, elicitation), as a backend on
    /// 2026-07-28 is told in each request: the client's own word, never more. The proxy's
    /// shared connections declare all three; this call's client may support none.
    pub fn capabilities(&self) -> ClientCapabilities {
        let own = match &self.modern {
            Some(caps) => Some((**caps).clone()),
            None => self.peer.peer_info().map(|info| info.capabilities.clone()),
        }
        .unwrap_or_default();
        let mut relayed = ClientCapabilities::default();
        relayed.roots = own.roots;
        relayed.sampling = own.sampling;
        relayed.elicitation = own.elicitation;
        relayed
    }

    /// Sends a notification the call caused to its client: on the call's own stream while
    /// it is open, else through the session. A client that went away is not an error.
    pub async fn notify(&self, notification: ServerNotification) {
        let notification = match &self.stream {
            Some(stream) => match stream
                .0
                .send(ToClient::Notify(Box::new(notification)))
                .await
            {
                Ok(()) => return,
                // The call was answered first (the backend sent this on another stream):
                // the session's own stream still takes it.
                Err(tokio::sync::mpsc::error::SendError(ToClient::Notify(n))) => *n,
                Err(_) => return,
            },
            None => notification,
        };
        let _ = self.peer.send_notification(notification).await;
    }

    /// Sends a request the call caused to its client and waits for the answer.
    pub async fn ask(&self, mut request: ServerRequest) -> Result<ClientResult, McpError> {
        if let Some(stream) = &self.stream {
            let (answer, answered) = tokio::sync::oneshot::channel();
            let gone =
                || McpError::internal_error("the client's call ended before it answered", None);
            stream
                .0
                .send(ToClient::Ask(Box::new((request, answer))))
                .await
                .map_err(|_| gone())?;
            return answered.await.map_err(|_| gone())?;
        }
        // Deliver on the stream of the call that caused it. Sent from a fresh task so the
        // backend's request id (a task-local of the relay's handler) does not tag it instead.
        request
            .extensions_mut()
            .insert(rmcp::service::OriginatingRequestId(self.request_id.clone()));
        let peer = self.peer.clone();
        match tokio::spawn(async move { peer.send_request(request).await }).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(rmcp::ServiceError::McpError(e))) => Err(e),
            Ok(Err(e)) => Err(McpError::internal_error(
                format!("client did not answer: {e}"),
                None,
            )),
            Err(_) => Err(McpError::internal_error("relay failed", None)),
        }
    }
}

/// Each call's origin is held once, shared by the maps that name it (a call is in two
/// while in flight, then among the ended ones): no copy of it per map.
#[derive(Debug, Default)]
struct Maps {
    by_id: HashMap<RequestId, Arc<Origin>>,
    by_token: HashMap<ProgressToken, Arc<Origin>>,
    /// Calls being sent, whose backend id is not known yet, by a number of our own.
    sending: HashMap<u64, Arc<Origin>>,
    next: u64,
    /// Calls that ended within [`GRACE`]: a backend that sends a call's messages on its GET
    /// stream may deliver the last ones after the call's answer.
    ended: std::collections::VecDeque<(std::time::Instant, Arc<Origin>)>,
}

/// How long an ended call still counts, for messages that arrive outside its stream.
const GRACE: std::time::Duration = std::time::Duration::from_millis(500);
/// At most this many ended calls are remembered (the oldest go first).
const ENDED_MAX: usize = 256;

impl Maps {
    fn ended(&mut self, origin: Arc<Origin>) {
        let now = std::time::Instant::now();
        while self
            .ended
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > GRACE)
            || self.ended.len() >= ENDED_MAX
        {
            self.ended.pop_front();
        }
        self.ended.push_back((now, origin));
    }
}

#[derive(Debug, Default, Clone)]
pub struct Inflight(Arc<Mutex<Maps>>);

impl Inflight {
    /// Records a call about to be sent, until the returned guard drops (once it is
    /// [`register`](Self::register)ed, or the send failed).
    pub fn expect(&self, origin: Arc<Origin>) -> Sending {
        let mut maps = self.lock();
        maps.next += 1;
        let key = maps.next;
        maps.sending.insert(key, origin);
        Sending {
            inflight: self.clone(),
            key,
        }
    }

    /// Records a call; it is forgotten when the returned guard drops.
    pub fn register(
        &self,
        id: RequestId,
        token: ProgressToken,
        origin: Arc<Origin>,
    ) -> Registration {
        let mut maps = self.lock();
        maps.by_id.insert(id.clone(), origin.clone());
        maps.by_token.insert(token.clone(), origin);
        Registration {
            inflight: self.clone(),
            id,
            token,
        }
    }

    /// The origin of backend progress carrying `token`.
    pub fn by_token(&self, token: &ProgressToken) -> Option<Origin> {
        self.lock().by_token.get(token).map(|o| Origin::clone(o))
    }

    /// The origin of a backend request, from the stream it arrived on or, failing that,
    /// from the only session with calls in flight; none when several sessions could be
    /// meant.
    pub fn origin_of(&self, extensions: &rmcp::model::Extensions) -> Option<Origin> {
        self.origin_within(extensions, false)
    }

    /// The origin of a backend notification: as [`Inflight::origin_of`], counting calls
    /// that ended within [`GRACE`] too (a backend that sends a call's log messages on its
    /// GET stream may deliver the last after the call's answer). Never for requests: a
    /// request outside any call is not answered on a guess.
    pub fn origin_of_notification(&self, extensions: &rmcp::model::Extensions) -> Option<Origin> {
        self.origin_within(extensions, true)
    }

    fn origin_within(&self, extensions: &rmcp::model::Extensions, grace: bool) -> Option<Origin> {
        let maps = self.lock();
        if let Some(InboundStreamOrigin::OutboundRequest(id)) =
            extensions.get::<InboundStreamOrigin>()
            && let Some(origin) = maps.by_id.get(id)
        {
            return Some(Origin::clone(origin));
        }
        let now = std::time::Instant::now();
        let recent = maps
            .ended
            .iter()
            .filter(|(at, _)| grace && now.duration_since(*at) <= GRACE)
            .map(|(_, o)| o);
        let mut origins = maps
            .by_id
            .values()
            .chain(maps.sending.values())
            .chain(recent);
        let first = origins.next()?;
        origins
            .all(|o| o.session == first.session)
            .then(|| Origin::clone(first))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.0.locked()
    }
}

/// A call being sent; forgotten when dropped.
pub struct Sending {
    inflight: Inflight,
    key: u64,
}

impl Drop for Sending {
    fn drop(&mut self) {
        let mut maps = self.inflight.lock();
        if let Some(origin) = maps.sending.remove(&self.key) {
            maps.ended(origin);
        }
    }
}

pub struct Registration {
    inflight: Inflight,
    id: RequestId,
    token: ProgressToken,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut maps = self.inflight.lock();
        if let Some(origin) = maps.by_id.remove(&self.id) {
            maps.ended(origin);
        }
        maps.by_token.remove(&self.token);
    }
}
