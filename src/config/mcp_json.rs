//! The JSON that desktop MCP clients keep — `mcpServers` (Claude Desktop, Claude Code,
//! Cursor) or `servers` (VS Code) — turned into backend sections so a laptop user can point
//! the proxy at the file they already have, read as those clients read it:
//!
//! - `${VAR}`, `${VAR:-default}` and `${env:VAR}` are expanded from the proxy's environment
//!   in `command`, `args`, `env`, `cwd`, `url` and `headers` (VS Code's `${input:…}`, which
//!   prompts the user, cannot be: an error naming it);
//! - a legacy `"type": "sse"` server is skipped with a warning, not the whole file;
//! - a name those files allow and backend names do not (`"my server"`) is served under a
//!   legal one (`my_server`), with a warning; every message names the server by its name.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ConfigError, ConfigIssue, file::BackendSection};

#[derive(Debug, Deserialize)]
struct McpJson {
    #[serde(rename = "mcpServers")]
    mcp_servers: Option<BTreeMap<String, McpServer>>,
    /// VS Code's `.vscode/mcp.json`.
    servers: Option<BTreeMap<String, McpServer>>,
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

/// The servers of a file, and what the user should hear about it.
#[derive(Debug, Default)]
pub struct Imported {
    pub backends: Vec<BackendSection>,
    pub warnings: Vec<String>,
}

/// Parses the JSON text into backend sections, one per enabled server, in name order;
/// `var` reads the environment. Every problem is reported, each under the server's name.
pub fn parse(text: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<Imported, ConfigError> {
    let file: McpJson = serde_json::from_str(text).map_err(|e| ConfigError {
        issues: vec![ConfigIssue {
            path: "mcpServers".to_owned(),
            message: e.to_string(),
        }],
    })?;
    let (key, servers) = match (file.mcp_servers, file.servers) {
        (Some(servers), _) => ("mcpServers", servers),
        (None, Some(servers)) => ("servers", servers),
        (None, None) => {
            return Err(ConfigError {
                issues: vec![ConfigIssue {
                    path: "mcpServers".to_owned(),
                    message: "the file has neither `mcpServers` nor `servers`".to_owned(),
                }],
            });
        }
    };
    let mut imported = Imported::default();
    let mut issues = Vec::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for (name, server) in servers {
        let at = format!("{key}.{}", quoted(&name));
        if server.disabled {
            continue;
        }
        if matches!(server.kind.as_deref(), Some("sse")) {
            imported.warnings.push(format!(
                "{at}: skipped: the legacy `sse` transport is not supported (use streamable HTTP)"
            ));
            continue;
        }
        let legal = legal_name(&name);
        if let Some(first) = names.insert(legal.clone(), name.clone()) {
            issues.push(ConfigIssue {
                path: at.clone(),
                message: format!(
                    "served as `{legal}`, as is `{first}`: rename one of them in the file"
                ),
            });
            continue;
        }
        if legal != name {
            imported.warnings.push(format!(
                "{at}: served as `{legal}` (backend names use `A-Z a-z 0-9 _ -`)"
            ));
        }
        let mut expand = |field: &str, value: String| match expand(&value, var) {
            Ok(value) => value,
            Err(message) => {
                issues.push(ConfigIssue {
                    path: format!("{at}.{field}"),
                    message,
                });
                value
            }
        };
        let command = server.command.map(|c| expand("command", c));
        let args = (server.args.into_iter().enumerate())
            .map(|(i, a)| expand(&format!("args[{i}]"), a))
            .collect();
        let env = (server.env.into_iter())
            .map(|(k, v)| {
                let v = expand(&format!("env.{k}"), v);
                (k, v)
            })
            .collect();
        let cwd = server.cwd.map(|c| expand("cwd", c));
        let url = server.url.map(|u| expand("url", u));
        let headers = (server.headers.into_iter())
            .map(|(k, v)| {
                let v = expand(&format!("headers.{k}"), v);
                (k, v)
            })
            .collect();
        imported.backends.push(BackendSection {
            name: Some(legal),
            command,
            args,
            env,
            cwd,
            url,
            headers,
            ..BackendSection::default()
        });
    }
    if issues.is_empty() {
        Ok(imported)
    } else {
        Err(ConfigError { issues })
    }
}

/// `"my server"` -> `my_server`: what backend names allow, at most 64 characters.
fn legal_name(name: &str) -> String {
    let legal: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if legal.is_empty() {
        "server".to_owned()
    } else {
        legal
    }
}

/// The name as the file spells it, quoted when it is not a plain word.
fn quoted(name: &str) -> String {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

/// Expands `${VAR}`, `${VAR:-default}` and `${env:VAR}`; anything else in `${…}` is an error.
pub(super) fn expand(value: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start + 2..].find('}') else {
            return Err(format!("`{value}`: `${{` without its `}}`"));
        };
        let inner = &rest[start + 2..start + 2 + len];
        rest = &rest[start + 3 + len..];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let name = name.strip_prefix("env:").unwrap_or(name);
        if name.starts_with("input:") || name.contains(':') {
            return Err(format!(
                "`${{{inner}}}` cannot be expanded here (VS Code asks the user for inputs): write the value, or `${{VAR}}` from the environment"
            ));
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{inner}}}` is not a variable name"));
        }
        match (var(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(format!(
                    "the environment variable `{name}` is not set (write `${{{name}:-default}}` for a default)"
                ));
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("t0k".to_owned()),
            "HOME" => Some("/home/ann".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn reads_stdio_and_http_servers_and_skips_disabled() {
        let text = r#"{"mcpServers": {
            "fs": {"command": "npx", "args": ["-y", "server-filesystem", "/tmp"], "env": {"A": "1"}},
            "remote": {"type": "http", "url": "http://127.0.0.1:9000/mcp", "headers": {"X-Key": "k"}},
            "off": {"command": "x", "disabled": true}
        }}"#;
        let backends = parse(text, &no_env).unwrap().backends;
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
    fn a_legacy_sse_server_is_skipped_with_a_warning_not_the_file() {
        let imported = parse(
            r#"{"mcpServers": {"old": {"type": "sse", "url": "http://x"}, "fs": {"command": "x"}}}"#,
            &no_env,
        )
        .unwrap();
        assert_eq!(imported.backends.len(), 1);
        assert!(
            imported.warnings[0].contains("mcpServers.old") && imported.warnings[0].contains("sse")
        );
        assert!(parse("{", &no_env).is_err());
    }

    #[test]
    fn variables_are_expanded_as_the_clients_do() {
        let text = r#"{"mcpServers": {"gh": {"command": "${HOME}/bin/gh-mcp",
            "args": ["--token=${env:TOKEN}", "${LEVEL:-info}", "plain $HOME"],
            "env": {"GH_TOKEN": "${TOKEN}"},
            "url": null, "headers": {}}}}"#;
        let gh = &parse(text, &env).unwrap().backends[0];
        assert_eq!(gh.command.as_deref(), Some("/home/ann/bin/gh-mcp"));
        assert_eq!(gh.args, ["--token=t0k", "info", "plain $HOME"]);
        assert_eq!(gh.env["GH_TOKEN"], "t0k");

        let errors = parse(
            r#"{"mcpServers": {"a b": {"command": "${MISSING}", "args": ["${input:key}"]}}}"#,
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            errors.contains(r#"mcpServers."a b".command"#) && errors.contains("`MISSING`"),
            "{errors}"
        );
        assert!(
            errors.contains(r#"mcpServers."a b".args[0]"#) && errors.contains("VS Code"),
            "{errors}"
        );
    }

    #[test]
    fn vs_code_files_and_names_with_spaces_are_read() {
        let text = r#"{"inputs": [], "servers": {
            "my server": {"type": "stdio", "command": "x"},
            "remote.api": {"type": "http", "url": "http://127.0.0.1:1/mcp"}
        }}"#;
        let imported = parse(text, &no_env).unwrap();
        let names: Vec<_> = imported
            .backends
            .iter()
            .map(|b| b.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["my_server", "remote_api"]);
        assert!(
            imported
                .warnings
                .iter()
                .any(|w| w.contains(r#"servers."my server": served as `my_server`"#))
        );

        let clash = parse(
            r#"{"servers": {"a b": {"command": "x"}, "a_b": {"command": "y"}}}"#,
            &no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(clash.contains("rename one of them"), "{clash}");
    }
}
