//! Decision tables (`policies/tests/*.toml`): the compliance team's executable examples,
//! run by `mcp-warden policy test` and CI. Each case names a principal, an operation and the
//! expected outcome (optionally the deciding policies); a failing case says what was
//! expected, what was decided, and which policies decided it, with their file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::engine::Engine;
use super::spec::OperationSpec;
use super::time::{facts_at, parse_rfc3339};
use super::types::Decision;
use crate::authn::principal::{AttrValue, Principal, PrincipalKind};

/// One decision-table file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFile {
    pub file: String,
    pub text: String,
}

/// The result of one case (or of a file that could not be read as a table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseOutcome {
    pub file: String,
    /// Empty for a file-level problem.
    pub name: String,
    pub passed: bool,
    /// One line: expected vs got, and the deciding policies with `file:line`.
    pub line: String,
}

/// The results of all cases of all files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableReport {
    pub cases: Vec<CaseOutcome>,
    /// The policies some case exercised: deciding it, or a shadow policy it satisfied.
    pub exercised: BTreeSet<String>,
}

/// Which policies no case exercised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub policies: usize,
    /// (id, `file:line`) of each policy no case exercised, in place order.
    pub missed: Vec<(String, String)>,
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "coverage: {} of {} policies exercised",
            self.policies - self.missed.len(),
            self.policies
        )?;
        for (id, at) in &self.missed {
            write!(f, "\n  not exercised by any case: `{id}` at {at}")?;
        }
        Ok(())
    }
}

impl TableReport {
    pub fn failures(&self) -> impl Iterator<Item = &CaseOutcome> {
        self.cases.iter().filter(|c| !c.passed)
    }

    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    /// The policies of `engine` no case exercised (decided, or satisfied as a shadow): a
    /// rule no table touches is a rule whose change no table would catch.
    pub fn coverage(&self, engine: &Engine) -> Coverage {
        let mut missed: Vec<(String, (String, usize))> = engine
            .policy_ids()
            .into_iter()
            .filter(|id| !self.exercised.contains(id))
            .filter_map(|id| {
                let place = engine.policy_location(&id)?;
                Some((id, place))
            })
            .collect();
        missed.sort_by(|a, b| a.1.cmp(&b.1));
        Coverage {
            policies: engine.policy_ids().len(),
            missed: missed
                .into_iter()
                .map(|(id, (file, line))| (id, format!("{file}:{line}")))
                .collect(),
        }
    }
}

impl fmt::Display for TableReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for case in &self.cases {
            writeln!(f, "{}", case.line)?;
        }
        write!(f, "{} passed, {} failed", self.passed(), self.failed())
    }
}

/// A weekday noon, so that cases without a `time` do not trip business-hours rules:
/// 2026-01-07T12:00:00Z, a Wednesday.
pub(crate) const DEFAULT_EPOCH: i64 = 1_767_787_200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(default)]
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    principal: CasePrincipal,
    action: String,
    tool: Option<String>,
    #[serde(default)]
    arguments: toml::Table,
    backend: Option<String>,
    uri: Option<String>,
    prompt: Option<String>,
    time: Option<toml::Value>,
    client: Option<String>,
    transport: Option<String>,
    session: Option<String>,
    /// `context.history`: what the session did before this call.
    history: Option<CaseHistory>,
    expect: Expect,
    policies: Option<Vec<String>>,
    /// The shadow policies this request satisfies (exactly these, in any order).
    shadow_policies: Option<Vec<String>>,
    /// The decision if the shadow policies were enforced too.
    shadow_expect: Option<Expect>,
    /// The roles whose approval the allow waits for (`@approval`); `[]`: none.
    approval: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CaseHistory {
    #[serde(default)]
    tools: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    calls: i64,
    #[serde(default)]
    recent_calls: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasePrincipal {
    id: String,
    #[serde(default = "user")]
    kind: PrincipalKind,
    #[serde(default)]
    roles: Vec<String>,
    tenant: Option<String>,
    issuer: Option<String>,
    /// The issuer's `principal_prefix` (`id`, `roles` and `tenant` already carry it).
    namespace: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, AttrValue>,
}

fn user() -> PrincipalKind {
    PrincipalKind::User
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
}

/// Runs every case of every table against the engine.
pub fn run_tables(engine: &Engine, tables: &[TableFile]) -> TableReport {
    let mut report = TableReport::default();
    for table in tables {
        match toml::from_str::<Table>(&table.text) {
            Ok(parsed) => {
                for case in &parsed.case {
                    let outcome = run_case(engine, &table.file, case, &mut report.exercised);
                    report.cases.push(outcome);
                }
            }
            Err(e) => report.cases.push(CaseOutcome {
                file: table.file.clone(),
                name: String::new(),
                passed: false,
                line: format!(
                    "FAIL {}: not a decision table: {}",
                    table.file,
                    e.to_string().trim()
                ),
            }),
        }
    }
    report
}

fn run_case(
    engine: &Engine,
    file: &str,
    case: &Case,
    exercised: &mut BTreeSet<String>,
) -> CaseOutcome {
    let outcome = |passed: bool, detail: String| CaseOutcome {
        file: file.to_owned(),
        name: case.name.clone(),
        passed,
        line: format!(
            "{} {file}: `{}`: {detail}",
            if passed { "ok  " } else { "FAIL" },
            case.name
        ),
    };
    let decision = match decide_case(engine, case) {
        Ok(d) => d,
        Err(problem) => return outcome(false, problem),
    };
    exercised.extend(decision.determining.iter().cloned());
    exercised.extend(decision.shadow.iter().map(|s| s.policy.clone()));
    let got = if decision.allowed {
        Expect::Allow
    } else {
        Expect::Deny
    };
    let deciding = describe(engine, &decision);
    if got != case.expect {
        return outcome(
            false,
            format!(
                "expected {}, got {} ({deciding})",
                word(case.expect),
                word(got)
            ),
        );
    }
    if let Some(expected) = &case.policies {
        let mut expected = expected.clone();
        expected.sort();
        if expected != decision.determining {
            let list = expected
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return outcome(
                false,
                format!(
                    "{} as expected, but decided by {deciding}; expected [{list}]",
                    word(got)
                ),
            );
        }
    }
    if let Some(expected) = &case.approval {
        let mut expected = expected.clone();
        expected.sort();
        if expected != decision.approval {
            return outcome(
                false,
                format!(
                    "{} as expected, but it waits for the approval of [{}]; expected [{}]",
                    word(got),
                    backticked(&decision.approval),
                    backticked(&expected)
                ),
            );
        }
    }
    if let Some(problem) = shadow_problem(case, &decision) {
        return outcome(false, format!("{} as expected, but {problem}", word(got)));
    }
    outcome(true, format!("{} ({deciding})", word(got)))
}

/// What differs from the case's shadow expectations, if anything.
fn shadow_problem(case: &Case, d: &Decision) -> Option<String> {
    let satisfied: Vec<String> = d.shadow.iter().map(|s| s.policy.clone()).collect();
    if let Some(expected) = &case.shadow_policies {
        let mut expected = expected.clone();
        expected.sort();
        if expected != satisfied {
            return Some(format!(
                "the shadow policies satisfied are [{}]; expected [{}]",
                backticked(&satisfied),
                backticked(&expected)
            ));
        }
    }
    let expect = case.shadow_expect?;
    // What enforcing the shadow policies too would decide.
    let with_shadow = match d.shadow.first() {
        Some(s) => d.allowed != s.would_change,
        None => d.allowed && d.shadow_errors.is_empty(),
    };
    let got = if with_shadow {
        Expect::Allow
    } else {
        Expect::Deny
    };
    (got != expect).then(|| {
        format!(
            "with the shadow policies enforced it would {}; expected {} (shadow: [{}])",
            word(got),
            word(expect),
            backticked(&satisfied)
        )
    })
}

fn backticked(ids: &[String]) -> String {
    ids.iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn word(e: Expect) -> &'static str {
    match e {
        Expect::Allow => "allow",
        Expect::Deny => "deny",
    }
}

/// The reason, and each deciding policy with its place.
fn describe(engine: &Engine, d: &Decision) -> String {
    if d.determining.is_empty() {
        return d.reason.clone();
    }
    let places: Vec<String> = d
        .determining
        .iter()
        .map(|id| match engine.policy_location(id) {
            Some((file, line)) => format!("`{id}` at {file}:{line}"),
            None => format!("`{id}`"),
        })
        .collect();
    format!("{}; {}", d.reason, places.join(", "))
}

fn decide_case(engine: &Engine, case: &Case) -> Result<Decision, String> {
    let p = &case.principal;
    let principal = Principal {
        id: p.id.clone(),
        kind: p.kind,
        roles: p.roles.clone(),
        tenant: p.tenant.clone(),
        issuer: p.issuer.clone(),
        namespace: p.namespace.clone(),
        attributes: p.attributes.clone(),
    };
    let epoch = match &case.time {
        None => DEFAULT_EPOCH,
        Some(toml::Value::String(s)) => parse_rfc3339(s).map_err(|e| format!("`time`: {e}"))?,
        Some(toml::Value::Datetime(d)) => {
            parse_rfc3339(&d.to_string()).map_err(|e| format!("`time`: {e}"))?
        }
        Some(_) => return Err("`time` must be an RFC 3339 time".to_owned()),
    };
    let mut facts = facts_at(
        epoch,
        case.client.as_deref().unwrap_or("127.0.0.1"),
        case.transport.as_deref().unwrap_or("http"),
        case.session.as_deref().unwrap_or("decision-table"),
    );
    if let Some(h) = &case.history {
        facts.history = super::types::HistoryFacts {
            tools: h.tools.clone(),
            groups: h.groups.clone(),
            calls: h.calls,
            recent_calls: h.recent_calls,
        };
    }
    let arguments: Map<String, Value> = case
        .arguments
        .iter()
        .map(|(k, v)| (k.clone(), json_of(v)))
        .collect();
    let spec = OperationSpec {
        action: case.action.clone(),
        tool: case.tool.clone(),
        backend: case.backend.clone(),
        uri: case.uri.clone(),
        prompt: case.prompt.clone(),
    };
    let op = spec.operation(&arguments)?;
    let unknown = engine.unknown_names(&principal, &op, &facts.history);
    if !unknown.is_empty() {
        return Err(format!(
            "names what does not exist, so it cannot test anything: {}",
            unknown.join("; ")
        ));
    }
    Ok(engine.decide(&principal, &op, &facts))
}

/// TOML to JSON, as a client would have sent the arguments.
fn json_of(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(json_of).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests;
