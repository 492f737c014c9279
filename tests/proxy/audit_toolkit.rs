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
