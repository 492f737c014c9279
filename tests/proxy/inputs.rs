//! Input-required results (MCP 2026-07-28) through the proxy: passed through to clients that
//! speak 2026-07-28, answered over the session for clients that do not.

use rmcp::{
    model::{CallToolResponse, ProtocolVersion},
    service::{ClientLifecycleMode, ClientServiceExt},
    transport::StreamableHttpClientTransport,
};
use serde_json::json;

use crate::common::*;

/// The target over stdio and over HTTP, both connected with `protocol = "auto"`, so the
/// proxy speaks 2026-07-28 to them.
async fn modern_backends() -> (TestProxy, HttpTarget) {
    let target = HttpTarget::start().await;
    let toml = format!(
        "{}{}",
        stdio_backend("s", "protocol = \"auto\""),
        http_backend("h", &target.url, "protocol = \"auto\"")
    );
    (TestProxy::start(&toml).await, target)
}

#[tokio::test]
async fn a_client_before_2026_answers_a_backends_input_request_over_its_session() {
    let (proxy, _target) = modern_backends().await;
    let (client, seen) = connect(&proxy.url).await;
    for backend in ["s", "h"] {
        let result = client
            .peer()
            .call_tool(call(
                &format!("{backend}__ask_llm"),
                json!({"prompt": "2+2?"}),
            ))
            .await
            .unwrap();
        assert_eq!(
            first_text(&result),
            format!("ask_llm: {SAMPLED_TEXT}"),
            "{result:?}"
        );
    }
    assert_eq!(seen.seen.lock().unwrap().sampling_requests, 2);
}

#[tokio::test]
async fn a_2026_client_gets_the_input_required_result_and_its_retry_goes_through() {
    let (proxy, _target) = modern_backends().await;
    let handler = TestClient::default();
    let mode = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    let client = handler
        .clone()
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(proxy.url.clone()),
            mode,
        )
        .await
        .unwrap();
    for backend in ["s", "h"] {
        let name = format!("{backend}__ask_llm");
        let first = client
            .peer()
            .call_tool_once(call(&name, json!({"prompt": "2+2?"})))
            .await
            .unwrap();
        let CallToolResponse::InputRequired(required) = first else {
            panic!("expected input-required, got {first:?}")
        };
        assert!(required.input_requests.unwrap().contains_key("sample"));
        // The SDK helper answers with the client's own handler and retries.
        let result = client
            .call_tool(call(&name, json!({"prompt": "2+2?"})))
            .await
            .unwrap();
        assert_eq!(first_text(&result), format!("ask_llm: {SAMPLED_TEXT}"));
    }
}
