//! Backends: one shared connection per configured MCP server, kept alive by a supervisor
//! that restarts it with backoff, and the forwarding of one request with cancellation.
//! Two connections for an `auto` HTTP backend that serves both revisions (one per client
//! revision); a child per client session for a stdio backend with `per_session = true`.
//! Calls on the handshake revisions go on the proxy's own path beside rmcp's client:
//! [`direct`] for HTTP, [`pipe`] for stdio.
//!
//! Where this sits: the innermost part of the call path. Everything above (catalog,
//! authorization, governance) has already decided; here a request is sent as it is.

mod children;
mod connect;
mod direct;
mod inflight;
mod listen;
mod pipe;
mod relay;
mod supervisor;
mod table;

use std::sync::{Arc, RwLock};

use rmcp::{
    RoleClient,
    model::{CancelledNotificationParam, ClientRequest, ResultType, ServerResult},
    service::{Peer, PeerRequestOptions},
};
use tokio_util::sync::CancellationToken;

pub use inflight::{Answer, CallStream, Origin, RecordedAs, ToClient};
pub use relay::ListKind;
pub(crate) use supervisor::{spawn_supervisor, unmatched};
pub use table::{Admission, Table};

use crate::sync::RwLocked;
use crate::{config::BackendSettings, error::CallError};

/// One configured backend and its current connection, if up.
pub struct Backend {
    /// Stable for the backend's life, never reused ([`Table`]).
    pub id: usize,
    pub settings: BackendSettings,
    /// Its breakers, slots, timeouts and cache settings.
    pub governance: Arc<crate::governance::BackendGovernance>,
    /// Calls that resolved this backend and have not finished.
    pub calls: Arc<Admission>,
    /// Cancelled when the backend stops: the proxy stops, or a reload removed it.
    pub stop: CancellationToken,
    peer: RwLock<Option<Peer<RoleClient>>>,
    /// With `protocol = "auto"`, an HTTP backend that speaks 2026-07-28 and still accepts
    /// the handshake gets two connections: `peer` on the handshake (for clients on the
    /// older revisions: server requests, subscriptions, logging as those clients know
    /// them) and this one on 2026-07-28, for clients on 2026-07-28.
    modern: RwLock<Option<Peer<RoleClient>>>,
    /// The relay of the current connection, for what arrives outside any call.
    relay: RwLock<Option<relay::Relay>>,
    /// Older clients' resource subscriptions at a backend on 2026-07-28 alone.
    listens: listen::Listens,
    /// A stdio backend with `per_session = true`: each client session's own child.
    children: Option<children::Children>,
    /// Where calls go directly (on the handshake revisions: an HTTP backend's endpoint, a
    /// stdio backend's pipe), with the relay that takes what the backend sends for a call.
    direct: RwLock<Option<(connect::DirectPath, relay::Relay)>>,
    inflight: inflight::Inflight,
}

impl Backend {
    pub fn new(
        id: usize,
        settings: BackendSettings,
        governance: Arc<crate::governance::BackendGovernance>,
        stop: CancellationToken,
    ) -> Self {
        Self {
            id,
            governance,
            calls: Default::default(),
            stop,
            peer: RwLock::new(None),
            modern: RwLock::new(None),
            relay: RwLock::new(None),
            listens: Default::default(),
            children: settings.per_session.map(children::Children::new),
            direct: RwLock::new(None),
            inflight: Default::default(),
            settings,
        }
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub fn peer(&self) -> Option<Peer<RoleClient>> {
        self.peer.read_locked().clone()
    }

    fn set_peer(&self, peer: Option<Peer<RoleClient>>) {
        *self.peer.write_locked() = peer;
    }

    fn set_relay(&self, relay: Option<relay::Relay>) {
        if relay.is_none() {
            self.listens.clear();
        }
        *self.relay.write_locked() = relay;
    }

    fn relay(&self) -> Option<relay::Relay> {
        self.relay.read_locked().clone()
    }

    /// Stops the backend for good: its supervisor closes the connection, and its sessions'
    /// children stop.
    pub fn retire(&self) {
        self.stop.cancel();
        if let Some(children) = &self.children {
            children.clear();
        }
    }

    /// A client session ended: a child of its own, if any, stops.
    pub fn session_ended(&self, session: u64) {
        if let Some(children) = &self.children {
            children.session_ended(session);
        }
    }

    fn set_modern(&self, peer: Option<Peer<RoleClient>>) {
        *self.modern.write_locked() = peer;
    }

    /// The connection a client on 2026-07-28 is served on, when it is not `peer`.
    fn modern(&self) -> Option<Peer<RoleClient>> {
        self.modern.read_locked().clone()
    }

    fn set_direct(&self, direct: Option<(connect::DirectPath, relay::Relay)>) {
        *self.direct.write_locked() = direct;
    }

    fn direct(&self) -> Option<(connect::DirectPath, relay::Relay)> {
        self.direct.read_locked().clone()
    }

    pub fn is_up(&self) -> bool {
        self.peer().is_some_and(|p| !p.is_transport_closed())
    }

    /// Sends one request and waits for its result. A cancel from the client (`cancel`), or
    /// the caller giving up (this future dropped), sends `notifications/cancelled` to the
    /// backend.
    pub async fn request(
        &self,
        mut request: ClientRequest,
        origin: Origin,
        cancel: CancellationToken,
    ) -> Result<ServerResult, CallError> {
        let peer = self
            .peer()
            .ok_or_else(|| CallError::Unavailable(self.name().to_owned()))?;
        if let Some(children) = &self.children
            && origin.modern.is_none()
            && !session_bound(&request)
        {
            // The session's own child; what it asks belongs to this session alone.
            let relay = self
                .relay()
                .ok_or_else(|| CallError::Unavailable(self.name().to_owned()))?;
            let child = Box::pin(children.of(self, origin.session, relay)).await?;
            return Box::pin(child.backend().request(request, origin, cancel)).await;
        }
        // A client on 2026-07-28 goes to the backend's 2026-07-28 connection, if it has a
        // second one; subscriptions and the log level belong to the handshake session.
        let modern = origin
            .modern
            .as_ref()
            .filter(|_| !session_bound(&request))
            .and_then(|_| self.modern());
        if modern.is_none() && speaks_2026(&peer) {
            // A client on an older revision subscribing at a backend that has no
            // handshake session: a listen stream stands in for the subscription.
            match &request {
                ClientRequest::SubscribeRequest(r) => {
                    let relay = self
                        .relay()
                        .ok_or_else(|| CallError::Unavailable(self.name().to_owned()))?;
                    Box::pin(self.listens.subscribe(&peer, relay, r.params.uri.clone()))
                        .await
                        .map_err(|e| CallError::from_service(self.name(), e))?;
                    return Ok(ServerResult::empty(()));
                }
                ClientRequest::UnsubscribeRequest(r) => {
                    self.listens.unsubscribe(&r.params.uri);
                    return Ok(ServerResult::empty(()));
                }
                _ => {}
            }
        }
        // Shared by the maps of calls in flight, not copied into each.
        let origin = Arc::new(origin);
        match self.direct().filter(|_| modern.is_none()) {
            Some((connect::DirectPath::Http(endpoint), relay)) => {
                // In flight for messages the backend sends outside the call's stream (its
                // GET stream), which go to the only session with calls in flight.
                let _sending = self.inflight.expect(origin.clone());
                let sent = endpoint
                    .request(self.name(), &mut request, &origin, &relay, &cancel)
                    .await;
                if let Some(result) = sent {
                    return result.map(complete_result_type);
                }
            }
            Some((connect::DirectPath::Stdio(pipe), relay)) => {
                let limits = (&cancel, self.settings.request_timeout);
                return pipe
                    .request(self.name(), &mut request, &origin, &relay, limits)
                    .await
                    .map(complete_result_type);
            }
            None => {}
        }
        // A child mcp-warden decides each call on who it is for: a call that cannot carry
        // that (rmcp's client path) does not go as the parent itself.
        if self.settings.actor.is_some()
            && matches!(
                request,
                ClientRequest::CallToolRequest(_)
                    | ClientRequest::ReadResourceRequest(_)
                    | ClientRequest::GetPromptRequest(_)
            )
        {
            return Err(CallError::UnavailableBecause {
                backend: self.name().to_owned(),
                reason: "calls go to this backend only with who they are for, which its connection cannot carry now".to_owned(),
            });
        }
        // Boxed: rmcp's request future is large, and the paths above are the common ones.
        Box::pin(self.through_rmcp(modern.unwrap_or(peer), request, origin, cancel)).await
    }

    /// A request sent by rmcp's client: no direct path, a backend on 2026-07-28, or the
    /// direct path handing the call back.
    async fn through_rmcp(
        &self,
        peer: Peer<RoleClient>,
        request: ClientRequest,
        origin: Arc<Origin>,
        cancel: CancellationToken,
    ) -> Result<ServerResult, CallError> {
        let mut options = PeerRequestOptions::with_timeout(self.settings.request_timeout);
        if speaks_2026(&peer) {
            // Each request says what its client supports; rmcp would state the proxy's own
            // (everything it can relay), and a backend could then ask a client that
            // cannot answer.
            let mut meta = rmcp::model::RequestMetaObject::new();
            meta.set_client_capabilities(origin.capabilities());
            options.meta = Some(meta);
        }
        // Known before it is sent: the backend may ask for sampling before the send returns.
        let sending = self.inflight.expect(origin.clone());
        let handle = peer
            .send_request_with_option(request, options)
            .await
            .map_err(|e| CallError::from_service(self.name(), e))?;
        let _registration =
            self.inflight
                .register(handle.id.clone(), handle.progress_token.clone(), origin);
        drop(sending);
        let mut on_drop = CancelOnDrop {
            peer: Some(peer),
            id: handle.id.clone(),
        };
        let result = tokio::select! {
            result = handle.await_response() => result.map_err(|e| CallError::from_service(self.name(), e)),
            _ = cancel.cancelled() => Err(CallError::Cancelled),
        };
        if !matches!(result, Err(CallError::Cancelled)) {
            // Answered, or already cancelled by rmcp on timeout: nothing to cancel.
            on_drop.peer = None;
        }
        result.map(complete_result_type)
    }
}

/// Requests that only a handshake session has (removed from 2026-07-28).
fn session_bound(request: &ClientRequest) -> bool {
    matches!(
        request,
        ClientRequest::SubscribeRequest(_)
            | ClientRequest::UnsubscribeRequest(_)
            | ClientRequest::SetLevelRequest(_)
    )
}

/// Whether a backend connection negotiated 2026-07-28 (no handshake, metadata per request).
fn speaks_2026(peer: &Peer<RoleClient>) -> bool {
    peer.peer_info().is_some_and(|i| {
        i.protocol_version.as_str() >= rmcp::model::ProtocolVersion::V_2026_07_28.as_str()
    })
}

/// Backends on revisions before 2026-07-28 send results without `resultType`; clients on
/// 2026-07-28 require it. rmcp strips it again for older clients.
fn complete_result_type(mut result: ServerResult) -> ServerResult {
    let result_type = match &mut result {
        ServerResult::CompleteResult(r) => &mut r.result_type,
        ServerResult::GetPromptResult(r) => &mut r.result_type,
        ServerResult::ReadResourceResult(r) => &mut r.result_type,
        ServerResult::CallToolResult(r) => &mut r.result_type,
        _ => return result,
    };
    result_type.get_or_insert(ResultType::COMPLETE);
    result
}

/// Tells the backend a call was abandoned, unless it was answered first.
struct CancelOnDrop {
    peer: Option<Peer<RoleClient>>,
    id: rmcp::model::RequestId,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(peer) = self.peer.take() {
            let params = CancelledNotificationParam::new(
                Some(self.id.clone()),
                Some("cancelled by the client".to_owned()),
            );
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = peer.notify_cancelled(params).await;
                });
            }
        }
    }
}
