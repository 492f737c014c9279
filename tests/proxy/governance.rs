//! Traffic governance end to end, through the real server.

use serde_json::json;

use rmcp::{
    ServiceExt,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};

use crate::common::*;

async fn as_token(
    url: &str,
    token: &str,
) -> rmcp::service::RunningService<rmcp::RoleClient, TestClient> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned());
    TestClient::default()
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap()
}

fn tokens(list: &[(&str, &str, &str)]) -> String {
    list.iter()
        .map(|(secret, id, role)| {
            format!(
                "[[auth.tokens]]\nsha256 = \"{}\"\nid = \"{id}\"\nkind = \"user\"\nroles = [\"{role}\"]\n",
                mcp_warden::authn::token_hash_hex(secret)
            )
        })
        .collect()
}

#[tokio::test]
async fn a_rate_limit_per_role_is_shared_by_the_roles_principals() {
    let config = format!(
        "[auth]\n{}[authz]\npolicy = {}\n[[limits.rate]]\nid = \"analysts\"\nby = [\"role\"]\nroles = [\"analyst\"]\nper_minute = 3\nburst = 3\ntools = [\"s__*\"]\n{}",
        tokens(&[
            ("ann-t", "ann", "analyst"),
            ("bob-t", "bob", "analyst"),
            ("eve-t", "eve", "engineer")
        ]),
        lit(mcp_warden::config::ALLOW_ALL),
        stdio_backend("s", "")
    );
    let proxy = TestProxy::start(&config).await;
    let (ann, bob, eve) = (
        as_token(&proxy.url, "ann-t").await,
        as_token(&proxy.url, "bob-t").await,
        as_token(&proxy.url, "eve-t").await,
    );
    let echo = || call("s__echo", json!({"text": "hi"}));
    ann.peer().call_tool(echo()).await.unwrap();
    bob.peer().call_tool(echo()).await.unwrap();
    ann.peer().call_tool(echo()).await.unwrap();
    // The analysts' bucket is empty now, whichever analyst asks.
    for client in [&bob, &ann] {
        let refused = client.peer().call_tool(echo()).await.unwrap_err();
        let text = refused.to_string();
        assert!(text.contains("rate limited by `analysts`"), "{text}");
        let rmcp::ServiceError::McpError(e) = refused else {
            panic!("a JSON-RPC error: {text}")
        };
        assert_eq!(e.code, mcp_warden::error::RATE_LIMITED);
        let retry = e.data.unwrap()["retryAfterMs"].as_u64().unwrap();
        assert!(retry > 0 && retry <= 20_000, "retry after {retry} ms");
    }
    // Other roles are not limited by it; lists are not tool calls.
    for _ in 0..5 {
        eve.peer().call_tool(echo()).await.unwrap();
    }
    ann.peer().list_all_tools().await.unwrap();
}
