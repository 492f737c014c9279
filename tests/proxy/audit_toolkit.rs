//! The auditor's toolkit on logs the proxy wrote: a consistency proof that the log grew
//! without changing what an auditor saw before (and a fork named when it did not).

use std::path::Path;

use serde_json::json;

use crate::audit::{audit_cli, engineer, engineer_config, scratch};
use crate::common::*;

/// One proxy run on the log at `store`: a few calls, then a clean stop.
async fn run_once(store: &Path, state: &Path, calls: usize) {
    let url = format!("file://{}", store.display());
    let proxy = TestProxy::start(&engineer_config(&url, state, "")).await;
    let client = engineer(&proxy.url).await;
    for i in 0..calls {
        client
            .peer()
            .call_tool(call("s__echo", json!({ "text": format!("call {i}") })))
            .await
            .unwrap();
    }
    client.cancel().await.unwrap();
    proxy.handle.shutdown().await;
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
