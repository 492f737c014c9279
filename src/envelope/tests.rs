//! [`to_vec`] writes exactly what serde_json writes: for any JSON value, and for the
//! typed messages of the hot paths (results, errors, requests with `_meta`, large strings
//! with every character that needs escaping).

use proptest::prelude::*;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use serde_json::{Value, json};

use super::to_vec;

/// Every character up to U+07FF (each control character, quote and backslash among them),
/// the separators JavaScript treats as line ends, the last BMP character and an astral one.
fn every_escape() -> String {
    let mut s: String = (0u32..0x800).filter_map(char::from_u32).collect();
    s.push_str("\u{2028}\u{2029}\u{FFFF}😀");
    s
}

fn same<T: serde::Serialize>(message: &T) {
    let expected = serde_json::to_vec(message).unwrap();
    let got = to_vec(message).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&expected)
    );
}

#[test]
fn a_tool_result_is_written_as_serde_json_writes_it() {
    let large = format!("{}{}", every_escape(), "x".repeat(64 * 1024));
    let answer: ServerJsonRpcMessage = serde_json::from_value(json!({
        "jsonrpc": "2.0", "id": "w-7",
        "result": {
            "content": [
                {"type": "text", "text": large},
                {"type": "text", "text": every_escape(), "annotations": {"priority": 0.3, "audience": ["user"]}},
                {"type": "image", "data": "aGVsbG8=", "mimeType": "image/png"}
            ],
            "structuredContent": {"n": -1.5e-7, "big": 18446744073709551615u64, "min": i64::MIN, "f": 0.1, "nested": [null, true, {"k": "\u{0}"}]},
            "isError": false,
            "_meta": {"progressToken": 3}
        }
    }))
    .unwrap();
    same(&answer);
}

#[test]
fn errors_and_requests_are_written_as_serde_json_writes_them() {
    let error: ServerJsonRpcMessage = serde_json::from_value(json!({
        "jsonrpc": "2.0", "id": 12,
        "error": {"code": -32602, "message": every_escape(), "data": {"reason": "\"quoted\"\n"}}
    }))
    .unwrap();
    same(&error);
    let call: ClientJsonRpcMessage = serde_json::from_value(json!({
        "jsonrpc": "2.0", "id": "b-9", "method": "tools/call",
        "params": {
            "name": "demo__echo",
            "arguments": {"text": every_escape(), "amount": 1e300, "ratio": 0.30000000000000004, "list": [1, -2, 3.25]},
            "_meta": {"progressToken": "b-9"}
        }
    }))
    .unwrap();
    same(&call);
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[\\x00-\\x1f\"\\\\/a\u{7f}\u{80}\u{2028}]{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_value_is_written_as_serde_json_writes_it(v in value()) {
        prop_assert_eq!(to_vec(&v).unwrap(), serde_json::to_vec(&v).unwrap());
    }
}
