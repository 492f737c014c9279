use serde_json::json;

use super::super::testkit::object;
use super::{ArgType, arguments_type};

fn map(schema: serde_json::Value) -> (super::RecordType, Vec<(String, String)>) {
    let mut untyped = Vec::new();
    let ty = arguments_type("t", &object(schema), &mut untyped);
    (ty, untyped)
}

#[test]
fn scalars_records_and_sets_are_typed() {
    let (ty, untyped) = map(json!({
        "type": "object",
        "properties": {
            "s": { "type": "string", "enum": ["a", "b"] },
            "i": { "type": "integer", "minimum": 0, "maximum": 10 },
            "b": { "type": ["boolean"] },
            "tags": { "type": "array", "items": { "type": "string" } },
            "ids": { "type": "array", "items": { "type": "integer" } },
            "order": { "type": "object", "properties": { "qty": { "type": "integer" } }, "required": ["qty"] },
            "price": { "type": "number", "multipleOf": 0.01 },
        },
        "required": ["s"],
    }));
    assert!(untyped.is_empty(), "{untyped:?}");
    assert_eq!(ty.fields["s"].ty, ArgType::String);
    assert!(ty.fields["s"].required);
    assert!(!ty.fields["i"].required);
    assert_eq!(ty.fields["b"].ty, ArgType::Bool);
    assert_eq!(
        ty.fields["tags"].ty,
        ArgType::Set(Box::new(ArgType::String))
    );
    assert_eq!(ty.fields["ids"].ty, ArgType::Set(Box::new(ArgType::Long)));
    assert_eq!(ty.fields["price"].ty, ArgType::Decimal);
    let ArgType::Record(order) = &ty.fields["order"].ty else {
        panic!("order is a record")
    };
    assert!(order.fields["qty"].required);
}

#[test]
fn what_has_no_faithful_type_is_left_out_and_reported() {
    let (ty, untyped) = map(json!({
        "type": "object",
        "properties": {
            "n": { "type": "null" },
            "u": { "type": ["string", "null"] },
            "one": { "oneOf": [{ "type": "string" }, { "type": "integer" }] },
            "any": { "anyOf": [{ "type": "string" }] },
            "free": { "type": "object" },
            "float": { "type": "number" },
            "fine": { "type": "number", "multipleOf": 0.00001 },
            "huge": { "type": "integer", "maximum": 18446744073709551615u64 },
            "objs": { "type": "array", "items": { "type": "object" } },
            "untyped_array": { "type": "array" },
            "ref": { "$ref": "#/defs/x" },
            "nested": { "type": "object", "properties": { "ok": { "type": "string" }, "bad": { "type": "null" } } },
        },
    }));
    let mut paths: Vec<&str> = untyped.iter().map(|(p, _)| p.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "t.any",
            "t.fine",
            "t.float",
            "t.free",
            "t.huge",
            "t.n",
            "t.nested.bad",
            "t.objs",
            "t.one",
            "t.ref",
            "t.u",
            "t.untyped_array"
        ]
    );
    assert_eq!(ty.fields.keys().collect::<Vec<_>>(), vec!["nested"]);
    assert!(
        untyped.iter().all(
            |(_, why)| !why.is_empty() && why.chars().next().is_some_and(|c| !c.is_uppercase())
        )
    );
}

#[test]
fn schema_without_properties_has_no_arguments() {
    let (ty, untyped) = map(json!({ "type": "object" }));
    assert!(ty.fields.is_empty());
    assert!(untyped.is_empty());
}
