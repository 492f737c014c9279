//! What once broke the audit log from outside: a number that does not round-trip, a second
//! process on the same state directory, the policy tools beside a running proxy, a secret
//! inside a disclosed argument, SIGHUP.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::audit::{audit_cli, engineer, engineer_config, records, scratch};
use crate::common::*;

/// `config.toml` in a fresh directory for `store` and `state`.
fn write_config(store: &Path, state: &Path, extra: &str) -> std::path::PathBuf {
    let dir = scratch("config");
    let path = dir.join("config.toml");
    let text = engineer_config(&format!("file://{}", store.display()), state, extra).replace(
        "s__echo = [\"/text\"]",
        "s__echo = [\"/text\"]\ns__show_arguments = [\"/amount\"]",
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn verify(store: &Path, state: &Path) -> impl Future<Output = (i32, String)> {
    let store = format!("file://{}", store.display());
    let key = state.join("signing.pub").display().to_string();
    async move { audit_cli(&["verify", "--store", &store, "--public-key", &key]).await }
}

/// Numbers the default float parser rounds wrongly, integers past 2^53 and 64 bits,
/// subnormals, negative zero: the backend receives the values the client sent, the record
/// holds them, and the log verifies.
#[tokio::test]
async fn numbers_reach_the_backend_and_the_record_as_sent_and_the_log_verifies() {
    let (store, state) = (scratch("store"), scratch("state"));
    let config = write_config(&store, &state, "");
    let (mut proxy, url) = spawn_warden(&config).await;
    let client = engineer(&url).await;
    let texts = [
        "1.0715660391465826e-75",
        "9007199254740993",
        "18446744073709551615",
        "-9223372036854775808",
        "4.9406564584124654e-324",
        "0.1000000000000000055511151231257827021181583404541015625",
        "-0.0",
        "1e308",
    ];
    for text in texts {
        let args: Value = serde_json::from_str(&format!(r#"{{"amount": {text}}}"#)).unwrap();
        let sent = args["amount"].clone();
        let result = client
            .peer()
            .call_tool(call("s__show_arguments", args.clone()))
            .await
            .unwrap();
        let received: Value = serde_json::from_str(&first_text(&result)).unwrap();
        assert_eq!(
            received["amount"], sent,
            "{text}: the backend received another value"
        );
        if let Some(f) = sent.as_f64().filter(|_| sent.is_f64()) {
            let exact: f64 = text.parse().unwrap();
            assert_eq!(f.to_bits(), exact.to_bits(), "{text}: parsed inexactly");
        }
    }
    signal(&proxy, "-TERM");
    assert!(proxy.wait().await.unwrap().success());
    let all = records(&store, &state);
    let recorded: Vec<&Value> = all
        .iter()
        .filter(|r| r["resource"] == "s__show_arguments")
        .map(|r| &r["arguments"]["disclosed"]["/amount"])
        .collect();
    assert_eq!(recorded.len(), texts.len());
    for (text, value) in texts.iter().zip(recorded) {
        let sent: Value = serde_json::from_str(text).unwrap();
        // RFC 8785 prints -0.0 as 0; every other value is recorded as sent.
        assert_eq!(value.as_f64(), sent.as_f64(), "{text} recorded as {value}");
        if sent.is_u64() || sent.is_i64() {
            assert_eq!(value, &sent, "{text} recorded as {value}");
        }
    }
    let (code, out) = verify(&store, &state).await;
    assert_eq!(code, 0, "{out}");
}

/// Two processes on one state directory: the second is refused at once, naming the first
/// one's pid, and the first keeps its log; `verify` says verified.
#[tokio::test]
async fn a_second_process_on_the_state_directory_is_refused_with_the_holders_pid() {
    let (store, state) = (scratch("store"), scratch("state"));
    let config = write_config(&store, &state, "");
    let (mut first, url) = spawn_warden(&config).await;
    let second = tokio::process::Command::new(warden_exe())
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .output();
    let second = tokio::time::timeout(Duration::from_secs(20), second)
        .await
        .expect("the second process stops by itself")
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    let pid = first.id().unwrap();
    assert!(
        stderr.contains(&format!("in use by process {pid}")),
        "{stderr}"
    );
    // The same through `serve --stdio`, as a second desktop client would start it.
    let stdio = tokio::process::Command::new(warden_exe())
        .args(["serve", "--stdio", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::piped())
        .output();
    let stdio = tokio::time::timeout(Duration::from_secs(20), stdio)
        .await
        .expect("the stdio process stops by itself")
        .unwrap();
    assert!(!stdio.status.success());
    assert!(String::from_utf8_lossy(&stdio.stderr).contains(&format!("in use by process {pid}")));
    // The first still serves and records.
    let client = engineer(&url).await;
    client
        .peer()
        .call_tool(call("s__echo", json!({"text": "still here"})))
        .await
        .unwrap();
    signal(&first, "-TERM");
    assert!(first.wait().await.unwrap().success());
    let all = records(&store, &state);
    assert_eq!(all.iter().filter(|r| r["kind"] == "start").count(), 1);
    assert!(
        all.iter()
            .any(|r| r["arguments"]["disclosed"]["/text"] == "still here")
    );
    let (code, out) = verify(&store, &state).await;
    assert_eq!(code, 0, "{out}");
}

/// `policy schema --live` reads the backends' tools with the proxy's configuration while
/// that proxy runs: it never opens the audit log, so the proxy's WAL and chain are intact.
#[tokio::test]
async fn the_policy_tools_never_open_a_running_proxys_audit_log() {
    let (store, state) = (scratch("store"), scratch("state"));
    let config = write_config(&store, &state, "");
    let (mut proxy, url) = spawn_warden(&config).await;
    for command in ["schema", "validate"] {
        let out = tokio::process::Command::new(warden_exe())
            .args(["policy", command, "--live", "--config"])
            .arg(&config)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "policy {command} --live: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let client = engineer(&url).await;
    client
        .peer()
        .call_tool(call("s__echo", json!({"text": "after the policy tools"})))
        .await
        .unwrap();
    signal(&proxy, "-TERM");
    assert!(proxy.wait().await.unwrap().success());
    let all = records(&store, &state);
    let kinds: Vec<&str> = all.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "start").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "stop").count(),
        1,
        "{kinds:?}"
    );
    assert!(
        all.iter()
            .any(|r| r["arguments"]["disclosed"]["/text"] == "after the policy tools")
    );
    let (code, out) = verify(&store, &state).await;
    assert_eq!(code, 0, "{out}");
}

/// A secret that a guard blocks, inside an argument path disclosed in clear, is withheld
/// from the record (which names the path and the rule); redactions apply to what is
/// disclosed.
#[tokio::test]
async fn a_blocked_secret_is_never_recorded_in_clear_and_disclosed_values_are_redacted() {
    let (store, state) = (scratch("store"), scratch("state"));
    let config = write_config(&store, &state, "");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[guards]\nredact_builtin = [\"email\"]\n");
    std::fs::write(&config, text).unwrap();
    let (mut proxy, url) = spawn_warden(&config).await;
    let client = engineer(&url).await;
    let secret = "AKIAIOSFODNN7EXAMPLE";
    let blocked = client
        .peer()
        .call_tool(call("s__echo", json!({"text": format!("key {secret}")})))
        .await;
    assert!(blocked.is_err(), "{blocked:?}");
    client
        .peer()
        .call_tool(call("s__echo", json!({"text": "write to eve@example.com"})))
        .await
        .unwrap();
    signal(&proxy, "-TERM");
    assert!(proxy.wait().await.unwrap().success());
    let all = records(&store, &state);
    let raw: String = all.iter().map(Value::to_string).collect();
    assert!(!raw.contains(secret), "the secret is in the log");
    assert!(
        !raw.contains("eve@example.com"),
        "the address is in the log"
    );
    let echo: Vec<&Value> = all.iter().filter(|r| r["resource"] == "s__echo").collect();
    assert_eq!(echo.len(), 2);
    assert_eq!(echo[0]["outcome"]["status"], "blocked");
    assert_eq!(
        echo[0]["detail"]["disclosure_withheld"],
        "/text (aws_access_key_id)"
    );
    assert!(echo[0]["arguments"]["disclosed"].get("/text").is_none());
    assert!(echo[0]["arguments"]["commitments"].get("/text").is_some());
    let redacted = echo[1]["arguments"]["disclosed"]["/text"].as_str().unwrap();
    assert!(redacted.starts_with("write to [redacted"), "{redacted}");
    let (code, out) = verify(&store, &state).await;
    assert_eq!(code, 0, "{out}");
}

/// SIGHUP neither kills nor stops the proxy: it keeps serving, and a later SIGTERM still
/// drains and records the stop.
#[tokio::test]
async fn sighup_does_not_stop_the_proxy() {
    let (store, state) = (scratch("store"), scratch("state"));
    let config = write_config(&store, &state, "");
    let (mut proxy, url) = spawn_warden(&config).await;
    signal(&proxy, "-HUP");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        proxy.try_wait().unwrap().is_none(),
        "SIGHUP stopped the proxy"
    );
    let client = engineer(&url).await;
    client
        .peer()
        .call_tool(call("s__echo", json!({"text": "after hup"})))
        .await
        .unwrap();
    signal(&proxy, "-TERM");
    assert!(proxy.wait().await.unwrap().success());
    let all = records(&store, &state);
    assert_eq!(all.last().unwrap()["kind"], "stop");
    let (code, out) = verify(&store, &state).await;
    assert_eq!(code, 0, "{out}");
}

/// A raw JSON-RPC POST as the engineer, with the client's own `x-request-id`.
async fn post(url: &str, session: Option<&str>, body: Value) -> reqwest::Response {
    raw_post(url, session, body.to_string())
        .bearer_auth("engineer-token")
        .header("x-request-id", "same-every-time")
        .send()
        .await
        .unwrap()
}

/// The proxy names every request itself (a client's `x-request-id` is kept beside it, never
/// instead of it), and every record of a session — its `initialize` included — names the
/// session id the client uses; ids differ across restarts.
#[tokio::test]
async fn records_carry_the_proxys_request_id_and_the_clients_session_id() {
    let (store, state) = (scratch("store"), scratch("state"));
    let config = write_config(&store, &state, "");
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let (mut proxy, url) = spawn_warden(&config).await;
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
        let response = post(&url, None, init).await;
        assert!(response.status().is_success());
        let session = response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let _ = response.text().await;
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        post(&url, Some(&session), initialized).await;
        for id in [2, 2] {
            let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "s__echo", "arguments": {"text": "hi"}}});
            let response = post(&url, Some(&session), call).await;
            assert!(response.status().is_success());
            let _ = response.text().await;
        }
        signal(&proxy, "-TERM");
        assert!(proxy.wait().await.unwrap().success());
        sessions.push(session);
    }
    let all = records(&store, &state);
    // The MCP requests (the `notifications/initialized` each session sent has its own
    // record, as a request no handler serves).
    let requests: Vec<&Value> = all
        .iter()
        .filter(|r| r["kind"] == "request" && r["action"] != "http POST /mcp")
        .collect();
    assert_eq!(requests.len(), 6, "{requests:?}");
    let notified = all
        .iter()
        .filter(|r| r["action"] == "http POST /mcp" && r["outcome"]["code"] == 202)
        .count();
    assert_eq!(notified, 2);
    let ids: std::collections::HashSet<&str> = requests
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 6, "request ids are unique: {ids:?}");
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r["detail"]["client_request_id"], "same-every-time");
        assert_ne!(r["request_id"], "same-every-time");
        assert_eq!(r["session"], sessions[i / 3].as_str(), "{r}");
    }
    assert_eq!(requests[0]["action"], "initialize");
    assert_eq!(requests[1]["detail"]["jsonrpc_id"], "2");
    // Another process, another boot id.
    let boot = |r: &Value| {
        r["request_id"]
            .as_str()
            .unwrap()
            .split('-')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_ne!(boot(requests[0]), boot(requests[3]));
}

/// A backend's sampling request that policy refuses, and an elicitation it allows, each
/// have a record in the causing call's session, naming the call that caused it.
#[tokio::test]
async fn relayed_server_requests_are_recorded_allowed_or_denied() {
    let (store, state) = (scratch("store"), scratch("state"));
    let config = write_config(&store, &state, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        r#"@id(\"no-long-sleeps\")"#,
        r#"@id(\"no-sampling\")\nforbid(principal, action == Mcp::Action::\"create_message\", resource);\n\n@id(\"no-long-sleeps\")"#,
    );
    assert!(text.contains("no-sampling"));
    std::fs::write(&config, text).unwrap();
    let (mut proxy, url) = spawn_warden(&config).await;
    let client = engineer(&url).await;
    let elicited = client
        .peer()
        .call_tool(call("s__test_elicitation", json!({"message": "who?"})))
        .await
        .unwrap();
    assert!(first_text(&elicited).contains("ada"), "{elicited:?}");
    let sampled = client
        .peer()
        .call_tool(call("s__test_sampling", json!({"prompt": "hi"})))
        .await;
    signal(&proxy, "-TERM");
    assert!(proxy.wait().await.unwrap().success());
    let all = records(&store, &state);
    let find = |action: &str| {
        all.iter()
            .find(|r| r["action"] == action)
            .unwrap_or_else(|| panic!("no {action} record ({sampled:?})"))
    };
    let denied = find("sampling/createMessage");
    assert_eq!(denied["resource"], "s");
    assert_eq!(denied["decision"]["effect"], "deny");
    assert_eq!(denied["decision"]["policies"][0], "no-sampling");
    assert_eq!(denied["outcome"]["status"], "denied");
    let allowed = find("elicitation/create");
    assert_eq!(allowed["decision"]["effect"], "allow");
    assert_eq!(allowed["outcome"]["status"], "ok");
    for relayed in [denied, allowed] {
        let cause = all
            .iter()
            .find(|r| {
                r["action"] == "tools/call" && r["request_id"] == relayed["detail"]["caused_by"]
            })
            .expect("the causing call's record");
        assert_eq!(relayed["session"], cause["session"]);
        assert_eq!(relayed["principal"], cause["principal"]);
    }
    let (code, out) = verify(&store, &state).await;
    assert_eq!(code, 0, "{out}");
}
