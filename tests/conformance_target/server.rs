//! The `ServerHandler`: one instance per client session, all sharing [`SharedState`].

use std::sync::{
    Arc,
    atomic::{AtomicU8, Ordering},
};

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
        CompletionInfo, GetPromptRequestParams, GetPromptResponse, Implementation,
        ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
        LoggingLevel, PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams,
        ReadResourceResponse, Reference, ResourceUpdatedNotification,
        ResourceUpdatedNotificationParam, ServerCapabilities, ServerConfig, ServerNotification,
        SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter,
        UnsubscribeRequestParams,
    },
    service::{RequestContext, SubscriptionContext},
};

use crate::{
    ask_llm, prompts, resources,
    state::{SessionId, SharedState},
    tools,
};

pub struct ConformanceServer {
    state: Arc<SharedState>,
    session: SessionId,
    /// Lowest `LoggingLevel` (as its rank) the client wants to receive.
    min_log_level: AtomicU8,
}

impl ConformanceServer {
    pub fn new(state: Arc<SharedState>) -> Self {
        let session = state.new_session();
        Self {
            state,
            session,
            min_log_level: AtomicU8::new(LoggingLevel::Debug as u8),
        }
    }

    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// Whether a log message at `level` passes the client's `logging/setLevel` filter.
    pub fn should_log(&self, level: LoggingLevel) -> bool {
        level as u8 >= self.min_log_level.load(Ordering::Relaxed)
    }
}

impl Drop for ConformanceServer {
    fn drop(&mut self) {
        self.state.forget_session(self.session);
    }
}

fn capabilities() -> ServerCapabilities {
    ServerCapabilities::builder()
        .enable_logging()
        .enable_completions()
        .enable_prompts()
        .enable_resources()
        .enable_resources_subscribe()
        .enable_tools()
        .enable_tool_list_changed()
        .build()
}

/// Completion candidates for the arguments this server knows about.
fn completion_candidates(reference: &Reference, argument: &str) -> &'static [&'static str] {
    match (reference, argument) {
        (Reference::Prompt(prompt), "arg1" | "arg2")
            if prompt.name == prompts::PROMPT_WITH_ARGUMENTS =>
        {
            &["testValue1", "testValue2"]
        }
        (Reference::Resource(template), "id") if template.uri == resources::TEMPLATE_URI => {
            &["123", "456"]
        }
        _ => &[],
    }
}

impl ServerHandler for ConformanceServer {
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        if self.state.modern_only {
            std::borrow::Cow::Owned(vec![ProtocolVersion::V_2026_07_28])
        } else {
            std::borrow::Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.clone())
    }

    /// A listen stream (2026-07-28): list changes are not sent; updates of the resources
    /// it names are, when `touch_resource` touches them.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let uris = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        let mut touched = self.state.listen();
        loop {
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                uri = touched.recv() => match uri {
                    Some(uri) if uris.contains(&uri) => {
                        let update = ServerNotification::ResourceUpdatedNotification(
                            ResourceUpdatedNotification::new(ResourceUpdatedNotificationParam::new(uri)),
                        );
                        if context.sink().send(update).await.is_err() {
                            return Ok(());
                        }
                    }
                    Some(_) => {}
                    None => return Ok(()),
                },
            }
        }
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(capabilities()).with_server_info(Implementation::new(
            "mcp-warden-conformance-target",
            env!("CARGO_PKG_VERSION"),
        ))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.min_log_level
            .store(request.level as u8, Ordering::Relaxed);
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let typed = request.argument.value.as_str();
        let values = completion_candidates(&request.r#ref, &request.argument.name)
            .iter()
            .filter(|candidate| candidate.starts_with(typed))
            .map(|candidate| candidate.to_string())
            .collect();
        let info = CompletionInfo::with_all_values(values)
            .map_err(|message| McpError::internal_error(message, None))?;
        Ok(CompleteResult::new(info))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools::definitions(
            &self.state,
        )))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // `ask_llm` may answer `input_required` (SEP-2322); every other tool completes.
        if request.name == ask_llm::NAME {
            return Ok(ask_llm::call(request, &context).await);
        }
        tools::call(self, request, context)
            .await
            .map(CallToolResponse::Complete)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(resources::list()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        resources::read(&request.uri).map(ReadResourceResponse::Complete)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.state
            .subscribe(&request.uri, self.session, context.peer);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.state.unsubscribe(&request.uri, self.session);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(prompts::list()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let arguments = request.arguments.unwrap_or_default();
        prompts::get(&request.name, &arguments).map(GetPromptResponse::Complete)
    }
}
