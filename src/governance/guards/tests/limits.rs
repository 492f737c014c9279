//! Argument size and depth limits at their exact boundaries, nesting far deeper than any
//! recursion would survive, and which finding comes first when content and depth both fail.

use serde_json::{Map, Value, json};

use super::super::*;
use super::*;

fn json_len(m: &Map<String, Value>) -> usize {
    serde_json::to_vec(m).unwrap().len()
}

#[test]
fn argument_size_limit_exact_boundary() {
    let call = args(json!({
        "q": "héllo \"quoted\" back\\slash\nnew line\t\u{1}\u{7f}",
        "n": [1, -2, 2.5, 1e300, u64::MAX, i64::MIN],
        "t": true, "f": false, "z": null,
        "nested": { "empty": {}, "list": [] }
    }));
    let len = json_len(&call);
    let limited = |limit: usize| {
        Guards::build(
            &GuardConfig {
                max_argument_bytes: Some(limit),
                ..GuardConfig::default()
            },
            &BTreeMap::new(),
        )
        .unwrap()
    };
    assert!(limited(len).check_arguments("t", &call).is_ok());
    let blocked = limited(len - 1).check_arguments("t", &call).unwrap_err();
    assert_eq!(blocked.rule, MAX_ARGUMENT_BYTES);
    assert_eq!(blocked.path, "");
    assert!(blocked.reason.contains(&(len - 1).to_string()));
    // The empty object is 2 bytes.
    assert!(limited(2).check_arguments("t", &Map::new()).is_ok());
}

#[test]
fn computed_length_equals_serde_json_output() {
    let values = [
        json!({}),
        json!([]),
        json!("plain"),
        json!(null),
        json!(-0.0),
        json!(123_456_789_012_345_678u64),
        json!(1.5e-7),
        json!({ "a": [1, 2, { "b": "c\u{0}\u{1f}\u{8}\u{c}\"\\/" }], "é": "😀" }),
        json!([[[[]]], {}, "", 0]),
    ];
    for v in values {
        let expected = serde_json::to_vec(&v).unwrap().len();
        assert!(!exceeds(Root::of(&v), expected), "{v}");
        assert!(exceeds(Root::of(&v), expected - 1), "{v}");
    }
}

#[test]
fn argument_depth_limit_exact_boundary() {
    // Depth: the arguments object 1, "a" 2, "b" 3, the object in "b" 4.
    let call = args(json!({ "a": { "b": [1, { "c": 2 }] }, "s": "x" }));
    let limited = |limit: usize| {
        Guards::build(
            &GuardConfig {
                max_argument_depth: Some(limit),
                ..GuardConfig::default()
            },
            &BTreeMap::new(),
        )
        .unwrap()
    };
    assert!(limited(4).check_arguments("t", &call).is_ok());
    let blocked = limited(3).check_arguments("t", &call).unwrap_err();
    assert_eq!(blocked.rule, MAX_ARGUMENT_DEPTH);
    assert_eq!(blocked.path, "/a/b/1");
    assert_eq!(
        limited(1).check_arguments("t", &call).unwrap_err().path,
        "/a"
    );
    assert!(
        limited(1)
            .check_arguments("t", &args(json!({ "flat": 1 })))
            .is_ok()
    );
}

/// `depth` arrays, one inside the other, around a string.
fn nested(depth: usize) -> Value {
    let mut v = json!("leaf");
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

/// serde_json drops (and clones) nested values recursively: take them apart in a loop.
fn unnest(mut v: Value) {
    while let Value::Array(mut items) = v {
        v = items.pop().unwrap_or(Value::Null);
    }
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let mut call = Map::new();
    call.insert("v".to_owned(), nested(20_000));
    assert!(defaults().check_arguments("t", &call).is_ok());
    let limited = Guards::build(
        &GuardConfig {
            max_argument_depth: Some(64),
            max_argument_bytes: Some(1 << 20),
            max_result_bytes: Some(1 << 20),
            redact_builtin: vec!["email".into()],
            ..GuardConfig::default()
        },
        &BTreeMap::new(),
    )
    .unwrap();
    let blocked = limited.check_arguments("t", &call).unwrap_err();
    assert_eq!(blocked.rule, MAX_ARGUMENT_DEPTH);
    assert_eq!(blocked.path, format!("/v{}", "/0".repeat(63)));
    let mut result = nested(20_000);
    assert!(limited.check_result("t", &mut result).is_ok());
    unnest(result);
    unnest(call.remove("v").unwrap());
}

#[test]
fn content_met_before_excess_depth_is_reported_first() {
    let guards = Guards::build(
        &GuardConfig {
            max_argument_depth: Some(2),
            enabled_rules: vec!["path_traversal".into()],
            ..GuardConfig::default()
        },
        &BTreeMap::new(),
    )
    .unwrap();
    let b = guards
        .check_arguments("t", &args(json!({ "a_path": "../x", "z_deep": [[1]] })))
        .unwrap_err();
    assert_eq!(b.rule, "path_traversal");
    let b = guards
        .check_arguments("t", &args(json!({ "a_deep": [[1]], "z_path": "../x" })))
        .unwrap_err();
    assert_eq!(b.rule, MAX_ARGUMENT_DEPTH);
}
