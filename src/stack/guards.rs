//! The guards layer: content checks on what a client sends before anything below sees it,
//! and on what comes back before it leaves — size limits, deny rules, redaction
//! (`governance::guards`). After rate limits (a blocked call still spent its token: probing
//! for what passes is metered) and before the cache (a cached result was guarded when it
//! was stored, and a blocked call never reaches it).
//!
//! What is checked, by operation (a tool's or prompt's own settings apply by its exposed
//! name, the global ones otherwise):
//!
//! | operation | on the way in | on the way back |
//! |---|---|---|
//! | `tools/call` | arguments | result, error |
//! | `prompts/get` | arguments | messages, error |
//! | `resources/read`, `resources/subscribe` | the URI (as `/uri`) | contents (`max_result_bytes` too), error |
//! | `completion/complete` | the argument and its context | values, error |
//!
//! A backend's error message and data are redacted like a result: a backend that puts a
//! password in an error does not get it past the proxy.

use rmcp::model::{JsonObject, ServerResult};
use serde_json::Value;

use super::audit::Notes;
use super::layer::{CallFuture, Next, Step, forward, step_layer};
use super::{Call, Op};
use crate::error::CallError;
use crate::governance::Governance;

step_layer!(GuardsLayer {
    governance: std::sync::Arc<Governance>,
    metrics: std::sync::Arc<crate::telemetry::Metrics>,
});

/// A refusal, saying how the operator allows what it refused for this tool (`name`; empty
/// for what no tool's settings cover: a resource URI, a completion).
fn blocked(
    name: &str,
    b: crate::governance::guards::Blocked,
    notes: &Notes,
    metrics: &crate::telemetry::Metrics,
) -> CallError {
    use crate::governance::guards::{MAX_ARGUMENT_BYTES, MAX_ARGUMENT_DEPTH, MAX_RESULT_BYTES};
    notes.guard(&b.rule, &b.path);
    metrics
        .guard_blocks
        .get_or_create(&crate::telemetry::RuleLabels {
            rule: b.rule.clone(),
        })
        .inc();
    tracing::info!(rule = %b.rule, path = %b.path, "blocked by a guard");
    let section = if name.is_empty() {
        "[guards]".to_owned()
    } else {
        format!("[guards.tools.\"{name}\"]")
    };
    let allow =
        if [MAX_ARGUMENT_BYTES, MAX_ARGUMENT_DEPTH, MAX_RESULT_BYTES].contains(&b.rule.as_str()) {
            format!("raise `{}` under {section}", b.rule)
        } else {
            format!("`disabled_rules = [\"{}\"]` under {section}", b.rule)
        };
    CallError::Blocked(format!(
        "{b} (the gateway's operator allows it with {allow})"
    ))
}

/// What a request puts before the backend, and the name whose guard settings apply.
fn inbound(op: &Op) -> Option<(&str, std::borrow::Cow<'_, JsonObject>)> {
    use std::borrow::Cow;
    match op {
        Op::CallTool { tool, arguments } => Some((tool, Cow::Borrowed(arguments))),
        Op::GetPrompt {
            prompt, arguments, ..
        } => Some((prompt, Cow::Borrowed(arguments))),
        Op::ReadResource { uri, .. } | Op::Subscribe { uri, .. } => {
            let mut map = JsonObject::new();
            map.insert("uri".to_owned(), Value::String(uri.clone()));
            Some(("", Cow::Owned(map)))
        }
        // What a client types into a completion reaches the backend as much as a tool
        // argument does: the global rules apply to it (no tool's overrides).
        Op::Complete { argument, .. } => Some(("", Cow::Borrowed(argument))),
    }
}

impl Step for GuardsLayer {
    fn run(&self, call: Call, next: Next) -> CallFuture {
        let guards = &self.governance.guards;
        let Some((name, arguments)) = inbound(&call.op) else {
            return forward(next, call);
        };
        if let Err(b) = guards.check_arguments(name, &arguments) {
            let refused = blocked(name, b, &call.origin.notes, &self.metrics);
            return Box::pin(std::future::ready(Err(refused)));
        }
        if !guards.guards_results(name) {
            return forward(next, call);
        }
        let name = name.to_owned();
        let governance = self.governance.clone();
        let notes = call.origin.notes.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            match forward(next, call).await {
                Ok(result) => outbound(&governance, &name, result, &notes, &metrics),
                Err(CallError::Backend(mut e)) => {
                    redact_error(&governance, &name, &mut e, &notes);
                    Err(CallError::Backend(e))
                }
                Err(e) => Err(e),
            }
        })
    }
}

/// A result as it may leave: within `max_result_bytes`, redacted. Tool, prompt, resource
/// and completion results; anything else (an input-required round) passes as it is.
fn outbound(
    governance: &Governance,
    name: &str,
    result: ServerResult,
    notes: &Notes,
    metrics: &crate::telemetry::Metrics,
) -> Result<ServerResult, CallError> {
    if !matches!(
        result,
        ServerResult::CallToolResult(_)
            | ServerResult::GetPromptResult(_)
            | ServerResult::ReadResourceResult(_)
            | ServerResult::CompleteResult(_)
    ) {
        return Ok(result);
    }
    let mut value = serde_json::to_value(&result)
        .map_err(|e| CallError::Internal(format!("result not serializable: {e}")))?;
    let redactions = governance
        .guards
        .check_result(name, &mut value)
        .map_err(|b| blocked(name, b, notes, metrics))?;
    if redactions.is_empty() {
        return Ok(result);
    }
    notes.redactions(&redactions.by_rule);
    let redacted = match result {
        ServerResult::CallToolResult(_) => {
            serde_json::from_value(value).map(ServerResult::CallToolResult)
        }
        ServerResult::GetPromptResult(_) => {
            serde_json::from_value(value).map(ServerResult::GetPromptResult)
        }
        ServerResult::ReadResourceResult(_) => {
            serde_json::from_value(value).map(ServerResult::ReadResourceResult)
        }
        ServerResult::CompleteResult(_) => {
            serde_json::from_value(value).map(ServerResult::CompleteResult)
        }
        other => Ok(other),
    };
    redacted.map_err(|e| CallError::Internal(format!("redacted result: {e}")))
}

/// A backend's error, redacted like a result (its message and its data).
fn redact_error(governance: &Governance, name: &str, e: &mut rmcp::ErrorData, notes: &Notes) {
    let mut value = serde_json::json!({"message": e.message, "data": e.data});
    let redactions = governance.guards.redact(name, &mut value);
    if redactions.is_empty() {
        return;
    }
    notes.redactions(&redactions.by_rule);
    if let Some(message) = value["message"].as_str() {
        e.message = message.to_owned().into();
    }
    e.data = match value["data"].take() {
        Value::Null => None,
        data => Some(data),
    };
}
