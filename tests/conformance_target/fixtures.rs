//! Test data and small helpers shared by the tool, resource and prompt modules.

use std::sync::Arc;

use rmcp::{
    ErrorData as McpError,
    model::{CallToolResult, ContentBlock, JsonObject},
};
use serde_json::Value;

/// A 1x1 red PNG, base64-encoded.
pub const PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// A minimal WAV file, base64-encoded.
pub const WAV_BASE64: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/// A successful tool result holding one text block.
pub fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// Turns a `json!({...})` literal into a JSON object for schemas.
///
/// Only ever called with object literals, so anything else is a bug in this server.
pub fn object(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        other => panic!("expected a JSON object literal, got {other}"),
    }
}

/// A required string argument of a tool call or prompt.
pub fn string_argument<'a>(arguments: &'a JsonObject, name: &str) -> Result<&'a str, McpError> {
    arguments
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| missing_argument(name, "string"))
}

/// A required non-negative integer argument of a tool call.
pub fn integer_argument(arguments: &JsonObject, name: &str) -> Result<u64, McpError> {
    arguments
        .get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| missing_argument(name, "non-negative integer"))
}

fn missing_argument(name: &str, kind: &str) -> McpError {
    McpError::invalid_params(format!("argument `{name}` must be a {kind}"), None)
}
