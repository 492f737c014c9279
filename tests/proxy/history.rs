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
    pii_then_send("").await;
}

/// The same with the history kept in Redis (read before, written after each decision).
#[tokio::test]
async fn the_same_rule_holds_with_the_history_in_redis() {
    let Some(redis) = crate::governance::Redis::start().await else {
        return;
    };
    pii_then_send(&format!("[limits]\nredis = {}\n", lit(&redis.url))).await;
}

async fn pii_then_send(extra: &str) {
    let proxy = TestProxy::start(&format!(
        "[authz]\npolicy = {}\n[tools.groups]\npii_read = [\"s__echo\"]\nexternal_send = [\"s__test_simple_text\"]\n{extra}{}",
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

/// Two replicas' histories on one Redis: what a session did on one counts on the other,
/// bounded the same way, apart per session; and a replica that loses Redis goes on with
/// what it saw itself.
#[tokio::test]
async fn history_is_kept_across_replicas_through_redis() {
    use mcp_warden::stack::history::History;
    use std::time::Duration;
    let Some(redis) = crate::governance::Redis::start().await else {
        return;
    };
    let replica = || {
        History::shared(
            100,
            Duration::from_secs(60),
            Duration::from_secs(3600),
            &redis.url,
        )
        .unwrap()
    };
    let (a, b) = (replica(), replica());
    let pii = ["pii_read".to_owned()];
    // Two sessions at once, on two replicas.
    tokio::join!(
        a.record_everywhere("s1", "crm__lookup", &pii),
        b.record_everywhere("s2", "mail__send", &[]),
    );
    a.record_everywhere("s1", "crm__lookup", &pii).await;
    let seen_on_b = b.facts_everywhere("s1").await;
    assert_eq!(seen_on_b.tools, ["crm__lookup"]);
    assert_eq!(seen_on_b.groups, ["pii_read"]);
    assert_eq!((seen_on_b.calls, seen_on_b.recent_calls), (2, 2));
    let other = a.facts_everywhere("s2").await;
    assert_eq!(
        (other.tools.as_slice(), other.calls),
        (&["mail__send".to_owned()][..], 1)
    );
    assert!(other.groups.is_empty());
    // Bounded like the local history: tool names stop at the limit, groups stay complete.
    for i in 0..mcp_warden::stack::history::MAX_TOOLS + 5 {
        b.record_everywhere("s3", &format!("t{i}"), &pii).await;
    }
    let s3 = a.facts_everywhere("s3").await;
    assert_eq!(s3.tools.len(), mcp_warden::stack::history::MAX_TOOLS);
    assert_eq!(s3.calls, (mcp_warden::stack::history::MAX_TOOLS + 5) as i64);

    // Redis gone: each replica answers from its own memory.
    redis.stop().await;
    let local = a.facts_everywhere("s1").await;
    assert_eq!((local.calls, local.groups.as_slice()), (2, &pii[..]));
    assert_eq!(
        b.facts_everywhere("s1").await.calls,
        0,
        "b never saw s1 itself"
    );
}
