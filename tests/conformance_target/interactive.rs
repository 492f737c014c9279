//! Tools that talk back to the client while they run: log messages, progress,
//! sampling, elicitation and roots.
//!
//! A failed server-to-client request becomes a tool error result, so the caller sees
//! why; a failed notification means the client is gone and becomes a protocol error.

use std::time::Duration;

use rmcp::{
    ErrorData as McpError, RoleServer, ServiceError,
    model::{
        CallToolResult, ContentBlock, CreateMessageRequestParams, ElicitRequestParams,
        ElicitResult, ElicitationSchema, LoggingLevel, LoggingMessageNotificationParam,
        ProgressNotificationParam, SamplingMessage,
    },
    service::RequestContext,
};
use serde_json::{Value, json};

use crate::{fixtures::text_result, server::ConformanceServer};

/// Pause between the notifications a tool emits.
const STEP: Duration = Duration::from_millis(50);

fn notification_failed(error: ServiceError) -> McpError {
    McpError::internal_error(format!("cannot notify the client: {error}"), None)
}

fn request_failed(what: &str, error: ServiceError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("{what} failed: {error}"))])
}

/// Sends three `info` log messages, 50 ms apart, then returns.
pub async fn logging(
    server: &ConformanceServer,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResult, McpError> {
    let messages = [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
    ];
    for (index, message) in messages.into_iter().enumerate() {
        if index > 0 {
            tokio::time::sleep(STEP).await;
        }
        if server.should_log(LoggingLevel::Info) {
            let param = LoggingMessageNotificationParam::new(LoggingLevel::Info, json!(message))
                .with_logger("conformance_target");
            context
                .peer
                .notify_logging_message(param)
                .await
                .map_err(notification_failed)?;
        }
    }
    Ok(text_result("Tool with logging executed successfully"))
}

/// Reports progress 0, 50 and 100 (of 100) against the caller's progress token.
pub async fn progress(context: &RequestContext<RoleServer>) -> Result<CallToolResult, McpError> {
    let token = context.meta.get_progress_token();
    for (index, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
        if index > 0 {
            tokio::time::sleep(STEP).await;
        }
        if let Some(token) = &token {
            let param = ProgressNotificationParam::new(token.clone(), progress).with_total(100.0);
            context
                .peer
                .notify_progress(param)
                .await
                .map_err(notification_failed)?;
        }
    }
    let reported = if token.is_some() {
        "reported"
    } else {
        "not reported (no progress token)"
    };
    Ok(text_result(format!("Progress {reported}")))
}

/// Asks the client's LLM to answer `prompt`.
pub async fn sampling(
    context: &RequestContext<RoleServer>,
    prompt: &str,
) -> Result<CallToolResult, McpError> {
    let request = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
    Ok(match context.peer.create_message(request).await {
        Ok(result) => {
            let reply = result
                .message
                .content
                .first()
                .and_then(|block| block.as_text())
                .map_or("No response", |text| text.text.as_str());
            text_result(format!("LLM response: {reply}"))
        }
        Err(error) => request_failed("sampling", error),
    })
}

/// Asks the user for a username and an email address.
pub async fn elicit_user_info(
    context: &RequestContext<RoleServer>,
    message: &str,
) -> Result<CallToolResult, McpError> {
    let schema = json!({
        "type": "object",
        "properties": {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"},
        },
        "required": ["username", "email"],
    });
    Ok(summarize(
        "User response",
        elicit(context, message, schema).await?,
    ))
}

/// Elicits a form whose fields all carry defaults (SEP-1034).
pub async fn elicit_with_defaults(
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResult, McpError> {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active",
            },
            "verified": {"type": "boolean", "description": "Verification status", "default": true},
        },
        "required": [],
    });
    let message = "Please review and update the form fields with defaults";
    Ok(summarize(
        "Elicitation completed",
        elicit(context, message, schema).await?,
    ))
}

/// Elicits every enum flavour: untitled, titled, legacy and both multi-selects (SEP-1330).
pub async fn elicit_enums(
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResult, McpError> {
    let schema = json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Select one option",
                "enum": ["option1", "option2", "option3"],
            },
            "titledSingle": {
                "type": "string",
                "description": "Select one option with titles",
                "oneOf": titled_options("value", ["First Option", "Second Option", "Third Option"]),
            },
            "legacyEnum": {
                "type": "string",
                "description": "Select one option (legacy)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {
                "type": "array",
                "description": "Select multiple options",
                "minItems": 1,
                "maxItems": 3,
                "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
            },
            "titledMulti": {
                "type": "array",
                "description": "Select multiple options with titles",
                "minItems": 1,
                "maxItems": 3,
                "items": {
                    "anyOf": titled_options("value", ["First Choice", "Second Choice", "Third Choice"]),
                },
            },
        },
        "required": [],
    });
    let message = "Please select options from the enum fields";
    Ok(summarize(
        "Elicitation completed",
        elicit(context, message, schema).await?,
    ))
}

/// `[{"const": "<prefix>1", "title": ...}, ...]`
fn titled_options(prefix: &str, titles: [&str; 3]) -> Value {
    titles
        .iter()
        .enumerate()
        .map(|(index, title)| json!({"const": format!("{prefix}{}", index + 1), "title": title}))
        .collect()
}

/// Sends a form elicitation. The outer error means this server built a bad schema;
/// the inner one means the client request failed.
async fn elicit(
    context: &RequestContext<RoleServer>,
    message: &str,
    schema: Value,
) -> Result<Result<ElicitResult, ServiceError>, McpError> {
    let requested_schema: ElicitationSchema = serde_json::from_value(schema).map_err(|error| {
        McpError::internal_error(format!("invalid elicitation schema: {error}"), None)
    })?;
    let params = ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: message.to_owned(),
        requested_schema,
    };
    Ok(context.peer.create_elicitation(params).await)
}

/// `<prefix>: action=<action>, content=<json>`, or the error.
fn summarize(prefix: &str, result: Result<ElicitResult, ServiceError>) -> CallToolResult {
    match result {
        Ok(reply) => {
            let action = serde_json::to_value(reply.action).unwrap_or(Value::Null);
            let action = action.as_str().unwrap_or("unknown");
            let content = reply.content.unwrap_or_else(|| json!({}));
            text_result(format!("{prefix}: action={action}, content={content}"))
        }
        Err(error) => request_failed("elicitation", error),
    }
}

/// Asks the client for its roots and lists their URIs, one per line.
pub async fn roots(context: &RequestContext<RoleServer>) -> Result<CallToolResult, McpError> {
    Ok(match context.peer.list_roots().await {
        Ok(result) => {
            let uris: Vec<&str> = result.roots.iter().map(|root| root.uri.as_str()).collect();
            text_result(uris.join("\n"))
        }
        Err(error) => request_failed("roots/list", error),
    })
}
