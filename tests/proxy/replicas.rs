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
            .rev()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
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

/// Replicas `a`, `b` and `c` sharing `sessions`, started: the processes, their URLs and
/// `b`'s audit log.
async fn three(dir: &Path, sessions: &str) -> (Vec<tokio::process::Child>, [String; 3], Paths) {
    let mut processes = Vec::new();
    let mut urls = Vec::new();
    let mut b_paths = None;
    for name in ["a", "b", "c"] {
        let (config, paths) = replica(dir, name, sessions, "");
        let (process, url) = spawn_warden(&config).await;
        processes.push(process);
        urls.push(url);
        if name == "b" {
            b_paths = Some(paths);
        }
    }
    let urls: [String; 3] = urls.try_into().unwrap();
    (processes, urls, b_paths.unwrap())
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
    let (_replicas, [a_url, b_url, c_url], b_paths) = three(&dir, &sessions).await;
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
    let (_replicas, [a_url, b_url, c_url], b_paths) = three(&dir, &sessions).await;
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
    let (d, d_paths) = replica(&scratch("replicas-redis-d"), "d", &sessions, "");
    let (_d, d_url) = spawn_warden(&d).await;
    assert_eq!(echo(&d_url, "alice-token", &session, "x").await.0, 404);
    // Redis down: a session only Redis knows is "retry later", not "gone".
    let fresh = open_session(&a_url, "alice-token").await;
    drop(redis);
    let (status, _) = echo(&d_url, "alice-token", &fresh, "x").await;
    assert_eq!(status, 503);
    until("the refusal recorded", 10, async || {
        records(&d_paths.store, &d_paths.state).iter().any(|r| {
            r["outcome"]["code"] == 503
                && r["detail"]["reason"] == "the shared session store cannot be reached"
                && r["principal"]["id"] == "alice"
        })
    })
    .await;
    // The replica holding it still serves it.
    assert_eq!(echo(&a_url, "alice-token", &fresh, "x").await.0, 200);
}

/// HAProxy from Debian's packages (`.ci/install-peers`), balancing round-robin over
/// `servers` per request, each health-checked every 200 ms.
pub struct Balancer {
    pub url: String,
    _process: tokio::process::Child,
}

impl Balancer {
    pub async fn start(dir: &Path, servers: &[&str]) -> Option<Balancer> {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/haproxy");
        let binary = root.join("usr/sbin/haproxy");
        if !binary.exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "haproxy is not installed: run .ci/run"
            );
            eprintln!("skipped: haproxy not installed (run .ci/install-peers once)");
            return None;
        }
        let port = free_port();
        let servers: String = servers
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let address = url.trim_start_matches("http://").split('/').next().unwrap();
                format!(
                    "  server r{} {address} check inter 200ms fall 1 rise 2\n",
                    i + 1
                )
            })
            .collect();
        let config = format!(
            "global\n  maxconn 1024\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  option redispatch\n  retries 2\n  retry-on conn-failure\nfrontend mcp\n  bind 127.0.0.1:{port}\n  default_backend wardens\nbackend wardens\n  balance roundrobin\n  option httpchk GET /healthz\n  http-check expect status 200\n{servers}"
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let process = tokio::process::Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .env("LD_LIBRARY_PATH", root.join("usr/lib/x86_64-linux-gnu"))
            .stdout(std::process::Stdio::null())
            // Its notices of replicas going down are expected here.
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_listening(port).await;
        Some(Balancer {
            url: format!("http://127.0.0.1:{port}/mcp"),
            _process: process,
        })
    }
}

/// The records of every replica's log below `root` whose session is `session`, by replica.
fn calls_by_replica(root: &Path, states: &Path, session: &str) -> Vec<(String, usize)> {
    ["r1", "r2", "r3"]
        .iter()
        .map(|r| {
            let n = crate::audit::records_from(&root.join(r), &states.join(r))
                .iter()
                .filter(|rec| rec["action"] == "tools/call" && rec["session"] == session)
                .count();
            (r.to_string(), n)
        })
        .collect()
}

/// Three replicas behind a round-robin balancer, sharing sessions (one key file), limits,
/// the kill switch and history (one Redis), each writing its own audit chain named from the
/// environment; one replica killed with SIGKILL in the middle of the traffic.
#[tokio::test]
async fn three_replicas_behind_a_balancer_serve_one_session_and_share_everything() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let dir = scratch("deployment");
    let (root, states) = (dir.join("audit"), dir.join("state"));
    let key = session_key_file(&dir);
    // One file for every replica: `${REPLICA}` names each one's chain.
    let toml = format!(
        "{}[audit]\norigin = \"test.example/${{REPLICA}}\"\nreplica = \"${{REPLICA}}\"\nstore = {}\nstate_dir = {}\nseal_interval_ms = 50\nheartbeat_secs = 1\n\n[sessions]\nkey_file = {}\n\n[limits]\nredis = {}\n[[limits.rate]]\nid = \"counted-quota\"\nby = [\"principal\"]\nper_minute = 10\nburst = 10\ntools = [\"s__counted\"]\n\n{}",
        principals(),
        lit(&format!("file://{}/${{REPLICA}}", root.display())),
        lit(&format!("{}/${{REPLICA}}", states.display())),
        lit(&key.display().to_string()),
        lit(&redis.url),
        stdio_backend("s", "")
    );
    let config = dir.join("deployment.toml");
    std::fs::write(&config, toml).unwrap();
    let mut replicas = Vec::new();
    for name in ["r1", "r2", "r3"] {
        replicas.push(spawn_warden_env(&config, &[], &[("REPLICA", name)]).await);
    }
    let urls: Vec<&str> = replicas.iter().map(|r| r.1.as_str()).collect();
    let Some(balancer) = Balancer::start(&dir, &urls).await else {
        return;
    };
    let url = &balancer.url;

    // A real client through the balancer: its requests land on every replica in turn.
    let (client, _) = connect_as(url, "alice-token").await;
    for i in 0..30 {
        let result = client
            .peer()
            .call_tool(call("s__echo", json!({"text": format!("hop {i}")})))
            .await
            .unwrap();
        assert!(format!("{result:?}").contains(&format!("hop {i}")));
    }
    // The session the client holds: the one every replica recorded its calls under.
    let mut session = String::new();
    until("every replica's records", 10, async || {
        let r1 = crate::audit::records_from(&root.join("r1"), &states.join("r1"));
        if let Some(s) = r1
            .iter()
            .rev()
            .find(|r| r["action"] == "tools/call")
            .and_then(|r| r["session"].as_str())
        {
            session = s.to_owned();
        }
        let counts = calls_by_replica(&root, &states, &session);
        counts.iter().map(|(_, n)| n).sum::<usize>() >= 30
    })
    .await;
    let counts = calls_by_replica(&root, &states, &session);
    assert!(session.starts_with("s1."), "{session}");
    assert!(counts.iter().all(|(_, n)| *n >= 5), "{counts:?}");

    // The rate limit holds across replicas: 10 calls a minute for alice, whichever replica
    // takes them (one more may pass per 6 s the burst takes: the bucket refills).
    let mut allowed = 0;
    let started = std::time::Instant::now();
    for _ in 0..16 {
        if client
            .peer()
            .call_tool(call("s__counted", json!({"key": "q"})))
            .await
            .is_ok()
        {
            allowed += 1;
        }
    }
    let refills = (started.elapsed().as_secs() / 6) as usize;
    assert!((10..=10 + refills).contains(&allowed), "{allowed} allowed");

    // A kill switch thrown on one replica holds on all of them.
    let admin = |args: &'static [&'static str], at: String| async move {
        tokio::process::Command::new(warden_exe())
            .args(["admin", "--url", &at, "--token", "alice-token"])
            .args(args)
            .output()
            .await
            .unwrap()
    };
    let out = admin(
        &["disable", "tool", "s__echo", "--reason", "drill"],
        replicas[0].2.clone(),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    until("switched off on every replica", 5, async || {
        let mut refused = 0;
        for _ in 0..6 {
            let e = client
                .peer()
                .call_tool(call("s__echo", json!({"text": "x"})))
                .await;
            refused += usize::from(e.is_err_and(|e| e.to_string().contains("switched off")));
        }
        refused == 6
    })
    .await;
    let out = admin(&["enable", "tool", "s__echo"], replicas[2].2.clone()).await;
    assert!(out.status.success());
    until("back on everywhere", 5, async || {
        let mut ok = 0;
        for _ in 0..6 {
            ok += usize::from(
                client
                    .peer()
                    .call_tool(call("s__echo", json!({"text": "x"})))
                    .await
                    .is_ok(),
            );
        }
        ok == 6
    })
    .await;

    // One replica killed mid-traffic: only calls it held fail; the session goes on.
    let traffic = {
        let peer = client.peer().clone();
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..60 {
                let r = peer
                    .call_tool(call("s__echo", json!({"text": format!("after {i}")})))
                    .await;
                outcomes.push(r.is_ok());
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            outcomes
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    replicas[1].0.start_kill().unwrap();
    let outcomes = traffic.await.unwrap();
    let failed = outcomes.iter().filter(|ok| !**ok).count();
    assert!(failed <= 2, "{failed} of 60 failed: {outcomes:?}");
    assert!(outcomes[30..].iter().all(|ok| *ok), "{outcomes:?}");

    // Every chain verifies as one deployment; the killed replica's stands out.
    client.cancel().await.unwrap();
    for (process, ..) in [&replicas[0], &replicas[2]] {
        signal(process, "-TERM");
    }
    for (process, ..) in replicas.iter_mut() {
        let _ = process.wait().await;
    }
    let keys: Vec<String> = ["r1", "r2", "r3"]
        .iter()
        .map(|r| states.join(r).join("signing.pub").display().to_string())
        .collect();
    // Judged a minute on: a log silent that long without a stop record stands out.
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let mut args = vec![
        "audit".to_owned(),
        "verify-deployment".to_owned(),
        "--json".to_owned(),
        "--at".to_owned(),
        later.to_string(),
        "--store".to_owned(),
        root.display().to_string(),
    ];
    for k in &keys {
        args.extend(["--public-key".to_owned(), k.clone()]);
    }
    let out = std::process::Command::new(warden_exe())
        .args(&args)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let status = |r: &str| {
        report["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["replica"] == r)
            .map(|x| x["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status("r1").as_deref(), Some("verified"), "{report:#}");
    assert_eq!(status("r3").as_deref(), Some("verified"), "{report:#}");
    // Killed without a stop record: every record it wrote verifies, and it is visible as
    // silent from its last heartbeat on.
    assert_eq!(status("r2").as_deref(), Some("incomplete"), "{report:#}");
    let r2 = report["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["replica"] == "r2")
        .unwrap();
    assert_eq!(r2["counts"]["tampered"], 0, "{r2:#}");
    assert_eq!(r2["counts"]["could_not_verify"], 0, "{r2:#}");
    assert_eq!(r2["counts"]["incomplete"], 1, "{r2:#}");
    assert!(r2["records"].as_u64().unwrap() > 10, "{r2:#}");
    assert_eq!(report["exit_code"], 2);
    assert_eq!(out.status.code(), Some(2));
    assert!(report["records"].as_u64().unwrap() > 100, "{report:#}");
}
