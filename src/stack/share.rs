//! The cache and coalescing layers: answers shared between calls — only between calls of
//! the same principal with the same claims (the key includes the caller's scope), only
//! for tools the operator opted in, and always below authorization, so every call is
//! still decided.

use rmcp::model::{ClientRequest, ServerResult};

use super::Call;
use super::layer::{CallFuture, Next, Step, forward, step_layer};
use crate::governance::cache::{key, scope};

step_layer!(CacheLayer {
    governance: std::sync::Arc<crate::governance::Governance>,
    metrics: std::sync::Arc<crate::telemetry::Metrics>,
});
step_layer!(CoalesceLayer {
    governance: std::sync::Arc<crate::governance::Governance>,
    metrics: std::sync::Arc<crate::telemetry::Metrics>,
});

/// The backend's own name of a tool call's tool.
fn tool_name(call: &Call) -> Option<&str> {
    match &call.request {
        ClientRequest::CallToolRequest(r) => Some(r.params.name.as_ref()),
        _ => None,
    }
}

/// The call's cache and coalescing key, computed once per call (both layers use it).
fn share_key(call: &Call) -> [u8; 32] {
    *call.share_key.get_or_init(|| {
        // A call's arguments are in its authorization question until the router.
        let arguments = match (&call.request, &call.op) {
            (ClientRequest::CallToolRequest(r), super::Op::CallTool { arguments, .. }) => {
                r.params.arguments.as_ref().or(Some(&**arguments))
            }
            _ => None,
        };
        let exposed = match &call.op {
            super::Op::CallTool { tool, .. } => tool.as_str(),
            _ => "",
        };
        key(exposed, arguments, &scope(&call.origin.principal))
    })
}

fn cacheable(result: &ServerResult) -> bool {
    matches!(result, ServerResult::CallToolResult(r) if r.is_error != Some(true))
}

impl Step for CacheLayer {
    fn run(&self, call: Call, next: Next) -> CallFuture {
        let gov = self.governance.clone();
        // The key is computed only for tools configured for it.
        let ttl = tool_name(&call)
            .and_then(|t| call.backend.governance.cache_ttl.get(t).copied())
            .map(|ttl| (ttl, share_key(&call)));
        let Some((ttl, k)) = ttl else {
            return forward(next, call);
        };
        if let Some(hit) = gov.cache.get(&k) {
            self.metrics
                .cache
                .get_or_create(&crate::telemetry::CacheLabels {
                    outcome: "hit".to_owned(),
                })
                .inc();
            return Box::pin(std::future::ready(Ok((*hit).clone())));
        }
        self.metrics
            .cache
            .get_or_create(&crate::telemetry::CacheLabels {
                outcome: "miss".to_owned(),
            })
            .inc();
        let (backend, exposed) = match &call.op {
            super::Op::CallTool { tool, .. } => (call.backend.id, tool.clone()),
            _ => (call.backend.id, String::new()),
        };
        Box::pin(async move {
            let result = forward(next, call).await?;
            if cacheable(&result) {
                gov.cache.insert(k, backend, &exposed, result.clone(), ttl);
            }
            Ok(result)
        })
    }
}

impl Step for CoalesceLayer {
    fn run(&self, call: Call, next: Next) -> CallFuture {
        let gov = self.governance.clone();
        let shared = tool_name(&call)
            .is_some_and(|t| call.backend.governance.coalesce.contains(t))
            .then(|| share_key(&call));
        let Some(k) = shared else {
            return forward(next, call);
        };
        let metrics = self.metrics.clone();
        Box::pin(async move {
            // The shared call must not end when its first caller cancels: it runs on a
            // token of its own, cancelled once every caller has been (or has gone).
            let caller = call.cancel.clone();
            let (outcome, joined) = gov
                .coalescer
                .run(k, &caller, move |token| {
                    let mut call = call;
                    call.cancel = token;
                    forward(next, call)
                })
                .await;
            if joined {
                metrics.coalesced.inc();
            }
            outcome
        })
    }
}
