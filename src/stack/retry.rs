//! The retry layer: a call of a tool the operator marked `idempotent` that failed for a
//! reason of the backend's health (timeout, lost connection) is tried again, up to the
//! tool's `retries`, with backoff, while the backend's retry budget lasts. Never for other
//! tools — a write is not repeated behind the caller's back — and never after the breaker
//! opened or the client cancelled. It sits above the breaker so every attempt is counted
//! and admitted by it.

use std::time::Duration;

use rmcp::model::ClientRequest;

use super::layer::{CallFuture, Next, Step, forward};
use super::{Call, CallData};
use crate::error::CallError;

/// Needs nothing of the hub: what a backend allows (retries, budget) is its governance.
#[derive(Clone)]
pub struct RetryLayer;

const FIRST_BACKOFF: Duration = Duration::from_millis(50);

impl Step for RetryLayer {
    fn run(&self, call: Call, next: Next) -> CallFuture {
        let retries = {
            let ClientRequest::CallToolRequest(r) = &call.request else {
                return forward(next, call);
            };
            call.backend
                .governance
                .retries
                .get(r.params.name.as_ref())
                .copied()
        };
        let Some(retries) = retries else {
            return forward(next, call);
        };
        Box::pin(async move {
            let budget = &call.backend.governance.retry_budget;
            budget.deposit();
            let mut backoff = FIRST_BACKOFF;
            let mut attempt = 0;
            loop {
                let again = Call::new(CallData {
                    backend: call.backend.clone(),
                    generation: call.generation.clone(),
                    request: call.request.clone(),
                    op: call.op.clone(),
                    origin: call.origin.clone(),
                    cancel: call.cancel.clone(),
                    share_key: call.share_key.clone(),
                });
                let result = forward(next.clone(), again).await;
                let retryable = matches!(&result, Err(e) if e.backend_health() == Some(false));
                if !retryable
                    || attempt >= retries
                    || call.cancel.is_cancelled()
                    || !budget.withdraw()
                {
                    return result;
                }
                attempt += 1;
                tracing::info!(backend = %call.backend.name(), attempt, "retrying an idempotent call");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = call.cancel.cancelled() => return Err(CallError::Cancelled),
                }
                backoff *= 2;
            }
        })
    }
}
