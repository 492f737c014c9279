//! The innermost service: sends the call to the backend the catalog chose, over that
//! backend's shared connection.

use super::Call;
use super::layer::{CallFuture, Link};

/// Sends each call to the backend it carries, and times the backend alone.
#[derive(Clone)]
pub struct Router {
    pub metrics: std::sync::Arc<crate::telemetry::Metrics>,
}

impl Link for Router {
    fn call(&self, call: Call) -> CallFuture {
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let call = call.into_data();
            let backend = call.backend;
            let started = std::time::Instant::now();
            // The client side of the backend hop, in traces only.
            let span = tracing::info_span!(
                target: crate::trace::TRACE,
                "backend call",
                otel.kind = "client",
                mcp.backend = backend.name(),
                mcp.method.name = call.request.method(),
            );
            let result = tracing::Instrument::instrument(
                backend.request(call.request, call.origin, call.cancel),
                span,
            )
            .await;
            metrics
                .backend_seconds
                .get_or_create(&crate::telemetry::BackendLabels {
                    backend: backend.name().to_owned(),
                })
                .observe(started.elapsed().as_secs_f64());
            result
        })
    }
}
