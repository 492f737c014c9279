//! Traffic governance end to end, through the real server.

use serde_json::json;

use crate::common::*;

async fn as_token(url: &str, token: &str) -> Client {
    connect_as(url, token).await.0
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

#[tokio::test]
async fn a_breaker_opens_on_a_failing_backend_and_recovers() {
    // `slow` times out at 100 ms: two timeouts in a row open the breaker for 500 ms.
    let config = with_auth(&stdio_backend(
        "s",
        "tools.slow.timeout_ms = 100\nlimits.breaker = { consecutive_failures = 2, min_calls = 100, open_ms = 500 }\n",
    ));
    let proxy = TestProxy::start(&config).await;
    let (client, _) = connect(&proxy.url).await;
    for _ in 0..2 {
        let timed_out = client
            .peer()
            .call_tool(call("s__slow", json!({"ms": 2000})))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            timed_out.contains("did not answer within 100 ms"),
            "{timed_out}"
        );
    }
    // Open: answered at once, without calling the backend, with when to retry.
    let started = std::time::Instant::now();
    let open = client
        .peer()
        .call_tool(call("s__echo", json!({"text": "hi"})))
        .await
        .unwrap_err()
        .to_string();
    assert!(open.contains("circuit open"), "{open}");
    assert!(started.elapsed() < std::time::Duration::from_millis(100));
    assert_eq!(
        proxy.handle.breaker_states(),
        [("s".to_owned(), String::new(), "open")]
    );
    let metrics = metrics_text(&proxy.admin).await;
    assert!(
        metrics.contains("mcp_warden_breaker_state{backend=\"s\",tenant=\"\"} 2"),
        "{metrics}"
    );
    // After the open interval a probe goes through; its success closes the breaker.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    for _ in 0..3 {
        let ok = client
            .peer()
            .call_tool(call("s__echo", json!({"text": "hi"})))
            .await
            .unwrap();
        assert_eq!(first_text(&ok), "hi");
    }
    assert_eq!(
        proxy.handle.breaker_states(),
        [("s".to_owned(), String::new(), "closed")]
    );
}

fn counted(key: &str, ms: u64) -> rmcp::model::CallToolRequestParams {
    call("s__counted", json!({"key": key, "ms": ms}))
}

#[tokio::test]
async fn the_cache_never_crosses_principals() {
    let config = format!(
        "[auth]\n{}[authz]\npolicy = {}\n{}",
        tokens(&[("ann-t", "ann", "analyst"), ("bob-t", "bob", "analyst")]),
        lit(mcp_warden::config::ALLOW_ALL),
        stdio_backend("s", "tools.counted.cache_ttl_secs = 60\n")
    );
    let proxy = TestProxy::start(&config).await;
    let (ann, bob) = (
        as_token(&proxy.url, "ann-t").await,
        as_token(&proxy.url, "bob-t").await,
    );
    let first = first_text(&ann.peer().call_tool(counted("k", 0)).await.unwrap());
    // Ann's repeat is served from the cache (the backend's count does not move)...
    let again = first_text(&ann.peer().call_tool(counted("k", 0)).await.unwrap());
    assert_eq!(again, first);
    // ...Bob, same role, same call, is never served Ann's result.
    let bob_first = first_text(&bob.peer().call_tool(counted("k", 0)).await.unwrap());
    assert_ne!(bob_first, first, "a cached result crossed principals");
    assert_eq!(
        first_text(&bob.peer().call_tool(counted("k", 0)).await.unwrap()),
        bob_first
    );
    // Other arguments are another entry; invalidation drops the tool's entries.
    let other = first_text(&ann.peer().call_tool(counted("other", 0)).await.unwrap());
    assert_ne!(other, first);
    proxy.handle.invalidate_cache(Some("s__counted"), None);
    let fresh = first_text(&ann.peer().call_tool(counted("k", 0)).await.unwrap());
    assert_ne!(fresh, first, "invalidated");
}

#[tokio::test]
async fn fifty_identical_concurrent_calls_make_one_backend_call() {
    let proxy = TestProxy::start(&with_auth(&stdio_backend(
        "s",
        "tools.counted.coalesce = true\n",
    )))
    .await;
    let (client, _) = connect(&proxy.url).await;
    let peer = client.peer().clone();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let peer = peer.clone();
            tokio::spawn(
                async move { first_text(&peer.call_tool(counted("same", 400)).await.unwrap()) },
            )
        })
        .collect();
    let mut answers = Vec::new();
    for c in calls {
        answers.push(c.await.unwrap());
    }
    assert!(answers.iter().all(|a| a == "call 1"), "{answers:?}");
    // Not cached: the next call, after the shared one ended, reaches the backend.
    assert_eq!(
        first_text(&peer.call_tool(counted("same", 0)).await.unwrap()),
        "call 2"
    );
}

/// A redis-server on a free loopback port (`.ci/install-peers` unpacks it into
/// `.ci/redis`); `None` (skip) outside CI when it is not installed. Killed on drop.
pub struct Redis {
    pub url: String,
    process: tokio::process::Child,
}

impl Redis {
    pub async fn start() -> Option<Redis> {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/redis");
        let server = root.join("usr/bin/redis-server");
        if !server.exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "redis-server is not installed: run .ci/run"
            );
            eprintln!("skipped: redis-server not installed (run .ci/run once)");
            return None;
        }
        let port = free_port();
        let process = tokio::process::Command::new(server)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .env("LD_LIBRARY_PATH", root.join("usr/lib/x86_64-linux-gnu"))
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_listening(port).await;
        Some(Redis {
            url: format!("redis://127.0.0.1:{port}/"),
            process,
        })
    }

    /// Stops the server (a replica then loses Redis).
    pub async fn stop(mut self) {
        let _ = self.process.kill().await;
    }
}

#[tokio::test]
async fn a_redis_shared_limit_holds_across_two_proxy_processes() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let config = format!(
        "[auth]\n{}[authz]\npolicy = {}\n[limits]\nredis = {}\n[[limits.rate]]\nid = \"per-caller\"\nby = [\"principal\"]\nper_minute = 4\nburst = 4\n{}",
        tokens(&[("ann-t", "ann", "analyst")]),
        lit(mcp_warden::config::ALLOW_ALL),
        lit(&redis.url),
        stdio_backend("s", "")
    );
    let dir = std::env::temp_dir().join(format!("mcp-warden-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    let (_one, url_one) = spawn_warden(&path).await;
    let (_two, url_two) = spawn_warden(&path).await;
    let (a, b) = (
        as_token(&url_one, "ann-t").await,
        as_token(&url_two, "ann-t").await,
    );
    let echo = || call("s__echo", json!({"text": "hi"}));
    // Four calls in all, alternating replicas: each replica alone would allow four more.
    for client in [&a, &b, &a, &b] {
        client.peer().call_tool(echo()).await.unwrap();
    }
    for client in [&a, &b] {
        let refused = client
            .peer()
            .call_tool(echo())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("rate limited by `per-caller`"),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn only_calls_of_idempotent_tools_are_retried() {
    // `counted` times out at 100 ms; marked idempotent, a timed-out call is tried 3 times.
    let retried = TestProxy::start(&with_auth(&stdio_backend(
        "s",
        "tools.counted = { timeout_ms = 100, idempotent = true, retries = 2 }\n",
    )))
    .await;
    let (client, _) = connect(&retried.url).await;
    let failed = client
        .peer()
        .call_tool(counted("k", 300))
        .await
        .unwrap_err();
    assert!(
        failed.to_string().contains("did not answer within 100 ms"),
        "{failed}"
    );
    let next = first_text(&client.peer().call_tool(counted("k", 0)).await.unwrap());
    assert_eq!(
        next, "call 4",
        "one call and two retries reached the backend"
    );

    // The same tool not marked idempotent: one attempt, never repeated.
    let plain = TestProxy::start(&with_auth(&stdio_backend(
        "s",
        "tools.counted = { timeout_ms = 100 }\n",
    )))
    .await;
    let (client, _) = connect(&plain.url).await;
    client
        .peer()
        .call_tool(counted("k", 300))
        .await
        .unwrap_err();
    let next = first_text(&client.peer().call_tool(counted("k", 0)).await.unwrap());
    assert_eq!(next, "call 2");
}

#[tokio::test]
async fn guards_block_a_traversal_path_and_redact_a_result() {
    let proxy = TestProxy::start(&with_auth(&format!(
        "[guards.tools.\"s__echo\"]\nredact_builtin = [\"email\"]\n{}",
        stdio_backend("s", "")
    )))
    .await;
    let (client, _) = connect(&proxy.url).await;
    // The built-in rules on by default apply to every tool: a system credential's path
    // never reaches the backend, and the error names the rule and where, not the value.
    let refused = client
        .peer()
        .call_tool(call("s__echo", json!({"text": "../../../etc/shadow"})))
        .await
        .unwrap_err();
    let text = refused.to_string();
    assert!(text.contains("blocked by guard rule"), "{text}");
    assert!(text.contains("`/text`"), "{text}");
    // And how the operator allows it for this tool.
    assert!(
        text.contains("disabled_rules = [")
            && text.contains("sensitive_path")
            && text.contains("[guards.tools.")
            && text.contains("s__echo"),
        "{text}"
    );
    assert!(
        !text.contains("shadow"),
        "the matched text is not repeated: {text}"
    );
    let rmcp::ServiceError::McpError(e) = refused else {
        panic!("a JSON-RPC error")
    };
    assert_eq!(e.code, mcp_warden::error::BLOCKED);
    // The result leaves with the configured pattern redacted.
    let answer = client
        .peer()
        .call_tool(call(
            "s__echo",
            json!({"text": "write to ann@example.com today"}),
        ))
        .await
        .unwrap();
    assert_eq!(first_text(&answer), "write to [redacted:email] today");
}

#[tokio::test]
async fn refusals_by_governance_are_audited_with_their_rule() {
    let (store, state) = (
        crate::audit::scratch("store"),
        crate::audit::scratch("state"),
    );
    let config = with_auth(&format!(
        "{}[[limits.rate]]\nid = \"tight\"\nper_minute = 1\nburst = 1\n{}",
        crate::audit::audit_section(&format!("file://{}", store.display()), &state, ""),
        stdio_backend("s", "")
    ));
    let proxy = TestProxy::start(&config).await;
    let (client, _) = connect(&proxy.url).await;
    client
        .peer()
        .call_tool(call("s__echo", json!({"text": "AKIAABCDEFGHIJKLMNOP"})))
        .await
        .unwrap_err();
    client
        .peer()
        .call_tool(call("s__echo", json!({"text": "fine"})))
        .await
        .unwrap_err();
    let all = crate::audit::records(&store, &state);
    let calls: Vec<_> = all.iter().filter(|r| r["action"] == "tools/call").collect();
    assert_eq!(calls[0]["outcome"]["status"], "blocked");
    assert_eq!(calls[0]["detail"]["guard"], "aws_access_key_id");
    assert_eq!(calls[0]["detail"]["guard_path"], "/text");
    assert!(!calls[0].to_string().contains("AKIAABCDEFGHIJKLMNOP"));
    assert_eq!(calls[1]["outcome"]["status"], "rate_limited");
}
