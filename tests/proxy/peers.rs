//! Published reference servers behind the proxy, called by an independent client (the
//! official Python SDK, `tests/peers/py_client.py`). `.ci/run` installs the peers into
//! `.ci/peers` and `.ci/venv`; without them these tests are skipped locally and fail in CI.

use std::{path::PathBuf, process::Stdio};

use crate::common::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The installed peers, or `None` (skip) outside CI.
fn peers() -> Option<(PathBuf, PathBuf)> {
    let node_modules = root().join(".ci/peers/node_modules/@modelcontextprotocol");
    let python = root().join(".ci/venv/bin/python");
    if node_modules.exists() && python.exists() {
        return Some((node_modules, python));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "test peers are not installed: run .ci/run"
    );
    eprintln!("skipped: test peers not installed (run .ci/run once)");
    None
}

async fn py_client(python: &PathBuf, url: &str, args: &[&str]) {
    let out = tokio::process::Command::new(python)
        .arg(root().join("tests/peers/py_client.py"))
        .args(["--url", url])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "py_client {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Ending the session (DELETE) is answered as the SDK expects (200 or 204).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Session termination failed"),
        "py_client {args:?}:\n{stderr}"
    );
}

/// server-everything over streamable HTTP on a free loopback port.
struct EverythingHttp {
    url: String,
    _child: tokio::process::Child,
}

async fn everything_http(node_modules: &std::path::Path) -> EverythingHttp {
    // A port found free may be taken by another test's process before node binds it (node
    // then exits and the other process answers on it): the server's own name is checked,
    // and another port tried when something else answers.
    for _ in 0..5 {
        let port = free_port();
        let mut child = tokio::process::Command::new("node")
            .arg("--import")
            .arg(root().join("tests/peers/loopback.mjs"))
            .arg(node_modules.join("server-everything/dist/index.js"))
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node");
        wait_listening(port).await;
        let url = format!("http://127.0.0.1:{port}/mcp");
        let init = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}});
        let answer = raw_post(&url, None, init.to_string()).send().await.ok();
        let text = match answer {
            Some(a) => a.text().await.unwrap_or_default(),
            None => String::new(),
        };
        if text.contains("everything") && child.try_wait().ok().flatten().is_none() {
            return EverythingHttp { url, _child: child };
        }
        let _ = child.kill().await;
    }
    panic!("server-everything did not come up on a port of its own");
}

#[tokio::test]
async fn reference_servers_over_stdio_and_http_answer_an_independent_client() {
    let Some((node_modules, python)) = peers() else {
        return;
    };
    let http = everything_http(&node_modules).await;
    let dir = std::env::temp_dir().join(format!("mcp-warden-fs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let everything = node_modules.join("server-everything/dist/index.js");
    let filesystem = node_modules.join("server-filesystem/dist/index.js");
    let toml = format!(
        "[[backends]]\nname = \"everything\"\ncommand = \"node\"\nargs = [{}, \"stdio\"]\n\
         [[backends]]\nname = \"evhttp\"\nurl = {}\n\
         [[backends]]\nname = \"fs\"\ncommand = \"node\"\nargs = [{}, {}]\n",
        lit(&everything.display().to_string()),
        lit(&http.url),
        lit(&filesystem.display().to_string()),
        lit(&dir.display().to_string()),
    );
    let proxy = TestProxy::start(&toml).await;
    let total = proxy.handle.tool_names().len().to_string();
    py_client(
        &python,
        &proxy.url,
        &["--scenario", "everything", "--prefix", "everything__"],
    )
    .await;
    py_client(
        &python,
        &proxy.url,
        &["--scenario", "everything", "--prefix", "evhttp__"],
    )
    .await;
    py_client(
        &python,
        &proxy.url,
        &[
            "--scenario",
            "filesystem",
            "--prefix",
            "fs__",
            "--dir",
            &dir.display().to_string(),
        ],
    )
    .await;
    py_client(
        &python,
        &proxy.url,
        &["--scenario", "auto", "--expect-tools", &total],
    )
    .await;
    py_client(
        &python,
        &proxy.url,
        &["--scenario", "pinned", "--expect-tools", &total],
    )
    .await;
}
