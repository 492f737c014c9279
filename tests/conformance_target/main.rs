//! `conformance_target`: an MCP server that implements every server scenario of the
//! official MCP conformance suite (`@modelcontextprotocol/conformance` 0.1.16, and most of
//! the 0.2.0 prerelease's), plus a
//! handful of tools the proxy's integration tests use to drive a backend: slow and
//! cancellable calls, a cancellation counter, a tool that kills the process, a tool
//! that grows the tool list at runtime, roots, resource-update fan-out, echo,
//! structured output, SEP-2322 multi round-trip sampling (`ask_llm`), the capabilities a
//! request's client declared (`client_capabilities`) and resource updates on 2026-07-28
//! listen streams.
//!
//! Usage:
//!
//! ```text
//! conformance_target --stdio                 serve over stdin/stdout
//! conformance_target --http 127.0.0.1:PORT   serve streamable HTTP at /mcp
//! conformance_target --http 127.0.0.1:PORT --modern-only
//!                                            the same, on 2026-07-28 alone (no handshake)
//! ```
//!
//! In HTTP mode the server prints exactly one line to stdout once the socket is bound,
//! `listening on http://ADDR/mcp` (with the real port when PORT is 0). In stdio mode
//! stdout carries JSON-RPC only. Diagnostics, when enabled with `RUST_LOG`, go to
//! stderr.

// Logging, sampling and roots are deprecated in rmcp (SEP-2577) but are exactly what
// the conformance scenarios exercise.
#![allow(deprecated)]

mod ask_llm;
mod extras;
mod fixtures;
mod interactive;
mod prompts;
mod resources;
mod server;
mod state;
mod tools;

use std::{io::Write, net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::serve::ListenerExt;
use rmcp::{
    ServiceExt,
    transport::{
        StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_server::session::local::LocalSessionManager,
    },
};

use crate::{server::ConformanceServer, state::SharedState};

const USAGE: &str = "usage: conformance_target (--stdio | --http HOST:PORT [--modern-only])";

/// How the server talks to its client.
enum Mode {
    Stdio,
    Http(String, bool),
}

fn parse_args() -> Option<Mode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--stdio" => Some(Mode::Stdio),
        [flag, addr] if flag == "--http" => Some(Mode::Http(addr.clone(), false)),
        [flag, addr, modern] if flag == "--http" && modern == "--modern-only" => {
            Some(Mode::Http(addr.clone(), true))
        }
        _ => None,
    }
}

/// Sends `tracing` output to stderr when `RUST_LOG` is set; stays silent otherwise.
fn init_logging() {
    if std::env::var_os("RUST_LOG").is_none() {
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(mode) = parse_args() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    init_logging();
    match mode {
        Mode::Stdio => serve_stdio(Arc::new(SharedState::default())).await,
        Mode::Http(addr, modern_only) => {
            let mut state = SharedState::default();
            state.modern_only = modern_only;
            serve_http(&addr, Arc::new(state)).await
        }
    }
}

async fn serve_stdio(state: Arc<SharedState>) -> anyhow::Result<()> {
    let running = ConformanceServer::new(state)
        .serve(rmcp::transport::stdio())
        .await
        .context("stdio handshake failed")?;
    running.waiting().await.context("stdio service failed")?;
    Ok(())
}

async fn serve_http(addr: &str, state: Arc<SharedState>) -> anyhow::Result<()> {
    let service = StreamableHttpService::new(
        move || Ok(ConformanceServer::new(state.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind {addr}"))?;
    announce(listener.local_addr()?)?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .await
        .context("HTTP server failed")?;
    Ok(())
}

/// Prints the single readiness line that test harnesses wait for.
fn announce(addr: SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}/mcp")?;
    stdout.flush()
}
