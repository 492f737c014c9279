//! Generated catalogs and policy sets of any size, shaped like a real deployment (a few broad
//! rules, some per backend, most per tool, with argument and claim conditions), for
//! benchmarks and tests that measure how decisions scale with the number of policies.

use serde_json::json;

use super::types::{AttrType, AttributeDecl, Hints, PolicySource, ToolInfo};

const BACKENDS: usize = 20;
const BROAD: usize = 5;

/// How many tools `synthetic_catalog` makes for `n` policies: between 10 and 1,000.
#[doc(hidden)]
pub fn synthetic_tool_count(n: usize) -> usize {
    (n / 10).clamp(10, 1_000)
}

/// The claim attributes the synthetic policies use.
#[doc(hidden)]
pub fn synthetic_attributes() -> Vec<AttributeDecl> {
    vec![
        AttributeDecl {
            name: "department".to_owned(),
            ty: AttrType::String,
        },
        AttributeDecl {
            name: "level".to_owned(),
            ty: AttrType::Long,
        },
    ]
}

/// The catalog the synthetic policies for `n` policies refer to.
#[doc(hidden)]
pub fn synthetic_catalog(n: usize) -> Vec<ToolInfo> {
    (0..synthetic_tool_count(n))
        .map(|i| {
            let schema = json!({
                "type": "object",
                "properties": {
                    "amount": { "type": "integer" },
                    "symbol": { "type": "string" },
                    "tags": { "type": "array", "items": { "type": "string" } },
                    "dry_run": { "type": "boolean" },
                },
                "required": ["amount"],
            });
            ToolInfo {
                exposed: synthetic_tool(i),
                backend: format!("b{}", i % BACKENDS),
                input_schema: schema.as_object().cloned().unwrap_or_default(),
                hints: Hints {
                    read_only: Some(i % 3 == 0),
                    ..Hints::default()
                },
                refuse_undeclared: false,
                definition: None,
                groups: Vec::new(),
                tenants: Vec::new(),
                held: None,
            }
        })
        .collect()
}

/// The exposed name of synthetic tool `i`.
#[doc(hidden)]
pub fn synthetic_tool(i: usize) -> String {
    format!("b{}__tool{i}", i % BACKENDS)
}

/// `n` policies over `synthetic_catalog(n)`, in files of 100.
#[doc(hidden)]
pub fn synthetic_policies(n: usize) -> Vec<PolicySource> {
    let tools = synthetic_tool_count(n);
    let mut files = Vec::new();
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&policy(i, tools));
        text.push_str("\n\n");
        if (i + 1) % 100 == 0 || i + 1 == n {
            files.push(PolicySource {
                file: format!("synthetic/p{}.cedar", files.len()),
                text: std::mem::take(&mut text),
            });
        }
    }
    files
}

fn policy(i: usize, tools: usize) -> String {
    let tool = synthetic_tool(i % tools);
    let role = format!("r{}", i % 7);
    let limit = 100 + (i * 37) % 900;
    if i < BROAD {
        return match i {
            0 => "@id(\"broad-readers\")\npermit(principal, action in Mcp::Action::\"read\", resource);".to_owned(),
            1 => "@id(\"broad-blocked\")\nforbid(principal, action in Mcp::Action::\"call_tool\", resource)\n  when { principal has department && principal.department == \"blocked\" };".to_owned(),
            2 => "@id(\"broad-night\")\nforbid(principal in Mcp::Role::\"r6\", action in Mcp::Action::\"write\", resource)\n  when { context.request.hour < 6 };".to_owned(),
            3 => "@id(\"broad-admin\")\npermit(principal in Mcp::Role::\"admin\", action, resource);".to_owned(),
            _ => "@id(\"broad-destructive\")\nforbid(principal, action in Mcp::Action::\"call_tool\", resource)\n  when { resource.destructive && !(principal has level && principal.level >= 3) };".to_owned(),
        };
    }
    if i % 50 == 1 {
        let backend = format!("b{}", (i % tools) % BACKENDS);
        return format!(
            "permit(principal in Mcp::Role::\"{role}\", action in Mcp::Action::\"backend:{backend}\", resource)\n  when {{ context.request.weekday != 0 }};"
        );
    }
    // Each tool gets every kind of rule: the kind varies with the round over the tools.
    match (i / tools) % 4 {
        0 => format!(
            "@id(\"limit-{i}\")\npermit(principal in Mcp::Role::\"{role}\", action == Mcp::Action::\"{tool}\", resource)\n  when {{ context.arguments.amount < {limit} }};"
        ),
        1 => format!(
            "forbid(principal, action == Mcp::Action::\"{tool}\", resource)\n  when {{ context.arguments.amount > {} }};",
            limit * 10
        ),
        2 => format!(
            "permit(principal, action == Mcp::Action::\"{tool}\", resource)\n  when {{ principal has department && principal.department == \"d{}\" }};",
            i % 5
        ),
        _ => format!(
            "forbid(principal in Mcp::Role::\"{role}\", action == Mcp::Action::\"{tool}\", resource)\n  when {{ context.arguments has symbol && context.arguments.symbol == \"S{}\" }};",
            i % 3
        ),
    }
}
