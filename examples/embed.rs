//! Library mode: mcp-warden inside an existing axum application. The host app keeps its
//! own routes, `/healthz` included; the proxy adds only the MCP endpoint (with its
//! protected-resource metadata). What the host brings of its own:
//!
//! - **its authentication**: here `Authorization: Bearer host:<user>`, a stand-in for the
//!   host's session cookie or client certificate; the policies see `Mcp::User::"<user>"`;
//! - **a layer of its own in the call stack**, after authorization: it logs each permitted
//!   call with the time it took;
//! - **a backend served inside the application** (`tools__echo`, `tools__add`), added
//!   through the handle once the proxy runs, and removed again on SIGUSR1.
//!
//! Metrics, readiness and the admin API (kill switch, reload) are served on a separate
//! loopback listener. SIGHUP reloads the configuration through the handle. Ctrl-C drains
//! the calls in flight, closes the clients' open streams, stops the backends, and only
//! then lets the server finish.
//!
//! ```sh
//! cargo run --example embed -- path/to/mcp-warden.toml
//! ```

use std::time::Instant;

use axum::{Router, routing::get};
use mcp_warden::config::BackendSettings;
use mcp_warden::stack::{Call, CallService, StackPoint};
use mcp_warden::{AuthError, Config, Principal, Proxy};
use tower::{ServiceExt, layer::layer_fn, service_fn};

/// The host's own authentication.
struct HostAuth;

impl mcp_warden::Authenticate for HostAuth {
    fn authenticate<'a>(
        &'a self,
        headers: &'a http::HeaderMap,
    ) -> futures::future::BoxFuture<'a, Result<Principal, AuthError>> {
        let user = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer host:"))
            .map(str::to_owned);
        Box::pin(async move {
            let mut principal = Principal::anonymous();
            principal.id = user.ok_or(AuthError::Missing)?;
            principal.roles = vec!["staff".to_owned()];
            Ok(principal)
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: embed CONFIG.toml");
        std::process::exit(2);
    };
    let config = Config::from_path(&path)?;
    let (bind, admin_bind) = (config.server.bind, config.admin.bind);
    // Logs every permitted call and how long it took (the host's own layer).
    let timing = layer_fn(|inner: CallService| {
        service_fn(move |call: Call| {
            let inner = inner.clone();
            async move {
                let (who, tool) = (call.principal().id.clone(), call.tool().map(str::to_owned));
                let started = Instant::now();
                let result = inner.oneshot(call).await;
                println!(
                    "{who} called {} in {} µs",
                    tool.as_deref().unwrap_or("-"),
                    started.elapsed().as_micros()
                );
                result
            }
        })
    });
    let proxy = Proxy::builder(config)
        .authenticate_with(HostAuth)
        .layer(StackPoint::AfterAuthorization, timing)
        .build()
        .await?;
    let handle = proxy.handle();
    // A backend of the application's own: any rmcp `ServerHandler`, here the demo one.
    let added = handle
        .add_backend(BackendSettings::in_process(
            "tools",
            "",
            mcp_warden::demo::handler,
        )?)
        .await;
    println!(
        "in-process backend: {:?} {:?}",
        added.outcome, added.backends
    );
    // Where a reload reads the configuration again.
    let source = path.clone();
    handle.set_config_source(move || Config::from_path(&source).map_err(|e| e.to_string()));
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handle = handle.clone();
        let (mut hangup, mut usr1) = (
            signal(SignalKind::hangup())?,
            signal(SignalKind::user_defined1())?,
        );
        tokio::spawn(async move {
            loop {
                let report = tokio::select! {
                    Some(()) = hangup.recv() => handle.reload("signal").await,
                    Some(()) = usr1.recv() => handle.remove_backend("tools").await,
                    else => return,
                };
                println!(
                    "{:?}: generation {} {:?}",
                    report.outcome, report.generation, report.backends
                );
            }
        });
    }
    let admin = proxy.admin_router();
    let app = Router::new()
        .route("/", get(|| async { "host application" }))
        .route("/healthz", get(|| async { "host is fine" }))
        .merge(proxy.into_mcp_router());
    let admin_listener = tokio::net::TcpListener::bind(admin_bind).await?;
    tokio::spawn(async move {
        axum::serve(
            admin_listener,
            admin.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("host app with MCP at http://{}/mcp", listener.local_addr()?);
    // Connect info: policies and audit records see each client's address.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            // First the proxy: calls in flight drain and the clients' streams close, so
            // the server's graceful shutdown has no open stream left to wait for.
            handle.shutdown().await;
        })
        .await?;
    println!("stopped");
    Ok(())
}
