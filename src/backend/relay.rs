//! The proxy as a client of one backend: what the backend sends that is not a response.
//! Server-initiated requests (sampling, elicitation, roots) and notifications (progress,
//! logging) go back to the client session whose call caused them; `list_changed` makes the
//! supervisor re-read the backend's lists; resource updates go to the sessions subscribed.
#![allow(deprecated)] // logging, roots and sampling (SEP-2577) are still relayed

use std::sync::{Arc, Weak};

use rmcp::{
    ErrorData as McpError, RoleClient,
    model::{
        ClientCapabilities, ClientConfig, ClientResult, ErrorCode, Implementation, ListRootsResult,
        ServerNotification, ServerRequest,
    },
    service::{NotificationContext, RequestContext, Service},
};
use tokio::sync::mpsc;

use super::inflight::Inflight;
use crate::{authz::Operation, error::CallError, hub::Hub};

/// What changed at a backend, for its supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
}

#[derive(Clone)]
pub struct Relay {
    pub(super) id: usize,
    pub(super) name: String,
    pub(super) inflight: Inflight,
    pub(super) hub: Weak<Hub>,
    pub(super) refresh: mpsc::UnboundedSender<ListKind>,
}

impl Relay {
    fn hub(&self) -> Option<Arc<Hub>> {
        self.hub.upgrade()
    }
}

impl Relay {
    /// A request of the backend's (sampling, elicitation, roots), for the client whose
    /// call caused it: `origin` when the transport said which call (a call's own response
    /// stream), else as far as [`Inflight`] can tell.
    pub async fn request(
        &self,
        request: ServerRequest,
        origin: Option<super::Origin>,
    ) -> Result<ClientResult, McpError> {
        if let ServerRequest::PingRequest(_) = request {
            return Ok(ClientResult::empty(()));
        }
        if origin.is_none() && matches!(request, ServerRequest::ListRootsRequest(_)) {
            // Outside any client call (servers often ask right after initialize) the proxy
            // has no roots of its own to offer.
            return Ok(ClientResult::ListRootsResult(ListRootsResult::default()));
        }
        let Some(origin) = origin else {
            tracing::warn!(backend = %self.name, "refused a server request that belongs to no single client call");
            return Err(McpError::new(
                ErrorCode::INVALID_REQUEST,
                "no client call is waiting for this request",
                None,
            ));
        };
        // Sampling, elicitation and roots are Cedar actions too, decided for the caller.
        let op = match &request {
            ServerRequest::CreateMessageRequest(_) => Operation::CreateMessage {
                backend: &self.name,
            },
            ServerRequest::ElicitRequest(_) => Operation::Elicit {
                backend: &self.name,
            },
            ServerRequest::ListRootsRequest(_) => Operation::ListRoots {
                backend: &self.name,
            },
            // A custom request has no Cedar action, so nothing could allow it: not relayed
            // (it used to be decided as `list_roots`, which says nothing about it).
            _ => {
                return Err(McpError::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    "the gateway relays only sampling, elicitation and roots requests",
                    None,
                ));
            }
        };
        let facts = crate::stack::authz::facts(
            &origin.client,
            origin.transport(),
            &origin.session.to_string(),
        );
        let hub = self.hub();
        let decision = hub.as_ref().and_then(|hub| {
            // Recorded by its own record (below), not as the call's decision.
            let unrecorded = crate::stack::audit::Notes::default();
            let now = hub.snapshot();
            crate::stack::authz::decide(
                &hub.authority,
                &now,
                &origin.principal,
                op,
                &facts,
                &unrecorded,
            )
        });
        let action = request_method(&request);
        if !decision.as_ref().is_some_and(|d| d.allowed) {
            // The same refusal, code and wording as a denied call's (one error mapping).
            let error = CallError::Forbidden(format!(
                "`{action}` from backend `{}` is not permitted for this caller",
                self.name
            ))
            .to_mcp();
            if let Some(hub) = &hub {
                // Refused either way; a record that cannot be written changes nothing here.
                let _ = hub
                    .record_relayed(&origin, action, &self.name, decision.as_ref(), Err(&error))
                    .await;
            }
            return Err(error);
        }
        let answer = origin.ask(request).await;
        if let Some(hub) = &hub
            && let Err(e) = hub
                .record_relayed(
                    &origin,
                    action,
                    &self.name,
                    decision.as_ref(),
                    answer.as_ref().map(|_| ()),
                )
                .await
        {
            // Fail closed: an answer without its record does not go back to the backend.
            return Err(CallError::Audit(e.to_string()).to_mcp());
        }
        answer
    }

    /// A notification of the backend's; `origin` as for [`Relay::request`].
    pub async fn notification(
        &self,
        notification: ServerNotification,
        origin: Option<super::Origin>,
    ) {
        match notification {
            ServerNotification::ProgressNotification(mut progress) => {
                // The backend saw the proxy's token; the client must see its own.
                let origin =
                    origin.or_else(|| self.inflight.by_token(&progress.params.progress_token));
                if let Some(origin) = origin
                    && let Some(token) = origin.progress_token.clone()
                {
                    progress.params.progress_token = token;
                    origin
                        .notify(ServerNotification::ProgressNotification(progress))
                        .await;
                }
            }
            ServerNotification::LoggingMessageNotification(message) => match origin {
                Some(origin) => {
                    origin
                        .notify(ServerNotification::LoggingMessageNotification(message))
                        .await;
                }
                None => {
                    tracing::debug!(backend = %self.name, "log message with no single client call in flight, not relayed")
                }
            },
            ServerNotification::ResourceUpdatedNotification(update) => {
                if let Some(hub) = self.hub() {
                    hub.resource_updated(self.id, update.params).await;
                }
            }
            ServerNotification::ToolListChangedNotification(_) => {
                let _ = self.refresh.send(ListKind::Tools);
            }
            ServerNotification::PromptListChangedNotification(_) => {
                let _ = self.refresh.send(ListKind::Prompts);
            }
            ServerNotification::ResourceListChangedNotification(_) => {
                let _ = self.refresh.send(ListKind::Resources);
            }
            _ => {}
        }
    }
}

impl Service<RoleClient> for Relay {
    async fn handle_request(
        &self,
        request: ServerRequest,
        context: RequestContext<RoleClient>,
    ) -> Result<ClientResult, McpError> {
        let origin = match &request {
            ServerRequest::PingRequest(_) => None,
            _ => self.inflight.origin_of(&context.extensions),
        };
        self.request(request, origin).await
    }

    async fn handle_notification(
        &self,
        notification: ServerNotification,
        context: NotificationContext<RoleClient>,
    ) -> Result<(), McpError> {
        let origin = match &notification {
            ServerNotification::LoggingMessageNotification(_) => {
                self.inflight.origin_of_notification(&context.extensions)
            }
            _ => None,
        };
        self.notification(notification, origin).await;
        Ok(())
    }

    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.capabilities = ClientCapabilities::builder()
            .enable_roots()
            .enable_sampling()
            .enable_elicitation()
            .build();
        info.client_info = Implementation::new("mcp-warden", env!("CARGO_PKG_VERSION"));
        info
    }
}

/// The MCP method of a server request the gateway relays, as its record names it.
fn request_method(request: &ServerRequest) -> &'static str {
    match request {
        ServerRequest::CreateMessageRequest(_) => "sampling/createMessage",
        ServerRequest::ElicitRequest(_) => "elicitation/create",
        ServerRequest::ListRootsRequest(_) => "roots/list",
        _ => "server request",
    }
}
