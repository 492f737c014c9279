//! Calls to a streamable-HTTP backend reuse its connections: in steady state a call opens
//! no new TCP connection, alone or sixteen at a time. Counted at the backend's listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::serve::ListenerExt;
use serde_json::json;

use crate::common::*;

/// The demo backend on a loopback port, counting the connections it accepts.
async fn counting_backend() -> (String, Arc<AtomicUsize>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let count = accepted.clone();
    let listener = listener.tap_io(move |tcp| {
        count.fetch_add(1, Ordering::SeqCst);
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, mcp_warden::demo::router()).await });
    (url, accepted)
}

#[tokio::test]
async fn calls_to_an_http_backend_open_no_new_connections() {
    let (url, accepted) = counting_backend().await;
    let proxy = TestProxy::start(&http_backend("demo", &url, "")).await;
    proxy.wait_backend_up("demo").await;
    let (client, _) = connect(&proxy.url).await;
    let echo = |n: usize| call("demo__echo", json!({ "text": format!("call {n}") }));
    // Warm up: the pool fills to what one caller needs.
    for n in 0..20 {
        client.peer().call_tool(echo(n)).await.unwrap();
    }
    let before = accepted.load(Ordering::SeqCst);
    for n in 0..300 {
        client.peer().call_tool(echo(n)).await.unwrap();
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst) - before,
        0,
        "300 sequential calls opened new connections"
    );
    // Sixteen callers at once need at most sixteen more connections, however many calls
    // they make.
    let before = accepted.load(Ordering::SeqCst);
    let mut callers = Vec::new();
    for caller in 0..16 {
        let peer = client.peer().clone();
        callers.push(tokio::spawn(async move {
            for n in 0..40 {
                let text = format!("caller {caller} call {n}");
                peer.call_tool(call("demo__echo", json!({ "text": text })))
                    .await
                    .unwrap();
            }
        }));
    }
    for caller in callers {
        caller.await.unwrap();
    }
    let opened = accepted.load(Ordering::SeqCst) - before;
    assert!(
        opened <= 16,
        "640 concurrent calls opened {opened} connections"
    );
}

/// A backend whose URL answers with a same-origin 307 (a moved endpoint) is still called:
/// the proxy's own plain-HTTP client does not follow redirects, so such a call goes
/// through rmcp's client, which follows those within the backend's origin.
#[tokio::test]
async fn a_backend_behind_a_same_origin_redirect_is_still_called() {
    let redirected = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let seen = redirected.clone();
    let moved = axum::Router::new().route(
        "/old",
        axum::routing::any(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, "/mcp")],
                )
            }
        }),
    );
    let app = moved.merge(mcp_warden::demo::router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let proxy = TestProxy::start(&http_backend("demo", &format!("{origin}/old"), "")).await;
    proxy.wait_backend_up("demo").await;
    let (client, _) = connect(&proxy.url).await;
    for n in 0..5 {
        let result = client
            .peer()
            .call_tool(call("demo__echo", json!({ "text": format!("moved {n}") })))
            .await
            .unwrap();
        assert!(first_text(&result).contains(&format!("moved {n}")));
    }
    assert!(
        redirected.load(Ordering::SeqCst) >= 5,
        "requests reached the old URL and were redirected"
    );
}
