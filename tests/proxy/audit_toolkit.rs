//! The auditor's toolkit on logs the proxy wrote: a consistency proof that the log grew
//! without changing what an auditor saw before (and a fork named when it did not).

use std::path::Path;

use serde_json::json;

use crate::audit::{audit_cli, engineer, engineer_config, scratch};
use crate::common::*;

/// One proxy run on the log at `store`: a few calls, then a clean stop.
async fn run_once(store: &Path, state: &Path, calls: usize) {
    calls_on(store, state, calls, "")
        .await
        .handle
        .shutdown()
        .await;
}

/// A proxy on the log at `store` (`extra` in its `[audit]`) that made `calls` calls.
async fn calls_on(store: &Path, state: &Path, calls: usize, extra: &str) -> TestProxy {
    let url = format!("file://{}", store.display());
    let proxy = TestProxy::start(&engineer_config(&url, state, extra)).await;
    let client = engineer(&proxy.url).await;
    for i in 0..calls {
        client
            .peer()
            .call_tool(call("s__echo", json!({ "text": format!("call {i}") })))
            .await
            .unwrap();
    }
    client.cancel().await.unwrap();
    proxy
}

#[tokio::test]
async fn a_grown_log_is_proven_to_extend_what_the_auditor_saw_and_a_rewrite_is_a_fork() {
    let (store, state, work) = (scratch("store"), scratch("state"), scratch("auditor"));
    let url = format!("file://{}", store.display());
    let key = state.join("signing.pub");
    let key = key.to_str().unwrap();
    run_once(&store, &state, 3).await;
    let saved = work.join("state.json");
    let (code, out) = audit_cli(&[
        "verify",
        "--store",
        &url,
        "--public-key",
        key,
        "--state",
        saved.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{out}");

    // The proxy runs again: the log grows.
    run_once(&store, &state, 4).await;
    let proof = work.join("consistency.json");
    let (code, out) = audit_cli(&[
        "consistency",
        "--store",
        &url,
        "--public-key",
        key,
        "--from",
        saved.to_str().unwrap(),
        "--out",
        proof.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) =
        audit_cli(&["verify-proof", proof.to_str().unwrap(), "--public-key", key]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("extends the older one"), "{out}");

    // Anyone changing a record the auditor already saw: the log no longer extends it.
    let segment = std::fs::read_dir(store.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let text = std::fs::read_to_string(&segment).unwrap();
    std::fs::write(&segment, text.replacen("\"start\"", "\"stert\"", 1)).unwrap();
    let (code, out) = audit_cli(&[
        "consistency",
        "--store",
        &url,
        "--public-key",
        key,
        "--from",
        saved.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FORK"), "{out}");
}

/// `audit follow` as a SIEM would run it: every record once, verified, resumed from the
/// saved position across restarts, as records or OCSF events; stopped by a tampered log.
#[tokio::test]
async fn follow_streams_verified_records_and_resumes_where_it_stopped() {
    let (store, state, work) = (scratch("store"), scratch("state"), scratch("siem"));
    let url = format!("file://{}", store.display());
    let key = state.join("signing.pub");
    let key = key.to_str().unwrap();
    let position = work.join("position.json");
    let follow = |format: &'static str| {
        let (url, key, position) = (url.clone(), key.to_owned(), position.clone());
        async move {
            audit_cli(&[
                "follow",
                "--store",
                &url,
                "--public-key",
                &key,
                "--position",
                position.to_str().unwrap(),
                "--format",
                format,
                "--once",
            ])
            .await
        }
    };
    let lines = |out: &str| -> Vec<serde_json::Value> {
        out.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    run_once(&store, &state, 2).await;
    let (code, out) = follow("jsonl").await;
    assert_eq!(code, 0, "{out}");
    let first = lines(&out);
    let indexes: Vec<u64> = first.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, (0..first.len() as u64).collect::<Vec<_>>());
    assert!(first.iter().any(|r| r["resource"] == "s__echo"));
    // Nothing new: nothing again.
    let (code, out) = follow("jsonl").await;
    assert_eq!((code, lines(&out).len()), (0, 0), "{out}");

    // The log grows; the follower picks up after what it handed out, as OCSF events.
    run_once(&store, &state, 3).await;
    let (code, out) = follow("ocsf").await;
    assert_eq!(code, 0, "{out}");
    let events = lines(&out);
    assert_eq!(
        events[0]["metadata"]["sequence"].as_u64(),
        Some(first.len() as u64),
        "resumed after the last record handed out"
    );
    assert!(
        events
            .iter()
            .all(|e| e["class_uid"] == 6003 && e["metadata"]["product"]["name"] == "mcp-warden")
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["api"]["operation"] == "tools/call")
            .count(),
        3
    );

    // The next ones as CEF lines, each with its record in full.
    run_once(&store, &state, 1).await;
    let (code, out) = follow("cef").await;
    assert_eq!(code, 0, "{out}");
    let cef: Vec<&str> = out.lines().collect();
    assert!(!cef.is_empty());
    assert!(
        cef.iter()
            .all(|l| l.starts_with("CEF:0|mcp-warden|mcp-warden|")
                && l.contains(" cs6Label=record cs6={")),
        "{out}"
    );
    assert!(
        cef.iter()
            .any(|l| l.contains("|request:tools/call|") && l.contains("cs1=s__echo"))
    );

    // A record changed before the follower reads it stops the stream.
    run_once(&store, &state, 1).await;
    let segment = std::fs::read_dir(store.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let text = std::fs::read_to_string(&segment).unwrap();
    std::fs::write(&segment, text.replacen("\"stop\"", "\"stap\"", 1)).unwrap();
    let (code, out) = follow("jsonl").await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("TAMPERED"), "{out}");
}

/// `audit verify --witness` of the log at `store`.
async fn verify_witnessed(store: &Path, log_pub: &Path, witness: &Path) -> (i32, String) {
    let url = format!("file://{}", store.display());
    audit_cli(&[
        "verify",
        "--store",
        &url,
        "--public-key",
        log_pub.to_str().unwrap(),
        "--witness",
        witness.to_str().unwrap(),
    ])
    .await
}

/// A witness process for the log key at `log_pub`: (child, its URL, its stderr so far).
async fn witness(
    work: &Path,
    log_pub: &Path,
) -> (
    tokio::process::Child,
    String,
    std::sync::Arc<std::sync::Mutex<String>>,
) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(warden_exe())
        .args(["witness", "serve", "--bind", "127.0.0.1:0", "--key"])
        .arg(work.join("witness.key"))
        .arg("--log")
        .arg(log_pub)
        .arg("--state")
        .arg(work.join("witness-state.json"))
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = first.rsplit(' ').next().unwrap().to_owned();
    let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let keep = said.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut said = keep.lock().unwrap();
            said.push_str(&line);
            said.push('\n');
        }
    });
    (child, format!("http://{addr}"), said)
}

/// Witnesses cosign the log's checkpoints and `verify --witness` requires them; a second
/// history under the same log key (another store, the same origin and key) is refused by
/// the witness as a fork, and is left unwitnessed.
#[tokio::test]
async fn a_witness_cosigns_the_log_and_refuses_a_forked_history() {
    let work = scratch("witness");
    let (code, out) = audit_cli(&[
        "keygen",
        "--name",
        "test.example/audit",
        "--out",
        work.join("log").to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    let keygen = tokio::process::Command::new(warden_exe())
        .args(["witness", "keygen", "--name", "witness.example/w1", "--out"])
        .arg(work.join("witness"))
        .output()
        .await
        .unwrap();
    assert!(keygen.status.success());
    let witness_pub = std::fs::read_to_string(work.join("witness.pub")).unwrap();
    let (_child, url, said) = witness(&work, &work.join("log.pub")).await;
    let extra = format!(
        "signing_key = {}\n[[audit.witnesses]]\nurl = {}\nkey = {}\n",
        lit(work.join("log.key").to_str().unwrap()),
        lit(&url),
        lit(witness_pub.trim())
    );
    let witnessed = |store: &Path| {
        std::fs::read_dir(store.join("witnessed"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    // The log the witness follows: its checkpoints get cosigned.
    let (store, state) = (scratch("store"), scratch("state"));
    let proxy = calls_on(&store, &state, 3, &extra).await;
    until("a cosigned checkpoint", 20, async || witnessed(&store) > 0).await;
    proxy.handle.shutdown().await;
    let log_pub = work.join("log.pub");
    let witness_key = work.join("witness.pub");
    let (code, out) = verify_witnessed(&store, &log_pub, &witness_key).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is cosigned by witness.example/w1"), "{out}");

    // Another history signed with the same key, shown to the same witness: refused.
    let (forked, forked_state) = (scratch("store"), scratch("state"));
    let proxy = calls_on(&forked, &forked_state, 12, &extra).await;
    until("the witness refusing the fork", 20, async || {
        said.lock().unwrap().contains("FORK")
    })
    .await;
    proxy.handle.shutdown().await;
    assert_eq!(witnessed(&forked), 0, "no cosignature for the fork");
    let (code, out) = verify_witnessed(&forked, &log_pub, &witness_key).await;
    assert_eq!(
        code, 2,
        "the fork verifies on its own, but no witness vouches: {out}"
    );
    assert!(out.contains("not witnessed"), "{out}");
}
