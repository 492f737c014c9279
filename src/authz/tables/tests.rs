use super::super::testkit::{attributes, source};
use super::super::{BuildMode, Engine, TableFile, parse_catalog, run_tables};
use super::DEFAULT_EPOCH;

const CATALOG: &str = r#"[
  {"name": "trading__execute_trade", "backend": "trading", "description": "ignored",
   "inputSchema": {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]},
   "annotations": {"readOnlyHint": false, "destructiveHint": true}},
  {"name": "docs__search", "backend": "docs", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}}
]"#;

const POLICIES: &str = r#"
@id("trade-limit")
permit(principal in Mcp::Role::"trader", action == Mcp::Action::"trading__execute_trade", resource)
  when { context.arguments.amount < 500 };

@id("business-hours")
forbid(principal, action in Mcp::Action::"write", resource)
  when { context.request.hour < 8 || context.request.hour >= 18 || context.request.weekday == 0 || context.request.weekday == 6 };

@id("readers")
permit(principal, action in Mcp::Action::"read", resource)
  when { principal has department && principal.department == "desk" };
"#;

fn engine() -> Engine {
    let tools = match parse_catalog(CATALOG) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    match Engine::build(
        &[source("policies/trading.cedar", POLICIES)],
        &tools,
        &attributes(),
        BuildMode::Strict,
    ) {
        Ok(e) => e,
        Err(errors) => panic!("{errors:#?}"),
    }
}

const TABLE: &str = r#"
[[case]]
name = "trader below the limit"
principal = { id = "alice", kind = "user", roles = ["trader"], tenant = "acme", attributes = { department = "desk" } }
action = "call_tool"
tool = "trading__execute_trade"
arguments = { amount = 400 }
time = "2026-11-24T10:00:00Z"
expect = "allow"
policies = ["trade-limit"]

[[case]]
name = "trader at night"
principal = { id = "alice", roles = ["trader"] }
action = "call_tool"
tool = "trading__execute_trade"
arguments = { amount = 400 }
time = 2026-11-24T22:00:00Z
expect = "deny"
policies = ["business-hours"]

[[case]]
name = "desk reads resources"
principal = { id = "bob", attributes = { department = "desk" } }
action = "read_resource"
backend = "docs"
uri = "file:///a"
expect = "allow"

[[case]]
name = "wrong expectation"
principal = { id = "eve" }
action = "list_tools"
expect = "allow"

[[case]]
name = "wrong policies"
principal = { id = "alice", roles = ["trader"] }
action = "call_tool"
tool = "trading__execute_trade"
arguments = { amount = 400 }
expect = "allow"
policies = ["readers"]

[[case]]
name = "missing uri"
principal = { id = "bob" }
action = "read_resource"
backend = "docs"
expect = "deny"
"#;

#[test]
fn tables_report_each_case_with_places() {
    let report = run_tables(
        &engine(),
        &[TableFile {
            file: "policies/tests/trading.toml".into(),
            text: TABLE.into(),
        }],
    );
    let lines: Vec<&str> = report.cases.iter().map(|c| c.line.as_str()).collect();
    assert_eq!(report.passed(), 3, "{report}");
    assert_eq!(
        lines[0],
        "ok   policies/tests/trading.toml: `trader below the limit`: allow (allowed by policy `trade-limit`; `trade-limit` at policies/trading.cedar:2)"
    );
    assert_eq!(
        lines[3],
        "FAIL policies/tests/trading.toml: `wrong expectation`: expected allow, got deny (no policy permits this request)"
    );
    assert_eq!(
        lines[4],
        "FAIL policies/tests/trading.toml: `wrong policies`: allow as expected, but decided by allowed by policy `trade-limit`; `trade-limit` at policies/trading.cedar:2; expected [`readers`]"
    );
    assert_eq!(
        lines[5],
        "FAIL policies/tests/trading.toml: `missing uri`: `uri` is required for `read_resource`"
    );
    assert_eq!(report.failures().count(), 3);
    assert!(report.to_string().ends_with("3 passed, 3 failed"));
}

#[test]
fn malformed_tables_fail_visibly() {
    let report = run_tables(
        &engine(),
        &[TableFile { file: "t.toml".into(), text: "[[case]]\nname = \"x\"\nprincipal = { id = \"a\" }\naction = \"list_tools\"\nexpect = \"maybe\"\n".into() }],
    );
    assert_eq!(report.failed(), 1);
    assert!(
        report.cases[0]
            .line
            .starts_with("FAIL t.toml: not a decision table:"),
        "{report}"
    );
    let report = run_tables(
        &engine(),
        &[TableFile { file: "t.toml".into(), text: "[[case]]\nname = \"x\"\nprincipal = { id = \"a\" }\naction = \"list_tools\"\nexpect = \"deny\"\nexpected = \"typo\"\n".into() }],
    );
    assert_eq!(report.failed(), 1, "unknown keys are refused: {report}");
}

#[test]
fn default_time_is_a_weekday_noon() {
    assert_eq!(
        super::super::parse_rfc3339("2026-01-07T12:00:00Z"),
        Ok(DEFAULT_EPOCH)
    );
}

#[test]
fn catalog_files_parse_into_tools() {
    let tools = match parse_catalog(CATALOG) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0].exposed, "trading__execute_trade");
    assert_eq!(tools[0].hints.destructive, Some(true));
    assert_eq!(tools[1].hints.read_only, Some(true));
    assert!(parse_catalog("[{\"name\": \"x\"}]").is_err());
    let bad = parse_catalog("[{\"name\": \"x\", \"backend\": \"b\", \"inputSchema\": 3}]");
    assert_eq!(
        bad.err().map(|e| e.to_string()).as_deref(),
        Some("tool `x`: `inputSchema` must be an object")
    );
}
