//! Replicas that share sessions (`[sessions] key_file` or `[sessions] redis`): a session
//! opened on one proxy process is served by another that never saw it, for its owner only,
//! and the replica that restores it records that it did.

use std::path::Path;

use serde_json::{Value, json};

use crate::audit::{audit_section, records, scratch};
use crate::common::*;
use crate::governance::Redis;

/// `alice` and `bob` (tokens `<id>-token`), allowed everything.
pub fn principals() -> String {
    let token = |id: &str| {
        format!(
            "[[auth.tokens]]\nsha256 = \"{}\"\nid = \"{id}\"\nkind = \"user\"\n",
            mcp_warden::authn::token_hash_hex(&format!("{id}-token"))
        )
    };
    format!(
        "[auth]\n{}{}[authz]\npolicy = {}\n",
        token("alice"),
        token("bob"),
        lit(mcp_warden::config::ALLOW_ALL)
    )
}

/// One replica's configuration file: the principals, its own audit log, `sessions` and the
/// conformance target as `s`.
fn replica(dir: &Path, name: &str, sessions: &str, extra: &str) -> (std::path::PathBuf, Paths) {
    let paths = Paths {
        store: scratch(&format!("{name}-store")),
        state: scratch(&format!("{name}-state")),
    };
    let toml = format!(
        "{}{}\n{sessions}\n{extra}\n{}",
        principals(),
        audit_section(
            &format!("file://{}", paths.store.display()),
            &paths.state,
            ""
        ),
        stdio_backend("s", "")
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    (path, paths)
}

pub struct Paths {
    pub store: std::path::PathBuf,
    pub state: std::path::PathBuf,
}

/// A new session key, made by the command operators use.
pub fn session_key_file(dir: &Path) -> std::path::PathBuf {
    let output = std::process::Command::new(warden_exe())
        .args(["sessions", "keygen"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let path = dir.join("sessions.key");
    std::fs::write(&path, &output.stdout).unwrap();
    path
}

/// One JSON-RPC exchange: the status, the session id the answer names, and the answer
/// (plain JSON or the last message of an event stream).
pub async fn rpc(
    url: &str,
    token: &str,
    session: Option<&str>,
    body: Value,
) -> (u16, Option<String>, Value) {
    let response = raw_post(url, session, body.to_string())
        .bearer_auth(token)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let answer = serde_json::from_str(&text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .filter(|m| m.get("result").is_some() || m.get("error").is_some())
            .last()
            .unwrap_or(Value::String(text))
    });
    (status, id, answer)
}

/// Opens a session as `token` and says it is initialized; its id.
pub async fn open_session(url: &str, token: &str) -> String {
    let (status, id, answer) = rpc(
        url,
        token,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {"roots": {"listChanged": true}, "elicitation": {}},
            "clientInfo": {"name": "hopping-client", "version": "1.0"}}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let id = id.expect("a session id");
    let (status, _, _) = rpc(
        url,
        token,
        Some(&id),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(status, 202);
    id
}

/// A call of `s__echo`, under a JSON-RPC id of its own (one session's requests in flight
/// never share an id).
pub async fn echo(url: &str, token: &str, session: &str, text: &str) -> (u16, Value) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(100);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (status, _, answer) = rpc(
        url,
        token,
        Some(session),
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "s__echo", "arguments": {"text": text}}}),
    )
    .await;
    (status, answer)
}

fn echoed(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("not a tool result: {answer}"))
}

/// What both ways of sharing must do; `hop` is the replica that never saw the session.
async fn a_session_hops(opener: &str, hop: &str, third: &str, hop_paths: &Paths) -> String {
    let session = open_session(opener, "alice-token").await;
    // The replica that never saw the session serves its calls and lists...
    let (status, answer) = echo(hop, "alice-token", &session, "from b").await;
    assert_eq!(status, 200, "{answer}");
    assert!(echoed(&answer).contains("from b"), "{answer}");
    let (status, _, listed) = rpc(
        hop,
        "alice-token",
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        listed["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "s__echo"),
        "{listed}"
    );
    // ...and so does the one that opened it, and a third, concurrently.
    let calls = (0..6).map(|i| {
        let url = [opener, hop, third][i % 3];
        let session = session.clone();
        async move { echo(url, "alice-token", &session, &format!("call {i}")).await }
    });
    for (i, (status, answer)) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(status, 200, "{answer}");
        assert!(echoed(&answer).contains(&format!("call {i}")), "{answer}");
    }
    // Only its owner may use it, on any replica: another principal is told it does not
    // exist, as for a made-up id or a changed one.
    for url in [opener, hop] {
        let (status, _) = echo(url, "bob-token", &session, "x").await;
        assert_eq!(status, 404);
    }
    let mut changed = session.clone().into_bytes();
    let last = changed.len() - 2;
    changed[last] = if changed[last] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(changed).unwrap();
    for id in [
        changed.as_str(),
        "s1.00000000.AAAA",
        "made-up",
        &"x".repeat(4000),
    ] {
        let (status, _) = echo(hop, "alice-token", id, "x").await;
        assert_eq!(status, 404, "{id}");
    }
    // The replica that restored it recorded that, under the session's id.
    let mut hopped = Vec::new();
    until("the restoring replica's records", 10, async || {
        hopped = records(&hop_paths.store, &hop_paths.state);
        hopped
            .iter()
            .any(|r| r["action"] == "tools/call" && r["session"] == session.as_str())
    })
    .await;
    let restored: Vec<&Value> = hopped
        .iter()
        .filter(|r| r["action"] == "initialize" && r["detail"]["restored"] == "true")
        .collect();
    assert_eq!(restored.len(), 1, "{hopped:#?}");
    assert_eq!(restored[0]["session"], session.as_str());
    assert_eq!(restored[0]["principal"]["id"], "alice");
    assert!(
        hopped.iter().any(|r| r["outcome"]["code"] == 404
            && r["detail"]["reason"] == "session of another principal")
    );
    session
}

#[tokio::test]
async fn any_replica_serves_a_session_another_opened_with_a_shared_key_file() {
    let dir = scratch("replicas-sealed");
    let key = session_key_file(&dir);
    let sessions = format!(
        "[sessions]\nkey_file = {}\n",
        lit(&key.display().to_string())
    );
    let (a, _) = replica(&dir, "a", &sessions, "");
    let (b, b_paths) = replica(&dir, "b", &sessions, "");
    let (c, _) = replica(&dir, "c", &sessions, "");
    let (_a, a_url) = spawn_warden(&a).await;
    let (_b, b_url) = spawn_warden(&b).await;
    let (_c, c_url) = spawn_warden(&c).await;
    let session = a_session_hops(&a_url, &b_url, &c_url, &b_paths).await;
    assert!(
        session.starts_with("s1.") && session.len() <= 256,
        "{session}"
    );

    // A replica with another key serves none of them.
    let other = scratch("replicas-other");
    let other_key = session_key_file(&other);
    let (d, _) = replica(
        &other,
        "d",
        &format!(
            "[sessions]\nkey_file = {}\n",
            lit(&other_key.display().to_string())
        ),
        "",
    );
    let (_d, d_url) = spawn_warden(&d).await;
    assert_eq!(echo(&d_url, "alice-token", &session, "x").await.0, 404);

    // Key rotation: the new key first on every replica, the old one below it. Sessions
    // sealed before keep working; new ones are sealed with the new key; once the old key
    // is gone, its sessions are no longer restored (replicas holding them in memory keep
    // them until they end).
    let old = std::fs::read_to_string(&key).unwrap();
    let new = std::fs::read_to_string(&other_key).unwrap();
    std::fs::write(&key, format!("{new}{old}")).unwrap();
    let e_dir = scratch("replicas-rotated");
    let (e, _) = replica(&e_dir, "e", &sessions, "");
    let (_e, e_url) = spawn_warden(&e).await;
    assert_eq!(
        echo(&e_url, "alice-token", &session, "old key").await.0,
        200
    );
    let mut newer = String::new();
    until("the new key read again", 15, async || {
        newer = open_session(&a_url, "alice-token").await;
        // The running replicas read the file again within a few seconds.
        echo(&d_url, "alice-token", &newer, "new key").await.0 == 200
    })
    .await;
    // Every replica reading the file takes the new key within a few seconds.
    until("the new key read by every replica", 15, async || {
        echo(&c_url, "alice-token", &newer, "x").await.0 == 200
    })
    .await;
}

#[tokio::test]
async fn any_replica_serves_a_session_another_opened_with_redis() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let dir = scratch("replicas-redis");
    let sessions = format!("[sessions]\nredis = {}\n", lit(&redis.url));
    let (a, _) = replica(&dir, "a", &sessions, "");
    let (b, b_paths) = replica(&dir, "b", &sessions, "");
    let (c, _) = replica(&dir, "c", &sessions, "");
    let (_a, a_url) = spawn_warden(&a).await;
    let (_b, b_url) = spawn_warden(&b).await;
    let (_c, c_url) = spawn_warden(&c).await;
    let session = a_session_hops(&a_url, &b_url, &c_url, &b_paths).await;
    // A session the client ends is gone from Redis: a replica that does not hold it
    // cannot bring it back.
    let response = reqwest::Client::new()
        .delete(&b_url)
        .bearer_auth("alice-token")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let (d, _) = replica(&scratch("replicas-redis-d"), "d", &sessions, "");
    let (_d, d_url) = spawn_warden(&d).await;
    assert_eq!(echo(&d_url, "alice-token", &session, "x").await.0, 404);
    // Redis down: a session only Redis knows is "retry later", not "gone".
    let fresh = open_session(&a_url, "alice-token").await;
    drop(redis);
    let (status, _) = echo(&d_url, "alice-token", &fresh, "x").await;
    assert_eq!(status, 503);
    // The replica holding it still serves it.
    assert_eq!(echo(&a_url, "alice-token", &fresh, "x").await.0, 200);
}
