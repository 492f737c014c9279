//! Authorization end to end: Cedar decides every request the proxy forwards, filters lists
//! per principal, and decides the requests backends send to clients.

use serde_json::json;

use crate::common::*;

const ANALYST: &str = "analyst-token";
const ENGINEER: &str = "engineer-token";
const AGENT: &str = "agent-token";

const POLICIES: &str = r#"
@id("everyone-lists")
permit(principal, action in [Mcp::Action::"list_tools", Mcp::Action::"list_prompts", Mcp::Action::"list_resources"], resource);

@id("analysts-echo")
permit(principal in Mcp::Role::"analyst", action == Mcp::Action::"s__echo", resource);

@id("engineers-everything")
permit(principal in Mcp::Role::"engineer", action, resource);

@id("agents-sampling-tool")
permit(principal in Mcp::Role::"agent", action == Mcp::Action::"s__test_sampling", resource);

@id("no-long-sleeps")
forbid(principal, action == Mcp::Action::"s__slow", resource)
when { context.arguments.ms > 1000 };

@id("no-agent-sampling")
forbid(principal is Mcp::Agent, action == Mcp::Action::"create_message", resource);

@id("shadow-no-echo")
@mode("shadow")
forbid(principal, action == Mcp::Action::"s__echo", resource);
"#;

fn token_entry(secret: &str, id: &str, kind: &str, role: &str) -> String {
    format!(
        "[[auth.tokens]]\nsha256 = \"{}\"\nid = \"{id}\"\nkind = \"{kind}\"\nroles = [\"{role}\"]\n",
        mcp_warden::authn::token_hash_hex(secret)
    )
}

fn config() -> String {
    let token = token_entry;
    format!(
        "[auth]\n{}{}{}[authz]\npolicy = {}\n{}",
        token(ANALYST, "ann", "user", "analyst"),
        token(ENGINEER, "eve", "user", "engineer"),
        token(AGENT, "bot", "agent", "agent"),
        lit(POLICIES),
        stdio_backend("s", "")
    )
}

#[tokio::test]
async fn each_principal_sees_only_the_tools_it_may_call() {
    let proxy = TestProxy::start(&config()).await;
    let (analyst, _) = connect_as(&proxy.url, ANALYST).await;
    assert_eq!(listed_tool_names(&analyst).await, ["s__echo"]);
    let (engineer, _) = connect_as(&proxy.url, ENGINEER).await;
    let all = listed_tool_names(&engineer).await;
    assert!(
        all.len() > 10 && all.contains(&"s__slow".to_owned()),
        "{all:?}"
    );
    // Conditionally permitted (s__slow depends on its arguments) is still listed.
    assert!(all.contains(&"s__slow".to_owned()));
}

#[tokio::test]
async fn calls_are_decided_with_their_typed_arguments() {
    let proxy = TestProxy::start(&config()).await;
    let (engineer, _) = connect_as(&proxy.url, ENGINEER).await;
    let quick = engineer
        .peer()
        .call_tool(call("s__slow", json!({"ms": 10})))
        .await
        .unwrap();
    assert_eq!(first_text(&quick), "done");
    let long = engineer
        .peer()
        .call_tool(call("s__slow", json!({"ms": 5000})))
        .await
        .unwrap_err()
        .to_string();
    assert!(long.contains("forbidden"), "{long}");
    let mistyped = engineer
        .peer()
        .call_tool(call("s__slow", json!({"ms": "lots"})))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        mistyped.contains("-32602") && mistyped.contains("invalid arguments"),
        "a wrong-typed argument is denied, and told as the caller's mistake: {mistyped}"
    );
    let escape = engineer
        .peer()
        .call_tool(call(
            "s__slow",
            json!({"ms": {"__extn": {"fn": "decimal", "arg": "1.0"}}}),
        ))
        .await;
    assert!(
        escape.is_err(),
        "a Cedar escape shape is data, and data of the wrong type is denied"
    );
}

/// Under a permit-all policy a wrong-typed argument is still refused before the backend,
/// as invalid arguments (-32602), never as a policy denial (-32003).
#[tokio::test]
async fn a_wrong_typed_argument_is_invalid_arguments_not_forbidden() {
    let proxy = TestProxy::start(&stdio_backend("s", "")).await;
    let (client, _) = connect(&proxy.url).await;
    let error = client
        .peer()
        .call_tool(call("s__slow", json!({"ms": "lots"})))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("-32602") && error.contains("`ms`") && !error.contains("forbidden"),
        "{error}"
    );
}

#[tokio::test]
async fn a_hidden_tool_reads_exactly_like_an_unknown_one() {
    let proxy = TestProxy::start(&config()).await;
    let (analyst, _) = connect_as(&proxy.url, ANALYST).await;
    let hidden = analyst
        .peer()
        .call_tool(call("s__crash", json!({})))
        .await
        .unwrap_err()
        .to_string();
    let unknown = analyst
        .peer()
        .call_tool(call("s__nothing", json!({})))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        hidden.replace("s__crash", "X"),
        unknown.replace("s__nothing", "X")
    );
    let echo = analyst
        .peer()
        .call_tool(call("s__echo", json!({"text": "hi"})))
        .await
        .unwrap();
    assert_eq!(
        first_text(&echo),
        "hi",
        "a shadow forbid reports but does not deny"
    );
}

#[tokio::test]
async fn a_backends_sampling_request_is_decided_for_the_caller() {
    let proxy = TestProxy::start(&config()).await;
    let (agent, seen) = connect_as(&proxy.url, AGENT).await;
    let result = agent
        .peer()
        .call_tool(call("s__test_sampling", json!({"prompt": "hi"})))
        .await
        .unwrap();
    assert_eq!(
        seen.seen.lock().unwrap().sampling_requests,
        0,
        "the client was never asked"
    );
    assert!(!first_text(&result).contains(SAMPLED_TEXT), "{result:?}");
    // Refused like a denied call: the gateway's forbidden code and wording.
    assert!(
        first_text(&result).contains("-32003") && first_text(&result).contains("is not permitted"),
        "{result:?}"
    );
    let (engineer, seen) = connect_as(&proxy.url, ENGINEER).await;
    let result = engineer
        .peer()
        .call_tool(call("s__test_sampling", json!({"prompt": "hi"})))
        .await
        .unwrap();
    assert!(first_text(&result).contains(SAMPLED_TEXT));
    assert_eq!(seen.seen.lock().unwrap().sampling_requests, 1);
}

#[tokio::test]
async fn operator_hints_override_what_a_backend_claims() {
    // The target declares no annotations: by MCP's defaults every tool is destructive.
    let toml = format!(
        "[authz]\npolicy = {}\n{}",
        lit(
            "permit(principal, action == Mcp::Action::\"list_tools\", resource);\n\
             permit(principal, action in Mcp::Action::\"call_tool\", resource) when { !resource.destructive };"
        ),
        stdio_backend(
            "s",
            "hints = { echo = { destructive = false, read_only = true } }"
        )
    );
    let proxy = TestProxy::start(&toml).await;
    let (client, _) = connect(&proxy.url).await;
    let names = listed_tool_names(&client).await;
    assert_eq!(names, ["s__echo"]);
    let echo = client
        .peer()
        .call_tool(call("s__echo", json!({"text": "safe"})))
        .await
        .unwrap();
    assert_eq!(first_text(&echo), "safe");
}

#[tokio::test]
async fn decisions_and_shadow_outcomes_are_counted_without_principals_in_labels() {
    let proxy = TestProxy::start(&config()).await;
    let (analyst, _) = connect_as(&proxy.url, ANALYST).await;
    analyst
        .peer()
        .call_tool(call("s__echo", json!({"text": "hi"})))
        .await
        .unwrap();
    let _ = analyst.peer().call_tool(call("s__crash", json!({}))).await;
    let _ = reqwest::Client::new()
        .post(&proxy.url)
        .body("{}")
        .send()
        .await
        .unwrap();
    let metrics = metrics_text(&proxy.admin).await;
    assert!(
        metrics.contains(
            r#"mcp_warden_authz_decisions_total{operation="call_tool",decision="allow"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"mcp_warden_authz_decisions_total{operation="call_tool",decision="deny"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"mcp_warden_authz_shadow_total{policy="shadow-no-echo",effect="forbid",would_change="true"} 1"#), "{metrics}");
    for expected in [
        r#"mcp_warden_authn_failures_total{reason="missing"} 1"#,
        // Every forwarded request by operation, backend, tool and outcome; the denied one
        // never reached the backend, whose own time is measured apart.
        r#"mcp_warden_requests_total{operation="tools/call",backend="s",tool="s__echo",outcome="ok"} 1"#,
        r#"mcp_warden_requests_total{operation="tools/call",backend="s",tool="s__crash",outcome="denied"} 1"#,
        r#"mcp_warden_request_duration_seconds_count{operation="tools/call",backend="s"} 2"#,
        r#"mcp_warden_backend_duration_seconds_count{backend="s"} 1"#,
        r#"mcp_warden_backend_up{backend="s"} 1"#,
        "mcp_warden_sessions 1",
        r#"mcp_warden_authz_policy_decisions_total{policy="#,
    ] {
        assert!(metrics.contains(expected), "{expected} in {metrics}");
    }
    assert!(metrics.trim_end().ends_with("# EOF"), "OpenMetrics");
    let served = reqwest::get(format!("{}/metrics", proxy.admin))
        .await
        .unwrap();
    assert_eq!(
        served.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(
        !metrics.contains("ann") && !metrics.contains(ANALYST),
        "no principal or token in labels: {metrics}"
    );
}

/// A backend changes a tool under a policy that names it: the tool is quarantined (hidden
/// and denied), the rest keeps working.
#[tokio::test]
async fn a_tool_whose_new_schema_breaks_a_policy_is_quarantined() {
    // The saved catalog says `dynamic_tool` takes an integer `x`; the policy relies on it.
    let dir = std::env::temp_dir().join(format!("mcp-warden-quarantine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let catalog = dir.join("tools.json");
    let saved = json!([{"name": "s__dynamic_tool", "backend": "s",
        "inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}]);
    std::fs::write(&catalog, saved.to_string()).unwrap();
    let policies = "permit(principal, action in [Mcp::Action::\"list_tools\", Mcp::Action::\"call_tool\"], resource);\n\
                    @id(\"dynamic-x\")\nforbid(principal, action == Mcp::Action::\"s__dynamic_tool\", resource) when { context.arguments.x > 10 };";
    let toml = format!(
        "[authz]\ntools = {}\npolicy = {}\n{}",
        lit(&catalog.display().to_string()),
        lit(policies),
        stdio_backend("s", "")
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, with_auth(&toml)).unwrap();
    let proxy = TestProxy::from_config(mcp_warden::Config::from_path(&path).unwrap()).await;
    let (client, seen) = connect(&proxy.url).await;
    // The backend now exposes `dynamic_tool` without any `x`: the forbid no longer validates.
    add_dynamic_tool(&client, &seen).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let names = listed_tool_names(&client).await;
    assert!(
        !names.contains(&"s__dynamic_tool".to_owned()),
        "quarantined tools are hidden: {names:?}"
    );
    assert!(names.contains(&"s__echo".to_owned()));
    assert!(
        client
            .peer()
            .call_tool(call("s__dynamic_tool", json!({})))
            .await
            .is_err(),
        "and denied"
    );
    let echo = client
        .peer()
        .call_tool(call("s__echo", json!({"text": "still here"})))
        .await
        .unwrap();
    assert_eq!(first_text(&echo), "still here");
    // Control: without the policy that breaks, the same change simply adds the tool.
    let unbroken = toml.replace("context.arguments.x > 10", "context.request.hour > 99");
    assert_ne!(unbroken, toml);
    std::fs::write(&path, with_auth(&unbroken)).unwrap();
    let proxy = TestProxy::from_config(mcp_warden::Config::from_path(&path).unwrap()).await;
    let (client, seen) = connect(&proxy.url).await;
    add_dynamic_tool(&client, &seen).await;
    assert!(
        eventually_listed(&client, "s__dynamic_tool").await,
        "the control proxy lists the new tool"
    );
}

/// `completion/complete` answered for a prompt whose `prompts/get` was forbidden, its
/// argument was not guarded, and `resources/templates/list` was not filtered per principal.
#[tokio::test]
async fn completions_and_templates_are_decided_like_what_they_refer_to() {
    use rmcp::model::{ArgumentInfo, CompleteRequestParams, Reference};
    let policies = r#"
permit(principal, action in [Mcp::Action::"list_prompts", Mcp::Action::"list_resources", Mcp::Action::"complete"], resource);
permit(principal in Mcp::Role::"engineer", action in [Mcp::Action::"get_prompt", Mcp::Action::"read_resource"], resource);
"#;
    let toml = format!(
        "[auth]\n{}{}[authz]\npolicy = {}\n{}",
        token_entry(ANALYST, "ann", "user", "analyst"),
        token_entry(ENGINEER, "eve", "user", "engineer"),
        lit(policies),
        stdio_backend("s", "")
    );
    let proxy = TestProxy::start(&toml).await;
    let complete = |client: &Client, reference: Reference, value: &str| {
        let peer = client.peer().clone();
        let value = value.to_owned();
        async move {
            peer.complete(CompleteRequestParams::new(
                reference,
                ArgumentInfo::new("arg1", value),
            ))
            .await
        }
    };
    let prompt = || Reference::for_prompt("s__test_prompt_with_arguments");
    let template = || Reference::for_resource("s+test://template/{id}/data");
    let (engineer, _) = connect_as(&proxy.url, ENGINEER).await;
    assert!(complete(&engineer, prompt(), "te").await.is_ok());
    assert!(complete(&engineer, template(), "1").await.is_ok());
    assert_eq!(
        engineer
            .peer()
            .list_all_resource_templates()
            .await
            .unwrap()
            .len(),
        1
    );
    let (analyst, _) = connect_as(&proxy.url, ANALYST).await;
    assert!(
        complete(&analyst, prompt(), "te").await.is_err(),
        "no completion for a prompt one may not get"
    );
    assert!(
        complete(&analyst, template(), "1").await.is_err(),
        "no completion for a template one may not read"
    );
    assert!(
        analyst
            .peer()
            .list_all_resource_templates()
            .await
            .unwrap()
            .is_empty(),
        "templates are filtered like resources"
    );
    let blocked = complete(&engineer, prompt(), "x; rm -rf / #").await;
    let blocked = format!(
        "{:?}",
        blocked.expect_err("the completion argument is guarded")
    );
    assert!(blocked.contains("blocked"), "{blocked}");
}

/// An argument the tool's schema does not declare never reaches the backend where the
/// operator refuses them: Cedar never saw it.
#[tokio::test]
async fn undeclared_arguments_are_refused_before_the_backend() {
    let toml = stdio_backend("s", "refuse_undeclared_arguments = [\"echo\"]");
    let proxy = TestProxy::start(&toml).await;
    let (client, _) = connect(&proxy.url).await;
    let peer = client.peer();
    assert!(
        peer.call_tool(call("s__echo", json!({"text": "hi"})))
            .await
            .is_ok()
    );
    let refused = peer
        .call_tool(call("s__echo", json!({"text": "hi", "Text": "override"})))
        .await
        .expect_err("an undeclared argument is refused");
    assert!(
        format!("{refused:?}").contains("`Text` is not declared"),
        "{refused:?}"
    );
    // Other tools of the backend keep today's behaviour: the extra key is dropped from
    // the policy context, and the call is decided on the declared ones.
    assert!(
        peer.call_tool(call("s__test_simple_text", json!({"extra": 1})))
            .await
            .is_ok()
    );
}
