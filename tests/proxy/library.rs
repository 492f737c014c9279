//! Library mode as `examples/embed.rs` uses it: the proxy's MCP routes merged into a host
//! application that has its own `/healthz` (no clash), served by the host, reloaded and
//! shut down through the handle.

use axum::{Router, routing::get};
use mcp_warden::{Config, Proxy};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_host_app_with_its_own_health_route_embeds_the_proxy() {
    let toml = with_auth(&stdio_backend("s", ""));
    let config = Config::from_toml_str(&toml).unwrap();
    let proxy = Proxy::from_config(config).await.unwrap();
    let handle = proxy.handle();
    let app = Router::new()
        .route("/healthz", get(|| async { "host is fine" }))
        .merge(proxy.into_mcp_router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(health, "host is fine");
    let (client, _) = connect(&format!("http://{addr}/mcp")).await;
    client
        .peer()
        .call_tool(call("s__echo", json!({"text": "embedded"})))
        .await
        .unwrap();

    // The host hands the handle a source; a reload reads it.
    let forbid = format!(
        "{}\n[authz]\npolicy = {}\n",
        stdio_backend("s", ""),
        lit(
            "permit(principal, action, resource);\nforbid(principal, action == Mcp::Action::\"s__echo\", resource);"
        )
    );
    let next = Config::from_toml_str(&format!("[auth]\nanonymous = true\n{forbid}")).unwrap();
    let source = std::sync::Mutex::new(Some(next));
    handle.set_config_source(move || {
        source
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| "no config".to_owned())
    });
    let report = handle.reload("library").await;
    assert_eq!(
        report.outcome,
        mcp_warden::hub::reload::Outcome::Applied,
        "{report:?}"
    );
    assert!(
        client
            .peer()
            .call_tool(call("s__echo", json!({"text": "now refused"})))
            .await
            .is_err()
    );
    client.cancel().await.unwrap();
    handle.shutdown().await;
}

/// The application's own authentication: here, `Bearer host:<user>` (a stand-in for a
/// session cookie or a client certificate the host already checks).
struct HostAuth;

impl mcp_warden::Authenticate for HostAuth {
    fn authenticate<'a>(
        &'a self,
        headers: &'a http::HeaderMap,
    ) -> futures::future::BoxFuture<'a, Result<mcp_warden::Principal, mcp_warden::AuthError>> {
        let user = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer host:"))
            .map(str::to_owned);
        Box::pin(async move {
            let user = user.ok_or(mcp_warden::AuthError::Missing)?;
            let mut principal = mcp_warden::Principal::anonymous();
            principal.id = user;
            principal.roles = vec!["staff".to_owned()];
            Ok(principal)
        })
    }
}

#[tokio::test]
async fn a_host_app_brings_its_own_authentication() {
    let toml = format!(
        "[auth]\n[[auth.tokens]]\nsha256 = \"{}\"\nid = \"unused\"\n[authz]\npolicy = {}\n{}",
        mcp_warden::authn::token_hash_hex("never-presented"),
        lit("permit(principal == Mcp::User::\"ann\", action, resource);"),
        stdio_backend("s", "")
    );
    let config = Config::from_toml_str(&toml).unwrap();
    let proxy = Proxy::builder(config)
        .authenticate_with(HostAuth)
        .build()
        .await
        .unwrap();
    let handle = proxy.handle();
    let app = Router::new()
        .merge(proxy.into_mcp_router())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (ann, _) = connect_as(&url, "host:ann").await;
    ann.peer()
        .call_tool(call("s__echo", json!({"text": "ann"})))
        .await
        .unwrap();
    // Bob is authenticated by the host and refused by the policies.
    let (bob, _) = connect_as(&url, "host:bob").await;
    assert!(
        bob.peer()
            .call_tool(call("s__echo", json!({"text": "bob"})))
            .await
            .is_err()
    );
    // The host's scheme only: the built-in token is not accepted.
    let refused = reqwest::Client::new()
        .post(&url)
        .bearer_auth("never-presented")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    ann.cancel().await.unwrap();
    bob.cancel().await.unwrap();
    handle.shutdown().await;
}
