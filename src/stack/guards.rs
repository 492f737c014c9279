//! The guards layer: content checks on a tool call's arguments (and a completion's
//! argument) before anything below sees them, and on its result before it leaves — size limits, deny rules, redaction
//! (`governance::guards`). After rate limits (a blocked call still spent its token: probing
//! for what passes is metered) and before the cache (a cached result was guarded when it
//! was stored, and a blocked call never reaches it).

use rmcp::model::ServerResult;
use tower::Service;

use super::layer::{CallFuture, Step, forward, hub_layer};
use super::{Call, Op};
use crate::error::CallError;

hub_layer!(GuardsLayer);

fn blocked(b: crate::governance::guards::Blocked) -> CallError {
    super::audit::note_guard(&b.rule, &b.path);
    tracing::info!(rule = %b.rule, path = %b.path, "blocked by a guard");
    CallError::Blocked(b.to_string())
}

impl Step for GuardsLayer {
    fn run<S>(&self, call: Call, next: S) -> CallFuture
    where
        S: Service<Call, Response = ServerResult, Error = CallError> + Send + 'static,
        S::Future: Send,
    {
        let guards = &self.hub.governance.guards;
        let (tool, arguments) = match &call.op {
            Op::CallTool { tool, arguments } => (tool, arguments),
            // What a client types into a completion reaches the backend as much as a tool
            // argument does: the global rules apply to it (no tool's overrides).
            Op::Complete { argument, .. } => {
                if let Err(b) = guards.check_arguments("", argument) {
                    return Box::pin(std::future::ready(Err(blocked(b))));
                }
                return Box::pin(forward(next, call));
            }
            _ => return Box::pin(forward(next, call)),
        };
        if let Err(b) = guards.check_arguments(tool, arguments) {
            return Box::pin(std::future::ready(Err(blocked(b))));
        }
        if !guards.guards_results(tool) {
            return Box::pin(forward(next, call));
        }
        let tool = tool.clone();
        let governance = self.hub.governance.clone();
        Box::pin(async move {
            let result = forward(next, call).await?;
            let ServerResult::CallToolResult(r) = &result else {
                return Ok(result);
            };
            let mut value = serde_json::to_value(r)
                .map_err(|e| CallError::Internal(format!("result not serializable: {e}")))?;
            let redactions = governance
                .guards
                .check_result(&tool, &mut value)
                .map_err(blocked)?;
            if redactions.is_empty() {
                return Ok(result);
            }
            super::audit::note_redactions(&redactions.by_rule);
            let redacted = serde_json::from_value(value)
                .map_err(|e| CallError::Internal(format!("redacted result: {e}")))?;
            Ok(ServerResult::CallToolResult(redacted))
        })
    }
}
