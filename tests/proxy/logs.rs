//! The binary's own logs: one JSON object per line with `--log-format json`, the level
//! from `[server] log_level`, no colour when not on a terminal, and never more than the
//! audit log says — a pseudonymised principal stays a pseudonym, argument values stay out.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::audit::{engineer, engineer_config, scratch};
use crate::common::*;

/// Starts `serve` on `config` with `args`; its stderr lines go to the returned channel.
async fn serve(
    config: &std::path::Path,
    args: &[&str],
) -> (
    tokio::process::Child,
    String,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let mut child = tokio::process::Command::new(warden_exe())
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--admin-bind",
            "127.0.0.1:0",
        ])
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("MCP_WARDEN_LOG")
        .env_remove("NO_COLOR")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("the proxy logs its address")
            .expect("the proxy is running");
        if let Some(at) = line.find("listening on http://") {
            let rest = &line[at + "listening on ".len()..];
            break rest
                .split(|c: char| c.is_whitespace() || c == '"')
                .next()
                .unwrap()
                .to_owned();
        }
    };
    (child, url, rx)
}

#[tokio::test]
async fn json_logs_name_principals_as_the_audit_log_does_and_never_print_arguments() {
    let (store, state) = (scratch("logs-store"), scratch("logs-state"));
    let key = state.join("pseudonym.key");
    std::fs::write(&key, [9u8; 32]).unwrap();
    let text = engineer_config(
        &format!("file://{}", store.display()),
        &state,
        &format!("pseudonym_key = {}", lit(&key.display().to_string())),
    );
    let config = state.join("mcp-warden.toml");
    std::fs::write(
        &config,
        format!("[server]\nlog_level = \"info,rmcp=warn\"\n{text}"),
    )
    .unwrap();
    let (mut child, url, mut lines) = serve(&config, &["--log-format", "json"]).await;
    let client = engineer(&url).await;
    // Forbidden by the policies (sleeps over a second), with a value to look for.
    let denied = client
        .peer()
        .call_tool(call("s__slow", json!({"ms": 987_654})))
        .await;
    assert!(denied.is_err());
    let mut seen = Vec::new();
    let denial = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.recv())
            .await
            .expect("the denial is logged")
            .unwrap();
        seen.push(line.clone());
        let parsed: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        assert!(
            parsed["timestamp"].is_string() && parsed["level"].is_string(),
            "{line}"
        );
        if parsed["fields"]["message"] == "denied" {
            break parsed;
        }
    };
    let principal = denial["fields"]["principal"].as_str().unwrap_or_default();
    assert!(principal.starts_with("hmac-sha256:"), "{denial}");
    assert_eq!(denial["fields"]["tool"], "s__slow", "{denial}");
    // The request's span, with the id the client got in `warden-request-id`.
    assert_eq!(denial["span"]["name"], "request", "{denial}");
    assert!(
        denial["span"]["id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{denial}"
    );
    for line in &seen {
        assert!(
            !line.contains("987654"),
            "an argument value in the log: {line}"
        );
        assert!(!line.contains("\"eve\""), "a principal in clear: {line}");
        assert!(
            !line.contains('\u{1b}'),
            "colour when not on a terminal: {line}"
        );
    }
    signal(&child, "-TERM");
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
}

#[tokio::test]
async fn the_configured_log_level_applies_and_text_logs_have_no_colour_off_a_terminal() {
    let state = scratch("log-level");
    let config = state.join("mcp-warden.toml");
    std::fs::write(
        &config,
        with_auth(&format!(
            "[server]\nlog_level = \"warn\"\n{}",
            stdio_backend("s", "")
        )),
    )
    .unwrap();
    // With `warn`, the informational start lines do not appear: wait for the process
    // to serve (the admin listener answers), then read what it logged.
    let admin = format!("127.0.0.1:{}", free_port());
    let child = tokio::process::Command::new(warden_exe())
        .args(["serve", "--bind", "127.0.0.1:0", "--admin-bind"])
        .arg(&admin)
        .arg("--config")
        .arg(&config)
        .env_remove("MCP_WARDEN_LOG")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    until("the proxy serves", 20, async || {
        reqwest::get(format!("http://{admin}/readyz")).await.is_ok()
    })
    .await;
    signal(&child, "-TERM");
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(" INFO "),
        "info lines under `warn`: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "colour off a terminal: {stderr}"
    );

    // A level that does not parse is a configuration error, at its key.
    let bad = mcp_warden::Config::from_toml_str(&with_auth(&format!(
        "[server]\nlog_level = \"info,=nope=\"\n{}",
        stdio_backend("s", "")
    )))
    .unwrap_err()
    .to_string();
    assert!(bad.contains("server.log_level"), "{bad}");
}
