//! W3C trace context at the proxy's two edges, beside the traffic path (the HTTP layer and
//! the backend connection call into it; it depends on nothing of theirs):
//! - a request's span (target [`REQUEST`]) continues the `traceparent` of a peer listed in
//!   `[tracing] trust_traceparent_from`; anyone else's request starts a trace of its own;
//! - a call sent to a streamable-HTTP backend carries the context of the span it runs in
//!   (the backend call's span, target [`TRACE`]), so the backend's spans join the trace.
//!
//! Both need the `otel` feature and a tracing-opentelemetry layer in the subscriber (the
//! binary installs one when `[tracing]` asks for export; an embedding application installs
//! its own). Without the feature both are no-ops and the spans are only what logs show.

use std::net::IpAddr;

use http::HeaderMap;

/// The target of the request span: in logs it carries the request id.
pub const REQUEST: &str = "mcp_warden::request";
/// The target of spans that exist for traces only (the backend call): off unless traces
/// are exported.
pub const TRACE: &str = "mcp_warden::trace";

/// Makes the trusted peer's `traceparent` (and `tracestate`) the parent of `span`, which
/// must not have been entered yet. An untrusted peer's, or a malformed one, is ignored.
pub fn continue_trace(
    span: &tracing::Span,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trusted: &[ipnet::IpNet],
) {
    let trusted = peer.is_some_and(|peer| trusted.iter().any(|net| net.contains(&peer)));
    if !trusted || !headers.contains_key("traceparent") {
        return;
    }
    #[cfg(feature = "otel")]
    {
        use opentelemetry::propagation::TextMapPropagator;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .extract(&opentelemetry_http::HeaderExtractor(headers));
        let _ = span.set_parent(parent);
    }
    #[cfg(not(feature = "otel"))]
    let _ = span;
}

/// Names the JSON-RPC method on the request's span, for traces (logs name the request by its
/// id; recording a field on every call would cost them a formatting pass).
pub fn name_method(method: &str) {
    #[cfg(feature = "otel")]
    tracing::Span::current().record("mcp.method.name", method);
    #[cfg(not(feature = "otel"))]
    let _ = method;
}

/// Puts the current span's trace context on an outgoing request's headers (nothing when
/// the span is not traced).
pub fn inject(headers: &mut HeaderMap) {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::propagation::TextMapPropagator;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let context = tracing::Span::current().context();
        opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .inject_context(&context, &mut opentelemetry_http::HeaderInjector(headers));
    }
    #[cfg(not(feature = "otel"))]
    let _ = headers;
}
