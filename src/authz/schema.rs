//! The Cedar schema: the fixed base (`schemas/mcp.cedarschema`) plus a fragment generated from
//! the configuration (principal attributes) and the tool catalog (one action per tool with
//! its typed arguments, one group per backend). The generated part is built as Cedar's JSON
//! schema format — names with any characters need no escaping there, and it parses about
//! three times faster than schema text — and rendered as text for `schema_text()`.

use std::collections::BTreeSet;

use cedar_policy::{Schema, SchemaFragment};
use serde_json::{Map, Value, json};

use super::argtype::RecordType;
use super::types::{AttrType, AttributeDecl};

/// The base schema, shipped with the binary.
pub(crate) const BASE_SCHEMA: &str = include_str!("../../schemas/mcp.cedarschema");

/// Action groups of the base schema; requests never use them directly.
pub(crate) const GROUPS: [&str; 4] = ["call_tool", "read", "write", "admin"];

/// The prefix of the generated per-backend action groups.
pub(crate) const BACKEND_GROUP_PREFIX: &str = "backend:";

/// The prefix of the generated action groups of `[tools.groups]`.
pub(crate) const TOOL_GROUP_PREFIX: &str = "group:";

/// Principal entity types; all are generated with the declared attributes.
const PRINCIPAL_TYPES: [&str; 3] = ["User", "Agent", "Service"];

/// What the schema needs to know about one (non-quarantined by name) tool.
pub(crate) struct ToolSchema<'a> {
    pub exposed: &'a str,
    pub backend: &'a str,
    pub arguments: &'a RecordType,
    pub read_only: bool,
    /// The `[tools.groups]` it is in.
    pub groups: &'a [String],
}

/// The schema, and its full text in cedarschema syntax.
pub(crate) struct BuiltSchema {
    pub schema: Schema,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SchemaError {
    #[error("the base schema is invalid: {0}")]
    Base(String),
    #[error("the generated schema is invalid: {0}")]
    Generated(String),
}

/// Builds schemas for one set of declared attributes: the full one, and reduced ones with
/// only some tools (validating a policy scoped to a few tools against a schema holding only
/// those costs a fraction of checking it against every action of a large catalog).
pub(crate) struct Builder<'a> {
    base: SchemaFragment,
    attributes: &'a [AttributeDecl],
}

impl<'a> Builder<'a> {
    pub(crate) fn new(attributes: &'a [AttributeDecl]) -> Result<Builder<'a>, SchemaError> {
        let (base, warnings) = SchemaFragment::from_cedarschema_str(BASE_SCHEMA)
            .map_err(|e| SchemaError::Base(e.to_string()))?;
        drop(warnings);
        Ok(Builder { base, attributes })
    }

    /// The full schema and its text.
    pub(crate) fn full(&self, tools: &[ToolSchema<'_>]) -> Result<BuiltSchema, SchemaError> {
        let generated =
            SchemaFragment::from_json_value(generated_json(self.attributes, tools.iter()))
                .map_err(|e| SchemaError::Generated(e.to_string()))?;
        let generated_text = generated
            .to_cedarschema()
            .map_err(|e| SchemaError::Generated(e.to_string()))?;
        let schema = Schema::from_schema_fragments([self.base.clone(), generated])
            .map_err(|e| SchemaError::Generated(e.to_string()))?;
        let text = format!(
            "{BASE_SCHEMA}\n// Generated from the declared claim attributes and the tool catalog.\n{generated_text}"
        );
        Ok(BuiltSchema { schema, text })
    }

    /// A schema with only these tools (and everything else of the base).
    pub(crate) fn subset<'t>(
        &self,
        tools: impl Iterator<Item = &'t ToolSchema<'t>> + Clone,
    ) -> Result<Schema, SchemaError> {
        let generated = SchemaFragment::from_json_value(generated_json(self.attributes, tools))
            .map_err(|e| SchemaError::Generated(e.to_string()))?;
        Schema::from_schema_fragments([self.base.clone(), generated])
            .map_err(|e| SchemaError::Generated(e.to_string()))
    }
}

/// The generated fragment in Cedar's JSON schema format.
fn generated_json<'t>(
    attributes: &[AttributeDecl],
    tools: impl Iterator<Item = &'t ToolSchema<'t>> + Clone,
) -> Value {
    let shape: Map<String, Value> = attributes
        .iter()
        .map(|a| {
            let mut ty = match a.ty {
                AttrType::String => json!({ "type": "String" }),
                AttrType::Long => json!({ "type": "Long" }),
                AttrType::Bool => json!({ "type": "Boolean" }),
                AttrType::StringSet => json!({ "type": "Set", "element": { "type": "String" } }),
            };
            // A token may lack any claim: policies test `principal has ...` first.
            ty["required"] = Value::Bool(false);
            (a.name.clone(), ty)
        })
        .collect();
    let mut shape = shape;
    shape.insert(
        super::entities::TENANT_ATTRIBUTE.to_owned(),
        json!({ "type": "Entity", "name": "Tenant", "required": false }),
    );
    let mut entity_types = Map::new();
    for name in PRINCIPAL_TYPES {
        entity_types.insert(
            name.to_owned(),
            json!({
                "memberOfTypes": ["Role", "Tenant", "Issuer"],
                "shape": { "type": "Record", "attributes": shape.clone() },
            }),
        );
    }
    let backends: BTreeSet<&str> = tools.clone().map(|t| t.backend).collect();
    let mut actions = Map::new();
    for backend in backends {
        actions.insert(format!("{BACKEND_GROUP_PREFIX}{backend}"), json!({}));
    }
    let groups: BTreeSet<&str> = tools
        .clone()
        .flat_map(|t| t.groups.iter().map(String::as_str))
        .collect();
    for group in groups {
        actions.insert(format!("{TOOL_GROUP_PREFIX}{group}"), json!({}));
    }
    for tool in tools {
        let rw = if tool.read_only { "read" } else { "write" };
        let mut member_of = vec![
            json!({ "id": "call_tool" }),
            json!({ "id": format!("{BACKEND_GROUP_PREFIX}{}", tool.backend) }),
            json!({ "id": rw }),
        ];
        member_of.extend(
            tool.groups
                .iter()
                .map(|g| json!({ "id": format!("{TOOL_GROUP_PREFIX}{g}") })),
        );
        actions.insert(
            tool.exposed.to_owned(),
            json!({
                "memberOf": member_of,
                "appliesTo": {
                    "principalTypes": PRINCIPAL_TYPES,
                    "resourceTypes": ["Tool"],
                    "context": {
                        "type": "Record",
                        "attributes": {
                            "arguments": tool.arguments.schema_json(),
                            "request": { "type": "Request" },
                            "history": { "type": "History" },
                        },
                    },
                },
            }),
        );
    }
    json!({ "Mcp": { "entityTypes": entity_types, "actions": actions } })
}
