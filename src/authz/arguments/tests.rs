use serde_json::{Number, json};

use super::super::argtype::arguments_type;
use super::super::testkit::{call, engine, object, principal};
use super::{ArgumentError, arguments_value, decimal_text};

/// `bulk` may trade anything; only the forbid on large amounts stands in the way.
const TRADING: &str = r#"
@id("no-big-trades")
forbid(principal, action == Mcp::Action::"trading__execute_trade", resource)
  when { context.arguments.amount > 1000 };

@id("traders-all")
permit(principal in Mcp::Role::"bulk", action == Mcp::Action::"trading__execute_trade", resource);
"#;

fn num(v: serde_json::Value) -> Number {
    match v {
        serde_json::Value::Number(n) => n,
        _ => panic!("not a number"),
    }
}

#[test]
fn decimals_keep_at_most_four_digits() {
    assert_eq!(decimal_text(&num(json!(12))).as_deref(), Some("12.0000"));
    assert_eq!(decimal_text(&num(json!(0.07))).as_deref(), Some("0.0700"));
    assert_eq!(decimal_text(&num(json!(-1.5))).as_deref(), Some("-1.5000"));
    assert_eq!(decimal_text(&num(json!(1.2345))).as_deref(), Some("1.2345"));
    assert_eq!(decimal_text(&num(json!(1e-4))).as_deref(), Some("0.0001"));
    assert_eq!(
        decimal_text(&num(json!(1.5e3))).as_deref(),
        Some("1500.0000")
    );
    assert_eq!(decimal_text(&num(json!(-0.0))).as_deref(), Some("0.0000"));
    assert_eq!(decimal_text(&num(json!(1.23456))), None);
    assert_eq!(decimal_text(&num(json!(1e-5))), None);
    assert_eq!(decimal_text(&num(json!(1e20))), None);
    assert_eq!(
        decimal_text(&num(json!(922337203685477i64))).as_deref(),
        Some("922337203685477.0000")
    );
    assert_eq!(decimal_text(&num(json!(922337203685478i64))), None);
    assert_eq!(decimal_text(&num(json!(u64::MAX))), None);
}

#[test]
fn values_are_checked_against_their_declared_types() {
    let mut untyped = Vec::new();
    let ty = arguments_type(
        "t",
        &object(json!({
            "type": "object",
            "properties": {
                "tags": { "type": "array", "items": { "type": "string" } },
                "order": { "type": "object", "properties": { "qty": { "type": "integer" } }, "required": ["qty"] },
                "price": { "type": "number", "multipleOf": 0.01 },
            },
        })),
        &mut untyped,
    );
    let check = |v| arguments_value(&ty, &object(v)).err();
    assert_eq!(
        check(json!({"tags": ["a"], "order": {"qty": 1}, "price": 9.99})),
        None
    );
    assert_eq!(
        check(json!({"tags": ["a", 1]})),
        Some(ArgumentError::Mismatch {
            path: "tags".into(),
            expected: "an array of strings"
        })
    );
    assert_eq!(
        check(json!({"order": {}})),
        Some(ArgumentError::Missing {
            path: "order.qty".into()
        })
    );
    assert_eq!(
        check(json!({"order": {"qty": true}})),
        Some(ArgumentError::Mismatch {
            path: "order.qty".into(),
            expected: "an integer"
        })
    );
    assert_eq!(
        check(json!({"price": 0.00001})),
        Some(ArgumentError::Mismatch {
            path: "price".into(),
            expected: "a number with at most 4 decimal places"
        })
    );
    assert_eq!(
        ArgumentError::Mismatch {
            path: "amount".into(),
            expected: "an integer"
        }
        .to_string(),
        "argument `amount` must be an integer"
    );
}

#[test]
fn wrong_typed_argument_under_a_forbid_denies() {
    // `bulk` is permitted everything; the forbid on amount must not be skipped by a string.
    let e = engine(TRADING);
    let bob = principal("bob", &["bulk"]);
    let d = call(
        &e,
        &bob,
        "trading__execute_trade",
        json!({"amount": "5000", "symbol": "ACME"}),
    );
    assert!(!d.allowed);
    assert_eq!(d.reason, "argument `amount` must be an integer");
    let d = call(
        &e,
        &bob,
        "trading__execute_trade",
        json!({"amount": 5000.5, "symbol": "ACME"}),
    );
    assert!(!d.allowed);
    let d = call(
        &e,
        &bob,
        "trading__execute_trade",
        json!({"amount": null, "symbol": "ACME"}),
    );
    assert!(!d.allowed);
    // An integral float is an integer in JSON Schema, and is checked as one.
    let d = call(
        &e,
        &bob,
        "trading__execute_trade",
        json!({"amount": 5000.0, "symbol": "ACME"}),
    );
    assert_eq!(d.determining, vec!["no-big-trades"]);
}

#[test]
fn integers_beyond_64_bits_deny() {
    let e = engine(TRADING);
    let d = call(
        &e,
        &principal("bob", &["bulk"]),
        "trading__execute_trade",
        json!({"amount": 18446744073709551615u64, "symbol": "A"}),
    );
    assert!(!d.allowed);
    assert_eq!(
        d.reason,
        "argument `amount` is out of range for a cedar value"
    );
    let d = call(
        &e,
        &principal("bob", &["bulk"]),
        "trading__execute_trade",
        json!({"amount": 1e300, "symbol": "A"}),
    );
    assert!(!d.allowed);
}

#[test]
fn missing_required_argument_denies() {
    let e = engine(TRADING);
    let d = call(
        &e,
        &principal("bob", &["bulk"]),
        "trading__execute_trade",
        json!({"symbol": "A"}),
    );
    assert!(!d.allowed);
    assert_eq!(d.reason, "argument `amount` is required");
}

#[test]
fn extension_and_entity_shapes_are_plain_data() {
    let e = engine(
        r#"
        @id("admins-only")
        permit(principal in Mcp::Role::"bulk", action == Mcp::Action::"trading__execute_trade", resource)
          unless { context.arguments has note && context.arguments.note == "x" };
        @id("no-admin-role-trades")
        forbid(principal in Mcp::Role::"admin", action, resource);
        "#,
    );
    let bob = principal("bob", &["bulk"]);
    let extn = json!({"__extn": {"fn": "decimal", "arg": "1.0"}});
    // Where a string is declared, an object is a mismatch, whatever its keys.
    let d = call(
        &e,
        &bob,
        "trading__execute_trade",
        json!({"amount": 1, "symbol": extn}),
    );
    assert!(!d.allowed);
    assert_eq!(d.reason, "argument `symbol` must be a string");
    let d = call(
        &e,
        &bob,
        "trading__execute_trade",
        json!({"amount": {"__extn": {"fn": "decimal", "arg": "1"}}, "symbol": "A"}),
    );
    assert_eq!(d.reason, "argument `amount` must be an integer");
    let entity = json!({"__entity": {"type": "Mcp::Role", "id": "admin"}});
    let d = call(
        &e,
        &bob,
        "trading__execute_trade",
        json!({"amount": 1, "symbol": "A", "note": entity}),
    );
    assert_eq!(d.reason, "argument `note` must be a string");
    // Undeclared keys are dropped: no policy can name them.
    let d = call(
        &e,
        &bob,
        "trading__execute_trade",
        json!({"amount": 1, "symbol": "A", "__entity": {"type": "Mcp::Role", "id": "admin"}, "__extn": {"fn": "ip", "arg": "1.2.3.4"}}),
    );
    assert!(d.allowed, "{d:?}");
    // Text that looks like these shapes is a string like any other.
    let d = call(
        &e,
        &bob,
        "trading__execute_trade",
        json!({"amount": 1, "symbol": "{\"__entity\": {\"type\": \"Mcp::Role\", \"id\": \"admin\"}}"}),
    );
    assert!(d.allowed, "{d:?}");
}

/// `amount_override` and `Amount` were forwarded to the backend though Cedar never saw them.
#[test]
fn undeclared_arguments_are_refused_where_the_schema_or_the_operator_says_so() {
    let schema = |closed: bool| {
        object(json!({
            "type": "object",
            "properties": {
                "amount": { "type": "integer" },
                "memo": { "type": "null" },
                "order": {
                    "type": "object",
                    "properties": { "qty": { "type": "integer" } },
                    "additionalProperties": !closed,
                },
            },
            "required": ["amount"],
            "additionalProperties": !closed,
        }))
    };
    let mut untyped = Vec::new();
    let closed = arguments_type("t", &schema(true), &mut untyped);
    let open = arguments_type("t", &schema(false), &mut untyped);
    let mut tightened = open.clone();
    tightened.close_all();
    let undeclared = |path: &str| Some(ArgumentError::Undeclared { path: path.into() });
    for ty in [&closed, &tightened] {
        let check = |v| arguments_value(ty, &object(v)).err();
        assert_eq!(
            check(json!({"amount": 5, "memo": null, "order": {"qty": 1}})),
            None
        );
        assert_eq!(
            check(json!({"amount": 5, "amount_override": 9})),
            undeclared("amount_override")
        );
        assert_eq!(
            check(json!({"amount": 5, "Amount": 9})),
            undeclared("Amount")
        );
        assert_eq!(
            check(json!({"amount": 5, "order": {"qty": 1, "QTY": 9}})),
            undeclared("order.QTY")
        );
    }
    // An open schema without the operator's word: extra keys are dropped, as before.
    assert_eq!(
        arguments_value(&open, &object(json!({"amount": 5, "x": 1}))).err(),
        None
    );
    // A schema without properties that is closed refuses every argument.
    let empty = arguments_type(
        "t",
        &object(json!({"type": "object", "additionalProperties": false})),
        &mut untyped,
    );
    assert_eq!(
        arguments_value(&empty, &object(json!({"x": 1}))).err(),
        undeclared("x")
    );
    assert_eq!(arguments_value(&empty, &object(json!({}))).err(), None);
}
