use std::time::{Duration, Instant};

use serde_json::json;

use super::super::testkit::{engine, facts, object, principal, with_attr};
use super::super::{
    BuildMode, Engine, Operation, synthetic_attributes, synthetic_catalog, synthetic_policies,
    synthetic_tool,
};
use crate::authn::principal::AttrValue;

#[test]
fn slices_hold_only_policies_whose_scope_can_match() {
    let e = engine(
        r#"
        permit(principal, action, resource);
        permit(principal, action == Mcp::Action::"trading__quote", resource);
        permit(principal, action in Mcp::Action::"backend:trading", resource);
        permit(principal, action in Mcp::Action::"call_tool", resource == Mcp::Tool::"github__create_issue");
        permit(principal, action in Mcp::Action::"call_tool", resource in Mcp::Backend::"github");
        permit(principal, action, resource is Mcp::Gateway);
        permit(principal, action in [Mcp::Action::"read_resource", Mcp::Action::"trading__quote"], resource);
        @mode("shadow") forbid(principal, action in Mcp::Action::"read", resource);
        "#,
    );
    let len = |a: &str| e.slice_len(a).unwrap_or(usize::MAX);
    assert_eq!(len("trading__quote"), 5);
    assert_eq!(len("trading__execute_trade"), 2);
    assert_eq!(len("github__create_issue"), 3);
    assert_eq!(len("list_tools"), 2);
    assert_eq!(len("set_log_level"), 2);
    assert_eq!(len("read_resource"), 3);
    assert_eq!(len("complete"), 2);
    assert_eq!(e.slice_len("nope"), None);
}

/// Not a timed assertion: prints the cost of one decision with the synthetic policy sets.
#[test]
fn decide_time_with_many_policies() {
    for n in [10, 1_000, 10_000] {
        let started = Instant::now();
        let e = match Engine::build(
            &synthetic_policies(n),
            &synthetic_catalog(n),
            &synthetic_attributes(),
            BuildMode::Strict,
        ) {
            Ok(e) => e,
            Err(errors) => panic!(
                "synthetic policies must build: {:#?}",
                &errors[..errors.len().min(5)]
            ),
        };
        let built = started.elapsed();
        let tool = synthetic_tool(3);
        let desk = with_attr(
            principal("u", &["r1", "r3"]),
            "department",
            AttrValue::String("d1".into()),
        );
        let admin = with_attr(principal("root", &["admin"]), "level", AttrValue::Long(5));
        let args = object(json!({"amount": 120, "symbol": "S1", "tags": ["x"]}));
        let op = Operation::CallTool {
            tool: &tool,
            arguments: &args,
        };
        let f = facts();
        // Repeats for about 100 ms (at least 10 times): the mean of one decision.
        let time = |p, whole: bool| {
            let started = Instant::now();
            let mut rounds = 0u32;
            let mut allowed = false;
            while rounds < 10 || started.elapsed() < Duration::from_millis(100) {
                let d = if whole {
                    e.decide_unsliced(p, &op, &f)
                } else {
                    e.decide(p, &op, &f)
                };
                allowed = d.allowed;
                rounds += 1;
            }
            (started.elapsed() / rounds, allowed)
        };
        let (denied, a) = time(&desk, false);
        let (allowed, b) = time(&admin, false);
        let (whole, _) = time(&desk, true);
        let started = Instant::now();
        let mut rounds = 0u32;
        while rounds < 10 || started.elapsed() < Duration::from_millis(100) {
            std::hint::black_box(e.tool_visible(&desk, &tool, &f));
            rounds += 1;
        }
        let visible = started.elapsed() / rounds;
        println!(
            "{n} policies, {} tools, slice of {}: build {built:?}; decide {denied:?} (allowed: {a}), {allowed:?} (allowed: {b}); whole set {whole:?}; tool_visible {visible:?}",
            synthetic_catalog(n).len(),
            e.slice_len(&tool).unwrap_or(0),
        );
    }
}
