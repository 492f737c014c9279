use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::testkit::{engine, object, principal, with_attr};
use super::super::{Engine, HistoryFacts, Operation};
use super::{Recalled, Recorded, RecordedArguments, Replayed};
use crate::authn::principal::{AttrValue, Principal};

const POLICIES: &str = r#"
@id("small-trades")
permit(principal in Mcp::Role::"trader", action == Mcp::Action::"trading__execute_trade", resource)
  when { context.arguments.amount < 500 };

@id("no-penny-stocks")
forbid(principal, action == Mcp::Action::"trading__execute_trade", resource)
  when { context.arguments.symbol like "PNY*" };

@id("quotes")
permit(principal, action == Mcp::Action::"trading__quote", resource);

@id("issues-for-engineering")
permit(principal, action == Mcp::Action::"github__create_issue", resource)
  when { principal has department && principal.department == "engineering" };
"#;

/// Arguments whose members are all present, the listed ones disclosed.
fn members(all: Value, disclosed: &[&str]) -> RecordedArguments {
    RecordedArguments::Members(
        object(all)
            .into_iter()
            .map(|(k, v)| {
                let r = if disclosed.contains(&k.as_str()) {
                    Recorded::Known(v)
                } else {
                    Recorded::Hidden
                };
                (k, r)
            })
            .collect(),
    )
}

static NO_ARGUMENTS: std::sync::LazyLock<serde_json::Map<String, Value>> =
    std::sync::LazyLock::new(serde_json::Map::new);
static NO_HISTORY: HistoryFacts = HistoryFacts {
    tools: Vec::new(),
    groups: Vec::new(),
    calls: 0,
    recent_calls: 0,
};

/// A call of `tool` in session `s1` from 127.0.0.1, history empty, claims unrecorded.
fn recalled<'a>(p: &'a Principal, tool: &'a str, args: &'a RecordedArguments) -> Recalled<'a> {
    Recalled {
        principal: p,
        op: Operation::CallTool {
            tool,
            arguments: &NO_ARGUMENTS,
        },
        arguments: Some(args),
        epoch_seconds: 1_767_787_200,
        session: Some("s1"),
        client: Some("127.0.0.1"),
        transport: None,
        history: Some(&NO_HISTORY),
        claims_known: false,
    }
}

fn replay(e: &Engine, p: &Principal, tool: &str, args: &RecordedArguments) -> Replayed {
    e.replay(&recalled(p, tool, args))
}

fn decided(r: Replayed) -> (bool, Vec<String>) {
    match r {
        Replayed::Decided(d) => (d.allowed, d.determining),
        other => panic!("expected a decision, got {other:?}"),
    }
}

#[test]
fn disclosed_arguments_decide_exactly() {
    let e = engine(POLICIES);
    let trader = principal("alice", &["trader"]);
    let args = members(
        json!({"amount": 100, "symbol": "ACME"}),
        &["amount", "symbol"],
    );
    assert_eq!(
        decided(replay(&e, &trader, "trading__execute_trade", &args)),
        (true, vec!["small-trades".to_owned()])
    );
    let big = members(
        json!({"amount": 900, "symbol": "ACME"}),
        &["amount", "symbol"],
    );
    let (allowed, determining) = decided(replay(&e, &trader, "trading__execute_trade", &big));
    assert!(!allowed && determining.is_empty());
    let penny = members(
        json!({"amount": 1, "symbol": "PNY1"}),
        &["amount", "symbol"],
    );
    assert_eq!(
        decided(replay(&e, &trader, "trading__execute_trade", &penny)),
        (false, vec!["no-penny-stocks".to_owned()])
    );
}

#[test]
fn an_undisclosed_argument_a_policy_reads_is_named_never_guessed() {
    let e = engine(POLICIES);
    let trader = principal("alice", &["trader"]);
    let args = members(json!({"amount": 100, "symbol": "ACME"}), &["amount"]);
    match replay(&e, &trader, "trading__execute_trade", &args) {
        Replayed::Undetermined { unknowns, policies } => {
            assert_eq!(unknowns, ["arguments.symbol"]);
            assert_eq!(policies, ["no-penny-stocks"]);
        }
        other => panic!("{other:?}"),
    }
    // A satisfied forbid decides whatever the rest was.
    let penny = members(json!({"amount": 100, "symbol": "PNY1"}), &["symbol"]);
    assert_eq!(
        decided(replay(&e, &trader, "trading__execute_trade", &penny)),
        (false, vec!["no-penny-stocks".to_owned()])
    );
    // Nobody but a trader can be permitted, so the hidden values do not matter.
    let stranger = principal("bob", &[]);
    let hidden = members(json!({"amount": 100, "symbol": "ACME"}), &[]);
    let (allowed, determining) = decided(replay(&e, &stranger, "trading__execute_trade", &hidden));
    assert!(!allowed && determining.is_empty());
}

#[test]
fn a_missing_required_argument_or_too_many_leaves() {
    let e = engine(POLICIES);
    let trader = principal("alice", &["trader"]);
    let missing = members(json!({"amount": 100}), &["amount"]);
    let Replayed::Decided(d) = replay(&e, &trader, "trading__execute_trade", &missing) else {
        panic!("a missing required argument is known to deny")
    };
    assert!(d.invalid_arguments && !d.allowed);
    match replay(
        &e,
        &trader,
        "trading__execute_trade",
        &RecordedArguments::Unknown,
    ) {
        Replayed::Undetermined { unknowns, .. } => assert_eq!(unknowns, ["arguments"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unrecorded_claims_are_unknowns_and_has_tests_cannot_be_replayed() {
    let e = engine(POLICIES);
    let engineer = with_attr(
        principal("carol", &[]),
        "department",
        AttrValue::String("engineering".to_owned()),
    );
    let args = members(json!({"title": "x"}), &["title"]);
    match replay(&e, &engineer, "github__create_issue", &args) {
        Replayed::Undetermined { unknowns, policies } => {
            assert!(unknowns[0].contains("claims"), "{unknowns:?}");
            assert_eq!(policies, ["issues-for-engineering"]);
        }
        other => panic!("{other:?}"),
    }
    // With the claims known (a table or a test, not a record), it decides.
    let r = e.replay(&Recalled {
        claims_known: true,
        ..recalled(&engineer, "github__create_issue", &args)
    });
    assert_eq!(
        decided(r),
        (true, vec!["issues-for-engineering".to_owned()])
    );
}

#[test]
fn unrecorded_request_facts_and_history_are_unknowns() {
    let e = engine(
        r#"
@id("http-only")
permit(principal, action == Mcp::Action::"trading__quote", resource)
  when { context.request.transport == "http" };
@id("fresh-sessions")
forbid(principal, action == Mcp::Action::"trading__quote", resource)
  when { context.history.calls > 10 };
"#,
    );
    let p = principal("alice", &[]);
    let args = members(json!({"symbol": "ACME"}), &["symbol"]);
    let r = e.replay(&Recalled {
        history: None,
        ..recalled(&p, "trading__quote", &args)
    });
    match r {
        Replayed::Undetermined { unknowns, policies } => {
            assert_eq!(unknowns, ["history", "request.transport"]);
            assert_eq!(policies.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    let busy = HistoryFacts {
        calls: 11,
        ..HistoryFacts::default()
    };
    let r = e.replay(&Recalled {
        transport: Some("http"),
        history: Some(&busy),
        ..recalled(&p, "trading__quote", &args)
    });
    assert_eq!(decided(r), (false, vec!["fresh-sessions".to_owned()]));
}

#[test]
fn nested_members_are_typed_along_the_schema() {
    let mut catalog = super::super::testkit::catalog();
    catalog.push(super::super::testkit::tool(
        "shop__order",
        "shop",
        json!({
            "type": "object",
            "properties": {
                "item": {
                    "type": "object",
                    "properties": { "sku": {"type": "string"}, "qty": {"type": "integer"} },
                    "required": ["sku", "qty"],
                },
            },
            "required": ["item"],
        }),
        None,
    ));
    let e = Engine::build(
        &[super::super::testkit::source(
            "p.cedar",
            r#"@id("few") permit(principal, action == Mcp::Action::"shop__order", resource)
                 when { context.arguments.item.qty < 10 };"#,
        )],
        &catalog,
        &[],
        super::super::BuildMode::Strict,
    )
    .expect("builds");
    let args = RecordedArguments::Members(BTreeMap::from([(
        "item".to_owned(),
        Recorded::Members(BTreeMap::from([
            ("sku".to_owned(), Recorded::Hidden),
            ("qty".to_owned(), Recorded::Known(json!(3))),
        ])),
    )]));
    assert_eq!(
        decided(replay(&e, &principal("a", &[]), "shop__order", &args)),
        (true, vec!["few".to_owned()])
    );
}

#[test]
fn list_operations_replay_without_arguments() {
    let e = engine(
        r#"@id("lists") permit(principal in Mcp::Role::"viewer", action == Mcp::Action::"list_tools", resource);"#,
    );
    let viewer = principal("v", &["viewer"]);
    let r = e.replay(&Recalled {
        op: Operation::ListTools,
        arguments: None,
        history: None,
        ..recalled(&viewer, "", &RecordedArguments::Unknown)
    });
    assert_eq!(decided(r), (true, vec!["lists".to_owned()]));
}
