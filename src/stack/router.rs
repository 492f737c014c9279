//! The innermost service: sends the call to the backend the catalog chose, over that
//! backend's shared connection.

use rmcp::model::ClientRequest;

use super::layer::{CallFuture, Link};
use super::{Call, Op};

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
            let request = with_arguments(call.request, call.op);
            let started = std::time::Instant::now();
            // The client side of the backend hop, in traces only.
            let span = tracing::info_span!(
                target: crate::trace::TRACE,
                "backend call",
                otel.kind = "client",
                mcp.backend = backend.name(),
                mcp.method.name = request.method(),
            );
            // Boxed where it is made (kilobytes: the backend hop's own state), so the
            // wrappers around it move a pointer.
            let result = tracing::Instrument::instrument(
                Box::pin(backend.request(request, call.origin, call.cancel)),
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

/// A `tools/call` with its arguments back from the authorization question (where the
/// session put them, see [`super::CallData::request`]): moved when no one else holds them
/// (a retried call's earlier attempt may), copied otherwise.
fn with_arguments(mut request: ClientRequest, op: Op) -> ClientRequest {
    if let (ClientRequest::CallToolRequest(r), Op::CallTool { arguments, .. }) = (&mut request, op)
        && r.params.arguments.is_none()
        && !arguments.is_empty()
    {
        r.params.arguments = Some(std::sync::Arc::unwrap_or_clone(arguments));
    }
    request
}
