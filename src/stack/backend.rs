//! The per-backend layers, innermost before the router:
//!
//! - **breaker** — a backend failing again and again is answered at once (`CircuitOpen`)
//!   instead of being called; it sits outermost of the three so a refused call waits for
//!   nothing;
//! - **concurrency** — at most N calls in flight per backend (and per principal), a bounded
//!   queue, then `Busy`;
//! - **timeout** — per tool (else the backend's request timeout); a call that runs out is
//!   dropped, which sends the backend MCP cancellation, and counts as a breaker failure
//!   (the breaker sees the timeout's error because it sits outside).

use rmcp::model::ClientRequest;

use super::Call;
use super::layer::{CallFuture, Next, Step, forward, step_layer};
use crate::error::CallError;
use crate::governance::breaker::State;
use crate::telemetry::BreakerLabels;

step_layer!(BreakerLayer {
    metrics: std::sync::Arc<crate::telemetry::Metrics>,
});
step_layer!(ConcurrencyLayer {
    governance: std::sync::Arc<crate::governance::Governance>,
    metrics: std::sync::Arc<crate::telemetry::Metrics>,
});
step_layer!(
    /// The per-tool timeout: the backend's governance says it all.
    TimeoutLayer {}
);

impl Step for BreakerLayer {
    fn run(&self, call: Call, next: Next) -> CallFuture {
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let g = call.backend.governance.clone();
            let key = g.breakers.key(call.origin.principal.tenant.as_deref());
            let tier = g.breakers.tier(&call.origin.principal.roles);
            let ticket = g
                .breakers
                .admit(key, tier)
                .map_err(|open| CallError::CircuitOpen {
                    backend: g.name.clone(),
                    retry_after_ms: open.retry_after.as_millis().max(1) as u64,
                })?;
            let result = forward(next, call).await;
            let health = match &result {
                Ok(_) => Some(true),
                Err(e) => e.backend_health(),
            };
            if let Some((tenant, state)) = g.breakers.record(ticket, health) {
                let value = match state {
                    State::Closed => 0,
                    State::HalfOpen => 1,
                    State::Open => 2,
                };
                let labels = BreakerLabels {
                    backend: g.name.clone(),
                    tenant,
                };
                metrics.breakers.get_or_create(&labels).set(value);
                let to = match state {
                    State::Closed => "closed",
                    State::HalfOpen => "half_open",
                    State::Open => "open",
                };
                metrics
                    .breaker_transitions
                    .get_or_create(&crate::telemetry::TransitionLabels {
                        backend: g.name.clone(),
                        to,
                    })
                    .inc();
            }
            result
        })
    }
}

impl Step for ConcurrencyLayer {
    fn run(&self, call: Call, next: Next) -> CallFuture {
        let governance = self.governance.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let g = call.backend.governance.clone();
            let busy = || {
                metrics.backend_event(&metrics.busy, &g.name);
                CallError::Busy(g.name.clone())
            };
            let _principal = match &governance.principals {
                Some(gates) => Some(
                    gates
                        .gate(&call.origin.principal.key())
                        .enter()
                        .await
                        .map_err(|_| busy())?,
                ),
                None => None,
            };
            let _backend = g.gate.enter().await.map_err(|_| busy())?;
            forward(next, call).await
        })
    }
}

impl Step for TimeoutLayer {
    fn run(&self, call: Call, next: Next) -> CallFuture {
        let timeout = {
            let g = &call.backend.governance;
            match &call.request {
                ClientRequest::CallToolRequest(r) => g
                    .tool_timeouts
                    .get(r.params.name.as_ref())
                    .map(|t| (*t, g.name.clone())),
                _ => None,
            }
        };
        let Some((limit, backend)) = timeout else {
            // The backend's own request timeout applies (set on the connection).
            return forward(next, call);
        };
        Box::pin(async move {
            // Dropping the call on timeout cancels it at the backend.
            tokio::time::timeout(limit, forward(next, call))
                .await
                .unwrap_or(Err(CallError::Timeout {
                    backend,
                    ms: limit.as_millis() as u64,
                }))
        })
    }
}
