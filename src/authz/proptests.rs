//! Property tests: slicing never changes a decision, and visibility never hides a tool that
//! some arguments would allow. Policies are random mixes of permit/forbid over random scopes
//! and conditions (including ones that fail at evaluation); only those that validate are kept.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::testkit::{attributes, catalog, facts, object, principal, source, with_attr};
use super::time::facts_at;
use super::{BuildMode, Engine, Operation};
use crate::authn::principal::{AttrValue, Principal, PrincipalKind};

const TOOLS: [&str; 3] = [
    "trading__execute_trade",
    "trading__quote",
    "github__create_issue",
];

fn principal_scope() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just("principal".to_owned()),
        1 => (0..3u8).prop_map(|r| format!("principal in Mcp::Role::\"r{r}\"")),
        1 => (0..3u8).prop_map(|u| format!("principal == Mcp::User::\"u{u}\"")),
        1 => Just("principal is Mcp::Agent".to_owned()),
        1 => (0..3u8).prop_map(|r| format!("principal is Mcp::User in Mcp::Role::\"r{r}\"")),
        1 => Just("principal in Mcp::Tenant::\"acme\"".to_owned()),
    ]
}

fn action_scope() -> impl Strategy<Value = String> {
    let tool = (0..3usize).prop_map(|t| format!("Mcp::Action::\"{}\"", TOOLS[t]));
    prop_oneof![
        Just("action".to_owned()),
        tool.clone().prop_map(|t| format!("action == {t}")),
        prop::sample::select(vec![
            "call_tool",
            "read",
            "write",
            "backend:trading",
            "backend:github"
        ])
        .prop_map(|g| format!("action in Mcp::Action::\"{g}\"")),
        (tool.clone(), tool).prop_map(|(a, b)| format!("action in [{a}, {b}]")),
        prop::sample::select(vec![
            "list_tools",
            "read_resource",
            "get_prompt",
            "complete",
            "set_log_level"
        ])
        .prop_map(|a| format!("action == Mcp::Action::\"{a}\"")),
    ]
}

fn resource_scope() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("resource".to_owned()),
        1 => (0..3usize).prop_map(|t| format!("resource == Mcp::Tool::\"{}\"", TOOLS[t])),
        1 => prop::sample::select(vec!["trading", "github"]).prop_map(|b| format!("resource in Mcp::Backend::\"{b}\"")),
        1 => Just("resource is Mcp::Tool".to_owned()),
        1 => Just("resource is Mcp::Resource in Mcp::Backend::\"trading\"".to_owned()),
        1 => Just("resource is Mcp::Gateway".to_owned()),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just(String::new()),
        1 => (0..5i64).prop_map(|n| format!(" when {{ principal has level && principal.level > {n} }}")),
        1 => (0..24i64).prop_map(|h| format!(" when {{ context.request.hour < {h} }}")),
        2 => (0..1000i64).prop_map(|n| format!(
            " when {{ context has arguments && context.arguments has amount && context.arguments.amount < {n} }}"
        )),
        1 => prop::sample::select(vec!["A", "B"]).prop_map(|s| format!(
            " when {{ context has arguments && context.arguments has symbol && context.arguments.symbol == \"{s}\" }}"
        )),
        1 => Just(" when { context has arguments && context.arguments has amount && context.arguments.amount * 10000000000000000 > 0 }".to_owned()),
        1 => Just(" unless { resource is Mcp::Tool && resource.read_only }".to_owned()),
    ]
}

fn policy() -> impl Strategy<Value = String> {
    let permit = prop::bool::weighted(0.65);
    let shadow = prop::bool::weighted(0.25);
    (
        permit,
        shadow,
        principal_scope(),
        action_scope(),
        resource_scope(),
        condition(),
    )
        .prop_map(|(permit, shadow, p, a, r, c)| {
            let mode = if shadow { "@mode(\"shadow\") " } else { "" };
            let effect = if permit { "permit" } else { "forbid" };
            format!("{mode}{effect}({p}, {a}, {r}){c};")
        })
}

/// The engine of the policies that validate on their own (ids `p<index>`).
fn engine_of(policies: &[String]) -> Engine {
    let valid: Vec<String> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| format!("@id(\"p{i}\") {p}"))
        .filter(|p| {
            Engine::build(
                &[source("g.cedar", p)],
                &catalog(),
                &attributes(),
                BuildMode::Strict,
            )
            .is_ok()
        })
        .collect();
    match Engine::build(
        &[source("g.cedar", &valid.join("\n"))],
        &catalog(),
        &attributes(),
        BuildMode::Strict,
    ) {
        Ok(e) => e,
        Err(errors) => panic!("valid policies together must build: {errors:#?}"),
    }
}

fn any_principal() -> impl Strategy<Value = Principal> {
    let kind = prop::sample::select(vec![PrincipalKind::User, PrincipalKind::Agent]);
    let tenant = prop::option::of(Just("acme".to_owned()));
    (
        0..4u8,
        kind,
        tenant,
        prop::collection::vec(0..3u8, 0..3),
        prop::option::of(0..6i64),
    )
        .prop_map(|(u, kind, tenant, roles, level)| {
            let roles: Vec<String> = roles.iter().map(|r| format!("r{r}")).collect();
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            let mut p = principal(&format!("u{u}"), &roles);
            p.kind = kind;
            p.tenant = tenant;
            match level {
                Some(l) => with_attr(p, "level", AttrValue::Long(l)),
                None => p,
            }
        })
}

fn arguments() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(json!(1)),
            (-2000..2000i64).prop_map(|n| json!(n)),
            Just(json!("7")),
            Just(json!(i64::MAX))
        ],
        prop::sample::select(vec!["A", "B", "C"]),
        prop::option::of(Just("t")),
    )
        .prop_map(|(amount, symbol, title)| {
            let mut v = json!({ "amount": amount, "symbol": symbol });
            if let Some(t) = title {
                v["title"] = json!(t);
            }
            v
        })
}

fn decide_both(e: &Engine, p: &Principal, op: &Operation<'_>, hour: i64) {
    let f = facts_at(1_767_744_000 + hour * 3_600, "127.0.0.1", "http", "s");
    let sliced = e.decide(p, op, &f);
    let whole = e.decide_unsliced(p, op, &f);
    assert_eq!(sliced, whole, "{op:?}");
    // Again: a tool whose policies read no context is now answered from the memo.
    assert_eq!(e.decide(p, op, &f), whole, "{op:?}, decided again");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn sliced_decisions_equal_whole_set_decisions(
        policies in prop::collection::vec(policy(), 1..10),
        requests in prop::collection::vec((any_principal(), 0..3usize, arguments(), 0..24i64), 1..8),
    ) {
        let e = engine_of(&policies);
        for (p, t, args, hour) in &requests {
            let args = object(args.clone());
            decide_both(&e, p, &Operation::CallTool { tool: TOOLS[*t], arguments: &args }, *hour);
            decide_both(&e, p, &Operation::ListTools, *hour);
            decide_both(&e, p, &Operation::ReadResource { backend: "trading", uri: "file:///x" }, *hour);
            decide_both(&e, p, &Operation::GetPrompt { backend: "github", prompt: "p" }, *hour);
            decide_both(&e, p, &Operation::Complete { backend: "trading" }, *hour);
            decide_both(&e, p, &Operation::SetLogLevel, *hour);
        }
    }

    #[test]
    fn visibility_never_hides_an_allowed_tool(
        policies in prop::collection::vec(policy(), 1..10),
        principals in prop::collection::vec(any_principal(), 1..4),
        samples in prop::collection::vec(arguments(), 1..10),
    ) {
        let e = engine_of(&policies);
        let f = facts();
        for p in &principals {
            for tool in TOOLS {
                let allowed_somehow = samples.iter().any(|args| {
                    let args = object(args.clone());
                    e.decide(p, &Operation::CallTool { tool, arguments: &args }, &f).allowed
                });
                if allowed_somehow {
                    prop_assert!(e.tool_visible(p, tool, &f), "{tool} allowed for {p:?} but hidden");
                }
            }
        }
    }
}
