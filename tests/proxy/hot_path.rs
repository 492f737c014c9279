//! The HTTP hot path (`http::hot`): a session's calls answered by the proxy itself, as
//! plain JSON when nothing but the result comes, on the call's own event stream otherwise,
//! and calls sent to HTTP backends directly (`backend::direct`). Raw HTTP where the wire
//! matters (content types, event order, resumption), rmcp clients where behaviour does.
#![allow(deprecated)] // logging and sampling (SEP-2577) are relayed

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

fn tool_call(id: u64, name: &str, arguments: Value, meta: Option<Value>) -> String {
    let mut params = json!({"name": name, "arguments": arguments});
    if let Some(meta) = meta {
        params["_meta"] = meta;
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).to_string()
}

/// One server-sent event: its id and data.
#[derive(Debug)]
struct Event {
    id: Option<String>,
    data: String,
    retry: bool,
}

fn events(body: &str) -> Vec<Event> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = Event {
                id: None,
                data: String::new(),
                retry: false,
            };
            for line in block.lines() {
                if let Some(id) = line.strip_prefix("id:") {
                    event.id = Some(id.trim().to_owned());
                } else if let Some(data) = line.strip_prefix("data:") {
                    event.data.push_str(data.trim());
                } else if line.starts_with("retry:") {
                    event.retry = true;
                }
            }
            event
        })
        .collect()
}

fn content_type(response: &reqwest::Response) -> String {
    response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_call_that_produces_only_its_result_is_answered_as_plain_json() {
    let (proxy, _target) = two_backends().await;
    let id = raw_session(&proxy.url).await;
    for backend in ["s", "h"] {
        let body = tool_call(7, &format!("{backend}__test_simple_text"), json!({}), None);
        let response = raw_post(&proxy.url, Some(&id), body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(content_type(&response), "application/json", "{backend}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["id"], 7);
        // Shaped for the session's revision as rmcp shapes it: no `resultType` before
        // 2026-07-28.
        assert!(answer["result"].get("resultType").is_none(), "{answer}");
        assert!(
            answer["result"]["content"][0]["text"].is_string(),
            "{answer}"
        );
    }
    // An unknown tool is an error response, still one JSON body.
    let response = raw_post(
        &proxy.url,
        Some(&id),
        tool_call(8, "s__nope", json!({}), None),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(content_type(&response), "application/json");
    let answer: Value = response.json().await.unwrap();
    assert!(answer["error"]["code"].is_i64(), "{answer}");
}

/// Two requests of one session in flight under the same JSON-RPC id: the second is refused
/// at once (its id would make the first's cancellation and answer ambiguous); the first
/// goes on and is answered; the id is free again once it is.
#[tokio::test]
async fn a_second_call_under_an_id_in_flight_is_refused_and_the_first_goes_on() {
    let (proxy, _target) = two_backends().await;
    let id = raw_session(&proxy.url).await;
    for backend in ["s", "h"] {
        let slow = tool_call(9, &format!("{backend}__slow"), json!({"ms": 400}), None);
        let first = tokio::spawn(raw_post(&proxy.url, Some(&id), slow).send());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let again = tool_call(9, &format!("{backend}__echo"), json!({"text": "x"}), None);
        let refused = raw_post(&proxy.url, Some(&id), again.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{backend}");
        let answer: Value = refused.json().await.unwrap();
        assert_eq!(answer["id"], 9);
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("already in use"),
            "{answer}"
        );
        let first = first.await.unwrap().unwrap();
        assert_eq!(first.status(), 200);
        assert!(
            first.text().await.unwrap().contains("\"id\":9"),
            "{backend}"
        );
        let reused = raw_post(&proxy.url, Some(&id), again).send().await.unwrap();
        assert_eq!(reused.status(), 200, "{backend}: the id is free again");
    }
}

/// Progress and log messages of a call arrive on that call's own stream, before its result,
/// in the backend's order — over both backend kinds, repeatedly (a race between the last
/// notification and the result would show in some rounds).
#[tokio::test]
async fn a_calls_notifications_come_on_its_own_stream_before_its_result_in_order() {
    let (proxy, _target) = two_backends().await;
    let id = raw_session(&proxy.url).await;
    let level = json!({"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel",
        "params": {"level": "debug"}});
    let set = raw_post(&proxy.url, Some(&id), level.to_string())
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success());
    let _ = set.text().await;
    for round in 0..5u64 {
        for backend in ["s", "h"] {
            let token = format!("tok-{backend}-{round}");
            let body = tool_call(
                100 + round,
                &format!("{backend}__test_tool_with_progress"),
                json!({}),
                Some(json!({"progressToken": token})),
            );
            let response = raw_post(&proxy.url, Some(&id), body).send().await.unwrap();
            assert_eq!(content_type(&response), "text/event-stream");
            let streamed = events(&response.text().await.unwrap());
            // A priming event first (an id, a retry interval, no data), then the messages.
            assert!(streamed[0].id.is_some() && streamed[0].data.is_empty() && streamed[0].retry);
            let messages: Vec<Value> = streamed[1..]
                .iter()
                .map(|e| serde_json::from_str(&e.data).unwrap())
                .collect();
            let (last, before) = messages.split_last().unwrap();
            assert_eq!(
                last["id"],
                100 + round,
                "the result comes last: {messages:?}"
            );
            let progress: Vec<f64> = before
                .iter()
                .filter(|m| m["method"] == "notifications/progress")
                .inspect(|m| assert_eq!(m["params"]["progressToken"], token.as_str()))
                .map(|m| m["params"]["progress"].as_f64().unwrap())
                .collect();
            assert_eq!(progress, [0.0, 50.0, 100.0], "{backend}, round {round}");

            let body = tool_call(
                200 + round,
                &format!("{backend}__test_tool_with_logging"),
                json!({}),
                None,
            );
            let response = raw_post(&proxy.url, Some(&id), body).send().await.unwrap();
            let streamed = events(&response.text().await.unwrap());
            let messages: Vec<Value> = streamed
                .iter()
                .filter(|e| !e.data.is_empty())
                .map(|e| serde_json::from_str(&e.data).unwrap())
                .collect();
            let (last, before) = messages.split_last().unwrap();
            assert_eq!(
                last["id"],
                200 + round,
                "the result comes last: {messages:?}"
            );
            let logs: Vec<&str> = before
                .iter()
                .filter(|m| m["method"] == "notifications/message")
                .map(|m| m["params"]["data"].as_str().unwrap())
                .collect();
            let expected = [
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed",
            ];
            if backend == "s" {
                assert_eq!(logs, expected, "{backend}, round {round}");
            } else {
                // This HTTP backend (rmcp) sends a call's log messages on its GET stream,
                // not on the call's: those that arrive before the result go on the call's
                // stream, in order; a later one goes to the session's GET stream.
                assert_eq!(logs, expected[..logs.len()], "{backend}, round {round}");
            }
        }
    }
}

/// A client that lost a call's stream picks it up again with `Last-Event-ID` and gets the
/// result it missed.
#[tokio::test]
async fn a_lost_call_stream_is_resumed_from_the_last_event_seen() {
    let (proxy, _target) = two_backends().await;
    let id = raw_session(&proxy.url).await;
    let body = tool_call(9, "s__counted", json!({"key": "k", "ms": 600}), None);
    let mut response = raw_post(&proxy.url, Some(&id), body).send().await.unwrap();
    assert_eq!(content_type(&response), "text/event-stream");
    let first = response.chunk().await.unwrap().unwrap();
    let priming = events(std::str::from_utf8(&first).unwrap());
    let last_seen = priming[0].id.clone().expect("the priming event has an id");
    drop(response);
    let resumed = reqwest::Client::new()
        .get(&proxy.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &id)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", &last_seen)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let streamed = events(&resumed.text().await.unwrap());
    let result: Value = serde_json::from_str(&streamed.last().unwrap().data).unwrap();
    assert_eq!(result["id"], 9);
    assert!(
        result["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("call "),
        "{result}"
    );
}

/// Two sessions whose calls on one HTTP backend ask for sampling at the same time: each
/// request goes back to the session whose call caused it (it arrives on that call's
/// stream), neither is refused.
#[tokio::test]
async fn sampling_requests_of_two_sessions_at_once_each_reach_their_own_session() {
    let (proxy, _target) = two_backends().await;
    let (ann, ann_seen) = connect(&proxy.url).await;
    let (bob, bob_seen) = connect(&proxy.url).await;
    for _ in 0..5 {
        let ask = |client: &Client| {
            let peer = client.peer().clone();
            async move {
                peer.call_tool(call("h__test_sampling", json!({"prompt": "hi"})))
                    .await
                    .unwrap()
            }
        };
        let (a, b) = tokio::join!(ask(&ann), ask(&bob));
        for result in [a, b] {
            assert!(first_text(&result).contains(SAMPLED_TEXT), "{result:?}");
        }
    }
    assert_eq!(ann_seen.seen.lock().unwrap().sampling_requests, 5);
    assert_eq!(bob_seen.seen.lock().unwrap().sampling_requests, 5);
}

/// The hot path's calls do not pass through rmcp's session worker, whose idle timer ends
/// sessions: a session in use must not expire, an idle one still does.
#[tokio::test]
async fn a_session_in_use_by_calls_does_not_expire_and_an_idle_one_does() {
    let proxy = TestProxy::start(&format!(
        "[server]\nsession_idle_timeout_s = 1\n{}",
        stdio_backend("s", "")
    ))
    .await;
    let id = raw_session(&proxy.url).await;
    let call = || {
        raw_post(
            &proxy.url,
            Some(&id),
            tool_call(1, "s__test_simple_text", json!({}), None),
        )
        .send()
    };
    for _ in 0..10 {
        assert_eq!(
            call().await.unwrap().status(),
            200,
            "the session is still there"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(call().await.unwrap().status(), 404);
}

/// What rmcp refuses, the hot path does not serve: the answers stay rmcp's.
#[tokio::test]
async fn requests_rmcp_refuses_are_refused_the_same_on_the_hot_path() {
    let (proxy, _target) = two_backends().await;
    let id = raw_session(&proxy.url).await;
    let body = || tool_call(1, "s__test_simple_text", json!({}), None);
    let foreign_host = raw_post(&proxy.url, Some(&id), body())
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign_host.status(), 403);
    let post = |accept: &str, version: &str| {
        reqwest::Client::new()
            .post(&proxy.url)
            .header("accept", accept)
            .header("content-type", "application/json")
            .header("mcp-protocol-version", version)
            .header("mcp-session-id", &id)
            .body(body())
            .send()
    };
    let no_sse = post("application/json", "2025-11-25").await.unwrap();
    assert_eq!(no_sse.status(), 406);
    let bad_version = post(ACCEPT, "1999-01-01").await.unwrap();
    assert_eq!(bad_version.status(), 400);
    let unknown = raw_post(&proxy.url, Some("no-such-session"), body())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

/// The TypeScript SDK's SSE-polling example server closes a call's stream mid-call (SEP-1699)
/// and expects the client to come back with `Last-Event-ID`: through the proxy the call
/// completes (it used to hang until `request_timeout`), and other calls go on meanwhile.
#[tokio::test]
async fn a_backend_that_closes_a_calls_stream_to_be_polled_is_resumed() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let modules = root.join(".ci/conformance/node_modules");
    let example =
        modules.join("@modelcontextprotocol/sdk/dist/esm/examples/server/ssePollingExample.js");
    let node = modules.join(".bin/node");
    if !example.exists() || !node.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the MCP SDK is not installed: run .ci/run"
        );
        eprintln!("skipped: the MCP SDK is not installed (run .ci/run once)");
        return;
    }
    let port = free_port();
    let _server = tokio::process::Command::new(&node)
        .arg("--import")
        .arg(root.join("tests/peers/loopback.mjs"))
        .arg(&example)
        .env("PEER_PORT_OVERRIDE", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_listening(port).await;
    let proxy = TestProxy::start(&format!(
        "{}{}",
        stdio_backend("s", ""),
        http_backend("poll", &format!("http://127.0.0.1:{port}/mcp"), "")
    ))
    .await;
    let (client, _) = connect(&proxy.url).await;
    let started = std::time::Instant::now();
    let peer = client.peer().clone();
    let long =
        tokio::spawn(async move { peer.call_tool(call("poll__long-task", json!({}))).await });
    // Meanwhile, other calls are served.
    tokio::time::sleep(Duration::from_millis(500)).await;
    client
        .peer()
        .call_tool(call("s__test_simple_text", json!({})))
        .await
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(30), long)
        .await
        .expect("the polled call completes")
        .unwrap()
        .unwrap();
    assert_eq!(first_text(&result), "Long task completed successfully!");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// A session the client ends (DELETE) takes its calls in flight with it: each is
/// cancelled at its backend, as rmcp does for the requests it serves itself.
#[tokio::test]
async fn ending_a_session_cancels_its_calls_in_flight() {
    let (proxy, _target) = two_backends().await;
    for backend in ["s", "h"] {
        let id = raw_session(&proxy.url).await;
        let slow = raw_post(
            &proxy.url,
            Some(&id),
            tool_call(1, &format!("{backend}__slow"), json!({"ms": 20000}), None),
        )
        .send();
        let call = tokio::spawn(async move { slow.await.map(|r| r.status()) });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ended = reqwest::Client::new()
            .delete(&proxy.url)
            .header("mcp-session-id", &id)
            .header("mcp-protocol-version", "2025-11-25")
            .send()
            .await
            .unwrap();
        assert_eq!(ended.status(), 204, "clients expect 200 or 204");
        let again = raw_post(
            &proxy.url,
            Some(&id),
            tool_call(3, &format!("{backend}__test_simple_text"), json!({}), None),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(again.status(), 404, "an ended session serves nothing more");
        let other = raw_session(&proxy.url).await;
        let mut count = String::new();
        for _ in 0..100 {
            let response = raw_post(
                &proxy.url,
                Some(&other),
                tool_call(2, &format!("{backend}__cancelled_count"), json!({}), None),
            )
            .send()
            .await
            .unwrap();
            let body = response.text().await.unwrap();
            count = body
                .split("\"text\":\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_owned();
            if count == "1" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(count, "1", "backend `{backend}` saw its call cancelled");
        // The call's own request ends too, whatever it answered.
        tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("the call's request ended with its session")
            .unwrap()
            .ok();
    }
}

/// Calls reach both backend kinds on the proxy's own path, not through rmcp's client: the
/// backend sees the proxy's request ids (`<boot>-<n>`, strings; rmcp numbers its own),
/// distinct for calls sent at once on one pipe or one connection pool.
#[tokio::test]
async fn calls_to_both_backend_kinds_go_on_the_proxys_own_path() {
    let (proxy, _target) = two_backends().await;
    let (client, _) = connect(&proxy.url).await;
    for backend in ["s", "h"] {
        let calls = (0..16).map(|_| {
            client
                .peer()
                .call_tool(call(&format!("{backend}__request_id"), json!({})))
        });
        let ids: std::collections::BTreeSet<String> = futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|r| {
                let id: Value = serde_json::from_str(&first_text(&r.unwrap())).unwrap();
                let id = id
                    .as_str()
                    .unwrap_or_else(|| panic!("{backend}: {id}"))
                    .to_owned();
                assert!(id.contains('-'), "{backend}: {id}");
                id
            })
            .collect();
        assert_eq!(ids.len(), 16, "{backend}: {ids:?}");
    }
}
