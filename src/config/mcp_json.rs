//! The `mcpServers` JSON that desktop MCP clients keep (Claude Desktop, Claude Code,
//! Cursor), turned into backend sections so a laptop user can point the proxy at the file
//! they already have.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::file::BackendSection;

#[derive(Debug, Deserialize)]
struct McpJson {
    #[serde(rename = "mcpServers")]
    mcp_servers: BTreeMap<String, McpServer>,
}

#[derive(Debug, Deserialize)]
struct McpServer {
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    url: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    disabled: bool,
}

/// Parses the JSON text into backend sections, one per enabled server, in name order.
pub fn parse(text: &str) -> Result<Vec<BackendSection>, String> {
    let file: McpJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (name, server) in file.mcp_servers {
        if server.disabled {
            continue;
        }
        if matches!(server.kind.as_deref(), Some("sse")) {
            return Err(format!(
                "mcpServers.{name}: the legacy `sse` transport is not supported; use streamable HTTP"
            ));
        }
        out.push(BackendSection {
            name: Some(name),
            command: server.command,
            args: server.args,
            env: server.env,
            cwd: server.cwd,
            url: server.url,
            headers: server.headers,
            ..BackendSection::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stdio_and_http_servers_and_skips_disabled() {
        let text = r#"{"mcpServers": {
            "fs": {"command": "npx", "args": ["-y", "server-filesystem", "/tmp"], "env": {"A": "1"}},
            "remote": {"type": "http", "url": "http://127.0.0.1:9000/mcp", "headers": {"X-Key": "k"}},
            "off": {"command": "x", "disabled": true}
        }}"#;
        let backends = parse(text).unwrap();
        assert_eq!(backends.len(), 2);
        assert_eq!(backends[0].name.as_deref(), Some("fs"));
        assert_eq!(backends[0].args, ["-y", "server-filesystem", "/tmp"]);
        assert_eq!(backends[0].env["A"], "1");
        assert_eq!(
            backends[1].url.as_deref(),
            Some("http://127.0.0.1:9000/mcp")
        );
        assert_eq!(backends[1].headers["X-Key"], "k");
    }

    #[test]
    fn refuses_legacy_sse_and_bad_json() {
        assert!(
            parse(r#"{"mcpServers": {"a": {"type": "sse", "url": "http://x"}}}"#)
                .unwrap_err()
                .contains("sse")
        );
        assert!(parse("{").is_err());
    }
}
