use serde_json::{Value, json};

use super::{Options, Replayer};
use crate::audit::pseudonym;
use crate::authz::{BuildMode, Engine, PolicySource, ToolInfo, parse_catalog};

fn catalog() -> Vec<ToolInfo> {
    parse_catalog(
        &json!([
            {"name": "bank__transfer", "backend": "bank", "inputSchema": {
                "type": "object",
                "properties": {"amount": {"type": "integer"}, "to": {"type": "string"}},
                "required": ["amount", "to"]}},
            {"name": "crm__lookup", "backend": "crm", "inputSchema": {"type": "object"},
             "groups": ["pii_read"]},
            {"name": "mail__send", "backend": "mail", "inputSchema": {"type": "object"},
             "groups": ["external_send"]},
        ])
        .to_string(),
    )
    .expect("a catalog")
}

fn engine(policies: &str) -> Engine {
    Engine::build(
        &[PolicySource {
            file: "candidate.cedar".to_owned(),
            text: policies.to_owned(),
        }],
        &catalog(),
        &[],
        BuildMode::Strict,
    )
    .unwrap_or_else(|e| panic!("{e:#?}"))
}

fn call(index: u64, who: &str, tool: &str, effect: &str, arguments: Value) -> Value {
    json!({
        "v": 1, "origin": "test", "index": index, "time_us": 1_767_787_200_000_000u64 + index,
        "kind": "request", "request_id": format!("r{index}"), "session": "s1",
        "principal": {"id": who, "kind": "User", "roles": ["teller"]},
        "action": "tools/call", "resource": tool,
        "decision": {"effect": effect, "policies": ["old"], "reason": "…"},
        "arguments": arguments,
    })
}

fn run(engine: &Engine, options: Options, records: &[Value]) -> super::Report {
    let mut r = Replayer::new(engine, options);
    for record in records {
        r.record(record);
    }
    r.finish()
}

const CANDIDATE: &str = r#"
@id("small-transfers")
permit(principal in Mcp::Role::"teller", action == Mcp::Action::"bank__transfer", resource)
  when { context.arguments.amount < 1000 };
@id("reads")
permit(principal, action in [Mcp::Action::"crm__lookup", Mcp::Action::"mail__send"], resource);
@id("no-send-after-pii")
forbid(principal, action == Mcp::Action::"mail__send", resource)
  when { context.history.groups.contains("pii_read") };
"#;

#[test]
fn changes_are_grouped_and_undisclosed_arguments_reported() {
    let e = engine(CANDIDATE);
    let disclosed = |amount: i64| json!({"commitments": {"": "x", "/amount": "x", "/to": "x"}, "disclosed": {"/amount": amount}});
    let hidden = json!({"commitments": {"": "x", "/amount": "x", "/to": "x"}});
    let records = [
        call(0, "ann", "bank__transfer", "allow", disclosed(500)),
        call(1, "ann", "bank__transfer", "allow", disclosed(5_000)),
        call(2, "ann", "bank__transfer", "allow", disclosed(7_000)),
        call(3, "bob", "bank__transfer", "allow", hidden.clone()),
        json!({"index": 4, "kind": "request", "action": "ping", "time_us": 1}),
    ];
    let report = run(&e, Options::default(), &records);
    assert_eq!(
        (
            report.read,
            report.replayed,
            report.unchanged,
            report.changed
        ),
        (5, 3, 1, 2)
    );
    assert_eq!(report.undetermined, 1);
    assert_eq!(report.changes.len(), 1, "{:#?}", report.changes);
    let g = &report.changes[0];
    assert_eq!((g.count, g.principal.as_str()), (2, "ann"));
    assert_eq!(g.recorded_policies, ["old"]);
    assert_eq!(
        g.examples.iter().map(|e| e.index).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(report.open[0].unknowns, ["arguments.amount"]);
    assert_eq!(report.open[0].policies, ["small-transfers"]);
    assert_eq!(
        report.disclosure_hints()["bank__transfer"],
        ["/amount".to_owned()].into()
    );
    assert_eq!(report.exit_code(), 1);
    let text = report.to_string();
    assert!(
        text.contains("allow -> deny  2×  principal `ann`"),
        "{text}"
    );
    assert!(
        text.contains("\"bank__transfer\" = [\"/amount\"]"),
        "{text}"
    );
}

#[test]
fn history_is_rebuilt_from_the_session_records() {
    let e = engine(CANDIDATE);
    let none = json!({"commitments": {"": "x"}});
    let records = [
        call(0, "ann", "mail__send", "allow", none.clone()),
        call(1, "ann", "crm__lookup", "allow", none.clone()),
        call(2, "ann", "mail__send", "allow", none.clone()),
    ];
    let report = run(&e, Options::default(), &records);
    assert_eq!((report.unchanged, report.changed), (2, 1), "{report}");
    assert_eq!(report.changes[0].policies, ["no-send-after-pii"]);
    assert_eq!(report.changes[0].examples[0].index, 2);
    // `--since` leaves the earlier records out of the report, not out of the history.
    let since = Options {
        since_us: Some(1_767_787_200_000_002),
        ..Options::default()
    };
    let report = run(&e, since, &records);
    assert_eq!((report.replayed, report.changed), (1, 1));
    assert_eq!(report.skipped["outside the filters"], 2);
}

#[test]
fn pseudonyms_need_the_key_when_policies_name_principals() {
    let e = engine(
        r#"@id("ann-only") permit(principal == Mcp::User::"ann", action == Mcp::Action::"crm__lookup", resource);"#,
    );
    let key = b"0123456789abcdef0123".to_vec();
    let none = json!({"commitments": {"": "x"}});
    let records = [
        call(
            0,
            &pseudonym(&key, "ann"),
            "crm__lookup",
            "allow",
            none.clone(),
        ),
        call(
            1,
            &pseudonym(&key, "bob"),
            "crm__lookup",
            "allow",
            none.clone(),
        ),
    ];
    let report = run(&e, Options::default(), &records);
    assert_eq!(report.undetermined, 2);
    assert!(report.open[0].unknowns[0].contains("--pseudonym-key"));
    let keyed = Options {
        pseudonym_key: Some(key),
        ..Options::default()
    };
    let report = run(&e, keyed, &records);
    assert_eq!((report.unchanged, report.changed), (1, 1), "{report}");
    assert_eq!(report.changes[0].examples[0].index, 1);
}

#[test]
fn kill_switch_denials_and_undecided_methods_are_not_replayed() {
    let e = engine(CANDIDATE);
    let mut switched = call(0, "ann", "crm__lookup", "deny", json!({"commitments": {}}));
    switched["decision"]["reason"] = json!("tool `crm__lookup` is switched off: incident");
    switched["decision"]["policies"] = json!([]);
    let mut prompt = call(
        1,
        "ann",
        "crm__summary",
        "allow",
        json!({"commitments": {}}),
    );
    prompt["action"] = json!("prompts/get");
    let report = run(&e, Options::default(), &[switched, prompt]);
    assert_eq!(report.replayed + report.undetermined, 0);
    assert_eq!(report.skipped.len(), 2, "{:?}", report.skipped);
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn hostile_records_are_skipped_or_reported_never_a_panic() {
    let e = engine(CANDIDATE);
    let odd = [
        json!({"decision": {"effect": "allow"}, "action": "tools/call"}),
        json!({"decision": {"effect": "allow"}, "action": "tools/call", "resource": "nope",
               "principal": {"id": "x", "kind": "Robot"}}),
        json!({"decision": {"effect": "deny"}, "action": "tools/call", "resource": "bank__transfer",
               "principal": {"id": "\u{202e}x\u{0}", "kind": "User"},
               "arguments": {"commitments": {"": "x", "/amount": "x", "/to": "x", "/a~1b": "x"},
                             "disclosed": {"/amount": 1e300, "/to": {"__entity": {"type": "Mcp::User", "id": "ann"}}}}}),
        json!({"decision": {"effect": "allow"}, "action": "tools/call", "resource": "bank__transfer",
               "principal": {"id": "x", "kind": "user"}, "arguments": {"commitments": 7}}),
    ];
    let report = run(&e, Options::default(), &odd);
    assert_eq!(report.read, 4);
    let text = report.to_string();
    assert!(!text.contains('\u{202e}'), "printed safely: {text}");
}

#[test]
fn an_allow_that_now_waits_for_a_person_is_a_change() {
    let e = engine(
        r#"@id("reads-approved") @approval("compliance")
           permit(principal, action == Mcp::Action::"crm__lookup", resource);"#,
    );
    let none = json!({"commitments": {"": "x"}});
    let mut approved = call(1, "ann", "crm__lookup", "allow", none.clone());
    approved["detail"] = json!({"approval": "ap-1", "approved_by": "carl"});
    let report = run(
        &e,
        Options::default(),
        &[call(0, "ann", "crm__lookup", "allow", none), approved],
    );
    assert_eq!((report.unchanged, report.changed), (1, 1), "{report}");
    let change = report.changes[0].change.unwrap();
    assert_eq!((change.from, change.to), ("allow", "allow once approved"));
    assert!(
        report.changes[0]
            .reason
            .contains("once a person with the role compliance approves it")
    );
}

/// A session idle longer than the idle timeout has ended: its history goes with it (a call
/// under the same id afterwards starts afresh), and ended sessions are swept, so a long
/// log keeps only the sessions of the last idle timeout.
#[test]
fn ended_sessions_take_their_history_with_them() {
    let e = engine(CANDIDATE);
    let none = json!({"commitments": {"": "x"}});
    let mut late = call(2, "ann", "mail__send", "allow", none.clone());
    late["time_us"] = json!(1_767_787_200_000_001u64 + 301_000_000);
    let records = [
        call(0, "ann", "crm__lookup", "allow", none.clone()),
        call(1, "ann", "mail__send", "allow", none.clone()),
        late,
    ];
    let idle = Options {
        session_idle_s: Some(300),
        ..Options::default()
    };
    let report = run(&e, idle, &records);
    assert_eq!((report.unchanged, report.changed), (2, 1), "{report}");
    assert_eq!(
        report.changes[0].examples[0].index, 1,
        "only the call inside the session"
    );

    let mut sessions = super::recall::Sessions::new(3_600, Some(300));
    for i in 0..100_000u64 {
        sessions.note(&format!("s{i}"), "crm__lookup", &[], i * 10_000);
    }
    // 300 s of sessions one every 10 ms: 30,000, plus at most one sweep interval.
    assert!(
        sessions.len() <= 30_001 + 4096,
        "{} sessions kept",
        sessions.len()
    );
}
