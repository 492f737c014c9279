//! Clients and backends on different revisions behind one proxy (`protocol = "auto"`):
//! a client on 2025-11-25 keeps what its revision has (server requests mid-call, resource
//! subscriptions, progress) in front of a backend on 2026-07-28, and every backend on
//! 2026-07-28 is told each request's own client capabilities, never the proxy's.

#![allow(deprecated)] // resources/subscribe: what clients on 2025-11-25 use

use rmcp::{
    ServiceExt,
    model::{ProtocolVersion, SubscribeRequestParams, UnsubscribeRequestParams},
    service::{ClientLifecycleMode, ClientServiceExt},
    transport::StreamableHttpClientTransport,
};
use serde_json::{Value, json};

use crate::common::*;

async fn auto_backend(target: &HttpTarget) -> TestProxy {
    TestProxy::start(&http_backend("h", &target.url, "protocol = \"auto\"")).await
}

/// What the backend says this call's client declared.
async fn capabilities_seen<S: rmcp::service::Service<rmcp::RoleClient>>(
    client: &rmcp::service::RunningService<rmcp::RoleClient, S>,
) -> Value {
    let result = client
        .peer()
        .call_tool(call("h__client_capabilities", json!({})))
        .await
        .unwrap();
    serde_json::from_str(&first_text(&result)).unwrap()
}

/// A client on 2026-07-28 with the given handler.
async fn modern_client<S: rmcp::service::Service<rmcp::RoleClient>>(
    url: &str,
    handler: S,
) -> rmcp::service::RunningService<rmcp::RoleClient, S> {
    let mode = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    handler
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(url.to_owned()),
            mode,
        )
        .await
        .unwrap()
}

/// The target speaks both revisions: the proxy holds a handshake session beside its
/// 2026-07-28 connection, and an older client's call goes through it. Before, the call
/// went on 2026-07-28, where the tool cannot ask for sampling ("server-to-client requests
/// are not allowed"), `resources/subscribe` does not exist and progress was reordered.
#[tokio::test]
async fn a_client_before_2026_keeps_its_revisions_features_through_an_auto_backend() {
    let target = HttpTarget::start().await;
    let proxy = auto_backend(&target).await;
    let (client, seen) = connect(&proxy.url).await;

    let sampled = client
        .peer()
        .call_tool(call("h__test_sampling", json!({"prompt": "2+2?"})))
        .await
        .unwrap();
    assert!(first_text(&sampled).contains(SAMPLED_TEXT), "{:?}", sampled);
    assert_eq!(seen.seen.lock().unwrap().sampling_requests, 1);

    let progress = client
        .peer()
        .call_tool(call("h__test_tool_with_progress", json!({})))
        .await
        .unwrap();
    assert!(progress.is_error != Some(true), "{progress:?}");
    eventually("three progress notifications", || {
        seen.seen.lock().unwrap().progress.len() == 3
    })
    .await;
    let steps: Vec<f64> = seen
        .seen
        .lock()
        .unwrap()
        .progress
        .iter()
        .map(|p| p.progress)
        .collect();
    assert_eq!(steps, [0.0, 50.0, 100.0]);

    subscribe_touch_and_see_the_update(&client, &seen, "h").await;

    // A client on 2026-07-28 on the same proxy still goes through 2026-07-28, with its
    // own capabilities (none) in the request.
    let modern = modern_client(&proxy.url, ()).await;
    let caps = capabilities_seen(&modern).await;
    assert!(caps.get("sampling").is_none(), "{caps}");
    assert!(caps.get("elicitation").is_none(), "{caps}");
    let modern = modern_client(&proxy.url, TestClient::default()).await;
    let caps = capabilities_seen(&modern).await;
    assert!(caps.get("sampling").is_some(), "{caps}");
}

/// A backend on 2026-07-28 alone: older clients are bridged. Each request carries the
/// capabilities of its own client (before, the proxy's: sampling and elicitation for a
/// client that has neither), and `resources/subscribe` becomes a listen stream at the
/// backend (before: "method not found").
#[tokio::test]
async fn a_backend_on_2026_alone_is_told_each_clients_capabilities_and_takes_subscriptions() {
    let target = HttpTarget::start_modern_only().await;
    let proxy = auto_backend(&target).await;

    let bare = ().serve(StreamableHttpClientTransport::from_uri(proxy.url.clone())).await.unwrap();
    let caps = capabilities_seen(&bare).await;
    assert!(caps.get("sampling").is_none(), "{caps}");
    assert!(caps.get("elicitation").is_none(), "{caps}");
    assert!(caps.get("roots").is_none(), "{caps}");

    let (client, seen) = connect(&proxy.url).await;
    let caps = capabilities_seen(&client).await;
    assert!(
        caps.get("sampling").is_some() && caps.get("elicitation").is_some(),
        "{caps}"
    );

    // Input rounds are answered over the older client's session.
    let asked = client
        .peer()
        .call_tool(call("h__ask_llm", json!({"prompt": "2+2?"})))
        .await
        .unwrap();
    assert_eq!(first_text(&asked), format!("ask_llm: {SAMPLED_TEXT}"));

    client
        .peer()
        .subscribe(SubscribeRequestParams::new("h+test://watched-resource"))
        .await
        .expect("subscribed through a listen stream");
    let touch = || {
        client.peer().call_tool(call(
            "h__touch_resource",
            json!({"uri": "test://watched-resource"}),
        ))
    };
    touch().await.unwrap();
    let updates = || {
        seen.seen
            .lock()
            .unwrap()
            .resource_updates
            .iter()
            .filter(|u| *u == "h+test://watched-resource")
            .count()
    };
    eventually("resource update", || updates() == 1).await;
    client
        .peer()
        .unsubscribe(UnsubscribeRequestParams::new("h+test://watched-resource"))
        .await
        .unwrap();
    // The stream is closed at the backend: a second touch reaches nobody. A fresh
    // subscription afterwards works again (the URI's stream was replaced, not leaked).
    touch().await.unwrap();
    client
        .peer()
        .subscribe(SubscribeRequestParams::new("h+test://watched-resource"))
        .await
        .unwrap();
    touch().await.unwrap();
    eventually("second resource update", || updates() >= 2).await;
    assert_eq!(updates(), 2, "no update arrived while unsubscribed");
}

/// The 2026-07-28 routing headers (`Mcp-Method`, `Mcp-Name`) are checked against the body
/// before anything is decided: a header naming a permitted tool does not let a call of
/// another one through. A list filtered per principal is never marked publicly cacheable.
#[tokio::test]
async fn routing_headers_must_match_the_body_and_lists_are_private() {
    let target = HttpTarget::start().await;
    let proxy = auto_backend(&target).await;
    let post = |method: &str, name: Option<&str>, body: Value| {
        let mut request = reqwest::Client::new()
            .post(&proxy.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method);
        if let Some(name) = name {
            request = request.header("mcp-name", name);
        }
        request.body(body.to_string()).send()
    };
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}});
    let echo = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "h__echo", "arguments": {"text": "x"}, "_meta": meta}});
    for (method, name) in [
        ("tools/list", None),
        ("tools/call", Some("h__test_simple_text")),
    ] {
        let response = post(method, name, echo.clone()).await.unwrap();
        assert_eq!(response.status(), 400, "{method} {name:?}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["code"], -32020, "{answer}");
    }
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list",
        "params": {"_meta": meta}});
    let response = post("tools/list", None, list).await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or(&text);
    let answer: Value = serde_json::from_str(data).unwrap();
    assert_eq!(answer["result"]["cacheScope"], "private", "{answer}");
}
