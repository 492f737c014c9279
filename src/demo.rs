//! A small MCP server that ships inside the binary (`mcp-warden demo-server`), so the proxy
//! runs out of the box with nothing else installed: the embedded default configuration
//! starts it as a stdio backend named `demo`.

use std::sync::Arc;

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler, ServiceExt, model::*, service::RequestContext,
};
use serde_json::{Value, json};

struct Demo;

fn schema(value: Value) -> Arc<JsonObject> {
    Arc::new(value.as_object().cloned().unwrap_or_default())
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "echo",
            "Returns the text it is given",
            schema(
                json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
            ),
        ),
        Tool::new(
            "add",
            "Adds two integers",
            schema(
                json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}),
            ),
        ),
    ]
}

fn arg<'a>(args: &'a Option<JsonObject>, key: &str) -> Option<&'a Value> {
    args.as_ref().and_then(|a| a.get(key))
}

impl ServerHandler for Demo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new(
            "mcp-warden-demo",
            env!("CARGO_PKG_VERSION"),
        ))
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let result = match request.name.as_ref() {
            "echo" => match arg(&request.arguments, "text").and_then(Value::as_str) {
                Some(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
                None => CallToolResult::error(vec![ContentBlock::text("`text` must be a string")]),
            },
            "add" => match (
                arg(&request.arguments, "a").and_then(Value::as_i64),
                arg(&request.arguments, "b").and_then(Value::as_i64),
            ) {
                (Some(a), Some(b)) => match a.checked_add(b) {
                    Some(sum) => CallToolResult::success(vec![ContentBlock::text(sum.to_string())]),
                    None => CallToolResult::error(vec![ContentBlock::text("overflow")]),
                },
                _ => {
                    CallToolResult::error(vec![ContentBlock::text("`a` and `b` must be integers")])
                }
            },
            other => {
                return Err(McpError::invalid_params(
                    format!("unknown tool `{other}`"),
                    None,
                ));
            }
        };
        Ok(CallToolResponse::Complete(result))
    }

    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let arg = PromptArgument::new("name")
            .with_description("who to greet")
            .with_required(true);
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            "greeting",
            Some("A greeting"),
            Some(vec![arg]),
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        if request.name != "greeting" {
            return Err(McpError::invalid_params(
                format!("unknown prompt `{}`", request.name),
                None,
            ));
        }
        let name = arg(&request.arguments, "name")
            .and_then(Value::as_str)
            .unwrap_or("there");
        let message = PromptMessage::new_text(Role::User, format!("Say hello to {name}."));
        Ok(GetPromptResponse::Complete(GetPromptResult::new(vec![
            message,
        ])))
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            "demo://readme",
            "readme",
        )]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if request.uri != "demo://readme" {
            return Err(McpError::resource_not_found(
                format!("unknown resource `{}`", request.uri),
                None,
            ));
        }
        let text = "This is the demo backend of mcp-warden.";
        Ok(ReadResourceResponse::Complete(ReadResourceResult::new(
            vec![ResourceContents::text(text, request.uri)],
        )))
    }
}

/// The demo as an rmcp server handler (tools `echo` and `add`, a prompt, a resource), for
/// serving it on any transport, in-process backends included.
pub fn handler() -> impl ServerHandler {
    Demo
}

/// Serves the demo over stdin/stdout until the client closes it.
pub async fn run_stdio() -> Result<(), std::io::Error> {
    let running = Demo
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let _ = running.waiting().await;
    Ok(())
}

/// The demo over streamable HTTP at `/mcp`, for benchmarks and experiments.
pub fn router() -> axum::Router {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    let service = StreamableHttpService::new(
        || Ok(Demo),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    axum::Router::new().nest_service("/mcp", service)
}
