//! `mcp-warden policy replay` on a log the proxy wrote: two callers in two sessions at once,
//! a candidate policy set that tightens what they may do, and a report that names each
//! change, says which decisions the records cannot settle (an argument not disclosed) and
//! how to make them exact — and refuses a log that does not verify.

use std::path::Path;

use serde_json::{Value, json};

use crate::audit::{audit_section, scratch};
use crate::common::*;

const RECORDED: &str = r#"
@id("engineers-everything")
permit(principal in Mcp::Role::"engineer", action, resource);
@id("analysts-echo")
permit(principal in Mcp::Role::"analyst", action == Mcp::Action::"s__echo", resource);
@id("no-long-sleeps")
forbid(principal, action == Mcp::Action::"s__slow", resource)
when { context.arguments.ms > 1000 };
"#;

const CANDIDATE: &str = r#"
@id("engineers-everything")
permit(principal in Mcp::Role::"engineer", action, resource);
@id("no-shouting")
forbid(principal, action == Mcp::Action::"s__echo", resource)
when { context.arguments.text like "*!*" };
@id("short-sleeps-only")
forbid(principal, action == Mcp::Action::"s__slow", resource)
when { context.arguments.ms > 100 };
"#;

fn token(id: &str, role: &str) -> String {
    format!(
        "[[auth.tokens]]\nsha256 = \"{}\"\nid = \"{id}\"\nkind = \"user\"\nroles = [\"{role}\"]\n",
        mcp_warden::authn::token_hash_hex(&format!("{id}-token"))
    )
}

fn config(store: &Path, state: &Path) -> String {
    format!(
        "[auth]\n{}{}[authz]\npolicy = {}\n{}{}",
        token("eve", "engineer"),
        token("ann", "analyst"),
        lit(RECORDED),
        audit_section(
            &format!("file://{}", store.display()),
            state,
            // The echo's text is disclosed; the sleep's length is not.
            "[audit.disclose]\ns__echo = [\"/text\"]"
        ),
        stdio_backend("s", "")
    )
}

async fn warden(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(warden_exe())
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn replay_reports_what_a_candidate_policy_set_would_change() {
    let (store, state, work) = (scratch("store"), scratch("state"), scratch("candidate"));
    let config_path = work.join("mcp-warden.toml");
    std::fs::write(&config_path, config(&store, &state)).unwrap();
    let proxy = TestProxy::start(&std::fs::read_to_string(&config_path).unwrap()).await;
    let (eve, _) = connect_as(&proxy.url, "eve-token").await;
    let (ann, _) = connect_as(&proxy.url, "ann-token").await;
    // Two callers at once, each in a session of its own.
    let (a, b, c, d) = tokio::join!(
        eve.call_tool(call("s__echo", json!({"text": "hello"}))),
        eve.call_tool(call("s__echo", json!({"text": "hello!"}))),
        ann.call_tool(call("s__echo", json!({"text": "quiet"}))),
        eve.call_tool(call("s__slow", json!({"ms": 5}))),
    );
    for r in [a, b, c, d] {
        r.unwrap();
    }
    eve.call_tool(call("s__slow", json!({"ms": 5000})))
        .await
        .unwrap_err();
    ann.call_tool(call("s__slow", json!({"ms": 1})))
        .await
        .unwrap_err();
    eve.cancel().await.unwrap();
    ann.cancel().await.unwrap();
    proxy.handle.shutdown().await;

    // The compliance team's candidate, checked against the catalog the backends serve.
    let candidate = work.join("candidate");
    std::fs::create_dir_all(&candidate).unwrap();
    std::fs::write(candidate.join("policies.cedar"), CANDIDATE).unwrap();
    let catalog = candidate.join("tools.json");
    let (code, _, err) = warden(&[
        "tools",
        "export",
        "--config",
        config_path.to_str().unwrap(),
        "--out",
        catalog.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let url = format!("file://{}", store.display());
    let key = state.join("signing.pub");
    let replay = |extra: &[&str]| {
        let mut args = vec![
            "policy",
            "replay",
            "--store",
            &url,
            "--public-key",
            key.to_str().unwrap(),
            "--policies",
            candidate.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            warden(&args).await
        }
    };

    let (code, out, err) = replay(&[]).await;
    assert_eq!(code, 1, "a decision would change: {out}{err}");
    // eve's shouted echo is now denied by name; ann may no longer echo at all.
    assert!(
        out.contains("allow -> deny  1×  principal `eve`  `s__echo`"),
        "{out}"
    );
    assert!(out.contains("now decided by `no-shouting`"), "{out}");
    assert!(
        out.contains("allow -> deny  1×  principal `ann`  `s__echo`: no policy permits"),
        "{out}"
    );
    assert!(out.contains("was decided by `analysts-echo`"), "{out}");
    // The sleeps' lengths were not disclosed: undetermined, never guessed, and the
    // disclosure that would settle them is named.
    assert!(
        out.contains("principal `eve`  `s__slow`: depends on arguments.ms"),
        "{out}"
    );
    assert!(out.contains("\"s__slow\" = [\"/ms\"]"), "{out}");
    // ann's sleep is denied whatever its length: nothing permits it.
    assert!(!out.contains("principal `ann`  `s__slow`"), "{out}");

    let (code, out, _) = replay(&["--json", "--principal", "ann", "--since", "1h"]).await;
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["changed"], 1, "{report:#}");
    assert_eq!(
        report["unchanged"], 1,
        "ann's sleep: denied before and after"
    );
    assert_eq!(report["changes"][0]["principal"], "ann");
    assert_eq!(
        report["changes"][0]["recorded_policies"],
        json!(["analysts-echo"])
    );
    assert!(report["changes"][0]["examples"][0]["request_id"].is_string());

    // The recorded policies themselves change nothing.
    std::fs::write(candidate.join("policies.cedar"), RECORDED).unwrap();
    let (code, out, err) = replay(&[]).await;
    assert_eq!(code, 2, "unchanged, but the sleeps stay open: {out}{err}");
    assert!(out.contains("0 would change"), "{out}");

    // A log that does not verify is not replayed.
    let segment = std::fs::read_dir(store.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read_to_string(p).unwrap().contains("\"eve\""))
        .expect("a segment with eve's records");
    let text = std::fs::read_to_string(&segment).unwrap();
    std::fs::write(&segment, text.replacen("\"eve\"", "\"eva\"", 1)).unwrap();
    let (code, out, err) = replay(&[]).await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("does not verify"), "{err}");
}
