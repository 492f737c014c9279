//! Shared helpers: the conformance target as a backend (stdio or HTTP), an in-process proxy
//! on a loopback port, and an rmcp client that answers sampling, elicitation and roots and
//! records the notifications it receives.
#![allow(deprecated, dead_code)] // logging, sampling and roots (SEP-2577) are what we test

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use mcp_warden::{Config, Proxy, ProxyHandle};
use rmcp::{
    ClientHandler, ErrorData as McpError, RoleClient, ServiceExt,
    model::*,
    service::{NotificationContext, RequestContext, RunningService},
    transport::StreamableHttpClientTransport,
};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A built binary next to the test executable: `examples/<name>`.
pub fn example_exe(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let debug = exe.parent().and_then(|p| p.parent()).expect("target dir");
    debug.join("examples").join(name)
}

pub fn target_exe() -> String {
    example_exe("conformance_target").display().to_string()
}

pub fn warden_exe() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-warden")
}

/// A TOML string literal.
pub fn lit(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A `[[backends]]` section running the conformance target over stdio.
pub fn stdio_backend(name: &str, extra: &str) -> String {
    format!(
        "[[backends]]\nname = {}\ncommand = {}\nargs = [\"--stdio\"]\n{extra}\n",
        lit(name),
        lit(&target_exe())
    )
}

pub fn http_backend(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[backends]]\nname = {}\nurl = {}\n{extra}\n",
        lit(name),
        lit(url)
    )
}

/// The conformance target serving streamable HTTP on a free loopback port.
pub struct HttpTarget {
    pub url: String,
    child: tokio::process::Child,
}

impl HttpTarget {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// The target on 2026-07-28 alone: it refuses the `initialize` handshake.
    pub async fn start_modern_only() -> Self {
        Self::start_with(&["--modern-only"]).await
    }

    async fn start_with(extra: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(target_exe())
            .args(["--http", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start conformance_target (built by `cargo test`)");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("target did not start")
            .unwrap()
            .expect("target printed nothing");
        let url = line
            .strip_prefix("listening on ")
            .expect("listening line")
            .trim()
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { url, child }
    }

    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// A proxy running in this process on a loopback port.
pub struct TestProxy {
    pub url: String,
    pub base: String,
    /// The admin listener (`/metrics`, `/readyz`).
    pub admin: String,
    pub handle: ProxyHandle,
}

/// A test configuration: anonymous access (loopback) and a policy allowing everything,
/// unless the text configures its own.
pub fn with_auth(toml: &str) -> String {
    let mut out = String::new();
    if !toml.contains("[auth]") {
        out.push_str("[auth]\nanonymous = true\n");
    }
    if !toml.contains("[authz]") {
        out.push_str(&format!(
            "[authz]\npolicy = {}\n",
            lit(mcp_warden::config::ALLOW_ALL)
        ));
    }
    out.push('\n');
    out.push_str(toml);
    out
}

impl TestProxy {
    pub async fn start(toml: &str) -> Self {
        let config = Config::from_toml_str(&with_auth(toml)).expect("valid test config");
        Self::from_config(config).await
    }

    pub async fn from_config(config: Config) -> Self {
        let path = config.server.path.clone();
        let proxy = Proxy::from_config(config).await.expect("proxy starts");
        Self::serve(proxy, &path).await
    }

    /// Serves a proxy built by the test (its MCP endpoint at `path`).
    pub async fn serve(proxy: Proxy, path: &str) -> Self {
        let handle = proxy.handle();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        tokio::spawn(proxy.serve_with_admin(listener, Some(admin)));
        let base = format!("http://{addr}");
        Self {
            url: format!("{base}{path}"),
            base,
            admin: format!("http://{admin_addr}"),
            handle,
        }
    }

    /// Waits until `backend` is connected again (after a crash, say).
    pub async fn wait_backend_up(&self, backend: &str) {
        for _ in 0..200 {
            if self.handle.backends_up().iter().any(|b| b == backend) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("backend `{backend}` did not come back");
    }
}

/// What the test client saw.
#[derive(Default)]
pub struct Seen {
    pub progress: Vec<ProgressNotificationParam>,
    pub logs: Vec<LoggingMessageNotificationParam>,
    pub tool_list_changed: usize,
    pub resource_updates: Vec<String>,
    pub sampling_requests: usize,
    pub elicitation_requests: usize,
}

#[derive(Clone, Default)]
pub struct TestClient {
    pub seen: Arc<Mutex<Seen>>,
}

pub const SAMPLED_TEXT: &str = "sampled by the test client";

impl ClientHandler for TestClient {
    async fn create_message(
        &self,
        _: CreateMessageRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        self.seen.lock().unwrap().sampling_requests += 1;
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text(SAMPLED_TEXT),
            "test-model".to_owned(),
        ))
    }

    async fn create_elicitation(
        &self,
        _: ElicitRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        self.seen.lock().unwrap().elicitation_requests += 1;
        Ok(ElicitResult::new(ElicitationAction::Accept)
            .with_content(serde_json::json!({"username": "ada", "email": "ada@example.com"})))
    }

    async fn list_roots(&self, _: RequestContext<RoleClient>) -> Result<ListRootsResult, McpError> {
        Ok(ListRootsResult::new(vec![Root::new(
            "file:///workspace/project",
        )]))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.seen.lock().unwrap().progress.push(params);
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.seen.lock().unwrap().logs.push(params);
    }

    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.seen.lock().unwrap().tool_list_changed += 1;
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.seen.lock().unwrap().resource_updates.push(params.uri);
    }

    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.capabilities = ClientCapabilities::builder()
            .enable_roots()
            .enable_sampling()
            .enable_elicitation()
            .build();
        info.client_info = Implementation::new("proxy-tests", "1.0.0");
        info
    }
}

pub type Client = RunningService<RoleClient, TestClient>;

pub async fn connect(url: &str) -> (Client, TestClient) {
    let handler = TestClient::default();
    let client = handler
        .clone()
        .serve(StreamableHttpClientTransport::from_uri(url.to_owned()))
        .await
        .expect("client connects to the proxy");
    (client, handler)
}

pub fn call(name: &str, args: serde_json::Value) -> CallToolRequestParams {
    let mut params = CallToolRequestParams::new(name.to_owned());
    if let serde_json::Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    params
}

/// The text of the first text block of a tool result.
pub fn first_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}

/// Polls `check` until it holds or a few seconds pass.
/// Subscribes to backend `ns`'s `test://watched-resource` (exposed as
/// `<ns>+test://watched-resource`), touches it with the target's `touch_resource` and waits
/// for the update.
#[allow(deprecated)] // resources/subscribe: what clients before 2026-07-28 use
pub async fn subscribe_touch_and_see_the_update(client: &Client, seen: &TestClient, ns: &str) {
    let exposed = format!("{ns}+test://watched-resource");
    client
        .peer()
        .subscribe(rmcp::model::SubscribeRequestParams::new(exposed.clone()))
        .await
        .expect("subscribed");
    client
        .peer()
        .call_tool(call(
            &format!("{ns}__touch_resource"),
            serde_json::json!({"uri": "test://watched-resource"}),
        ))
        .await
        .unwrap();
    eventually("resource update", || {
        seen.seen
            .lock()
            .unwrap()
            .resource_updates
            .contains(&exposed)
    })
    .await;
}

/// How many updates of exposed resource `uri` the client was told of.
pub fn updates_of(seen: &TestClient, uri: &str) -> usize {
    seen.seen
        .lock()
        .unwrap()
        .resource_updates
        .iter()
        .filter(|u| *u == uri)
        .count()
}

/// Every tool name the client is shown (all pages).
pub async fn listed_tool_names<S: rmcp::service::Service<RoleClient>>(
    client: &RunningService<RoleClient, S>,
) -> Vec<String> {
    client
        .peer()
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Has the target (backend `s`) add `dynamic_tool` and waits for the client to hear that the
/// tool list changed.
pub async fn add_dynamic_tool(client: &Client, handler: &TestClient) {
    let before = handler.seen.lock().unwrap().tool_list_changed;
    client
        .peer()
        .call_tool(call("s__add_tool", serde_json::json!({})))
        .await
        .unwrap();
    eventually("tools/list_changed", || {
        handler.seen.lock().unwrap().tool_list_changed > before
    })
    .await;
}

/// Whether `name` shows up in the client's tool list within a few seconds.
pub async fn eventually_listed(client: &Client, name: &str) -> bool {
    for _ in 0..50 {
        if client
            .peer()
            .list_all_tools()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == name)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Starts `mcp-warden serve` on `config` (any free loopback port); returns the process and
/// its MCP URL once it listens. The process is killed when dropped.
pub async fn spawn_warden(config: &std::path::Path) -> (tokio::process::Child, String) {
    let (proxy, url, _) = spawn_warden_with(config, &[]).await;
    (proxy, url)
}

/// [`spawn_warden`] with more `serve` arguments; also returns the admin listener's URL.
pub async fn spawn_warden_with(
    config: &std::path::Path,
    args: &[&str],
) -> (tokio::process::Child, String, String) {
    spawn_warden_env(config, args, &[]).await
}

/// [`spawn_warden_with`] with more environment variables.
pub async fn spawn_warden_env(
    config: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (tokio::process::Child, String, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut proxy = tokio::process::Command::new(warden_exe())
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
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(proxy.stderr.take().unwrap()).lines();
    let after = |line: &str, marker: &str| {
        line.find(marker).map(|at| {
            line[at + marker.len() - "http://".len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned()
        })
    };
    let mut admin = String::new();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("proxy starts")
            .unwrap()
            .expect("proxy log");
        if let Some(found) = after(&line, "readiness) on http://") {
            admin = found;
        }
        if let Some(url) = after(&line, "listening on http://") {
            break url;
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (proxy, url, admin)
}

/// Sends `signal` (`-TERM`, `-KILL`) to a child process.
pub fn signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("running").to_string();
    assert!(
        std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// A client presenting `token` as its bearer token.
pub async fn connect_as(url: &str, token: &str) -> (Client, TestClient) {
    let handler = TestClient::default();
    (connect_with(url, token, handler.clone()).await, handler)
}

/// A client of its own `handler`, presenting `token` as its bearer token.
pub async fn connect_with<H: rmcp::ClientHandler>(
    url: &str,
    token: &str,
    handler: H,
) -> RunningService<RoleClient, H> {
    use rmcp::transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    };
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned());
    handler
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap()
}

/// The proxy's `/metrics` text, from its admin listener.
pub async fn metrics_text(admin: &str) -> String {
    reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// What a streamable-HTTP client accepts.
pub const ACCEPT: &str = "application/json, text/event-stream";

/// A raw JSON-RPC POST to `url` as a 2025-11-25 client would send it, in `session` if any:
/// add credentials and headers, then send.
pub fn raw_post(
    url: &str,
    session: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::RequestBuilder {
    let request = reqwest::Client::new()
        .post(url)
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .body(body);
    match session {
        Some(session) => request.header("mcp-session-id", session),
        None => request,
    }
}

/// A proxy in front of the conformance target twice: over stdio as `s`, over HTTP as `h`.
pub async fn two_backends() -> (TestProxy, HttpTarget) {
    let target = HttpTarget::start().await;
    let toml = format!(
        "{}{}",
        stdio_backend("s", ""),
        http_backend("h", &target.url, "")
    );
    (TestProxy::start(&toml).await, target)
}

/// Opens a session by hand (initialize, then initialized), as a client that may be asked
/// for sampling; returns its id.
pub async fn raw_session(url: &str) -> String {
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {"sampling": {}},
        "clientInfo": {"name": "raw", "version": "1"}}});
    let response = raw_post(url, None, init.to_string()).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let id = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = response.text().await;
    let initialized = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let done = raw_post(url, Some(&id), initialized.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 202);
    id
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 10 s) until something listens on loopback `port`.
pub async fn wait_listening(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `f` says yes, asking every 100 ms; fails the test after `seconds`.
pub async fn until(what: &str, seconds: u64, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..seconds * 10 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {seconds} s");
}
