//! Library mode: mcp-warden inside an existing axum application. The host app keeps its
//! own routes; the proxy adds the MCP endpoint and health probes.
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
    let proxy = Proxy::from_config(config).await?;
    let handle = proxy.handle();
    let app = Router::new()
        .route("/", get(|| async { "host application" }))
        .merge(proxy.into_router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8809").await?;
    println!("host app with MCP at http://{}/mcp", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // Drain calls in flight and stop the backends.
    handle.shutdown().await;
    Ok(())
}
