//! A streamable-HTTP backend that never ends its answer: a JSON answer or an event on a
//! call's stream that grows without end is cut off at the proxy's bound (64 MiB), the call
//! fails with a clear error instead of the proxy's memory growing, and the backend's other
//! calls go on.

use std::convert::Infallible;

use axum::{
    body::{Body, Bytes},
    extract::Request,
    http::header::CONTENT_TYPE,
    middleware::Next,
    response::Response,
};
use futures::StreamExt;
use serde_json::json;

use crate::common::*;

/// The demo backend, except that a call whose arguments say `endless-event` or
/// `endless-json` is answered with a body that never ends (an SSE `data:` line, or a JSON
/// string, sent a mebibyte at a time).
async fn endless_backend() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let app = mcp_warden::demo::router().layer(axum::middleware::from_fn(endless));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn endless(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let (content_type, head) = if text.contains("endless-event") {
        ("text/event-stream", "data: ")
    } else if text.contains("endless-json") {
        (
            "application/json",
            "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"result\":\"",
        )
    } else {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    let chunk = Bytes::from(vec![b'a'; 1 << 20]);
    let body = futures::stream::once(async move { Bytes::from(head) })
        .chain(futures::stream::repeat(chunk))
        .map(Ok::<_, Infallible>);
    Response::builder()
        .header(CONTENT_TYPE, content_type)
        .body(Body::from_stream(body))
        .unwrap()
}

#[tokio::test]
async fn an_answer_that_never_ends_fails_its_call_at_the_bound() {
    let url = endless_backend().await;
    let proxy = TestProxy::start(&http_backend("demo", &url, "")).await;
    proxy.wait_backend_up("demo").await;
    let (client, _) = connect(&proxy.url).await;
    for (text, said) in [
        (
            "endless-event",
            "an event on the backend's stream is larger than 67108864 bytes",
        ),
        ("endless-json", "the answer is too large"),
    ] {
        let error = client
            .peer()
            .call_tool(call("demo__echo", json!({ "text": text })))
            .await
            .expect_err("an endless answer is not a result");
        let rmcp::ServiceError::McpError(error) = error else {
            panic!("{text}: {error}");
        };
        assert!(error.message.contains(said), "{text}: {}", error.message);
        // The error names the backend, and only the backend, where a client looks for it.
        assert_eq!(error.data, Some(json!({ "backend": "demo" })), "{text}");
    }
    let result = client
        .peer()
        .call_tool(call("demo__echo", json!({ "text": "after" })))
        .await
        .unwrap();
    assert!(first_text(&result).contains("after"));
}
