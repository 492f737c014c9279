//! History-aware policies: `context.history` holds what the calling session did — the tools
//! it was allowed to call and their `[tools.groups]` — so a policy can refuse the second
//! step of an exfiltration chain in that session while other sessions go on.

use serde_json::json;

use crate::common::*;

const POLICY: &str = r#"
@id("everything")
permit(principal, action, resource);
@id("no-external-send-after-pii")
forbid(principal, action in Mcp::Action::"group:external_send", resource)
when { context.history.groups.contains("pii_read") };
"#;

/// Calls the tool of group `external_send`.
async fn send(client: &Client) -> Result<rmcp::model::CallToolResult, rmcp::ServiceError> {
    client
        .call_tool(call("s__test_simple_text", json!({})))
        .await
}

#[tokio::test]
async fn after_a_pii_read_the_same_session_cannot_send_out_and_other_sessions_can() {
    let proxy = TestProxy::start(&format!(
        "[authz]\npolicy = {}\n[tools.groups]\npii_read = [\"s__echo\"]\nexternal_send = [\"s__test_simple_text\"]\n{}",
        lit(POLICY),
        stdio_backend("s", "")
    ))
    .await;
    let (first, _) = connect(&proxy.url).await;
    assert!(send(&first).await.is_ok(), "nothing read yet");
    first
        .call_tool(call("s__echo", json!({"text": "customer 42"})))
        .await
        .unwrap();
    let refused = send(&first).await.unwrap_err().to_string();
    assert!(
        refused.contains("no-external-send-after-pii"),
        "refused by the history rule, not as an unknown tool: {refused}"
    );
    // Still listed: a list shows what the principal could call in some session.
    assert!(
        listed_tool_names(&first)
            .await
            .contains(&"s__test_simple_text".to_owned())
    );
    // Reads go on in that session; a second session of the same principal starts clean.
    first
        .call_tool(call("s__echo", json!({"text": "again"})))
        .await
        .unwrap();
    let (second, _) = connect(&proxy.url).await;
    assert!(send(&second).await.is_ok(), "a new session has no history");
    // Two sessions at once: each keeps its own history.
    let (a, b) = tokio::join!(
        second.call_tool(call("s__echo", json!({"text": "x"}))),
        first.call_tool(call("s__echo", json!({"text": "y"})))
    );
    a.unwrap();
    b.unwrap();
    assert!(send(&second).await.is_err(), "the second session read too");
    proxy.handle.shutdown().await;
}
