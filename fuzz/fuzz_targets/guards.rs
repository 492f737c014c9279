//! Arbitrary JSON as a tool's arguments and as its result, through the guards with every
//! built-in deny rule and redaction on: never a panic; a block names a rule that applies and a
//! path that exists, and never repeats the text that tripped it; the size and depth limits
//! agree with serde_json and a plain recursive count; a redacted result has nothing left to
//! redact. The `regex` crate searches in linear time, so no input can stall a check.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_warden::governance::guards::{self, GuardConfig, Guards, RuleConfig, rules};
use serde_json::Value;

const MAX_BYTES: usize = 256;
const MAX_DEPTH: usize = 4;

/// Tool `t`: every built-in rule and an operator rule (one that would backtrack forever in a
/// backtracking engine). Tool `limits`: the size and depth limits only. Both: every built-in
/// redaction.
fn guards() -> &'static Guards {
    static GUARDS: OnceLock<Guards> = OnceLock::new();
    GUARDS.get_or_init(|| {
        let global = GuardConfig {
            deny: vec![RuleConfig {
                id: "operator".into(),
                pattern: r"(?i)\bforbidden\b|(a+)+b".into(),
                description: None,
            }],
            redact_builtin: rules::REDACT.iter().map(|r| r.id.to_owned()).collect(),
            ..GuardConfig::default()
        };
        let limits = GuardConfig {
            builtin_rules: Some(false),
            disabled_rules: vec!["operator".into()],
            max_argument_bytes: Some(MAX_BYTES),
            max_argument_depth: Some(MAX_DEPTH),
            max_result_bytes: Some(MAX_BYTES),
            ..GuardConfig::default()
        };
        Guards::build(&global, &BTreeMap::from([("limits".to_owned(), limits)]))
            .expect("fuzz guards")
    })
}

/// Nesting depth as the guards count it: the outermost container is 1.
fn depth(value: &Value) -> usize {
    match value {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let guards = guards();
    let size = serde_json::to_vec(&value).expect("serializes").len();

    if let Value::Object(arguments) = &value {
        if let Err(blocked) = guards.check_arguments("t", arguments) {
            assert!(guards.deny_rule_ids("t").contains(&blocked.rule.as_str()));
            let at = value
                .pointer(&blocked.path)
                .expect("the blocked path exists");
            if let Value::String(text) = at
                && text.len() >= 8
            {
                let shown = blocked.to_string().replace(&blocked.path, "");
                assert!(!shown.contains(text.as_str()), "{shown}");
            }
        }
        let expected = if size > MAX_BYTES {
            Some(guards::MAX_ARGUMENT_BYTES)
        } else if depth(&value) > MAX_DEPTH {
            Some(guards::MAX_ARGUMENT_DEPTH)
        } else {
            None
        };
        let blocked = guards.check_arguments("limits", arguments).err();
        assert_eq!(blocked.as_ref().map(|b| b.rule.as_str()), expected);
    }

    let mut result = value.clone();
    match guards.check_result("limits", &mut result) {
        Ok(_) => assert!(size <= MAX_BYTES),
        Err(blocked) => {
            assert!(size > MAX_BYTES);
            assert_eq!(blocked.rule, guards::MAX_RESULT_BYTES);
        }
    }

    let mut result = value.clone();
    let redactions = guards
        .check_result("t", &mut result)
        .expect("no result limit");
    if redactions.is_empty() {
        assert_eq!(result, value);
    }
    let mut again = result.clone();
    let left = guards
        .check_result("t", &mut again)
        .expect("no result limit");
    assert!(left.is_empty(), "left after redaction: {:?}", left.by_rule);
});
