//! `mcp-warden admin ...`: the admin API of a running proxy from a terminal, as readable
//! tables or (`--json`) the API's own answers. The token comes from `--token` or
//! `MCP_WARDEN_ADMIN_TOKEN`; the address from `--url`, or the `[admin] bind` of `--config`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use mcp_warden::audit::show::printable;
use serde_json::Value;

#[derive(Args)]
pub struct AdminArgs {
    /// The admin listener, e.g. `http://127.0.0.1:8809` (default: the `[admin] bind` of
    /// `--config`, else that address)
    #[arg(long)]
    url: Option<String>,
    /// Read the admin address from this configuration
    #[arg(long, conflicts_with = "url")]
    config: Option<PathBuf>,
    /// A bearer token the proxy's `[auth]` accepts, allowed the admin actions
    #[arg(long, env = "MCP_WARDEN_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the API's JSON answer instead of a table
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Backends: up, listed, tools, calls running, breakers, switched off
    Backends,
    /// Exposed tools and their state (on, switched off, quarantined)
    Tools,
    /// What the kill switch holds
    Switches,
    /// Switch a tool, a backend or a principal off (on the next call)
    Disable {
        what: What,
        /// The exposed tool name, backend name or principal id
        name: String,
        /// Why (kept with the switch and in the audit log)
        #[arg(long)]
        reason: Option<String>,
        /// Also cancel the calls it covers that are running now
        #[arg(long)]
        cancel: bool,
        /// A tool not listed now (its backend is down)
        #[arg(long)]
        force: bool,
    },
    /// Switch a tool, a backend or a principal back on
    Enable { what: What, name: String },
    /// Close a backend's circuit breakers
    ResetBreaker { backend: String },
    /// Client sessions of the HTTP endpoint
    Sessions,
    /// End a client session (its calls cancelled)
    EndSession { id: String },
    /// Read the configuration again and apply it (policies, saved catalog)
    Reload,
    /// The generation in force: policy and schema hashes, the last reload
    Generation,
    /// Calls waiting for a person's approval (`@approval`): list, approve or deny one
    Approvals {
        #[command(subcommand)]
        command: Option<ApprovalCommand>,
    },
    /// Drop cached results (of one tool, of one backend, or all)
    PurgeCache {
        #[arg(long)]
        tool: Option<String>,
        #[arg(long)]
        backend: Option<String>,
    },
}

#[derive(Subcommand)]
enum ApprovalCommand {
    /// The calls waiting, with their arguments (the default)
    List,
    /// Let the call go on (it must not be your own, and needs its role)
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Refuse the call
    Deny {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum What {
    Tool,
    Backend,
    Principal,
}

impl What {
    fn path(self) -> &'static str {
        match self {
            What::Tool => "tools",
            What::Backend => "backends",
            What::Principal => "principals",
        }
    }
}

pub async fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let base = match (&args.url, &args.config) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(path)) => {
            let config = mcp_warden::Config::from_path(path)?;
            format!("http://{}", config.admin.bind)
        }
        (None, None) => "http://127.0.0.1:8809".to_owned(),
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let segment = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let (method, path, query, body) = match &args.command {
        AdminCommand::Backends => ("GET", "/admin/backends".to_owned(), vec![], None),
        AdminCommand::Tools => ("GET", "/admin/tools".to_owned(), vec![], None),
        AdminCommand::Switches => ("GET", "/admin/switches".to_owned(), vec![], None),
        AdminCommand::Disable {
            what,
            name,
            reason,
            cancel,
            force,
        } => (
            "POST",
            format!("/admin/{}/{}/disable", what.path(), segment(name)),
            vec![("cancel", cancel.to_string()), ("force", force.to_string())],
            Some(serde_json::json!({ "reason": reason })),
        ),
        AdminCommand::Enable { what, name } => (
            "POST",
            format!("/admin/{}/{}/enable", what.path(), segment(name)),
            vec![],
            None,
        ),
        AdminCommand::ResetBreaker { backend } => (
            "POST",
            format!("/admin/backends/{}/breaker/reset", segment(backend)),
            vec![],
            None,
        ),
        AdminCommand::Sessions => ("GET", "/admin/sessions".to_owned(), vec![], None),
        AdminCommand::EndSession { id } => (
            "DELETE",
            format!("/admin/sessions/{}", segment(id)),
            vec![],
            None,
        ),
        AdminCommand::Reload => ("POST", "/admin/reload".to_owned(), vec![], None),
        AdminCommand::Approvals { command } => match command {
            None | Some(ApprovalCommand::List) => {
                ("GET", "/admin/approvals".to_owned(), vec![], None)
            }
            Some(
                ApprovalCommand::Approve { id, reason } | ApprovalCommand::Deny { id, reason },
            ) => {
                let answer = match command {
                    Some(ApprovalCommand::Approve { .. }) => "approve",
                    _ => "deny",
                };
                (
                    "POST",
                    format!("/admin/approvals/{}/{answer}", segment(id)),
                    vec![],
                    Some(serde_json::json!({ "reason": reason })),
                )
            }
        },
        AdminCommand::Generation => ("GET", "/admin/generation".to_owned(), vec![], None),
        AdminCommand::PurgeCache { tool, backend } => {
            let mut query = Vec::new();
            if let Some(tool) = tool {
                query.push(("tool", tool.clone()));
            }
            if let Some(backend) = backend {
                query.push(("backend", backend.clone()));
            }
            ("POST", "/admin/cache/purge".to_owned(), query, None)
        }
    };
    let url = url::Url::parse_with_params(&format!("{base}{path}"), &query)
        .with_context(|| format!("`{base}` is not a URL"))?;
    let mut request = match method {
        "GET" => client.get(url),
        "DELETE" => client.delete(url),
        _ => client.post(url),
    };
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body)?);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the admin API at {base}"))?;
    let status = response.status();
    let bytes = response.bytes().await?;
    let value: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("the admin API at {base} did not answer JSON ({status})"))?;
    if !status.is_success() {
        let why = value["error"].as_str().unwrap_or("no reason given");
        bail!("{status}: {}", printable(why));
    }
    if args.json {
        out!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    print(&args.command, &value);
    Ok(ExitCode::SUCCESS)
}

/// The answer as a table (or a line), every value made safe for a terminal.
fn print(command: &AdminCommand, value: &Value) {
    let text = |v: &Value| match v {
        Value::String(s) => printable(s),
        Value::Null => "-".to_owned(),
        other => printable(&other.to_string()),
    };
    match command {
        AdminCommand::Backends => {
            let rows = rows(&value["backends"], |b| {
                let breakers: Vec<String> = b["breakers"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                let key = if k.is_empty() { "all" } else { k };
                                format!("{}={}", printable(key), text(v))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                vec![
                    text(&b["name"]),
                    if b["up"] == true { "up" } else { "down" }.to_owned(),
                    text(&b["tools"]),
                    text(&b["in_flight"]),
                    if breakers.is_empty() {
                        "closed".to_owned()
                    } else {
                        breakers.join(",")
                    },
                    if b["switched_off"] == true {
                        "OFF"
                    } else {
                        "on"
                    }
                    .to_owned(),
                ]
            });
            table(
                &[
                    "BACKEND",
                    "STATE",
                    "TOOLS",
                    "IN FLIGHT",
                    "BREAKERS",
                    "SWITCH",
                ],
                rows,
            );
        }
        AdminCommand::Tools => {
            let rows = rows(&value["tools"], |t| {
                vec![
                    text(&t["name"]),
                    text(&t["backend"]),
                    text(&t["state"]),
                    text(&t["why"]),
                ]
            });
            table(&["TOOL", "BACKEND", "STATE", "WHY"], rows);
        }
        AdminCommand::Switches => {
            let mut rows = Vec::new();
            for kind in ["tools", "backends", "principals"] {
                if let Some(map) = value["switched_off"][kind].as_object() {
                    for (name, off) in map {
                        rows.push(vec![
                            kind.trim_end_matches('s').to_owned(),
                            printable(name),
                            text(&off["by"]),
                            text(&off["at"]),
                            text(&off["reason"]),
                        ]);
                    }
                }
            }
            if rows.is_empty() {
                out!("nothing is switched off");
            } else {
                table(&["WHAT", "NAME", "BY", "AT", "REASON"], rows);
            }
        }
        AdminCommand::Disable { what, name, .. } => {
            let cancelled = value["cancelled"].as_u64().unwrap_or(0);
            let already = if value["changed"] == false {
                " (it already was)"
            } else {
                ""
            };
            out!(
                "{} `{}` switched off{already}; {cancelled} running call(s) cancelled",
                what.path().trim_end_matches('s'),
                printable(name)
            );
        }
        AdminCommand::Enable { what, name } => {
            let already = if value["changed"] == false {
                " (it was not off)"
            } else {
                ""
            };
            out!(
                "{} `{}` switched back on{already}",
                what.path().trim_end_matches('s'),
                printable(name)
            );
        }
        AdminCommand::ResetBreaker { backend } => out!(
            "breakers of `{}` closed ({} were open)",
            printable(backend),
            text(&value["were_open"])
        ),
        AdminCommand::PurgeCache { .. } => out!("purged: {}", text(&value["purged"])),
        AdminCommand::Sessions => {
            let rows = rows(&value["sessions"], |s| {
                vec![text(&s["id"]), text(&s["principal"]), text(&s["calls"])]
            });
            table(&["SESSION", "PRINCIPAL", "CALLS"], rows);
        }
        AdminCommand::EndSession { id } => out!("session `{}` ended", printable(id)),
        AdminCommand::Approvals { command } => match command {
            None | Some(ApprovalCommand::List) => {
                let rows = rows(&value["approvals"], |a| {
                    vec![
                        text(&a["id"]),
                        text(&a["caller"]),
                        text(&a["tool"]),
                        text(&a["arguments"]),
                        a["roles"]
                            .as_array()
                            .map(|r| r.iter().map(text).collect::<Vec<_>>().join(","))
                            .unwrap_or_default(),
                        text(&a["status"]["state"]),
                        mcp_warden::audit::show::rfc3339(a["expires_us"].as_u64().unwrap_or(0)),
                    ]
                });
                if rows.is_empty() {
                    out!("no call is waiting for approval");
                } else {
                    table(
                        &[
                            "ID",
                            "CALLER",
                            "TOOL",
                            "ARGUMENTS",
                            "ROLES",
                            "STATE",
                            "EXPIRES",
                        ],
                        rows,
                    );
                }
            }
            Some(_) => out!(
                "`{}` {} by {}",
                text(&value["approval"]["id"]),
                text(&value["approval"]["status"]["state"]),
                text(&value["approval"]["status"]["by"])
            ),
        },
        AdminCommand::Reload => {
            out!(
                "reload {}: generation {} ({})",
                text(&value["outcome"]),
                text(&value["generation"]),
                text(&value["policy_hash"])
            );
            if let Some(sections) = value["restart_needed"].as_array() {
                for section in sections {
                    out!("needs a restart: {}", text(section));
                }
            }
        }
        AdminCommand::Generation => {
            out!(
                "generation {} loaded at {}",
                text(&value["number"]),
                text(&value["loaded_at"])
            );
            out!("policies {}", text(&value["policy_hash"]));
            out!("schema   {}", text(&value["schema_hash"]));
            if let Some(q) = value["quarantined"].as_array().filter(|q| !q.is_empty()) {
                let names: Vec<String> = q.iter().map(text).collect();
                out!("quarantined: {}", names.join(", "));
            }
            let last = &value["last_reload"];
            if !last.is_null() {
                out!(
                    "last reload: {} at {} by {}{}",
                    text(&last["outcome"]),
                    text(&last["at"]),
                    text(&last["trigger"]),
                    last["error"]
                        .as_str()
                        .map(|e| format!(": {}", printable(e)))
                        .unwrap_or_default()
                );
            }
        }
    }
}

fn rows(list: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list.as_array()
        .map(|items| items.iter().map(row).collect())
        .unwrap_or_default()
}

/// Columns as wide as their widest cell.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (cell, width) in cells.iter().zip(&widths) {
            let pad = width.saturating_sub(cell.chars().count());
            out.push_str(cell);
            out.push_str(&" ".repeat(pad + 2));
        }
        out.trim_end().to_owned()
    };
    out!("{}", line(header.iter().map(|h| h.to_string()).collect()));
    for row in rows {
        out!("{}", line(row));
    }
}
