//! The auditor's reading tools on a log the proxy wrote with pseudonymised principals:
//! finding a person's records by the id in clear (with the key), being told why a filter
//! in clear finds nothing, every filter and output format, and a mistyped disclosure path
//! reported as such rather than as tampering.

use serde_json::Value;

use crate::audit::{audit_cli, engineer_config, one_allowed_one_denied_then_stop, scratch};
use crate::common::*;

#[tokio::test]
async fn an_auditor_finds_a_pseudonymised_principal_and_reads_every_format() {
    let (store, state) = (scratch("store"), scratch("state"));
    let key = state.join("pseudonym.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let url = format!("file://{}", store.display());
    let config = engineer_config(
        &url,
        &state,
        &format!("pseudonym_key = {}", lit(&key.display().to_string())),
    );
    let proxy = TestProxy::start(&config).await;
    one_allowed_one_denied_then_stop(proxy).await;
    let key = key.to_str().unwrap();
    let store = store.to_str().unwrap();

    // The id in clear finds nothing, and says why and what to do.
    let (code, out) = audit_cli(&["show", "--store", store, "--principal", "eve"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no record matched"), "{out}");
    assert!(out.contains("--pseudonym-key"), "{out}");
    assert!(out.contains("mcp-warden audit pseudonym"), "{out}");

    // The key holder computes the pseudonym, or filters with the key.
    let (code, out) = audit_cli(&["pseudonym", "--key", key, "eve"]).await;
    assert_eq!(code, 0, "{out}");
    let pseudonym = out.split_whitespace().next().unwrap().to_owned();
    assert!(pseudonym.starts_with("hmac-sha256:"), "{out}");
    let jsonl = |args: &[&str]| {
        let args: Vec<String> = ["show", "--store", store, "--format", "jsonl"]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, out) = audit_cli(&args).await;
            assert_eq!(code, 0, "{out}");
            out.lines()
                .filter(|l| l.starts_with('{'))
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        }
    };
    let by_key = jsonl(&["--principal", "eve", "--pseudonym-key", key]).await;
    let by_pseudonym = jsonl(&["--principal", &pseudonym]).await;
    assert!(by_key.len() >= 2, "{by_key:?}");
    assert_eq!(by_key, by_pseudonym);
    assert!(
        by_key
            .iter()
            .all(|r| r["principal"]["id"] == pseudonym.as_str())
    );

    // Filters on the determining policy, the outcome and the kind.
    let denied = jsonl(&["--policy", "no-long-sleeps"]).await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["decision"]["effect"], "deny");
    assert_eq!(
        jsonl(&["--outcome", "denied", "--tool", "s__slow"]).await,
        denied
    );
    let ok = jsonl(&["--outcome", "ok", "--tool", "s__slow"]).await;
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert_eq!(jsonl(&["--kind", "start"]).await.len(), 1);
    let index = denied[0]["index"].as_u64().unwrap();
    let after = denied[0]["time_us"].as_u64().unwrap() / 1_000_000 + 1;
    assert!(
        jsonl(&["--from", &after.to_string(), "--policy", "no-long-sleeps"])
            .await
            .is_empty()
    );

    // JSON: one array of the same records; CSV: a header and whole values.
    let (code, out) = audit_cli(&[
        "show", "--store", store, "--tool", "s__slow", "--format", "json",
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    let array: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(array.as_array().map(Vec::len), Some(2), "{out}");
    let (code, out) = audit_cli(&[
        "show", "--store", store, "--tool", "s__slow", "--format", "csv",
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    let mut lines = out.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("index,time,kind,principal"),
        "{out}"
    );
    assert!(out.contains(&pseudonym), "the whole pseudonym: {out}");
    assert!(out.contains("no-long-sleeps"), "{out}");
    // The table shortens the pseudonym and stays one line per record.
    let (_, table) = audit_cli(&["show", "--store", store, "--tool", "s__slow"]).await;
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.contains("hmac-sha256:"), "{table}");
    assert!(!table.contains(&pseudonym), "{table}");

    // Verified once with a saved state, then incrementally, with progress on a terminal.
    let public = state.join("signing.pub");
    let public = public.to_str().unwrap();
    let auditor = scratch("auditor").join("state.json");
    let auditor = auditor.to_str().unwrap();
    let verify = [
        "verify",
        "--store",
        store,
        "--public-key",
        public,
        "--state",
        auditor,
    ];
    let (code, out) = audit_cli(&verify).await;
    assert_eq!(code, 0, "{out}");
    let saved: Value = serde_json::from_slice(&std::fs::read(auditor).unwrap()).unwrap();
    assert!(saved["resume"]["frontier"].is_array(), "{saved}");
    let (code, out) = audit_cli(&[&verify[..], &["--incremental"]].concat()).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("new records") && out.contains("verified before"),
        "{out}"
    );
    let line = verify.join(" ") + " --incremental";
    let tty = tokio::process::Command::new("script")
        .args([
            "-qec",
            &format!("{} audit {line}", warden_exe()),
            "/dev/null",
        ])
        .output()
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert_eq!(tty.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("segments,"),
        "a progress bar on a terminal: {shown}"
    );

    // A mistyped disclosure path is "no such field", naming the fields there are.
    let openings = state.join("openings");
    let (code, out) = audit_cli(&[
        "disclose",
        "--store",
        store,
        "--index",
        &index.to_string(),
        "--field",
        "/sm",
        "--openings",
        openings.to_str().unwrap(),
    ])
    .await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("no such field"), "{out}");
    assert!(out.contains("`/ms`"), "{out}");
    assert!(!out.contains("not the one the record committed"), "{out}");
}
