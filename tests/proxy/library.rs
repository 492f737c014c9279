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
