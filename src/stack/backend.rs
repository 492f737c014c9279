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

use std::sync::Arc;

use rmcp::model::{ClientRequest, ServerResult};
use tower::{Layer, Service};

use super::Call;
use super::layer::{Around, CallFuture, Step, forward};
use crate::{error::CallError, hub::Hub};

macro_rules! hub_layer {
    ($name:ident) => {
        #[derive(Clone)]
        pub struct $name {
            hub: Arc<Hub>,
        }

        impl $name {
            pub fn new(hub: Arc<Hub>) -> Self {
                $name { hub }
            }
        }

        impl<S> Layer<S> for $name {
            type Service = Around<$name, S>;

            fn layer(&self, inner: S) -> Self::Service {
                Around::new(self.clone(), inner)
            }
        }
    };
}

hub_layer!(BreakerLayer);
hub_layer!(ConcurrencyLayer);
hub_layer!(TimeoutLayer);

impl Step for BreakerLayer {
    fn run<S>(&self, call: Call, next: S) -> CallFuture
    where
        S: Service<Call, Response = ServerResult, Error = CallError> + Send + 'static,
        S::Future: Send,
    {
        let hub = self.hub.clone();
        Box::pin(async move {
            let Some(g) = hub.governance.backends.get(call.backend) else {
                return forward(next, call).await;
            };
            let call_tenant = call.origin.principal.tenant.clone();
            let key = g.breakers.key(call_tenant.as_deref());
            let ticket = g
                .breakers
                .admit(key)
                .map_err(|open| CallError::CircuitOpen {
                    backend: g.name.clone(),
                    retry_after_ms: open.retry_after.as_millis().max(1) as u64,
                })?;
            let result = forward(next, call).await;
            let health = match &result {
                Ok(_) => Some(true),
                Err(e) => e.backend_health(),
            };
            g.breakers.record(ticket, health);
            // The state as metrics show it, for this breaker.
            let tenant = g.breakers.key(call_tenant.as_deref());
            {
                let value = match g.breakers.state_of(&tenant) {
                    crate::governance::breaker::State::Closed => 0,
                    crate::governance::breaker::State::HalfOpen => 1,
                    crate::governance::breaker::State::Open => 2,
                };
                hub.metrics
                    .breakers
                    .get_or_create(&crate::telemetry::BreakerLabels {
                        backend: g.name.clone(),
                        tenant,
                    })
                    .set(value);
            }
            result
        })
    }
}

impl Step for ConcurrencyLayer {
    fn run<S>(&self, call: Call, next: S) -> CallFuture
    where
        S: Service<Call, Response = ServerResult, Error = CallError> + Send + 'static,
        S::Future: Send,
    {
        let hub = self.hub.clone();
        Box::pin(async move {
            let Some(g) = hub.governance.backends.get(call.backend) else {
                return forward(next, call).await;
            };
            let busy = || CallError::Busy(g.name.clone());
            let _principal = match &hub.governance.principals {
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
    fn run<S>(&self, call: Call, next: S) -> CallFuture
    where
        S: Service<Call, Response = ServerResult, Error = CallError> + Send + 'static,
        S::Future: Send,
    {
        let timeout = self
            .hub
            .governance
            .backends
            .get(call.backend)
            .and_then(|g| {
                let ClientRequest::CallToolRequest(r) = &call.request else {
                    return None;
                };
                g.tool_timeouts
                    .get(r.params.name.as_ref())
                    .map(|t| (*t, g.name.clone()))
            });
        let Some((limit, backend)) = timeout else {
            // The backend's own request timeout applies (set on the connection).
            return Box::pin(forward(next, call));
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
