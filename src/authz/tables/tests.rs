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

fn one(text: &str) -> super::TableReport {
    run_tables(
        &engine(),
        &[TableFile {
            file: "t.toml".into(),
            text: text.into(),
        }],
    )
}

#[test]
fn a_case_naming_what_does_not_exist_fails_instead_of_passing_as_a_deny() {
    let cases = [
        // A typo in the tool: would be "unknown tool", a deny, the expected answer.
        (
            "tool = \"trading__execute_trades\"\narguments = { amount = 5 }",
            "tool `trading__execute_trades` is not in the catalog",
        ),
        // A typo in an argument: the required `amount` is missing, a deny.
        (
            "tool = \"trading__execute_trade\"\narguments = { amout = 5000 }",
            "argument `amout` is not in `trading__execute_trade`'s input schema",
        ),
        // A principal attribute no issuer maps.
        (
            "tool = \"trading__execute_trade\"\narguments = { amount = 5000 }\nprincipal = { id = \"a\", attributes = { departmnet = \"desk\" } }",
            "principal attribute `departmnet` is not declared (declared: department, level)",
        ),
        (
            "tool = \"trading__execute_trade\"\narguments = { amount = 5000 }\nhistory = { groups = [\"pii\"] }",
            "history group `pii` holds no tool",
        ),
    ];
    for (fields, why) in cases {
        let principal = if fields.contains("principal") {
            ""
        } else {
            "principal = { id = \"a\", roles = [\"trader\"] }\n"
        };
        let report = one(&format!(
            "[[case]]\nname = \"x\"\n{principal}action = \"call_tool\"\n{fields}\nexpect = \"deny\"\n"
        ));
        assert_eq!(report.failed(), 1, "{fields}: {report}");
        assert!(report.cases[0].line.contains(why), "{report}");
    }
    // A free-form tool takes any argument (no policy can name its members).
    let report = one(
        "[[case]]\nname = \"x\"\nprincipal = { id = \"a\" }\naction = \"call_tool\"\ntool = \"docs__search\"\narguments = { q = \"x\" }\nexpect = \"deny\"\n",
    );
    assert_eq!(report.failed(), 0, "{report}");
}

#[test]
fn tables_assert_shadow_outcomes() {
    let tools = parse_catalog(CATALOG).unwrap();
    let shadowed = format!(
        "{POLICIES}\n@id(\"trial-cap\")\n@mode(\"shadow\")\nforbid(principal, action == Mcp::Action::\"trading__execute_trade\", resource) when {{ context.arguments.amount > 100 }};\n"
    );
    let engine = Engine::build(
        &[source("p.cedar", &shadowed)],
        &tools,
        &attributes(),
        BuildMode::Strict,
    )
    .unwrap();
    let case = |amount: i64, shadow: &str| {
        format!(
            "[[case]]\nname = \"c{amount}\"\nprincipal = {{ id = \"a\", roles = [\"trader\"] }}\naction = \"call_tool\"\ntool = \"trading__execute_trade\"\narguments = {{ amount = {amount} }}\nexpect = \"allow\"\n{shadow}\n"
        )
    };
    let text = [
        case(50, "shadow_policies = []\nshadow_expect = \"allow\""),
        case(
            200,
            "shadow_policies = [\"trial-cap\"]\nshadow_expect = \"deny\"",
        ),
        case(300, "shadow_policies = []"),
        case(400, "shadow_expect = \"allow\""),
    ]
    .concat();
    let report = run_tables(
        &engine,
        &[TableFile {
            file: "t.toml".into(),
            text,
        }],
    );
    assert_eq!(report.passed(), 2, "{report}");
    assert!(
        report.cases[2]
            .line
            .contains("the shadow policies satisfied are [`trial-cap`]; expected []"),
        "{report}"
    );
    assert!(
        report.cases[3]
            .line
            .contains("with the shadow policies enforced it would deny; expected allow"),
        "{report}"
    );
}

#[test]
fn coverage_names_the_policies_no_case_exercised() {
    let report = one(
        "[[case]]\nname = \"x\"\nprincipal = { id = \"a\", roles = [\"trader\"] }\naction = \"call_tool\"\ntool = \"trading__execute_trade\"\narguments = { amount = 5 }\nexpect = \"allow\"\n",
    );
    let coverage = report.coverage(&engine());
    assert_eq!(coverage.policies, 3);
    let missed: Vec<&str> = coverage.missed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(missed, ["business-hours", "readers"]);
    assert_eq!(
        coverage.to_string(),
        "coverage: 1 of 3 policies exercised\n  not exercised by any case: `business-hours` at policies/trading.cedar:6\n  not exercised by any case: `readers` at policies/trading.cedar:10"
    );
}
