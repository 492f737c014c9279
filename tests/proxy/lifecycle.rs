//! Backends that die, come back, or are down from the start; shutdown with calls in flight.

use std::time::Duration;

use serde_json::json;

use mcp_warden::Config;

use crate::common::*;

#[tokio::test]
async fn a_backend_crash_mid_call_is_a_clear_error_and_the_backend_comes_back() {
    let proxy = TestProxy::start(&stdio_backend("s", "")).await;
    let (client, seen) = connect(&proxy.url).await;
    let error = client
        .peer()
        .call_tool(call("s__crash", json!({})))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("backend `s`"), "{error}");
    eventually("tools/list_changed after the crash", || {
        seen.seen.lock().unwrap().tool_list_changed >= 1
    })
    .await;
    proxy.wait_backend_up("s").await;
    let echo = client
        .peer()
        .call_tool(call("s__echo", json!({"text": "back"})))
        .await
        .unwrap();
    assert_eq!(first_text(&echo), "back");
}

#[tokio::test]
async fn one_failing_backend_does_not_stop_the_others() {
    let toml = format!(
        "{}[[backends]]\nname = \"broken\"\ncommand = \"/nonexistent/mcp-server\"\n",
        stdio_backend("s", "")
    );
    let proxy = TestProxy::start(&toml).await;
    let (client, _) = connect(&proxy.url).await;
    let tools = client.peer().list_all_tools().await.unwrap();
    assert!(tools.iter().all(|t| !t.name.starts_with("broken__")));
    let echo = client
        .peer()
        .call_tool(call("s__echo", json!({"text": "ok"})))
        .await
        .unwrap();
    assert_eq!(first_text(&echo), "ok");
}

#[tokio::test]
async fn a_required_backend_that_cannot_start_fails_startup() {
    let config = mcp_warden::Config::from_toml_str(&with_auth(
        "[[backends]]\nname = \"broken\"\ncommand = \"/nonexistent/mcp-server\"\noptional = false\n",
    ))
    .unwrap();
    let error = mcp_warden::Proxy::from_config(config)
        .await
        .err()
        .expect("startup fails")
        .to_string();
    assert!(error.contains("broken"), "{error}");
}

#[tokio::test]
async fn shutdown_drains_calls_in_flight_then_refuses_new_ones() {
    let proxy = TestProxy::start(&stdio_backend("s", "")).await;
    let (client, _) = connect(&proxy.url).await;
    let peer = client.peer().clone();
    let slow =
        tokio::spawn(async move { peer.call_tool(call("s__slow", json!({"ms": 500}))).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let handle = proxy.handle.clone();
    let shutdown = tokio::spawn(async move { handle.shutdown().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = client
        .peer()
        .call_tool(call("s__echo", json!({"text": "late"})))
        .await;
    assert!(refused.is_err(), "no new calls while draining");
    let finished = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .expect("answered")
        .unwrap()
        .expect("the call in flight completes");
    assert_eq!(first_text(&finished), "done");
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .unwrap()
        .unwrap();
    assert!(
        proxy.handle.backends_up().is_empty(),
        "backends are stopped"
    );
}

/// The binary on SIGTERM: the call in flight gets its answer, then the process exits 0.
#[tokio::test]
async fn sigterm_drains_the_call_in_flight_and_exits_cleanly() {
    let dir = std::env::temp_dir().join(format!("mcp-warden-sigterm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, with_auth(&stdio_backend("s", ""))).unwrap();
    let (mut proxy, url) = spawn_warden(&config).await;
    let (client, _) = connect(&url).await;
    let peer = client.peer().clone();
    let slow =
        tokio::spawn(async move { peer.call_tool(call("s__slow", json!({"ms": 700}))).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(&proxy, "-TERM");
    let answered = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(
        first_text(&answered.expect("the call in flight completes")),
        "done"
    );
    let status = tokio::time::timeout(Duration::from_secs(15), proxy.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// `/readyz` lists every check; a required HTTP backend that stopped answering makes the
/// proxy not ready (its connection still looked open), while one that is not required
/// does not; the audit log's state is one of the checks.
#[tokio::test]
async fn readiness_checks_each_required_backend_with_a_ping_and_the_audit_log() {
    let dir = crate::audit::scratch("readyz");
    let store = format!("file://{}", dir.join("store").display());
    let mut http = HttpTarget::start().await;
    let toml = format!(
        "[admin]\nrequired_backends = [\"h\"]\n{}{}{}",
        stdio_backend("s", ""),
        http_backend("h", &http.url, "connect_timeout_ms = 1500"),
        crate::audit::audit_section(&store, &dir.join("state"), "")
    );
    let proxy = TestProxy::start(&toml).await;
    let readyz = || async {
        let response = reqwest::get(format!("{}/readyz", proxy.admin))
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().await.unwrap())
    };
    let (status, body) = readyz().await;
    assert_eq!(status, 200, "{body}");
    let checks = body["checks"].as_array().unwrap();
    let named = |name: &str| checks.iter().find(|c| c["name"] == name).cloned();
    for name in ["shutdown", "config", "policies", "audit", "backend:h"] {
        assert_eq!(
            named(name).map(|c| c["ok"].clone()),
            Some(json!(true)),
            "{name}: {body}"
        );
    }
    assert!(
        named("backend:h").unwrap()["detail"]
            .as_str()
            .unwrap()
            .starts_with("answered a ping in"),
        "{body}"
    );
    assert!(named("backend:s").is_none(), "`s` is not required: {body}");

    http.stop().await;
    until(
        "the stopped backend makes the proxy not ready",
        10,
        async || readyz().await.0 == 503,
    )
    .await;
    let (_, body) = readyz().await;
    assert_eq!(body["ready"], false);
    let h = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "backend:h")
        .cloned()
        .unwrap();
    assert_eq!(h["ok"], false, "{body}");

    // A required backend that is not configured is a configuration error.
    let bad = Config::from_toml_str(&with_auth(&format!(
        "[admin]\nrequired_backends = [\"nope\"]\n{}",
        stdio_backend("s", "")
    )))
    .unwrap_err()
    .to_string();
    assert!(
        bad.contains("admin.required_backends") && bad.contains("`nope`"),
        "{bad}"
    );
}

/// A backend that crashed and came back is subscribed again to what clients subscribed
/// to: their resource updates keep coming.
#[tokio::test]
async fn subscriptions_survive_a_backend_restart() {
    let proxy = TestProxy::start(&stdio_backend("s", "")).await;
    let (client, seen) = connect(&proxy.url).await;
    subscribe_touch_and_see_the_update(&client, &seen, "s").await;
    let _ = client.peer().call_tool(call("s__crash", json!({}))).await;
    until("the backend is down", 10, async || {
        !proxy.handle.backends_up().contains(&"s".to_owned())
    })
    .await;
    proxy.wait_backend_up("s").await;
    let exposed = "s+test://watched-resource";
    let before = updates_of(&seen, exposed);
    until("an update from the restarted backend", 10, async || {
        // Touched until the update arrives: the new child subscribes as it comes up.
        let _ = client
            .peer()
            .call_tool(call(
                "s__touch_resource",
                json!({"uri": "test://watched-resource"}),
            ))
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        updates_of(&seen, exposed) > before
    })
    .await;
}
