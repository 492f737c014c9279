//! The session, the call stack and a backend together, below HTTP: a client session served
//! over an in-memory pipe, in front of backends served in this process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorCode, JsonObject};
use rmcp::service::{RoleClient, RunningService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt, model::*};
use serde_json::json;
use tower::{ServiceExt as _, layer::layer_fn, service_fn};

use super::Audited;
use crate::config::{BackendSettings, Config};
use crate::hub::reload::Outcome;
use crate::proxy::{Proxy, ProxyBuilder};
use crate::stack::{Call, CallService, StackPoint};

/// A backend whose one tool, `wait`, answers after `ms` milliseconds.
#[derive(Clone)]
struct Waiter;

impl ServerHandler for Waiter {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: rmcp::service::RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let schema = json!({"type": "object", "properties": {"ms": {"type": "integer"}}});
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "wait",
            "Answers after `ms` milliseconds",
            Arc::new(schema.as_object().cloned().unwrap_or_default()),
        )]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: rmcp::service::RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let ms = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("ms"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(CallToolResponse::Complete(CallToolResult::success(vec![
            ContentBlock::text(format!("waited {ms}")),
        ])))
    }
}

const POLICY: &str = "permit(principal, action, resource);\n\
    forbid(principal, action == Mcp::Action::\"demo__add\", resource) when { context.arguments.a > 100 };";

/// A proxy of the demo backend and the waiter, both in this process.
async fn proxy(builder: impl FnOnce(ProxyBuilder) -> ProxyBuilder) -> Proxy {
    let toml = format!(
        "[auth]\nanonymous = true\n[authz]\npolicy = {}\n[[backends]]\nname = \"placeholder\"\ncommand = \"none\"\n",
        toml::Value::String(POLICY.to_owned())
    );
    let mut config = Config::from_toml_str(&toml).unwrap();
    config.backends = vec![
        BackendSettings::in_process("demo", "", crate::demo::handler).unwrap(),
        BackendSettings::in_process("w", "", || Waiter).unwrap(),
    ];
    builder(Proxy::builder(config)).build().await.unwrap()
}

/// A client session over an in-memory pipe (as over stdio: the local user).
async fn session(proxy: &Proxy) -> RunningService<RoleClient, ()> {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let served = Audited::new(proxy.hub().clone());
    tokio::spawn(async move {
        if let Ok(running) = served.serve(theirs).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(ours).await.unwrap()
}

fn call(name: &str, arguments: serde_json::Value) -> CallToolRequestParams {
    let mut params = CallToolRequestParams::new(name.to_owned());
    params.arguments = arguments.as_object().cloned();
    params
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_call_crosses_the_stack_to_its_backend_and_a_denied_one_stops_at_authorization() {
    let below: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = below.clone();
    let counter = layer_fn(move |inner: CallService| {
        let seen = seen.clone();
        service_fn(move |call: Call| {
            let args: Option<&JsonObject> = call.arguments();
            seen.lock()
                .unwrap()
                .push(format!("{}:{}", call.tool().unwrap_or(""), json!(args)));
            inner.clone().oneshot(call)
        })
    });
    let proxy = proxy(|b| b.layer(StackPoint::BeforeBackend, counter)).await;
    let client = session(&proxy).await;
    let tools = client.peer().list_all_tools().await.unwrap();
    let mut names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["demo__add", "demo__echo", "w__wait"]);

    let sum = client
        .peer()
        .call_tool(call("demo__add", json!({"a": 2, "b": 3})))
        .await
        .unwrap();
    assert_eq!(text(&sum), "5");
    let denied = client
        .peer()
        .call_tool(call("demo__add", json!({"a": 101, "b": 3})))
        .await
        .unwrap_err();
    let rmcp::ServiceError::McpError(e) = denied else {
        panic!("{denied:?}")
    };
    assert_eq!(e.code, crate::error::FORBIDDEN, "{e:?}");
    assert_ne!(e.code, ErrorCode::INTERNAL_ERROR);
    assert_eq!(
        *below.lock().unwrap(),
        vec![r#"demo__add:{"a":2,"b":3}"#.to_owned()],
        "the denied call never went below authorization"
    );
    client.cancel().await.unwrap();
    proxy.handle().shutdown().await;
}

#[tokio::test]
async fn two_sessions_calling_at_once_each_get_their_own_answers() {
    let proxy = proxy(|b| b).await;
    let (a, b) = (session(&proxy).await, session(&proxy).await);
    let calls = (0..40).map(|i| {
        let peer = if i % 2 == 0 { a.peer() } else { b.peer() }.clone();
        async move {
            let text_in = format!("session {} call {i}", i % 2);
            let out = peer
                .call_tool(call("demo__echo", json!({"text": text_in})))
                .await
                .unwrap();
            (text_in, text(&out))
        }
    });
    for (sent, got) in futures::future::join_all(calls).await {
        assert_eq!(sent, got);
    }
    // Shutdown waits for each supervisor to close its connection (it used to wait out its
    // timeout on a backend with one connection, leaving the connection up).
    let backends = proxy.hub().backends();
    proxy.handle().shutdown().await;
    for backend in backends.iter() {
        assert!(!backend.is_up(), "{} closed", backend.name());
    }
}

#[tokio::test]
async fn a_backend_removed_mid_call_finishes_the_call_then_stops() {
    let proxy = proxy(|b| b).await;
    let client = session(&proxy).await;
    let backend = proxy.hub().backends().by_name("w").cloned().unwrap();
    let running = {
        let peer = client.peer().clone();
        tokio::spawn(async move { peer.call_tool(call("w__wait", json!({"ms": 700}))).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let report = proxy.handle().remove_backend("w").await;
    assert_eq!(report.outcome, Outcome::Applied, "{report:?}");
    // Gone from the catalog at once; the call in flight still runs on it.
    let gone = client
        .peer()
        .call_tool(call("w__wait", json!({"ms": 1})))
        .await
        .unwrap_err();
    assert!(gone.to_string().contains("unknown tool"), "{gone}");
    assert!(!backend.stop.is_cancelled());
    let finished = running.await.unwrap().unwrap();
    assert_eq!(text(&finished), "waited 700");
    // Then it closes: nothing more is admitted, and its connection stops.
    for _ in 0..100 {
        if backend.stop.is_cancelled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(backend.stop.is_cancelled(), "the removed backend stopped");
    assert!(backend.calls.enter().is_none());
    assert!(proxy.hub().lists_of(backend.id).is_none());
    proxy.handle().shutdown().await;
}
