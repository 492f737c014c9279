//! `mcp-warden policy explain`: one request decided and explained — the decision, its
//! reason, the deciding policies with their places, evaluation errors, shadow outcomes and
//! (for a tool) whether the principal's list shows it. Any operation of the base schema:
//! a tool call, a list, a resource read, a prompt, the relay's requests, admin actions.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use mcp_warden::authn::Authenticator;
use mcp_warden::authz::{ACTIONS, Operation, OperationSpec, facts_at, parse_rfc3339};

use super::policy::{PolicySet, build, parse_principal};

#[derive(Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    set: PolicySet,
    /// The caller as JSON: {"id", "kind", "roles", "tenant", "attributes"}
    #[arg(long, conflicts_with = "token")]
    principal: Option<String>,
    /// A bearer token, verified with the configuration's `[auth]` (needs `--config`)
    #[arg(long)]
    token: Option<String>,
    /// The operation: call_tool (the default with `--tool`), list_tools, list_prompts,
    /// list_resources, set_log_level, read_resource, subscribe, get_prompt, complete,
    /// create_message, elicit, list_roots, admin_read, admin_switch, ...
    #[arg(long)]
    action: Option<String>,
    /// The exposed tool name (a `call_tool`)
    #[arg(long)]
    tool: Option<String>,
    /// The backend (resources, prompts, completions and the relay's requests)
    #[arg(long)]
    backend: Option<String>,
    /// The resource URI (`read_resource`, `subscribe`)
    #[arg(long)]
    uri: Option<String>,
    /// The prompt's name (`get_prompt`)
    #[arg(long)]
    prompt: Option<String>,
    /// The call's arguments as JSON
    #[arg(long, default_value = "{}")]
    arguments: String,
    /// The time of the request (RFC 3339); default now
    #[arg(long)]
    time: Option<String>,
    /// The client's address as policies see it (`context.request.client`)
    #[arg(long, default_value = "127.0.0.1")]
    client: String,
}

pub async fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let loaded = args.set.load().await?;
    let engine = match build(&loaded) {
        Ok(e) => e,
        Err(code) => return Ok(code),
    };
    let principal = match (&args.principal, &args.token) {
        (Some(json), None) => parse_principal(json)?,
        (None, Some(token)) => {
            let config = loaded
                .config
                .as_ref()
                .context("`--token` needs `--config` (its [auth] verifies the token)")?;
            let authn = Authenticator::new(&config.auth).await;
            authn
                .authenticate(Some(&format!("Bearer {token}")))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
        }
        _ => bail!("give `--principal JSON` or `--token JWT`"),
    };
    let arguments: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&args.arguments).context("`--arguments` must be a JSON object")?;
    let epoch = match &args.time {
        Some(t) => parse_rfc3339(t).map_err(|e| anyhow::anyhow!("`--time`: {e}"))?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64,
    };
    let action = match (&args.action, &args.tool) {
        (Some(a), _) => a.clone(),
        (None, Some(_)) => "call_tool".to_owned(),
        (None, None) => bail!(
            "give `--tool NAME` (a tool call) or `--action` (one of {})",
            ACTIONS.join(", ")
        ),
    };
    let spec = OperationSpec {
        action,
        tool: args.tool.clone(),
        backend: args.backend.clone(),
        uri: args.uri.clone(),
        prompt: args.prompt.clone(),
    };
    let op = spec.operation(&arguments).map_err(anyhow::Error::msg)?;
    let facts = facts_at(epoch, &args.client, "http", "explain");
    for problem in engine.unknown_names(&principal, &op, &facts.history) {
        out!("note: {problem}");
    }
    let decision = engine.decide(&principal, &op, &facts);
    out!(
        "decision: {}",
        if decision.allowed { "allow" } else { "deny" }
    );
    out!("reason: {}", decision.reason);
    let place = |id: &str| {
        engine
            .policy_location(id)
            .map(|(f, l)| format!(" ({f}:{l})"))
            .unwrap_or_default()
    };
    for id in &decision.determining {
        out!("determining policy: {id}{}", place(id));
    }
    if !decision.approval.is_empty() {
        out!(
            "approval: allowed once a person with the role {} approves this exact call",
            decision.approval.join(" or ")
        );
    }
    for error in &decision.errors {
        out!("evaluation error (denies): {error}");
    }
    for shadow in &decision.shadow {
        let change = if shadow.would_change {
            "would change the decision"
        } else {
            "would not change the decision"
        };
        out!(
            "shadow policy: {}{} would {}; {change}",
            shadow.policy,
            place(&shadow.policy),
            shadow.effect
        );
    }
    if let Operation::CallTool { tool, .. } = op
        && !engine.tool_visible(&principal, tool, &facts)
    {
        out!("visibility: hidden from this principal's tool list");
    }
    Ok(if decision.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
