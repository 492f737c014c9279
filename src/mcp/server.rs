//! One client session: the rmcp `ServerHandler` the client talks to. Every method resolves
//! names through the catalog (the same snapshot for list and call), turns exposed names and
//! URIs into the backend's own, and sends the request down the call stack.
//!
//! Logging, roots and sampling are deprecated by SEP-2577 but still spoken by most clients
//! and servers; the proxy relays them, hence `allow(deprecated)`.
#![allow(deprecated)]

use std::sync::Arc;

mod forward;

use forward::{backend_of, notes};

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::*,
    service::{NotificationContext, RequestContext, SubscriptionContext},
};

use crate::{
    authn::Principal,
    authz::{Operation, RequestFacts},
    backend::{Origin, RecordedAs},
    error::CallError,
    hub::Hub,
    mcp::{
        catalog::{BadCursor, Catalog, Entry, Page},
        inputs,
    },
    stack::{self, Op},
};

/// The handler of one client session. For 2026-07-28 stateless requests rmcp makes one per
/// request; those never register for broadcast notifications.
pub struct ProxySession {
    hub: Arc<Hub>,
    id: u64,
    /// The session id records carry when the transport has none (`serve --stdio`).
    own_session: std::sync::OnceLock<String>,
    /// The call stack (its layers' shared state lives in the hub).
    stack: stack::Next,
}

impl ProxySession {
    pub fn new(hub: Arc<Hub>) -> Self {
        let id = hub.sessions.next_id();
        let stack = stack::build(&hub.stack_parts());
        Self {
            hub,
            id,
            own_session: std::sync::OnceLock::new(),
            stack,
        }
    }

    /// The session id as the client knows it, for records: the `Mcp-Session-Id` it sends
    /// (for the `initialize` request that opens the session, the id it is about to get);
    /// over stdio an id made once for the process's one session; none for a stateless
    /// request.
    pub fn recorded_session(&self, ctx: &RequestContext<RoleServer>) -> Option<String> {
        match ctx.extensions.get::<http::request::Parts>() {
            Some(parts) => parts
                .headers
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(crate::hub::audit::bounded)
                .or_else(|| {
                    ctx.extensions
                        .get::<crate::ids::OpenedSession>()
                        .map(|s| s.0.to_string())
                }),
            None => Some(self.own_session.get_or_init(crate::ids::session_id).clone()),
        }
    }

    fn origin(&self, ctx: &RequestContext<RoleServer>) -> Origin {
        Origin {
            session: self.id,
            recorded: self.hub.audit.is_some().then(|| RecordedAs {
                session: self.recorded_session(ctx),
                request: ctx
                    .extensions
                    .get::<http::request::Parts>()
                    .and_then(|p| p.extensions.get::<crate::ids::RequestId>())
                    .map_or_else(|| ctx.id.to_string(), |id| id.0.clone()),
            }),
            principal: principal(ctx),
            peer: ctx.peer.clone(),
            request_id: ctx.id.clone(),
            progress_token: ctx.meta.get_progress_token(),
            stdio: ctx.extensions.get::<http::request::Parts>().is_none(),
            client: client(ctx),
            stream: ctx.extensions.get::<crate::backend::CallStream>().cloned(),
            notes: notes(ctx),
            modern: inputs::client_handles_inputs(ctx)
                .then(|| Arc::new(ctx.meta.client_capabilities().unwrap_or_default())),
        }
    }

    /// Request facts for policies deciding something this session asks.
    fn facts(&self, ctx: &RequestContext<RoleServer>) -> RequestFacts {
        let transport = if ctx.extensions.get::<http::request::Parts>().is_some() {
            "http"
        } else {
            "stdio"
        };
        stack::authz::facts(&client(ctx), transport, &self.id.to_string())
    }

    fn page_size(&self) -> usize {
        self.hub.server.page_size
    }
}

impl Drop for ProxySession {
    fn drop(&mut self) {
        self.hub.sessions.remove(self.id);
        for backend in self.hub.backends().iter() {
            backend.session_ended(self.id);
        }
    }
}

/// The caller, as the authentication layer put it into the HTTP request. Over stdio there is
/// no HTTP request: the client is the local user who started the proxy.
fn principal(ctx: &RequestContext<RoleServer>) -> Arc<Principal> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Arc<Principal>>())
        .cloned()
        .unwrap_or_else(|| Arc::new(Principal::local()))
}

/// Protocol metadata of the client's own lifecycle does not belong on the backend
/// connection, which negotiated its own; rmcp sets the progress token it tracks.
fn scrub(meta: &mut Option<RequestMetaObject>) {
    if let Some(meta) = meta {
        meta.0
            .0
            .retain(|k, _| !k.starts_with("io.modelcontextprotocol/") && k != "progressToken");
    }
}

fn cursor(request: &Option<PaginatedRequestParams>) -> Option<&str> {
    request.as_ref().and_then(|r| r.cursor.as_deref())
}

fn paged<T, R>(
    page: Result<Page<T>, BadCursor>,
    make: impl FnOnce(Vec<T>) -> R,
    set: impl FnOnce(&mut R, Option<String>),
) -> Result<R, McpError> {
    let page = page.map_err(|_| CallError::BadCursor.to_mcp())?;
    let mut result = make(page.items);
    set(&mut result, page.next_cursor);
    Ok(result)
}

/// Where an exposed resource URI (or template) leads; unknown reads like hidden.
fn resolve_uri(catalog: &Catalog, exposed: &str) -> Result<crate::mcp::catalog::Target, CallError> {
    catalog
        .resolve_uri(exposed)
        .ok_or_else(|| CallError::UnknownResource(exposed.to_owned()))
}

fn unexpected(what: &str) -> McpError {
    CallError::Internal(format!("backend sent an unexpected response to {what}")).to_mcp()
}

fn expose_contents(catalog: &Catalog, backend: usize, result: &mut ReadResourceResult) {
    for contents in &mut result.contents {
        let uri = match contents {
            ResourceContents::TextResourceContents { uri, .. } => uri,
            ResourceContents::BlobResourceContents { uri, .. } => uri,
            _ => continue,
        };
        *uri = catalog.expose_uri(backend, uri);
    }
}

impl ServerHandler for ProxySession {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_completions()
            .enable_logging()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("mcp-warden", env!("CARGO_PKG_VERSION")))
            .with_instructions("mcp-warden: tools, prompts and resources of several MCP servers, each under its namespace.")
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        self.hub.sessions.register(self.id, ctx.peer.clone());
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let generation = self.hub.snapshot();
        let catalog = &generation.catalog;
        let ask = self.asking(&ctx, &generation);
        let listing = ask.allowed(Operation::ListTools);
        // A tool is listed unless no arguments could ever make its call allowed.
        let visible = |e: &Entry<Tool>| listing && ask.tool_visible(&e.item.name);
        paged(
            catalog.tools_page(cursor(&request), self.page_size(), visible),
            ListToolsResult::with_all_items,
            |r, c| r.next_cursor = c,
        )
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let generation = self.hub.snapshot();
        let catalog = &generation.catalog;
        let entry = catalog
            .tool(&request.name)
            .ok_or_else(|| CallError::UnknownTool(request.name.to_string()))?;
        let backend = backend_of(catalog, entry.backend)?;
        // The arguments move into the authorization question, shared by every layer; the
        // router puts them back into the request it sends (no copy of them per call).
        let arguments = match request.arguments.take() {
            Some(arguments) if !arguments.is_empty() => arguments,
            none_or_empty => {
                request.arguments = none_or_empty;
                JsonObject::default()
            }
        };
        let op = Op::CallTool {
            tool: request.name.to_string(),
            arguments: Arc::new(arguments),
        };
        request.name = entry.original.clone().into();
        scrub(&mut request.meta);
        let make = |p| ClientRequest::CallToolRequest(CallToolRequest::new(p));
        match self
            .forward_with_inputs(&generation, backend, request, make, op, &ctx)
            .await?
        {
            ServerResult::CallToolResult(result) => Ok(CallToolResponse::Complete(result)),
            ServerResult::InputRequiredResult(result) => {
                Ok(CallToolResponse::InputRequired(result))
            }
            ServerResult::CreateTaskResult(result) => Ok(CallToolResponse::Task(result)),
            _ => Err(unexpected("tools/call")),
        }
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let generation = self.hub.snapshot();
        let catalog = &generation.catalog;
        let ask = self.asking(&ctx, &generation);
        let listing = ask.allowed(Operation::ListPrompts);
        let visible = |e: &Entry<Prompt>| {
            let op = Operation::GetPrompt {
                backend: catalog.backend_name(e.backend),
                prompt: &e.item.name,
            };
            listing && ask.allowed(op)
        };
        paged(
            catalog.prompts_page(cursor(&request), self.page_size(), visible),
            ListPromptsResult::with_all_items,
            |r, c| r.next_cursor = c,
        )
    }

    async fn get_prompt(
        &self,
        mut request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let generation = self.hub.snapshot();
        let catalog = &generation.catalog;
        let target = catalog
            .resolve_prompt(&request.name)
            .ok_or_else(|| CallError::UnknownPrompt(request.name.clone()))?;
        let backend = backend_of(catalog, target.backend)?;
        let op = Op::GetPrompt {
            backend: backend.name().to_owned(),
            prompt: request.name.clone(),
            arguments: request.arguments.clone().unwrap_or_default(),
        };
        request.name = target.name;
        scrub(&mut request.meta);
        let make = |p| ClientRequest::GetPromptRequest(GetPromptRequest::new(p));
        match self
            .forward_with_inputs(&generation, backend, request, make, op, &ctx)
            .await?
        {
            ServerResult::GetPromptResult(result) => Ok(GetPromptResponse::Complete(result)),
            ServerResult::InputRequiredResult(result) => {
                Ok(GetPromptResponse::InputRequired(result))
            }
            _ => Err(unexpected("prompts/get")),
        }
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let generation = self.hub.snapshot();
        let catalog = &generation.catalog;
        let ask = self.asking(&ctx, &generation);
        let listing = ask.allowed(Operation::ListResources);
        let visible = |e: &Entry<Resource>| {
            let op = Operation::ReadResource {
                backend: catalog.backend_name(e.backend),
                uri: &e.item.uri,
            };
            listing && ask.allowed(op)
        };
        paged(
            catalog.resources_page(cursor(&request), self.page_size(), visible),
            ListResourcesResult::with_all_items,
            |r, c| r.next_cursor = c,
        )
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let generation = self.hub.snapshot();
        let catalog = &generation.catalog;
        let ask = self.asking(&ctx, &generation);
        let listing = ask.allowed(Operation::ListResources);
        // A template is listed only to whom may read it (`read_resource` on the template's
        // exposed URI), like resources: what one may not read, one does not see.
        let visible = |e: &Entry<ResourceTemplate>| {
            let op = Operation::ReadResource {
                backend: catalog.backend_name(e.backend),
                uri: &e.item.uri_template,
            };
            listing && ask.allowed(op)
        };
        paged(
            catalog.templates_page(cursor(&request), self.page_size(), visible),
            ListResourceTemplatesResult::with_all_items,
            |r, c| r.next_cursor = c,
        )
    }

    async fn read_resource(
        &self,
        mut request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let generation = self.hub.snapshot();
        let catalog = &generation.catalog;
        let target = resolve_uri(catalog, &request.uri)?;
        let backend = backend_of(catalog, target.backend)?;
        let op = Op::ReadResource {
            backend: backend.name().to_owned(),
            uri: request.uri.clone(),
        };
        request.uri = target.name;
        scrub(&mut request.meta);
        let make = |p| ClientRequest::ReadResourceRequest(ReadResourceRequest::new(p));
        match self
            .forward_with_inputs(&generation, backend, request, make, op, &ctx)
            .await?
        {
            ServerResult::ReadResourceResult(mut result) => {
                expose_contents(catalog, target.backend, &mut result);
                Ok(ReadResourceResponse::Complete(result))
            }
            ServerResult::InputRequiredResult(result) => {
                Ok(ReadResourceResponse::InputRequired(result))
            }
            _ => Err(unexpected("resources/read")),
        }
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscribe_uri(&request.uri, &ctx).await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.unsubscribe_uri(&request.uri, &ctx).await
    }

    async fn complete(
        &self,
        mut request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let generation = self.hub.snapshot();
        let catalog = &generation.catalog;
        let (backend, reference) = match &mut request.r#ref {
            Reference::Prompt(prompt) => {
                let target = catalog
                    .resolve_prompt(&prompt.name)
                    .ok_or_else(|| CallError::UnknownPrompt(prompt.name.clone()))?;
                let reference = Op::GetPrompt {
                    backend: catalog.backend_name(target.backend).to_owned(),
                    prompt: std::mem::replace(&mut prompt.name, target.name),
                    arguments: serde_json::Map::new(),
                };
                (target.backend, reference)
            }
            Reference::Resource(resource) => {
                let target = resolve_uri(catalog, &resource.uri)?;
                let reference = Op::ReadResource {
                    backend: catalog.backend_name(target.backend).to_owned(),
                    uri: std::mem::replace(&mut resource.uri, target.name),
                };
                (target.backend, reference)
            }
            _ => {
                return Err(
                    CallError::Internal("unsupported completion reference".to_owned()).to_mcp(),
                );
            }
        };
        scrub(&mut request.meta);
        let mut argument = serde_json::Map::new();
        argument.insert(
            "argument".to_owned(),
            serde_json::json!({ request.argument.name.clone(): request.argument.value.clone() }),
        );
        if let Some(resolved) = request.context.as_ref().and_then(|c| c.arguments.as_ref()) {
            argument.insert("context".to_owned(), serde_json::json!(resolved));
        }
        let request = ClientRequest::CompleteRequest(CompleteRequest::new(request));
        let backend = backend_of(catalog, backend)?;
        let op = Op::Complete {
            backend: backend.name().to_owned(),
            reference: Box::new(reference),
            argument,
        };
        match self
            .forward(&generation, backend, request, op, &ctx)
            .await?
        {
            ServerResult::CompleteResult(result) => Ok(result),
            _ => Err(unexpected("completion/complete")),
        }
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        // The level applies to shared backend connections: an admin action.
        let generation = self.hub.snapshot();
        if !self
            .asking(&ctx, &generation)
            .allowed(Operation::SetLogLevel)
        {
            return Err(CallError::Forbidden(
                "setting the logging level is not permitted".to_owned(),
            )
            .to_mcp());
        }
        self.hub.set_log_level(request.level);
        for backend in self.hub.backends().iter() {
            let Some(peer) = backend.peer() else { continue };
            let logs = peer
                .peer_info()
                .is_some_and(|i| i.capabilities.logging.is_some());
            if logs
                && let Err(e) = peer
                    .set_level(SetLevelRequestParams::new(request.level))
                    .await
            {
                tracing::debug!(backend = %backend.name(), error = %e, "backend refused logging/setLevel");
            }
        }
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let mut changes = self.hub.changes.subscribe();
        let ctx = context.request_context().clone();
        let uris = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        for uri in &uris {
            if let Err(e) = self.subscribe_uri(uri, &ctx).await {
                tracing::debug!(%uri, error = %e.message, "subscription for a listen stream refused");
            }
        }
        loop {
            tokio::select! {
                _ = context.cancelled() => break,
                _ = self.hub.shutdown.cancelled() => break,
                change = changes.recv() => match change {
                    Ok(notification) => {
                        if self.switched_off_for(&ctx, &notification) {
                            continue;
                        }
                        // The sink drops what this stream did not ask for.
                        let _ = context.sink().send(notification).await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                },
            }
        }
        for uri in &uris {
            let _ = self.unsubscribe_uri(uri, &ctx).await;
        }
        Ok(())
    }
}

/// The client address the HTTP layer found for this request (`""` over stdio).
pub(crate) fn client(ctx: &RequestContext<RoleServer>) -> String {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<crate::http::client::ClientAddr>())
        .map(|c| c.text())
        .unwrap_or_default()
}
