use serde_json::json;

use super::super::testkit::{attributes, build, call, catalog, engine, facts, principal, source, tool};
use super::super::{BuildMode, Engine, Operation, ToolInfo};

const LIMIT: &str = r#"
@id("trade-limit")
permit(principal in Mcp::Role::"trader", action == Mcp::Action::"trading__execute_trade", resource)
  when { context.arguments.amount < 500 };
"#;

#[test]
fn argument_condition_validates_when_scoped_to_the_tool() {
    assert!(build(LIMIT).is_ok());
}

#[test]
fn argument_condition_under_call_tool_needs_has() {
    let errors = build(
        "@id(\"broad\")\npermit(principal, action in Mcp::Action::\"call_tool\", resource)\n  when { context.arguments.amount < 500 };",
    )
    .err()
    .unwrap_or_default();
    assert!(!errors.is_empty());
    assert!(errors.iter().all(|e| e.file == "policies/test.cedar" && e.line == 3 && e.column == 10), "{errors:#?}");
    let text = errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("\n");
    assert!(text.contains("github__create_issue"), "the message names the tool: {text}");
    assert!(build(
        "permit(principal, action in Mcp::Action::\"call_tool\", resource)\n  when { context.arguments has amount && context.arguments.amount < 500 };"
    )
    .is_ok());
}

#[test]
fn warnings_count_as_errors() {
    // `action == <group>` never matches a request; Cedar only warns.
    let errors = build("permit(principal, action == Mcp::Action::\"call_tool\", resource);").err().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!((errors[0].line, errors[0].column), (1, 1));
}

#[test]
fn unknown_names_are_errors() {
    assert!(build("permit(principal, action == Mcp::Action::\"cal_tool\", resource);").is_err());
    assert!(build("permit(principal in Mcp::Rol::\"x\", action, resource);").is_err());
    assert!(build("permit(principal, action, resource) when { principal.department == \"x\" };").is_err());
}

/// The trading tool after its backend renamed `amount` to `quantity`.
fn changed_catalog() -> Vec<ToolInfo> {
    let mut tools = catalog();
    tools[0] = tool(
        "trading__execute_trade",
        "trading",
        json!({ "type": "object", "properties": { "quantity": { "type": "integer" } }, "required": ["quantity"] }),
        Some(false),
    );
    tools
}

fn build_with(text: &str, tools: &[ToolInfo], mode: BuildMode) -> Result<Engine, Vec<super::PolicyError>> {
    Engine::build(&[source("policies/test.cedar", text)], tools, &attributes(), mode)
}

#[test]
fn schema_change_fails_strict_and_quarantines_the_tool() {
    let text = format!("{LIMIT}\n@id(\"quotes\") permit(principal, action == Mcp::Action::\"trading__quote\", resource);");
    assert!(build_with(&text, &changed_catalog(), BuildMode::Strict).is_err());
    let e = match build_with(&text, &changed_catalog(), BuildMode::Quarantine) {
        Ok(e) => e,
        Err(errors) => panic!("quarantine should absorb the change: {errors:#?}"),
    };
    assert_eq!(e.quarantined().len(), 1);
    let (tool, why) = &e.quarantined()[0];
    assert_eq!(tool, "trading__execute_trade");
    assert!(why.starts_with("policy `trade-limit` (policies/test.cedar:2) no longer validates"), "{why}");
    assert_eq!(e.adjusted_policies()[0].0, "trade-limit");
    assert_eq!(e.policy_location("trade-limit"), None, "the policy is dropped");

    let trader = principal("alice", &["trader"]);
    let d = call(&e, &trader, "trading__execute_trade", json!({"quantity": 1}));
    assert!(!d.allowed);
    assert!(d.reason.starts_with("tool `trading__execute_trade` is quarantined: policy `trade-limit`"), "{}", d.reason);
    assert!(!e.tool_visible(&trader, "trading__execute_trade", &facts()));
    // Everything else keeps working.
    assert!(call(&e, &trader, "trading__quote", json!({"symbol": "A"})).allowed);
}

#[test]
fn quarantine_narrows_a_policy_that_names_other_actions_too() {
    let text = r#"
        @id("quotes") permit(principal, action in Mcp::Action::"call_tool", resource);
        @id("no-acme")
        forbid(principal, action in [Mcp::Action::"trading__execute_trade", Mcp::Action::"trading__quote"], resource)
          when { context.arguments.symbol == "ACME" };
    "#;
    let e = match build_with(text, &changed_catalog(), BuildMode::Quarantine) {
        Ok(e) => e,
        Err(errors) => panic!("{errors:#?}"),
    };
    assert_eq!(e.quarantined().iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), vec!["trading__execute_trade"]);
    let p = principal("p", &[]);
    // The forbid still holds for the tool that did not change.
    let d = call(&e, &p, "trading__quote", json!({"symbol": "ACME"}));
    assert_eq!(d.determining, vec!["no-acme"]);
    assert!(call(&e, &p, "trading__quote", json!({"symbol": "XYZ"})).allowed);
    assert_eq!(e.policy_location("no-acme"), Some(("policies/test.cedar".to_owned(), 3)));
}

#[test]
fn errors_not_caused_by_a_named_tool_still_fail_in_quarantine_mode() {
    let broad = "permit(principal, action in Mcp::Action::\"call_tool\", resource) when { context.arguments.amount < 5 };";
    assert!(build_with(broad, &catalog(), BuildMode::Quarantine).is_err());
    let typo = "permit(principal, action == Mcp::Action::\"trading__quote\", resource) when { principal.nope == 1 };";
    assert!(build_with(typo, &catalog(), BuildMode::Quarantine).is_err());
}

#[test]
fn colliding_tool_names_fail_strict_and_are_quarantined_otherwise() {
    let mut tools = catalog();
    tools.push(tool("list_tools", "evil", json!({}), None));
    tools.push(tool("trading__quote", "trading", json!({}), None));
    tools.push(tool("backend:trading", "evil", json!({}), None));
    let errors = build_with("permit(principal, action, resource);", &tools, BuildMode::Strict).err().unwrap_or_default();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_eq!(errors[0].to_string(), "tool `list_tools`: its name is that of the built-in action `list_tools`");
    let e = match build_with("permit(principal, action, resource);", &tools, BuildMode::Quarantine) {
        Ok(e) => e,
        Err(errors) => panic!("{errors:#?}"),
    };
    assert_eq!(e.quarantined().len(), 3);
    // The built-in action is untouched; a name two tools share is ambiguous: neither is callable.
    let p = principal("p", &[]);
    assert!(e.decide(&p, &Operation::ListTools, &facts()).allowed);
    let d = call(&e, &p, "trading__quote", json!({"symbol": "A"}));
    assert_eq!(d.reason, "tool `trading__quote` is quarantined: its name is listed more than once");
    assert!(!e.tool_visible(&p, "trading__quote", &facts()));
    assert!(call(&e, &p, "github__create_issue", json!({"title": "A"})).allowed);
}

#[test]
fn policies_naming_other_actions_in_conditions_validate() {
    // Checked first against a schema of its own tool only, where the other action is unknown.
    assert!(build(
        "permit(principal, action == Mcp::Action::\"trading__quote\", resource) when { action != Mcp::Action::\"github__create_issue\" };"
    )
    .is_ok());
    assert!(build(
        "permit(principal, action in Mcp::Action::\"backend:github\", resource) when { context.arguments.title == \"x\" };"
    )
    .is_ok());
}

#[test]
fn untyped_arguments_are_reported() {
    let e = engine(LIMIT);
    assert_eq!(e.untyped().len(), 1);
    assert_eq!(e.untyped()[0].0, "trading__execute_trade.price");
}

#[test]
fn schema_text_is_complete_and_hashes_are_stable() {
    let e = engine(LIMIT);
    let text = e.schema_text();
    assert!(text.contains("namespace Mcp"));
    assert!(text.contains("action \"trading__execute_trade\" in"), "{text}");
    assert!(text.contains("entity User in [Role, Tenant, Issuer]"), "{text}");
    let reparsed = cedar_policy::Schema::from_cedarschema_str(&text);
    assert!(reparsed.is_ok(), "the schema text parses back");
    let again = engine(LIMIT);
    assert_eq!(e.schema_hash(), again.schema_hash());
    assert_eq!(e.policy_set_hash(), again.policy_set_hash());
    assert_eq!(e.schema_hash().len(), 64);
    let other = engine(&LIMIT.replace("500", "501"));
    assert_ne!(e.policy_set_hash(), other.policy_set_hash());
    assert_eq!(e.schema_hash(), other.schema_hash());
    assert_eq!(e.policy_location("trade-limit"), Some(("policies/test.cedar".to_owned(), 2)));
}

#[test]
fn tool_names_needing_quotes_work() {
    let tools = vec![tool("odd \"name\"\\with\nstuff", "b", json!({"type": "object", "properties": {"a-b c": {"type": "string"}}}), Some(true))];
    let text = "permit(principal, action == Mcp::Action::\"odd \\\"name\\\"\\\\with\\nstuff\", resource) when { context.arguments has \"a-b c\" && context.arguments[\"a-b c\"] == \"x\" };";
    let e = match Engine::build(&[source("q.cedar", text)], &tools, &[], BuildMode::Strict) {
        Ok(e) => e,
        Err(errors) => panic!("{errors:#?}"),
    };
    let p = principal("p", &[]);
    assert!(call(&e, &p, "odd \"name\"\\with\nstuff", json!({"a-b c": "x"})).allowed);
    assert!(!call(&e, &p, "odd \"name\"\\with\nstuff", json!({"a-b c": "y"})).allowed);
    assert!(cedar_policy::Schema::from_cedarschema_str(&e.schema_text()).is_ok());
}
