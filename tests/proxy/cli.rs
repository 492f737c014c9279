//! The command line and the other ways in: `check`, `serve --stdio`, `--mcp-json`, and
//! clients that probe `server/discover` (2026-07-28) or pin an older revision.

use std::process::Command;

use rmcp::{
    ServiceExt,
    service::{ClientLifecycleMode, ClientServiceExt},
    transport::{StreamableHttpClientTransport, TokioChildProcess},
};

use crate::common::*;

pub fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-warden-tests-{}", std::process::id()));
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_reports_every_error_with_its_path_and_exits_non_zero() {
    let bad = temp_file(
        "bad.toml",
        "[server]\nbind = \"x\"\n[[backends]]\nname = \"a__b\"\n",
    );
    let out = Command::new(warden_exe())
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in ["server.bind", "backends[0].name", "backends[0].command"] {
        assert!(stderr.contains(expected), "{expected} missing: {stderr}");
    }
    let good = temp_file("good.toml", &with_auth(&stdio_backend("s", "")));
    let out = Command::new(warden_exe())
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_example_config_passes_check() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let flag = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => "--config",
            Some("json") => "--mcp-json",
            _ => continue,
        };
        let out = Command::new(warden_exe())
            // Example deployments name their hosts' key files.
            .args(["check", "--no-file-checks", flag])
            .arg(&path)
            .env(
                "XDG_STATE_HOME",
                temp_file("state/.keep", "").parent().unwrap(),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 2);
}

#[tokio::test]
async fn serve_stdio_speaks_mcp_on_stdin_and_stdout() {
    let config = temp_file("stdio.toml", &with_auth(&stdio_backend("s", "")));
    let mut cmd = tokio::process::Command::new(warden_exe());
    cmd.args(["serve", "--stdio", "--config"]).arg(&config);
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    let tools = client.peer().list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "s__test_simple_text"));
}

/// A desktop client's `mcpServers` file is served, and every request is recorded there too:
/// in the user's state directory (here `$XDG_STATE_HOME/mcp-warden`, mode 0700), never in
/// the directory the client started the proxy in.
#[tokio::test]
async fn mcp_json_of_desktop_clients_is_served_and_recorded_in_the_state_directory() {
    let json = serde_json::json!({"mcpServers": {"target": {"command": target_exe(), "args": ["--stdio"]}}});
    let path = temp_file("mcp.json", &json.to_string());
    let base = temp_file("desktop/.keep", "").parent().unwrap().to_owned();
    let (state, project) = (base.join("state"), base.join("project"));
    std::fs::create_dir_all(&project).unwrap();
    let mut cmd = tokio::process::Command::new(warden_exe());
    cmd.args(["serve", "--stdio", "--mcp-json"])
        .arg(&path)
        .current_dir(&project)
        .env("XDG_STATE_HOME", &state);
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    let tools = client.peer().list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "target__echo"));
    client
        .peer()
        .call_tool(call("target__echo", serde_json::json!({"text": "hi"})))
        .await
        .unwrap();
    client.cancel().await.unwrap();

    let state_home = state.join("mcp-warden");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state_home).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }
    // One log per place started from and file served, described in its `for.txt`.
    let homes: Vec<_> = std::fs::read_dir(&state_home)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(homes.len(), 1, "{homes:?}");
    let home = homes[0].clone();
    let about = std::fs::read_to_string(home.join("for.txt")).unwrap();
    assert!(
        about.contains("project") && about.contains("mcp.json"),
        "{about}"
    );
    assert!(home.join("audit-state/signing.key").exists());
    // `--store` takes a plain path as well as a `file://` URL.
    let verified = Command::new(warden_exe())
        .args(["audit", "verify", "--store"])
        .arg(home.join("audit-log"))
        .arg("--public-key")
        .arg(home.join("audit-state/signing.pub"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{report}");
    assert!(
        report.contains("verified: ") && !report.contains("verified: 0 records"),
        "{report}"
    );
    assert_eq!(
        std::fs::read_dir(&project).unwrap().count(),
        0,
        "nothing is written where the client started the proxy"
    );

    // And through an `import` key of a TOML file.
    let toml = temp_file(
        "import.toml",
        "import = \"mcp.json\"\n[server]\npage_size = 3\n[auth]\nanonymous = true\n\
         [authz]\npolicy = \"permit(principal, action, resource);\"\n",
    );
    let config = mcp_warden::Config::from_path(&toml).unwrap();
    assert_eq!(config.backends[0].name, "target");
}

#[tokio::test]
async fn discover_probing_and_pinned_clients_both_get_every_tool() {
    let proxy = TestProxy::start(&format!(
        "[server]\npage_size = 4\n{}",
        stdio_backend("s", "")
    ))
    .await;
    let expected = proxy.handle.tool_names().len();
    assert!(expected > 10);
    let auto = ClientLifecycleMode::Auto {
        preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
        legacy_version: None,
    };
    let probing = ()
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(proxy.url.clone()),
            auto,
        )
        .await
        .unwrap();
    assert_eq!(
        probing.peer().list_all_tools().await.unwrap().len(),
        expected,
        "auto mode, paginated"
    );
    let pinned =
        ().serve(StreamableHttpClientTransport::from_uri(proxy.url.clone()))
            .await
            .unwrap();
    assert_eq!(
        pinned.peer().list_all_tools().await.unwrap().len(),
        expected,
        "initialize mode, paginated"
    );
}

#[tokio::test]
async fn a_2026_07_28_client_hears_changes_on_subscriptions_listen() {
    use rmcp::model::{ServerNotification, SubscriptionFilter};
    use std::time::Duration;
    let proxy = TestProxy::start(&stdio_backend("s", "")).await;
    let discover = ClientLifecycleMode::Discover {
        preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
    };
    let client = ()
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(proxy.url.clone()),
            discover,
        )
        .await
        .unwrap();
    let filter = SubscriptionFilter::builder()
        .tools_list_changed()
        .resource_subscription("s+test://watched-resource")
        .build();
    let mut subscription = client
        .peer()
        .listen(filter)
        .await
        .expect("listen is acknowledged");
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("a notification within 10 s")
            .unwrap()
            .expect("the stream stays open")
    };
    client
        .peer()
        .call_tool(call("s__add_tool", serde_json::json!({})))
        .await
        .unwrap();
    let changed = next().await;
    assert!(
        matches!(changed, ServerNotification::ToolListChangedNotification(_)),
        "{changed:?}"
    );
    let tools = client.peer().list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "s__dynamic_tool"));
    let touch = serde_json::json!({"uri": "test://watched-resource"});
    client
        .peer()
        .call_tool(call("s__touch_resource", touch))
        .await
        .unwrap();
    let updated = next().await;
    match updated {
        ServerNotification::ResourceUpdatedNotification(n) => {
            assert_eq!(n.params.uri, "s+test://watched-resource")
        }
        other => panic!("expected a resource update, got {other:?}"),
    }
}

#[test]
fn anonymous_mode_refuses_a_public_bind_and_tokens_hash_as_configured() {
    let config = temp_file("anon.toml", &with_auth(&stdio_backend("s", "")));
    let out = Command::new(warden_exe())
        .args(["serve", "--bind", "0.0.0.0:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("auth.anonymous"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new(warden_exe())
        .arg("hash-token")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"test\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    );
}

#[test]
fn the_policy_commands_validate_test_explain_and_print_the_example_sets() {
    let root = env!("CARGO_MANIFEST_DIR");
    for set in ["laptop", "perimeter", "trading", "agents"] {
        let dir = format!("{root}/policies/{set}");
        for command in ["validate", "test"] {
            let out = Command::new(warden_exe())
                .args(["policy", command, "--policies", &dir])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "policy {command} {set}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let trading = format!("{root}/policies/trading");
    let explain = |amount: u32| {
        Command::new(warden_exe())
            .args([
                "policy",
                "explain",
                "--policies",
                &trading,
                "--tool",
                "trading__execute_trade",
            ])
            .args([
                "--principal",
                r#"{"id": "tom", "roles": ["trader", "desk"]}"#,
            ])
            .args([
                "--arguments",
                &format!(r#"{{"symbol": "ACME", "amount": {amount}, "side": "buy"}}"#),
            ])
            .args(["--time", "2026-11-24T14:00:00Z"])
            .output()
            .unwrap()
    };
    let allowed = explain(300);
    let text = String::from_utf8_lossy(&allowed.stdout);
    assert!(allowed.status.success(), "{text}");
    assert!(
        text.contains("decision: allow")
            && text.contains("trade-limit")
            && text.contains("policies.cedar:"),
        "{text}"
    );
    assert!(
        text.contains("shadow-lower-limit"),
        "the shadow policy is reported: {text}"
    );
    let denied = explain(900);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stdout).contains("decision: deny"));
    let schema = Command::new(warden_exe())
        .args(["policy", "schema", "--policies", &trading])
        .output()
        .unwrap();
    let schema = String::from_utf8_lossy(&schema.stdout);
    assert!(
        schema.contains("trading__execute_trade") && schema.contains("amount"),
        "{schema}"
    );
    // Errors carry file, line and column.
    let broken = temp_file(
        "broken/bad.cedar",
        "permit(principal, action == Mcp::Action::\"nope\", resource);\n",
    );
    std::fs::write(broken.with_file_name("tools.json"), "[]").unwrap();
    let out = Command::new(warden_exe())
        .args(["policy", "validate", "--policies"])
        .arg(broken.parent().unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.cedar:1:"), "{stderr}");
}

#[test]
fn check_validates_policies_against_the_saved_catalog() {
    let root = env!("CARGO_MANIFEST_DIR");
    let good = Command::new(warden_exe())
        .args([
            "check",
            // Its key files are the deployment's (`/etc/mcp-warden/...`), not this host's.
            "--no-file-checks",
            "--config",
            &format!("{root}/examples/configs/perimeter.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(
        String::from_utf8_lossy(&good.stdout).contains("policies: 10 valid against 4 tools"),
        "{}",
        String::from_utf8_lossy(&good.stdout)
    );
    let catalog = format!("{root}/policies/perimeter/tools.json");
    let config = temp_file(
        "typo.toml",
        &format!(
            "[auth]\nanonymous = true\n[authz]\ntools = {}\npolicy = \"permit(principal, action == Mcp::Action::\\\"db__query\\\", resource) when {{ context.arguments.limt < 5 }};\"\n{}",
            lit(&catalog),
            stdio_backend("s", "")
        ),
    );
    let bad = Command::new(warden_exe())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("config:authz.policy:1:") && stderr.contains("limt"),
        "{stderr}"
    );
}

#[test]
fn policy_validate_reads_the_tools_of_live_backends() {
    let policy = "permit(principal, action == Mcp::Action::\"s__slow\", resource) when { context.arguments.ms < 100 };";
    let config = temp_file(
        "live.toml",
        &with_auth(&format!(
            "[authz]\npolicy = {}\n{}",
            lit(policy),
            stdio_backend("s", "")
        )),
    );
    let out = Command::new(warden_exe())
        .args(["policy", "validate", "--live", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 policies valid against"), "{stdout}");
}

/// The compliance officer's path: without a catalog the policy commands refuse (rather
/// than report every tool-naming policy as wrong) and say how to get one; `tools export`
/// writes the backends' tools once; validate, explain and schema then work offline.
#[test]
fn tools_export_gives_the_policy_commands_the_real_tools_offline() {
    let policy = "@id(\"short-sleeps\")\npermit(principal, action == Mcp::Action::\"s__slow\", resource) when { context.arguments.ms < 100 };";
    let config = temp_file(
        "export/proxy.toml",
        &with_auth(&format!(
            "[authz]\npolicy = {}\n[tools.groups]\nwaits = [\"s__slow\"]\n{}",
            lit(policy),
            stdio_backend("s", "hide = [\"add\"]\naliases = { echo = \"say\" }")
        )),
    );
    let run = |args: &[&str]| {
        let out = Command::new(warden_exe()).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let config_arg = config.to_str().unwrap();
    let (ok, _, stderr) = run(&["policy", "validate", "--config", config_arg]);
    assert!(!ok);
    assert!(stderr.contains("no tool catalog"), "{stderr}");
    assert!(stderr.contains("mcp-warden tools export"), "{stderr}");

    let catalog = config.with_file_name("tools.json");
    let catalog_arg = catalog.to_str().unwrap();
    let (ok, _, stderr) = run(&[
        "tools",
        "export",
        "--config",
        config_arg,
        "--out",
        catalog_arg,
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("wrote") && stderr.contains("1 backend"),
        "{stderr}"
    );
    let tools: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&catalog).unwrap()).unwrap();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // As clients see them: prefixed, hidden ones left out, aliases applied, sorted.
    assert!(
        names.contains(&"s__slow") && names.contains(&"say"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"s__add") && !names.contains(&"s__echo"),
        "{names:?}"
    );
    assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    let slow = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "s__slow")
        .unwrap();
    assert_eq!(slow["backend"], "s");
    // In its `[tools.groups]`, for policies naming `Mcp::Action::"group:waits"` offline.
    assert_eq!(slow["groups"], serde_json::json!(["waits"]));
    assert!(
        slow["inputSchema"]["properties"]["ms"].is_object(),
        "{slow}"
    );
    // The file is what the engine reads.
    let parsed = mcp_warden::authz::parse_catalog(&std::fs::read_to_string(&catalog).unwrap());
    assert_eq!(parsed.unwrap().len(), names.len());

    let (ok, stdout, stderr) = run(&[
        "policy",
        "validate",
        "--config",
        config_arg,
        "--tools",
        catalog_arg,
    ]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("1 policies valid against {} tools", names.len())),
        "{stdout}"
    );
    for (ms, allowed) in [(50, true), (500, false)] {
        let (ok, stdout, _) = run(&[
            "policy",
            "explain",
            "--config",
            config_arg,
            "--tools",
            catalog_arg,
            "--principal",
            r#"{"id": "ann"}"#,
            "--tool",
            "s__slow",
            "--arguments",
            &format!(r#"{{"ms": {ms}}}"#),
        ]);
        assert_eq!(ok, allowed, "{stdout}");
    }
    // A policy directory with the exported tools.json needs nothing else.
    let dir = config.with_file_name("policies");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("p.cedar"), policy).unwrap();
    let (ok, stdout, stderr) = run(&["policy", "validate", "--policies", dir.to_str().unwrap()]);
    assert!(
        !ok && stderr.contains("no tool catalog"),
        "{stdout}{stderr}"
    );
    std::fs::copy(&catalog, dir.join("tools.json")).unwrap();
    let (ok, stdout, stderr) = run(&["policy", "validate", "--policies", dir.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");

    // A backend that does not list: nothing is written, and the error names it.
    let broken = temp_file(
        "export/broken.toml",
        &with_auth(&format!(
            "{}[[backends]]\nname = \"gone\"\ncommand = \"/nonexistent/server\"\noptional = true\n",
            stdio_backend("s", "")
        )),
    );
    let partial = config.with_file_name("partial.json");
    let (ok, _, stderr) = run(&[
        "tools",
        "export",
        "--config",
        broken.to_str().unwrap(),
        "--out",
        partial.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("gone") && stderr.contains("no catalog written"),
        "{stderr}"
    );
    assert!(!partial.exists());
}

/// A public bind without `auth.resource` (the URL would come from somewhere a client
/// controls) and a public admin listener are refused at start, even via `--bind`.
#[test]
fn serve_refuses_a_public_bind_without_a_resource_url_and_a_public_admin_listener() {
    let config = temp_file(
        "public.toml",
        &format!(
            "[auth]\n[[auth.tokens]]\nsha256 = \"{}\"\nid = \"t\"\n[authz]\npolicy = {}\n{}",
            mcp_warden::authn::token_hash_hex("t"),
            lit(mcp_warden::config::ALLOW_ALL),
            stdio_backend("s", "")
        ),
    );
    for (args, expected) in [
        (["--bind", "0.0.0.0:0"], "auth.resource"),
        (["--admin-bind", "0.0.0.0:0"], "admin.bind"),
    ] {
        let out = Command::new(warden_exe())
            .arg("serve")
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
}

/// A reader that goes away (`mcp-warden policy schema | head -1`) ends the command quietly,
/// never with a panic; a stderr pipe nobody reads any more (a desktop client that closed
/// it) does not stop `serve --stdio` from answering.
#[tokio::test]
async fn a_reader_that_goes_away_is_no_panic() {
    let config = temp_file("pipe.toml", &with_auth(&stdio_backend("s", "")));
    let trading = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/trading");
    let config_arg = config.to_str().unwrap();
    for args in [
        &["policy", "schema", "--policies", trading][..],
        &["check", "--config", config_arg],
    ] {
        let mut child = std::process::Command::new(warden_exe())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
    }

    let mut child = tokio::process::Command::new(warden_exe())
        .args(["serve", "--stdio", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let mut stdin = child.stdin.take().unwrap();
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    stdin
        .write_all(
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\
              \"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}\n",
        )
        .await
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("an answer")
        .unwrap()
        .expect("an answer, not the end of stdout");
    assert!(line.contains("\"result\""), "{line}");
}

/// A desktop client's file as users have it: VS Code's `servers` key, a name with a space,
/// a legacy `sse` entry (skipped, not fatal), a `${VAR}` the clients would expand, and
/// settings added to an imported server by name in the TOML that imports it.
#[tokio::test]
async fn imported_files_are_read_as_the_clients_read_them_and_take_overrides_by_name() {
    let json = serde_json::json!({"inputs": [], "servers": {
        "my server": {"type": "stdio", "command": target_exe(), "args": ["--stdio"],
                      "env": {"WHERE": "${HOME}", "LEVEL": "${MCP_WARDEN_TEST_UNSET:-info}"}},
        "legacy": {"type": "sse", "url": "http://127.0.0.1:1/sse"}
    }});
    temp_file("vscode-mcp.json", &json.to_string());
    let toml = temp_file(
        "overrides.toml",
        "import = \"vscode-mcp.json\"\n[auth]\nanonymous = true\n\
         [authz]\npolicy = \"permit(principal, action, resource);\"\n\
         [[backends]]\nname = \"my_server\"\nhide = [\"echo\"]\n\
         aliases = { test_simple_text = \"simple\" }\n",
    );
    let config = mcp_warden::Config::from_path(&toml).unwrap();
    assert_eq!(config.backends.len(), 1, "the sse entry is skipped");
    let proxy = TestProxy::from_config(config).await;
    let (client, _) = connect(&proxy.url).await;
    let names: Vec<String> = listed_tool_names(&client).await;
    assert!(names.iter().any(|n| n == "simple"), "{names:?}");
    assert!(names.iter().any(|n| n == "my_server__slow"), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with("echo")), "{names:?}");

    let missing = serde_json::json!({"mcpServers": {"gh": {"command": "x", "args": ["${MCP_WARDEN_TEST_UNSET}"]}}});
    let path = temp_file("missing-var.json", &missing.to_string());
    let error = mcp_warden::Config::from_mcp_json_path(&path)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("mcpServers.gh.args[0]") && error.contains("MCP_WARDEN_TEST_UNSET"),
        "{error}"
    );
}

/// A `hide` or `expose` glob that matches nothing the backend lists, and an alias of a tool
/// it does not have, are said at startup (`hide = ["get_env"]` for a tool called `get-env`
/// hid nothing, silently); globs that match are not mentioned.
#[tokio::test]
async fn settings_that_name_nothing_the_backend_has_are_warned_about() {
    let config = temp_file(
        "unmatched.toml",
        &with_auth(&stdio_backend(
            "s",
            "hide = [\"crash\", \"get_env\"]\naliases = { nope = \"never\", echo = \"say\" }",
        )),
    );
    let mut child = tokio::process::Command::new(warden_exe())
        .args(["serve", "--stdio", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !(seen.contains("get_env") && seen.contains("`nope`")) {
        match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                seen.push_str(&line);
                seen.push('\n');
            }
            _ => break,
        }
    }
    assert!(
        seen.contains("`hide` glob `get_env` matches none of the backend's tools or prompts"),
        "{seen}"
    );
    assert!(
        seen.contains("alias of `nope`: the backend has no such tool"),
        "{seen}"
    );
    assert!(
        !seen.contains("`crash`") && !seen.contains("`echo`"),
        "{seen}"
    );
}

/// `check` fails on the files startup would fail to read: a JWKS file, a signing key or a
/// pseudonym key that is not there.
#[test]
fn check_fails_on_key_files_that_do_not_exist() {
    let config = temp_file(
        "missing-files.toml",
        "[auth]\n[[auth.issuers]]\nissuer = \"https://idp.example\"\naudiences = [\"a\"]\n\
         jwks_file = \"/nonexistent/jwks.json\"\n\
         [authz]\npolicy = \"permit(principal, action, resource);\"\n\
         [audit]\norigin = \"x.example/audit\"\nstore = \"memory://\"\n\
         signing_key = \"/nonexistent/audit.key\"\n\
         [[backends]]\nname = \"s\"\ncommand = \"true\"\n",
    );
    let out = Command::new(warden_exe())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("auth.issuers[0].jwks_file: `/nonexistent/jwks.json` does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("audit.signing_key: `/nonexistent/audit.key` does not exist"),
        "{stderr}"
    );
}

/// Shell completions and the manual page come from the command's own definition.
#[test]
fn completions_and_the_man_page_are_generated_from_the_commands() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(warden_exe())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    // Bash takes it, and completes the subcommands.
    let script = std::env::temp_dir().join(format!("mcp-warden-{}.bash", std::process::id()));
    std::fs::write(&script, &bash).unwrap();
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p mcp-warden",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{loaded:?}");
    assert!(bash.contains("serve") && bash.contains("audit"), "{bash}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(run(&["completions", shell]).contains("serve"), "{shell}");
    }
    let man = run(&["man"]);
    assert!(man.contains(".TH mcp-warden 1"), "{man}");
    assert!(
        man.contains("serve") && man.contains("MCP_WARDEN_LOG"),
        "{man}"
    );
}
