//! Tool arguments from an attacker, turned into a Cedar context and decided: any JSON must
//! give a decision (allow, or deny with a reason), never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_warden::{
    authn::Principal,
    authz::{BuildMode, Engine, Operation, PolicySource, ToolInfo, facts_at},
};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let schema = serde_json::json!({"type": "object", "properties": {
            "amount": {"type": "integer"}, "symbol": {"type": "string"}, "urgent": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "order": {"type": "object", "properties": {"qty": {"type": "integer"}, "note": {"type": "string"}}}
        }, "required": ["amount"]});
        let tool = ToolInfo {
            exposed: "t__trade".to_owned(),
            backend: "t".to_owned(),
            input_schema: schema.as_object().cloned().unwrap(),
            hints: Default::default(),
            refuse_undeclared: false,
        };
        let policy = "permit(principal, action == Mcp::Action::\"t__trade\", resource) when { context.arguments.amount < 500 };\n\
                      forbid(principal, action == Mcp::Action::\"t__trade\", resource) when { context.arguments has symbol && context.arguments.symbol == \"X\" };";
        Engine::build(&[PolicySource { file: "fuzz.cedar".into(), text: policy.into() }], &[tool], &[], BuildMode::Strict)
            .expect("fuzz policies")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(arguments)) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let facts = facts_at(1_795_000_000, "", "http", "fuzz");
    let decision = engine().decide(&Principal::anonymous(), &Operation::CallTool { tool: "t__trade", arguments: &arguments }, &facts);
    assert!(decision.allowed || !decision.reason.is_empty());
});
