//! Library mode: mcp-warden inside an existing axum application. The host app keeps its
//! own routes; the proxy adds the MCP endpoint (with its protected-resource metadata and
//! `/healthz`). Metrics and readiness are served on a separate loopback listener.
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
    let config = Config::from_path(path)?;
    let (bind, admin_bind) = (config.server.bind, config.admin.bind);
    let proxy = Proxy::from_config(config).await?;
    let handle = proxy.handle();
    let admin = proxy.admin_router();
    let app = Router::new()
        .route("/", get(|| async { "host application" }))
        .merge(proxy.into_router());
    let admin_listener = tokio::net::TcpListener::bind(admin_bind).await?;
    tokio::spawn(async move { axum::serve(admin_listener, admin).await });
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
