//! Bad input from a client gets a clear error, never a panic: raw HTTP against the proxy.

use serde_json::{Value, json};

use crate::common::*;

async fn post(
    url: &str,
    session: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    raw_post(url, session, body).send().await.unwrap()
}

/// The JSON-RPC message in a JSON or SSE response body.
fn message(body: &str) -> Value {
    let json = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|d| d.contains("jsonrpc"))
        .unwrap_or(body);
    serde_json::from_str(json).unwrap_or_else(|_| panic!("not JSON-RPC: {body}"))
}

#[tokio::test]
async fn malformed_unknown_oversized_and_foreign_session_requests_get_clear_errors() {
    let proxy = TestProxy::start(&stdio_backend("s", "")).await;
    let url = &proxy.url;
    let id = raw_session(url).await;

    let malformed = post(url, Some(&id), "{not json").await;
    assert!(
        malformed.status().is_client_error(),
        "malformed JSON: {}",
        malformed.status()
    );

    // A number beyond the double range cannot be relayed or recorded as sent: refused
    // whole, never forwarded as infinity or as another number.
    let out_of_range = post(
        url,
        Some(&id),
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"s__echo","arguments":{"text":"x","n":1e400}}}"#,
    )
    .await;
    assert!(
        out_of_range.status().is_client_error(),
        "a number out of range: {}",
        out_of_range.status()
    );

    let unknown = post(
        url,
        Some(&id),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/frobnicate"}).to_string(),
    )
    .await;
    let unknown = message(&unknown.text().await.unwrap());
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");

    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "s__nope", "arguments": {}}});
    let unknown_tool = message(
        &post(url, Some(&id), call.to_string())
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(unknown_tool["error"]["code"], -32602, "{unknown_tool}");
    assert!(
        unknown_tool["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown tool `s__nope`")
    );

    let huge = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "s__echo", "arguments": {"text": "x".repeat(5 * 1024 * 1024)}}});
    let oversized = post(url, Some(&id), huge.to_string()).await;
    assert_eq!(oversized.status(), 413, "oversized body");

    let foreign = post(
        url,
        Some("not-a-session"),
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}).to_string(),
    )
    .await;
    assert_eq!(foreign.status(), 404, "unknown session id");

    let bad_cursor =
        json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list", "params": {"cursor": "forged"}});
    let bad_cursor = message(
        &post(url, Some(&id), bad_cursor.to_string())
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(bad_cursor["error"]["code"], -32602, "{bad_cursor}");

    // A session ended with DELETE is gone.
    let other = raw_session(url).await;
    let deleted = reqwest::Client::new()
        .delete(url)
        .header("mcp-session-id", &other)
        .send()
        .await
        .unwrap();
    assert!(
        deleted.status().is_success(),
        "DELETE: {}",
        deleted.status()
    );
    let after = post(
        url,
        Some(&other),
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}).to_string(),
    )
    .await;
    assert_eq!(after.status(), 404, "a deleted session");

    // Still serving after all of that.
    let list = message(
        &post(
            url,
            Some(&id),
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}).to_string(),
        )
        .await
        .text()
        .await
        .unwrap(),
    );
    assert!(list["result"]["tools"].as_array().unwrap().len() > 5);
}

#[tokio::test]
async fn a_foreign_host_header_is_refused() {
    let proxy = TestProxy::start(&stdio_backend("s", "")).await;
    let response = reqwest::Client::new()
        .post(&proxy.url)
        .header("host", "evil.example")
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}
