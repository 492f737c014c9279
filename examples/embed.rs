//! Library mode: mcp-warden inside an existing axum application. The host app keeps its
//! own routes, `/healthz` included; the proxy adds only the MCP endpoint (with its
//! protected-resource metadata). Metrics, readiness and the admin API (kill switch, reload)
//! are served on a separate loopback listener. SIGHUP, or an edit seen by the host's own
//! means, reloads the policies through the handle; shutdown drains calls in flight and
//! stops the backends.
//!
//! ```sh
//! cargo run --example embed -- path/to/mcp-warden.toml
//! ```

use axum::{Router, routing::get};
use mcp_warden::{Config, Proxy};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: embed CONFIG.toml");
        std::process::exit(2);
    };
    let config = Config::from_path(&path)?;
    let (bind, admin_bind) = (config.server.bind, config.admin.bind);
    let proxy = Proxy::from_config(config).await?;
    let handle = proxy.handle();
    // Where a reload reads the configuration again.
    let source = path.clone();
    handle.set_config_source(move || Config::from_path(&source).map_err(|e| e.to_string()));
    #[cfg(unix)]
    {
        let handle = handle.clone();
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                let report = handle.reload("signal").await;
                println!(
                    "reload {:?}: generation {}",
                    report.outcome, report.generation
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
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // Drain calls in flight and stop the backends.
    handle.shutdown().await;
    Ok(())
}
