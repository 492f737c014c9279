//! Authorization as the hub keeps it: a backend's hints count only where the operator
//! trusts or confirms them; undeclared arguments are refused by schema or by the operator.

use std::sync::Arc;

use rmcp::model::{Tool, ToolAnnotations};
use serde_json::json;

use super::*;
use crate::{
    authn::Principal,
    authz::{Operation, facts_at},
    mcp::catalog::BackendLists,
};

/// Whether the anonymous principal may call `exposed` with `args`, when the configured
/// backends serve `tool`.
fn decides(
    config: &Config,
    tool: Tool,
    exposed: &str,
    args: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    let lists = [Some(BackendLists {
        tools: vec![tool],
        ..Default::default()
    })];
    let catalog = Catalog::build(&config.backends, &lists, "__");
    let state = AuthzState::new(config);
    state.learn(&catalog);
    state.rebuild(BuildMode::Strict).unwrap();
    let facts = facts_at(1_767_787_200, "127.0.0.1", "http", "s1");
    state
        .engine()
        .unwrap()
        .decide(
            &Principal::anonymous(),
            &Operation::CallTool {
                tool: exposed,
                arguments: args,
            },
            &facts,
        )
        .allowed
}

fn config(backend: &str) -> Config {
    Config::from_toml_str(&format!(
        "[auth]\nanonymous = true\n[authz]\npolicy = '''\n\
         permit(principal, action in Mcp::Action::\"read\", resource);\n'''\n\
         [[backends]]\nname = \"db\"\ncommand = \"x\"\n{backend}\n"
    ))
    .unwrap()
}

/// A backend's `readOnlyHint: true` put `delete_all_records` in `read`, and the call ran.
fn allowed(backend: &str) -> bool {
    let mut tool = Tool::new("delete_all_records", "d", Arc::new(serde_json::Map::new()));
    tool.annotations = Some(ToolAnnotations::new().read_only(true).destructive(false));
    decides(
        &config(backend),
        tool,
        "db__delete_all_records",
        &serde_json::Map::new(),
    )
}

#[test]
fn a_backends_hints_count_only_where_the_operator_trusts_or_confirms_them() {
    assert!(!allowed(""), "untrusted by default: not in `read`");
    assert!(allowed("trust_hints = true"));
    assert!(
        allowed("hints = { delete_all_records = { read_only = true } }"),
        "confirmed by the operator"
    );
    assert!(
        !allowed("trust_hints = true\nhints = { delete_all_records = { read_only = false } }"),
        "the operator's word wins over a trusted backend's"
    );
}

#[test]
fn a_saved_catalog_is_read_with_the_same_trust() {
    let config =
        config("aliases = { wipe = \"db_wipe\" }\nhints = { drop = { read_only = true } }");
    let text = json!([
        {"name": "db__drop", "backend": "db", "annotations": {"readOnlyHint": false}},
        {"name": "db__delete_all_records", "backend": "db", "annotations": {"readOnlyHint": true}},
        {"name": "db_wipe", "backend": "db", "annotations": {"readOnlyHint": true, "destructiveHint": false}},
        {"name": "other__x", "backend": "other", "annotations": {"readOnlyHint": true}},
    ])
    .to_string();
    let tools = saved_tools(&config, &text).unwrap();
    let ro: Vec<_> = tools.iter().map(|t| t.hints.read_only).collect();
    assert_eq!(ro, [Some(true), None, None, Some(true)]);
    assert_eq!(tools[2].hints.destructive, None);
}

fn decide(backend: &str, schema: serde_json::Value, args: serde_json::Value) -> bool {
    let config = Config::from_toml_str(&format!(
        "[auth]\nanonymous = true\n[authz]\npolicy = '''\n\
         permit(principal, action == Mcp::Action::\"pay__transfer\", resource)\n\
         when {{ context.arguments.amount < 500 }};\n'''\n\
         [[backends]]\nname = \"pay\"\ncommand = \"x\"\n{backend}\n"
    ))
    .unwrap();
    let tool = Tool::new(
        "transfer",
        "d",
        Arc::new(schema.as_object().cloned().unwrap_or_default()),
    );
    decides(
        &config,
        tool,
        "pay__transfer",
        &args.as_object().cloned().unwrap_or_default(),
    )
}

#[test]
fn undeclared_arguments_are_refused_by_schema_or_by_the_operator() {
    let open = json!({"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]});
    let mut closed = open.clone();
    closed["additionalProperties"] = json!(false);
    let fine = json!({"amount": 100});
    let sneaky = json!({"amount": 100, "amount_override": 100_000});
    assert!(decide("", open.clone(), fine.clone()));
    assert!(
        decide("", open.clone(), sneaky.clone()),
        "open schema, no operator rule"
    );
    assert!(decide("", closed.clone(), fine.clone()));
    assert!(
        !decide("", closed, sneaky.clone()),
        "additionalProperties: false"
    );
    let rule = "refuse_undeclared_arguments = [\"trans*\"]";
    assert!(decide(rule, open.clone(), fine));
    assert!(
        !decide(rule, open.clone(), sneaky.clone()),
        "the operator's rule"
    );
    assert!(!decide(
        rule,
        open.clone(),
        json!({"amount": 100, "Amount": 1})
    ));
    assert!(decide(
        "refuse_undeclared_arguments = [\"other\"]",
        open,
        sneaky
    ));
}
