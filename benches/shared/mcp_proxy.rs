//! The `mcp-proxy` crate (`cargo install mcp-proxy --version 0.6.0`, no auth, no policy, no
//! audit) in front of the same backends, as the peer baseline measured in the same run.
//! Found as `$MCP_PROXY_BIN`, else where `.ci/install-peers` puts it, else `mcp-proxy` on
//! `PATH`; without it the rows are left out and the harness says so.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Where the `mcp-proxy` binary is.
pub fn binary() -> String {
    if let Ok(bin) = std::env::var("MCP_PROXY_BIN") {
        return bin;
    }
    let installed =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/mcp-proxy/bin/mcp-proxy");
    if installed.exists() {
        return installed.display().to_string();
    }
    "mcp-proxy".to_owned()
}

/// A running `mcp-proxy` and its MCP URL (it serves MCP at `/`).
pub struct McpProxy {
    _child: Child,
    pub url: String,
}

/// Starts `mcp-proxy` with backend `demo` at `http_backend` and backend `local` running
/// `demo_exe demo-server` over stdio, on a free loopback port; `None` when the binary is
/// not installed.
pub async fn start(http_backend: &str, demo_exe: &str) -> Option<McpProxy> {
    let bin = binary();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
        probe.local_addr().ok()?.port()
    };
    let dir = std::env::temp_dir().join(format!("bench-mcp-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let config = dir.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[proxy]\nname = \"bench\"\nversion = \"1.0.0\"\nseparator = \"__\"\n\
             [proxy.listen]\nhost = \"127.0.0.1\"\nport = {port}\n\
             [[backends]]\nname = \"demo\"\ntransport = \"http\"\nurl = \"{http_backend}\"\n\
             [[backends]]\nname = \"local\"\ntransport = \"stdio\"\ncommand = {demo_exe:?}\nargs = [\"demo-server\"]\n"
        ),
    )
    .ok()?;
    let child = Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    // Listening once a TCP connect succeeds.
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(McpProxy {
                _child: child,
                url: format!("http://127.0.0.1:{port}/"),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
