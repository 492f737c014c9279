//! Sessions are bounded in total and per principal, expire when idle, and every request —
//! refused before an MCP handler saw it or not — has a record naming the proxy's request id,
//! which the client gets back.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::audit::{audit_section, records, scratch};
use crate::common::*;

/// Principals `alice` and `bob` (tokens `alice-token`, `bob-token`), allowed everything,
/// the conformance target as `s`, the audit log in `store`/`state`, and `server`
/// settings.
fn config(store: &Path, state: &Path, server: &str) -> String {
    let token = |id: &str| {
        format!(
            "[[auth.tokens]]\nsha256 = \"{}\"\nid = \"{id}\"\nkind = \"user\"\n",
            mcp_warden::authn::token_hash_hex(&format!("{id}-token"))
        )
    };
    format!(
        "[server]\n{server}\n[auth]\n{}{}[authz]\npolicy = {}\n{}{}",
        token("alice"),
        token("bob"),
        lit(mcp_warden::config::ALLOW_ALL),
        audit_section(&format!("file://{}", store.display()), state, ""),
        stdio_backend("s", "")
    )
}

async fn post(url: &str, token: &str, session: Option<&str>, body: String) -> reqwest::Response {
    raw_post(url, session, body)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn initialize() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
    .to_string()
}

/// Opens a session; its id, or the refusal's status and body.
async fn open(url: &str, token: &str) -> Result<String, (u16, String)> {
    let response = post(url, token, None, initialize()).await;
    let status = response.status().as_u16();
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.text().await.unwrap();
    session.ok_or((status, body))
}

async fn delete(url: &str, token: &str, session: &str) {
    let response = reqwest::Client::new()
        .delete(url)
        .bearer_auth(token)
        .header("mcp-session-id", session)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

async fn rejections(admin: &str, reason: &str) -> u64 {
    let line = format!("mcp_warden_http_rejections_total{{reason=\"{reason}\"}}");
    metrics_text(admin)
        .await
        .lines()
        .find(|l| l.starts_with(&line))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn sessions_are_bounded_per_principal_and_in_total_with_a_clear_error() {
    let (store, state) = (scratch("store"), scratch("state"));
    let toml = config(
        &store,
        &state,
        "max_sessions = 5\nmax_sessions_per_principal = 3",
    );
    let proxy = TestProxy::start(&toml).await;
    let url = &proxy.url;
    // Concurrent attempts cannot overshoot: 8 at once, 3 succeed.
    let attempts: Vec<_> = (0..8).map(|_| open(url, "alice-token")).collect();
    let results = futures::future::join_all(attempts).await;
    let alice: Vec<String> = results.iter().filter_map(|r| r.clone().ok()).collect();
    assert_eq!(alice.len(), 3, "{results:?}");
    for refused in results.iter().filter_map(|r| r.clone().err()) {
        assert_eq!(refused.0, 429);
        assert!(
            refused.1.contains("max_sessions_per_principal"),
            "{}",
            refused.1
        );
    }
    // Another principal still gets in, up to the total.
    let bob1 = open(url, "bob-token").await.unwrap();
    open(url, "bob-token").await.unwrap();
    let full = open(url, "bob-token").await.unwrap_err();
    assert_eq!(full.0, 503, "{full:?}");
    assert!(full.1.contains("max_sessions"), "{}", full.1);
    // A session closed is a place given back.
    delete(url, "bob-token", &bob1).await;
    open(url, "bob-token").await.unwrap();
    delete(url, "alice-token", &alice[0]).await;
    open(url, "alice-token").await.unwrap();
    assert_eq!(rejections(&proxy.admin, "sessions_per_principal").await, 5);
    assert_eq!(rejections(&proxy.admin, "sessions_total").await, 1);
    proxy.handle.shutdown().await;
    let all = records(&store, &state);
    let refused: Vec<&Value> = all
        .iter()
        .filter(|r| r["outcome"]["code"] == 429 || r["outcome"]["code"] == 503)
        .collect();
    assert_eq!(refused.len(), 6);
    assert!(refused.iter().all(|r| r["kind"] == "request"));
    assert!(refused.iter().all(|r| r["principal"]["id"].is_string()));
}

/// An `initialize` naming the newest revision (header and body) still opens a stateful
/// session in the transport: it counts like any other, and the stateless requests of that
/// revision take no place.
#[tokio::test]
async fn an_initialize_of_any_revision_counts_and_stateless_requests_do_not() {
    let (store, state) = (scratch("store"), scratch("state"));
    let toml = config(&store, &state, "max_sessions_per_principal = 1");
    let proxy = TestProxy::start(&toml).await;
    open(&proxy.url, "alice-token").await.unwrap();
    let newest = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2026-07-28", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let response = raw_post(&proxy.url, None, newest.to_string())
        .bearer_auth("alice-token")
        .header("mcp-protocol-version", "2026-07-28")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("mcp-session-id").is_none());
    // A request that opens no session is not held to the session limit.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let response = raw_post(&proxy.url, None, list.to_string())
        .bearer_auth("alice-token")
        .send()
        .await
        .unwrap();
    assert_ne!(response.status(), 429);
    proxy.handle.shutdown().await;
}

#[tokio::test]
async fn an_idle_session_expires_and_gives_its_place_back() {
    let (store, state) = (scratch("store"), scratch("state"));
    let toml = config(
        &store,
        &state,
        "max_sessions_per_principal = 1\nsession_idle_timeout_s = 1",
    );
    let proxy = TestProxy::start(&toml).await;
    let first = open(&proxy.url, "alice-token").await.unwrap();
    assert_eq!(open(&proxy.url, "alice-token").await.unwrap_err().0, 429);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second = open(&proxy.url, "alice-token").await.unwrap();
    assert_ne!(first, second);
    let gone = post(
        &proxy.url,
        "alice-token",
        Some(&first),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string(),
    )
    .await;
    assert_eq!(gone.status(), 404);
    proxy.handle.shutdown().await;
}

/// 20,000 session attempts by one principal: all but the limit are refused, and the
/// proxy's memory grows by less than 50 MB.
#[tokio::test]
async fn twenty_thousand_session_attempts_by_one_principal_cost_little_memory() {
    let (store, state) = (scratch("store"), scratch("state"));
    let dir = scratch("config");
    let path = dir.join("config.toml");
    std::fs::write(&path, config(&store, &state, "")).unwrap();
    let (mut proxy, url) = spawn_warden(&path).await;
    let pid = proxy.id().unwrap();
    let rss = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    // Warm up: the first sessions, allocator arenas, the backend's first answers.
    open(&url, "alice-token").await.unwrap();
    let before = rss();
    let client = reqwest::Client::new();
    let attempts = futures::stream::iter(0..20_000).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .post(&url)
                .bearer_auth("alice-token")
                .header("accept", ACCEPT)
                .header("content-type", "application/json")
                .body(initialize())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses: Vec<u16> = attempts.buffer_unordered(16).collect().await;
    let opened = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(opened, 63, "the default limit is 64 sessions, one was open");
    assert_eq!(refused, 20_000 - 63);
    let grown = rss().saturating_sub(before);
    eprintln!("20000 session attempts: RSS grew by {} kB", grown >> 10);
    assert!(grown < 50 << 20, "memory grew by {} MB", grown >> 20);
    signal(&proxy, "-TERM");
    assert!(proxy.wait().await.unwrap().success());
}

/// Requests no MCP handler recorded — refused before one saw them (malformed JSON-RPC, a
/// body too large) or served by none (a notification, the DELETE ending a session) — each
/// have one record, whose request id the client got back in `warden-request-id`.
#[tokio::test]
async fn requests_no_handler_recorded_are_recorded_with_the_id_the_client_got() {
    let (store, state) = (scratch("store"), scratch("state"));
    let toml = config(&store, &state, "max_body_bytes = 2048");
    let proxy = TestProxy::start(&toml).await;
    let session = open(&proxy.url, "alice-token").await.unwrap();
    let mut ids = Vec::new();
    for (body, expected) in [
        ("{not json".to_owned(), None),
        (format!("{{\"x\": \"{}\"}}", "y".repeat(4096)), Some(413)),
    ] {
        let response = post(&proxy.url, "alice-token", Some(&session), body).await;
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{status}");
        assert!(expected.is_none_or(|e| e == status), "{status}");
        ids.push((
            response.headers()["warden-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
            status,
        ));
    }
    // A request no MCP handler serves has its record too: the DELETE that ends the session.
    let response = reqwest::Client::new()
        .delete(&proxy.url)
        .bearer_auth("alice-token")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let deleted = response.headers()["warden-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    proxy.handle.shutdown().await;
    let all = records(&store, &state);
    let record = all
        .iter()
        .find(|r| r["request_id"] == deleted.as_str())
        .expect("a record of the DELETE");
    assert_eq!(record["action"], "http DELETE /mcp");
    assert_eq!(record["outcome"]["status"], "ok");
    assert_eq!(record["session"], session.as_str());
    // Exactly one record per request id.
    let mut seen = std::collections::HashSet::new();
    for r in all.iter().filter(|r| r["kind"] == "request") {
        assert!(seen.insert(r["request_id"].as_str().unwrap()), "{r}");
    }
    for (id, status) in ids {
        let record = all
            .iter()
            .find(|r| r["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no record for {id} ({status})"));
        assert_eq!(record["kind"], "request");
        assert_eq!(record["outcome"]["code"], status);
        assert_eq!(record["session"], session.as_str());
        assert_eq!(record["principal"]["id"], "alice");
        assert!(record["action"].as_str().unwrap().starts_with("http POST"));
    }
}
