//! The MCP sessions of the HTTP endpoint: rmcp's local session manager, with one thing
//! added: the `initialize` request that opens a session carries the session's id (as
//! [`OpenedSession`]), so its audit record names the session the client is about to use —
//! the same id every later request of that session sends in `Mcp-Session-Id`. With
//! `[sessions]` configured ([`portable`]), the id of a new session is the one chosen for
//! its `initialize` request, and a replica rebuilds a session it never saw.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker, SessionConfig,
};
use rmcp::transport::streamable_http_server::session::{
    EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager, SessionRestoreMarker,
};
use rmcp::transport::worker::WorkerTransport;

use super::owners::PendingSession;
use crate::ids::OpenedSession;
use crate::sync::Locked;

pub mod portable;
mod sealed;

/// rmcp's local sessions, which expire after `idle` without a request or an open stream.
pub struct Sessions {
    inner: LocalSessionManager,
    /// Where sessions travel between replicas, when they do.
    pub portable: Option<Arc<portable::Portable>>,
    /// Sessions being restored: in rmcp's table already, not yet through the replayed
    /// handshake. Reported absent meanwhile, so that a concurrent request waits for the
    /// restore (rmcp serializes restores of one id) instead of reaching a handler that has
    /// not seen its `initialize` yet.
    restoring: std::sync::Mutex<std::collections::HashSet<SessionId>>,
}

impl Sessions {
    pub fn new(idle: Duration, portable: Option<Arc<portable::Portable>>) -> Sessions {
        let mut inner = LocalSessionManager::default();
        let mut config = SessionConfig::default();
        config.keep_alive = Some(idle);
        inner.session_config = config;
        Sessions {
            inner,
            portable,
            restoring: Default::default(),
        }
    }

    /// Tells a session's worker the session is in use, which restarts its idle timer (the
    /// hot path's calls do not pass through the worker). Closing a request-wise channel
    /// that was never opened is the cheapest event the worker takes; it changes nothing.
    pub async fn touch(&self, id: &str) {
        if let Some(portable) = &self.portable {
            portable.touch(id);
        }
        let handle = self.inner.sessions.read().await.get(id).cloned();
        if let Some(handle) = handle {
            let _ = handle.close_request_wise_channel(u64::MAX).await;
        }
    }

    fn restored(&self, id: &SessionId) {
        self.restoring.locked().remove(id);
    }

    /// Closes a session as its client's DELETE would; false when there was none.
    pub async fn close(&self, id: &str) -> bool {
        let id: SessionId = Arc::from(id);
        if !self.inner.sessions.read().await.contains_key(&id) {
            return false;
        }
        self.inner.close_session(&id).await.is_ok()
    }

    /// Which of `ids` are live sessions (one look at the table).
    pub async fn alive(&self, ids: &[String]) -> Vec<bool> {
        let sessions = self.inner.sessions.read().await;
        ids.iter()
            .map(|id| sessions.contains_key(id.as_str()))
            .collect()
    }
}

impl SessionManager for Sessions {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        // The id chosen for this `initialize` (a sealed one carries its parameters): rmcp's
        // manager opens a session under a given id only as a restore.
        if let Some(id) = portable::opening_id()
            && let RestoreOutcome::Restored(transport) =
                self.inner.restore_session(id.clone()).await?
        {
            return Ok((id, transport));
        }
        self.inner.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        mut message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        if let ClientJsonRpcMessage::Request(request) = &mut message {
            // The session exists from here on: it holds its caller's place whatever becomes
            // of this request.
            if let Some(pending) = request
                .request
                .extensions()
                .get::<http::request::Parts>()
                .and_then(|p| p.extensions.get::<PendingSession>())
            {
                pending.bind(id);
            }
            request
                .request
                .extensions_mut()
                .insert(OpenedSession(id.clone()));
        }
        let answer = self.inner.initialize_session(id, message).await;
        if answer.is_err() {
            self.restored(id);
        }
        answer
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        if self.restoring.locked().contains(id) {
            return Ok(false);
        }
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.restored(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        SessionManager::create_stream(&self.inner, id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        // The replayed `notifications/initialized` ends a restore: whatever the session's
        // worker takes after it finds the handshake done.
        let ends_restore = matches!(
            &message,
            ClientJsonRpcMessage::Notification(n)
                if n.notification.extensions().get::<SessionRestoreMarker>().is_some()
        );
        let accepted = self.inner.accept_message(id, message).await;
        if ends_restore {
            self.restored(id);
        }
        accepted
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        SessionManager::create_standalone_stream(&self.inner, id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        SessionManager::resume(&self.inner, id, last_event_id).await
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        self.restoring.locked().insert(id.clone());
        let outcome = self.inner.restore_session(id.clone()).await;
        if !matches!(outcome, Ok(RestoreOutcome::Restored(_))) {
            self.restored(&id);
        }
        outcome
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        SessionManager::event_store(&self.inner)
    }
}
