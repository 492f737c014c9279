//! The audit log end to end: every request that reaches the proxy — allowed, denied,
//! refused by authentication — has exactly one record, with its decision, written before
//! its response; start and stop are recorded; the log verifies.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;

const ENGINEER: &str = "engineer-token";

const POLICIES: &str = r#"
@id("engineers-everything")
permit(principal in Mcp::Role::"engineer", action, resource);

@id("no-long-sleeps")
forbid(principal, action == Mcp::Action::"s__slow", resource)
when { context.arguments.ms > 1000 };
"#;

/// A fresh directory for one test's log.
pub fn scratch(name: &str) -> PathBuf {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(sweep_stale_scratch);
    let dir = std::env::temp_dir().join(format!(
        "mcp-warden-test-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes what earlier test runs left in the temporary directory: `mcp-warden-…`
/// directories named with the id of a process that is no longer running. (A test's
/// directories live as long as its process: helpers hand out paths inside them.) So a run
/// leaves at most its own behind.
fn sweep_stale_scratch() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let me = std::process::id().to_string();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("mcp-warden-") else {
            continue;
        };
        // The process id: the first all-digit part short enough to be one.
        let pid = rest
            .split('-')
            .find(|p| !p.is_empty() && p.len() <= 7 && p.bytes().all(|b| b.is_ascii_digit()));
        if let Some(pid) = pid
            && pid != me
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The WAL files in a state directory that may still hold records to upload (the spare
/// holds uploaded ones only).
pub fn wal_files(state: &Path) -> Vec<String> {
    std::fs::read_dir(state.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".wal"))
        .collect()
}

/// `[audit]` writing to the store at `url` with its state in `state`.
pub fn audit_section(url: &str, state: &Path, extra: &str) -> String {
    format!(
        "[audit]\norigin = \"test.example/audit\"\nstore = {}\nstate_dir = {}\nseal_interval_ms = 50\nheartbeat_secs = 1\n{extra}\n",
        lit(url),
        lit(&state.display().to_string()),
    )
}

/// One engineer (token `ENGINEER`, allowed everything but long sleeps), the conformance
/// target as backend `s`, and the audit log at `url` (echo texts disclosed in clear).
pub fn engineer_config(url: &str, state: &Path, extra: &str) -> String {
    format!(
        "[auth]\n[[auth.tokens]]\nsha256 = \"{}\"\nid = \"eve\"\nkind = \"user\"\nroles = [\"engineer\"]\n[authz]\npolicy = {}\n{}{}",
        mcp_warden::authn::token_hash_hex(ENGINEER),
        lit(POLICIES),
        audit_section(
            url,
            state,
            &format!("{extra}\n[audit.disclose]\ns__echo = [\"/text\"]")
        ),
        stdio_backend("s", "")
    )
}

fn config(store: &Path, state: &Path) -> String {
    engineer_config(&format!("file://{}", store.display()), state, "")
}

/// Every record written so far: the store's segments, then the WAL not yet uploaded.
pub fn records(store: &Path, state: &Path) -> Vec<Value> {
    records_from(store, state)
}

/// [`records`] from a directory holding `segments/`. The proxy may be running: a WAL file
/// uploaded and removed while it is read makes the whole read start again, and a WAL line
/// still being written is left out.
pub fn records_from(store: &Path, state: &Path) -> Vec<Value> {
    let mut attempts = 0;
    'again: loop {
        let mut out: Vec<Value> = Vec::new();
        for (dir, live) in [(store.join("segments"), false), (state.join("wal"), true)] {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|d| d.map(|e| e.unwrap().path()).collect())
                .unwrap_or_default();
            found.sort();
            for f in found {
                let Ok(bytes) = std::fs::read(&f) else {
                    continue 'again;
                };
                for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    match serde_json::from_slice(line) {
                        Ok(v) => out.push(v),
                        Err(_) if live => break,
                        Err(e) => panic!("{}: {e}", f.display()),
                    }
                }
            }
        }
        // A segment and a not-yet-deleted WAL file may hold the same records.
        out.sort_by_key(|r| r["index"].as_u64());
        out.dedup_by_key(|r| r["index"].as_u64());
        // A WAL file uploaded between listing the segments and listing the WAL leaves a
        // hole: read again.
        let contiguous = out.iter().enumerate().all(|(i, r)| r["index"] == i as u64);
        if !contiguous && attempts < 50 {
            attempts += 1;
            continue 'again;
        }
        return out;
    }
}

pub async fn engineer(url: &str) -> Client {
    connect_as(url, ENGINEER).await.0
}

fn calls<'r>(records: &'r [Value], tool: &str) -> Vec<&'r Value> {
    records
        .iter()
        .filter(|r| r["action"] == "tools/call" && r["resource"] == tool)
        .collect()
}

#[tokio::test]
async fn every_request_has_one_record_with_its_decision_before_its_response() {
    let (store, state) = (scratch("store"), scratch("state"));
    let proxy = TestProxy::start(&config(&store, &state)).await;
    let client = engineer(&proxy.url).await;

    // Durable before the response: the record is on disk the moment the call returns.
    let quick = client
        .peer()
        .call_tool(call("s__slow", json!({"ms": 5})))
        .await
        .unwrap();
    assert_eq!(first_text(&quick), "done");
    assert_eq!(calls(&records(&store, &state), "s__slow").len(), 1);
    let denied = client
        .peer()
        .call_tool(call("s__slow", json!({"ms": 5000})))
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("forbidden"), "{denied}");
    assert_eq!(calls(&records(&store, &state), "s__slow").len(), 2);
    client
        .peer()
        .call_tool(call("s__echo", json!({"text": "hello"})))
        .await
        .unwrap();
    let listed = client.peer().list_all_tools().await.unwrap();
    assert!(!listed.is_empty());

    // Refused by authentication: recorded too, without the token.
    let refused = reqwest::Client::new()
        .post(&proxy.url)
        .header("authorization", "Bearer not-a-token")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    client.cancel().await.unwrap();
    // A signal and the server returning both shut down, at the same time: one shutdown
    // runs, one stop record.
    tokio::join!(proxy.handle.shutdown(), proxy.handle.shutdown());

    let all = records(&store, &state);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r["index"], i as u64, "contiguous from 0");
    }
    assert_eq!(all.first().unwrap()["kind"], "start");
    assert_eq!(all.last().unwrap()["kind"], "stop");
    assert_eq!(all.iter().filter(|r| r["kind"] == "stop").count(), 1);

    let slow = calls(&all, "s__slow");
    assert_eq!(slow.len(), 2, "one record per call");
    assert_eq!(slow[0]["decision"]["effect"], "allow");
    assert_eq!(
        slow[0]["decision"]["policies"],
        json!(["engineers-everything"])
    );
    assert_eq!(slow[0]["outcome"]["status"], "ok");
    assert_eq!(slow[0]["principal"]["id"], "eve");
    assert!(
        slow[0]["policy_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(slow[1]["decision"]["effect"], "deny");
    assert_eq!(slow[1]["decision"]["policies"], json!(["no-long-sleeps"]));
    assert_eq!(slow[1]["outcome"]["status"], "denied");
    assert_eq!(slow[1]["outcome"]["code"], -32003);
    // Arguments are committed to, not written in clear, unless configured as disclosed.
    let args = &slow[1]["arguments"];
    assert!(args["commitments"]["/ms"].is_string());
    assert!(args.get("disclosed").is_none());
    assert!(
        !holds_value(slow[1], &json!(5000)),
        "the argument's value is nowhere in the record"
    );
    let echo = calls(&all, "s__echo");
    assert_eq!(echo[0]["arguments"]["disclosed"]["/text"], "hello");

    assert!(all.iter().any(|r| r["action"] == "tools/list"));
    let failures: Vec<_> = all.iter().filter(|r| r["kind"] == "auth_failure").collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["outcome"]["code"], 401);
    assert!(!failures[0].to_string().contains("not-a-token"));
    // Shutdown uploaded everything: no WAL file is left, only the spare (uploaded bytes,
    // to be written over).
    assert_eq!(wal_files(&state), Vec::<String>::new());
}

/// A client that goes away while its call runs takes neither the call nor its record with
/// it: the call finishes on its own and is recorded with its outcome.
#[tokio::test]
async fn a_call_whose_client_went_away_is_finished_and_recorded() {
    let (store, state) = (scratch("store"), scratch("state"));
    let proxy = TestProxy::start(&config(&store, &state)).await;
    let session = crate::replicas::open_session(&proxy.url, ENGINEER).await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "s__slow", "arguments": {"ms": 30}}});
    let gone = raw_post(&proxy.url, Some(&session), call.to_string())
        .bearer_auth(ENGINEER)
        .timeout(std::time::Duration::from_millis(10))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up before the answer");
    until("the abandoned call's record", 10, async || {
        calls(&records(&store, &state), "s__slow")
            .iter()
            .any(|r| r["outcome"]["status"] == "ok")
    })
    .await;
    proxy.handle.shutdown().await;
}

/// kill -9 under load, restart: every call a client got an answer for has its record, and
/// the chain runs on across the crash.
#[tokio::test]
async fn a_crash_under_load_loses_no_acknowledged_record() {
    let (store, state) = (scratch("store"), scratch("state"));
    let dir = scratch("config");
    let config = dir.join("config.toml");
    std::fs::write(&config, self::config(&store, &state)).unwrap();
    let (proxy, url) = spawn_warden(&config).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (url, stop) = (url.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let client = engineer(&url).await;
            let mut acknowledged = Vec::new();
            for n in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let text = format!("w{worker}-{n}");
                // A call in flight when the proxy dies may never be answered: give up on it.
                let answer = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    client
                        .peer()
                        .call_tool(call("s__echo", json!({ "text": text }))),
                )
                .await;
                match answer {
                    Ok(Ok(_)) => acknowledged.push(text),
                    _ => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    signal(&proxy, "-KILL");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for w in workers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(acknowledged.len() > 20, "load ran: {}", acknowledged.len());

    // Restart on the same state: the WAL is replayed and uploaded, the chain continues.
    let (mut proxy, _) = spawn_warden(&config).await;
    signal(&proxy, "-TERM");
    let status = proxy.wait().await.unwrap();
    assert!(status.success(), "{status:?}");
    let all = records(&store, &state);
    let recorded: std::collections::HashSet<&str> = calls(&all, "s__echo")
        .iter()
        .filter_map(|r| r["arguments"]["disclosed"]["/text"].as_str())
        .collect();
    for text in &acknowledged {
        assert!(
            recorded.contains(text.as_str()),
            "call `{text}` was answered but has no record"
        );
    }
    // Contiguous and chained across the crash (a record the crash cut short is gone
    // without a trace: its caller never got an answer).
    let mut prev = "0".repeat(64);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r["index"], i as u64);
        assert_eq!(r["prev"], prev.as_str(), "record {i}");
        let canonical = mcp_warden::audit::jcs::to_vec(r);
        prev = mcp_warden::audit::record::hex(&mcp_warden::audit::merkle::leaf_hash(&canonical));
    }
    assert_eq!(all.iter().filter(|r| r["kind"] == "start").count(), 2);
    assert_eq!(all.last().unwrap()["kind"], "stop");
}

/// Whether `value` appears anywhere inside `v` (as a value, not as text in a hash).
fn holds_value(v: &Value, value: &Value) -> bool {
    v == value
        || match v {
            Value::Array(items) => items.iter().any(|i| holds_value(i, value)),
            Value::Object(map) => map.values().any(|i| holds_value(i, value)),
            _ => false,
        }
}

/// As the engineer: one short sleep (allowed), one long one (denied by `no-long-sleeps`);
/// then the proxy stops, so the whole log is in the store.
pub async fn one_allowed_one_denied_then_stop(proxy: TestProxy) {
    let client = engineer(&proxy.url).await;
    client
        .peer()
        .call_tool(call("s__slow", json!({"ms": 5})))
        .await
        .unwrap();
    client
        .peer()
        .call_tool(call("s__slow", json!({"ms": 5000})))
        .await
        .unwrap_err();
    client.cancel().await.unwrap();
    proxy.handle.shutdown().await;
}

/// Runs `mcp-warden audit ARGS...`; returns (exit code, stdout).
pub async fn audit_cli(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(warden_exe())
        .arg("audit")
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The auditor's tools on a log the proxy wrote: verify, show, prove one record and
/// disclose one committed argument, each checked offline with the public key alone.
#[tokio::test]
async fn the_auditor_verifies_shows_proves_and_discloses() {
    let (store, state) = (scratch("store"), scratch("state"));
    let proxy = TestProxy::start(&config(&store, &state)).await;
    one_allowed_one_denied_then_stop(proxy).await;

    let url = format!("file://{}", store.display());
    let key = state.join("signing.pub");
    let key = key.to_str().unwrap();
    let auditor = scratch("auditor").join("state.json");
    let (code, out) = audit_cli(&[
        "verify",
        "--store",
        &url,
        "--public-key",
        key,
        "--state",
        auditor.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{out}");

    let (code, out) = audit_cli(&["show", "--store", &url, "--decision", "deny", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let denied: Vec<Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(denied.len(), 1, "{out}");
    assert_eq!(denied[0]["resource"], "s__slow");
    let index = denied[0]["index"].as_u64().unwrap().to_string();
    let (code, table) = audit_cli(&["show", "--store", &url, "--tool", "s__slow"]).await;
    assert_eq!(code, 0);
    assert_eq!(table.matches("s__slow").count(), 2, "{table}");

    // One record proven against a signed checkpoint, offline.
    let dir = scratch("proofs");
    let proof = dir.join("proof.json");
    let (code, out) = audit_cli(&[
        "prove",
        "--store",
        &url,
        "--index",
        &index,
        "--out",
        proof.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) =
        audit_cli(&["verify-proof", proof.to_str().unwrap(), "--public-key", key]).await;
    assert_eq!(code, 0, "{out}");
    let mut forged: Value = serde_json::from_slice(&std::fs::read(&proof).unwrap()).unwrap();
    forged["record"] = json!(forged["record"].as_str().unwrap().replace("deny", "allow"));
    let forged_path = dir.join("forged.json");
    std::fs::write(&forged_path, forged.to_string()).unwrap();
    let (code, _) = audit_cli(&[
        "verify-proof",
        forged_path.to_str().unwrap(),
        "--public-key",
        key,
    ])
    .await;
    assert_eq!(code, 1, "a changed record does not prove");

    // The committed argument, disclosed and proven; a different value does not open.
    let disclosure = dir.join("disclosure.json");
    let openings = state.join("openings");
    let (code, out) = audit_cli(&[
        "disclose",
        "--store",
        &url,
        "--index",
        &index,
        "--field",
        "/ms",
        "--openings",
        openings.to_str().unwrap(),
        "--out",
        disclosure.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    let disclosed: Value = serde_json::from_slice(&std::fs::read(&disclosure).unwrap()).unwrap();
    assert_eq!(disclosed["value"], 5000);
    let (code, out) = audit_cli(&[
        "verify-proof",
        disclosure.to_str().unwrap(),
        "--public-key",
        key,
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    let mut lie = disclosed.clone();
    lie["value"] = json!(500);
    let lie_path = dir.join("lie.json");
    std::fs::write(&lie_path, lie.to_string()).unwrap();
    let (code, _) = audit_cli(&[
        "verify-proof",
        lie_path.to_str().unwrap(),
        "--public-key",
        key,
    ])
    .await;
    assert_eq!(code, 1, "another value does not open the commitment");
}
