//! Library mode as `examples/embed.rs` uses it: the proxy's MCP routes merged into a host
//! application that has its own `/healthz` (no clash), served by the host, reloaded and
//! shut down through the handle.

use std::{sync::Arc, time::Duration};

use axum::{Router, routing::get};
use mcp_warden::{Config, Proxy};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use crate::common::*;

#[tokio::test]
async fn a_host_app_with_its_own_health_route_embeds_the_proxy() {
    let toml = with_auth(&stdio_backend("s", ""));
    let config = Config::from_toml_str(&toml).unwrap();
    let proxy = Proxy::from_config(config).await.unwrap();
    let handle = proxy.handle();
    // The host has `/metrics` and `/healthz` of its own: the proxy's go under a prefix.
    let app = Router::new()
        .route("/healthz", get(|| async { "host is fine" }))
        .route("/metrics", get(|| async { "host metrics" }))
        .nest("/warden", proxy.admin_router())
        .merge(proxy.into_mcp_router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let get_text = |path: &str| {
        let url = format!("http://{addr}{path}");
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    assert_eq!(get_text("/healthz").await, "host is fine");
    assert_eq!(get_text("/metrics").await, "host metrics");
    let metrics = get_text("/warden/metrics").await;
    assert!(metrics.contains("mcp_warden_"), "{metrics}");
    assert!(get_text("/warden/readyz").await.contains("\"s\""));
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

/// Backends added and removed through the handle while clients are connected (a stdio one
/// from a `[[backends]]` entry, and one served inside the application), and the
/// application's own layers at both points of the call stack: one after authorization that
/// refuses what the host forbids, one before the backend that sees every attempt.
#[tokio::test]
async fn the_handle_adds_and_removes_backends_and_the_apps_layers_see_every_call() {
    use mcp_warden::config::BackendSettings;
    use mcp_warden::hub::reload::Outcome;
    use mcp_warden::stack::{Call, CallService, StackPoint};
    use tower::{ServiceExt, layer::layer_fn, service_fn};

    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let host_rule = layer_fn(|inner: CallService| {
        service_fn(move |call: Call| {
            let inner = inner.clone();
            async move {
                let text = call
                    .arguments()
                    .and_then(|a| a.get("text"))
                    .and_then(|t| t.as_str());
                if text == Some("not on my watch") {
                    return Err(mcp_warden::CallError::Forbidden(format!(
                        "the host refuses this for {}",
                        call.principal().id
                    )));
                }
                inner.oneshot(call).await
            }
        })
    });
    let counter = {
        let seen = seen.clone();
        layer_fn(move |inner: CallService| {
            let seen = seen.clone();
            service_fn(move |call: Call| {
                seen.lock().unwrap().push(format!(
                    "{}:{}",
                    call.backend_name(),
                    call.tool().unwrap_or("")
                ));
                inner.clone().oneshot(call)
            })
        })
    };
    let config = Config::from_toml_str(&with_auth(&stdio_backend("s", ""))).unwrap();
    let proxy = Proxy::builder(config)
        .layer(StackPoint::AfterAuthorization, host_rule)
        .layer(StackPoint::BeforeBackend, counter)
        .build()
        .await
        .unwrap();
    let proxy = TestProxy::serve(proxy, "/mcp").await;
    let (client, told) = connect(&proxy.url).await;
    client
        .peer()
        .call_tool(call("s__echo", json!({"text": "fine"})))
        .await
        .unwrap();
    let refused = client
        .peer()
        .call_tool(call("s__echo", json!({"text": "not on my watch"})))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("the host refuses this"), "{refused}");
    assert_eq!(*seen.lock().unwrap(), vec!["s:s__echo".to_owned()]);

    // A server of the application's own, in this process.
    let added = proxy
        .handle
        .add_backend(BackendSettings::in_process("inproc", "", mcp_warden::demo::handler).unwrap())
        .await;
    assert_eq!(added.outcome, Outcome::Applied, "{added:?}");
    assert_eq!(added.backends, vec!["backend `inproc` added".to_owned()]);
    let sum = client
        .peer()
        .call_tool(call("inproc__add", json!({"a": 2, "b": 3})))
        .await
        .unwrap();
    assert_eq!(first_text(&sum), "5");
    assert!(
        seen.lock()
            .unwrap()
            .contains(&"inproc:inproc__add".to_owned())
    );
    until("clients told the tools changed", 5, async || {
        told.seen.lock().unwrap().tool_list_changed >= 1
    })
    .await;

    // A child process from a `[[backends]]` entry; a second one by the same name is refused.
    let entry = format!(
        "name = \"t\"\ncommand = {}\nargs = [\"--stdio\"]",
        lit(&target_exe())
    );
    let t = BackendSettings::from_toml(&entry).unwrap();
    assert_eq!(
        proxy.handle.add_backend(t.clone()).await.outcome,
        Outcome::Applied
    );
    client
        .peer()
        .call_tool(call("t__echo", json!({"text": "t"})))
        .await
        .unwrap();
    let twice = proxy.handle.add_backend(t).await;
    assert_eq!(twice.outcome, Outcome::Refused);
    assert!(
        twice.error.as_deref().unwrap_or("").contains("`t`"),
        "{twice:?}"
    );
    let bad = BackendSettings::from_toml("name = \"u\"\nurl = \"not a url\"").unwrap_err();
    assert!(bad.to_string().contains("backends[0].url"), "{bad}");

    // Removed: its tools go at once.
    let removed = proxy.handle.remove_backend("inproc").await;
    assert_eq!(
        removed.backends,
        vec!["backend `inproc` removed".to_owned()]
    );
    let gone = client
        .peer()
        .call_tool(call("inproc__add", json!({"a": 2, "b": 3})))
        .await
        .unwrap_err()
        .to_string();
    assert!(gone.contains("unknown tool"), "{gone}");
    let nothing = proxy.handle.remove_backend("inproc").await;
    assert_eq!(nothing.outcome, Outcome::Refused);
    let mut names = proxy.handle.backends_up();
    names.sort();
    assert_eq!(names, vec!["s".to_owned(), "t".to_owned()]);

    // Shutdown with a call in flight on an open stream: the call finishes, then all stops.
    let slow = {
        let peer = client.peer().clone();
        tokio::spawn(async move { peer.call_tool(call("s__slow", json!({"ms": 400}))).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    tokio::time::timeout(std::time::Duration::from_secs(20), proxy.handle.shutdown())
        .await
        .expect("shutdown finishes");
    slow.await
        .unwrap()
        .expect("the call in flight was answered");
}

/// `examples/embed.rs` as a user runs it: the host's authentication and layer, the
/// in-process backend added through the handle, and Ctrl-C with a client's stream open
/// ending the process cleanly.
#[tokio::test]
async fn the_embed_example_serves_its_own_backend_and_stops_on_ctrl_c_with_streams_open() {
    let dir = crate::audit::scratch("embed-example");
    let (port, admin) = (free_port(), free_port());
    let config = dir.join("mcp-warden.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\
             [auth]\nanonymous = true\n[authz]\npolicy = {}\n{}",
            lit("permit(principal == Mcp::User::\"ann\", action, resource);"),
            stdio_backend("s", "")
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(example_exe("embed"))
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut lines = Vec::new();
    while let Some(line) = out.next_line().await.unwrap() {
        let ready = line.starts_with("host app with MCP at");
        lines.push(line);
        if ready {
            break;
        }
    }
    assert!(lines[0].contains("Applied"), "{lines:?}");
    let url = format!("http://127.0.0.1:{port}/mcp");
    // rmcp's client keeps the session's GET stream open.
    let (ann, _) = connect_as(&url, "host:ann").await;
    let sum = ann
        .peer()
        .call_tool(call("tools__add", json!({"a": 20, "b": 22})))
        .await
        .unwrap();
    assert_eq!(first_text(&sum), "42");
    let (bob, _) = connect_as(&url, "host:bob").await;
    assert!(
        bob.peer()
            .call_tool(call("s__echo", json!({"text": "b"})))
            .await
            .is_err()
    );
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the example stops with a stream open")
        .unwrap();
    while let Some(line) = out.next_line().await.unwrap() {
        lines.push(line);
    }
    assert!(status.success(), "{status:?} {lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ann called tools__add in")),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("stopped"),
        "{lines:?}"
    );
    drop((ann, bob));
}
