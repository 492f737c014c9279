//! OpenTelemetry export (`otel` builds): the proxy's spans reach an OTLP/HTTP receiver on
//! loopback (decoded here with the protocol's own message types), a trusted client's
//! `traceparent` is continued, an untrusted one's is not, and an HTTP backend receives
//! the context of the proxy's span for its call.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value},
    trace::v1::span::SpanKind,
};
use prost::Message;
use serde_json::{Value, json};

use crate::audit::scratch;
use crate::common::*;

/// One exported span, as the receiver decoded it.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: Vec<(String, String)>,
}

impl Got {
    /// The proxy's span of a `tools/call` request.
    fn is_call_request(&self) -> bool {
        self.kind == SpanKind::Server as i32
            && self.attribute("mcp.method.name") == Some("tools/call")
    }

    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

/// An OTLP/HTTP trace receiver on loopback: `POST /v1/traces` with a protobuf body.
async fn receiver() -> (String, Arc<Mutex<Vec<Got>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP request");
                let mut spans = kept.lock().unwrap();
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .map(|r| pairs(&r.attributes))
                        .and_then(|a| a.into_iter().find(|(k, _)| k == "service.name"))
                        .map(|(_, v)| v)
                        .unwrap_or_default();
                    for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                        spans.push(Got {
                            service: service.clone(),
                            name: span.name,
                            kind: span.kind,
                            trace_id: hex::encode(span.trace_id),
                            span_id: hex::encode(span.span_id),
                            parent_span_id: hex::encode(span.parent_span_id),
                            attributes: pairs(&span.attributes),
                        });
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    axum::body::Bytes::new(),
                )
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

fn config(
    dir: &std::path::Path,
    collector: &str,
    trusted: &str,
    backend: &str,
) -> std::path::PathBuf {
    let toml = format!(
        "{}\n[tracing]\notlp_endpoint = {}\nservice_name = \"warden-under-test\"\ntrust_traceparent_from = [{}]\n\n{}",
        with_auth(""),
        lit(collector),
        lit(trusted),
        http_backend("h", backend, ""),
    );
    let path = dir.join("warden.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// The conformance target behind the `mcp-warden` binary, exporting to a receiver, with
/// `trusted` as `trust_traceparent_from` and batches sent every `delay_ms`.
async fn start(
    trusted: &str,
    delay_ms: &str,
) -> (
    HttpTarget,
    Arc<Mutex<Vec<Got>>>,
    std::path::PathBuf,
    tokio::process::Child,
    String,
) {
    let target = HttpTarget::start().await;
    let (collector, spans) = receiver().await;
    let dir = scratch("otel");
    let path = config(&dir, &collector, trusted, &target.url);
    let (proxy, url, _) =
        spawn_warden_env(&path, &[], &[("OTEL_BSP_SCHEDULE_DELAY", delay_ms)]).await;
    (target, spans, dir, proxy, url)
}

/// Calls `h__traceparent` in a raw session, presenting `traceparent`; returns what the
/// backend received.
async fn call_with(url: &str, traceparent: &str) -> String {
    let session = raw_session(url).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "h__traceparent", "arguments": {}}});
    let answer: Value = raw_post(url, Some(&session), body.to_string())
        .header("traceparent", traceparent)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned()
}

/// `version-trace-parent-flags` of a `traceparent` header.
fn parts(traceparent: &str) -> Vec<&str> {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "a W3C traceparent: {traceparent:?}");
    parts
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// A trusted client's trace goes on through the proxy to the backend; the proxy's server
/// span (a child of the client's) and its backend-call span (whose context the backend
/// received) are exported — the last batch on a graceful stop, with a batch delay that
/// would otherwise hold them for a minute.
#[tokio::test]
async fn a_trusted_clients_trace_continues_to_the_backend_and_reaches_the_collector() {
    let (_target, spans, dir, mut proxy, url) = start("127.0.0.1", "60000").await;

    let sent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let received = call_with(&url, &sent).await;
    let backend = parts(&received);
    assert_eq!(
        backend[1], CLIENT_TRACE,
        "the backend joins the client's trace"
    );
    assert_ne!(backend[2], CLIENT_SPAN, "under the proxy's own span");
    assert_eq!(backend[3], "01", "sampled, as the client decided");

    signal(&proxy, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(20), proxy.wait())
        .await
        .expect("the proxy stops")
        .unwrap();
    assert!(status.success(), "{status}");
    let spans = spans.lock().unwrap().clone();
    let server = spans
        .iter()
        .find(|s| s.is_call_request())
        .unwrap_or_else(|| {
            panic!("the request's span was exported before the proxy exited: {spans:#?}")
        });
    assert_eq!(server.service, "warden-under-test");
    assert_eq!(server.name, "mcp request");
    assert_eq!(server.trace_id, CLIENT_TRACE);
    assert_eq!(
        server.parent_span_id, CLIENT_SPAN,
        "a child of the client's span"
    );
    assert!(
        server.attribute("id").is_some_and(|id| !id.is_empty()),
        "the proxy's request id: {server:?}"
    );
    let client = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client as i32)
        .unwrap_or_else(|| panic!("the backend call's span: {spans:#?}"));
    assert_eq!(client.name, "backend call");
    assert_eq!(client.trace_id, CLIENT_TRACE);
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(
        client.span_id, backend[2],
        "the backend received this span's context"
    );
    assert_eq!(client.attribute("mcp.backend"), Some("h"));
    assert_eq!(client.attribute("mcp.method.name"), Some("tools/call"));
    // Nothing of the call's arguments or the principal travels in a span.
    for span in &spans {
        for (key, _) in &span.attributes {
            assert!(
                !key.contains("principal") && !key.contains("argument"),
                "{span:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A client the proxy does not trust cannot put its calls into a trace of its choosing:
/// the request starts a trace of its own, which is what the backend sees. Malformed
/// headers change nothing either.
#[tokio::test]
async fn an_untrusted_clients_traceparent_is_not_continued() {
    let (_target, spans, dir, _proxy, url) = start("10.0.0.0/8", "50").await;

    for sent in [
        format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"),
        "00-zz-not-hex".to_owned(),
        format!("ff-{CLIENT_TRACE}-{CLIENT_SPAN}-01"),
    ] {
        let received = call_with(&url, &sent).await;
        let backend = parts(&received);
        assert_ne!(backend[1], CLIENT_TRACE, "{sent:?}");
        assert_eq!(backend[1].len(), 32, "{received}");
    }
    until("the requests' spans are exported", 20, async || {
        spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.is_call_request())
            .count()
            >= 3
    })
    .await;
    for span in spans.lock().unwrap().iter() {
        assert_ne!(span.trace_id, CLIENT_TRACE, "{span:?}");
        if span.kind == SpanKind::Server as i32 {
            assert!(span.parent_span_id.is_empty(), "a root span: {span:?}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
