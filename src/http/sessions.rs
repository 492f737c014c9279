//! The MCP sessions of the HTTP endpoint: rmcp's local session manager, with one thing
//! added: the `initialize` request that opens a session carries the session's id (as
//! [`OpenedSession`]), so its audit record names the session the client is about to use —
//! the same id every later request of that session sends in `Mcp-Session-Id`.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker, SessionConfig,
};
use rmcp::transport::streamable_http_server::session::{
    EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};
use rmcp::transport::worker::WorkerTransport;

use super::owners::PendingSession;
use crate::ids::OpenedSession;

/// rmcp's local sessions, which expire after `idle` without a request or an open stream.
pub struct Sessions {
    inner: LocalSessionManager,
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        let mut inner = LocalSessionManager::default();
        let mut config = SessionConfig::default();
        config.keep_alive = Some(idle);
        inner.session_config = config;
        Sessions { inner }
    }

    /// Tells a session's worker the session is in use, which restarts its idle timer (the
    /// hot path's calls do not pass through the worker). Closing a request-wise channel
    /// that was never opened is the cheapest event the worker takes; it changes nothing.
    pub async fn touch(&self, id: &str) {
        let handle = self.inner.sessions.read().await.get(id).cloned();
        if let Some(handle) = handle {
            let _ = handle.close_request_wise_channel(u64::MAX).await;
        }
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
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
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
        self.inner.accept_message(id, message).await
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
        self.inner.restore_session(id).await
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        SessionManager::event_store(&self.inner)
    }
}
