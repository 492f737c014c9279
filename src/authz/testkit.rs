//! Shared helpers for the authorization tests: a small trading catalog, principals and facts.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::time::facts_at;
use super::types::{AttributeDecl, BuildMode, Hints, PolicySource, RequestFacts, ToolInfo};
use super::{Decision, Engine, Operation, PolicyError};
use crate::authn::principal::{AttrValue, Principal, PrincipalKind};

pub(crate) fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(crate) fn tool(
    exposed: &str,
    backend: &str,
    schema: Value,
    read_only: Option<bool>,
) -> ToolInfo {
    ToolInfo {
        exposed: exposed.to_owned(),
        backend: backend.to_owned(),
        input_schema: object(schema),
        hints: Hints {
            read_only,
            ..Hints::default()
        },
        refuse_undeclared: false,
        definition: None,
        groups: Vec::new(),
        tenants: Vec::new(),
        held: None,
    }
}

/// `trading__execute_trade` (amount: integer, symbol: string, both required; note optional),
/// `trading__quote` (read-only), `github__create_issue`.
pub(crate) fn catalog() -> Vec<ToolInfo> {
    vec![
        tool(
            "trading__execute_trade",
            "trading",
            json!({
                "type": "object",
                "properties": {
                    "amount": { "type": "integer" },
                    "symbol": { "type": "string" },
                    "note": { "type": "string" },
                    "price": { "type": "number" },
                },
                "required": ["amount", "symbol"],
            }),
            Some(false),
        ),
        tool(
            "trading__quote",
            "trading",
            json!({ "type": "object", "properties": { "symbol": { "type": "string" } }, "required": ["symbol"] }),
            Some(true),
        ),
        tool(
            "github__create_issue",
            "github",
            json!({
                "type": "object",
                "properties": { "title": { "type": "string" }, "labels": { "type": "array", "items": { "type": "string" } } },
                "required": ["title"],
            }),
            None,
        ),
    ]
}

pub(crate) fn attributes() -> Vec<AttributeDecl> {
    super::synthetic::synthetic_attributes()
}

pub(crate) fn source(file: &str, text: &str) -> PolicySource {
    PolicySource {
        file: file.to_owned(),
        text: text.to_owned(),
    }
}

pub(crate) fn build(text: &str) -> Result<Engine, Vec<PolicyError>> {
    Engine::build(
        &[source("policies/test.cedar", text)],
        &catalog(),
        &attributes(),
        BuildMode::Strict,
    )
}

pub(crate) fn engine(text: &str) -> Engine {
    match build(text) {
        Ok(e) => e,
        Err(errors) => panic!("policies should build: {errors:#?}"),
    }
}

pub(crate) fn principal(id: &str, roles: &[&str]) -> Principal {
    Principal {
        id: id.to_owned(),
        kind: PrincipalKind::User,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        tenant: Some("acme".to_owned()),
        issuer: None,
        namespace: None,
        attributes: BTreeMap::new(),
    }
}

pub(crate) fn with_attr(mut p: Principal, name: &str, value: AttrValue) -> Principal {
    p.attributes.insert(name.to_owned(), value);
    p
}

/// 2026-01-07T12:00:00Z, a Wednesday.
pub(crate) fn facts() -> RequestFacts {
    facts_at(1_767_787_200, "127.0.0.1", "http", "s1")
}

pub(crate) fn call(engine: &Engine, p: &Principal, tool: &str, args: Value) -> Decision {
    let args = object(args);
    engine.decide(
        p,
        &Operation::CallTool {
            tool,
            arguments: &args,
        },
        &facts(),
    )
}
