//! An operation named the way people write it (`action = "read_resource"`, `backend`,
//! `uri`, …), as decision tables and `policy explain` take it, made into an [`Operation`]
//! — and checked against the engine, so that a table naming a tool, argument, principal
//! attribute or group that does not exist is an error, never a denial that passes.

use serde_json::{Map, Value};

use super::argtype::{ArgType, RecordType};
use super::engine::Engine;
use super::types::{AdminAction, HistoryFacts, Operation};
use crate::authn::principal::Principal;

/// The operation's names; which are required depends on the action.
#[derive(Debug, Clone, Default)]
pub struct OperationSpec {
    /// `call_tool`, `list_tools`, `read_resource`, `admin_switch`, … (every action of the
    /// base schema).
    pub action: String,
    pub tool: Option<String>,
    pub backend: Option<String>,
    pub uri: Option<String>,
    pub prompt: Option<String>,
}

/// Every action a spec may name (besides the `admin_*` ones).
pub const ACTIONS: [&str; 13] = [
    "call_tool",
    "list_tools",
    "list_prompts",
    "list_resources",
    "set_log_level",
    "read_resource",
    "subscribe",
    "get_prompt",
    "complete",
    "create_message",
    "elicit",
    "list_roots",
    "admin_*",
];

impl OperationSpec {
    /// The operation, with `arguments` for a tool call.
    pub fn operation<'a>(
        &'a self,
        arguments: &'a Map<String, Value>,
    ) -> Result<Operation<'a>, String> {
        let need = |field: &'a Option<String>, name: &str| {
            field
                .as_deref()
                .ok_or_else(|| format!("`{name}` is required for `{}`", self.action))
        };
        Ok(match self.action.as_str() {
            "call_tool" => Operation::CallTool {
                tool: need(&self.tool, "tool")?,
                arguments,
            },
            "list_tools" => Operation::ListTools,
            "list_prompts" => Operation::ListPrompts,
            "list_resources" => Operation::ListResources,
            "set_log_level" => Operation::SetLogLevel,
            a if a.starts_with("admin_") => {
                match AdminAction::ALL.iter().find(|x| x.action() == a) {
                    Some(&action) => Operation::Admin(action),
                    None => return Err(format!("unknown admin action `{a}`")),
                }
            }
            "read_resource" => Operation::ReadResource {
                backend: need(&self.backend, "backend")?,
                uri: need(&self.uri, "uri")?,
            },
            "subscribe" => Operation::Subscribe {
                backend: need(&self.backend, "backend")?,
                uri: need(&self.uri, "uri")?,
            },
            "get_prompt" => Operation::GetPrompt {
                backend: need(&self.backend, "backend")?,
                prompt: need(&self.prompt, "prompt")?,
            },
            "complete" => Operation::Complete {
                backend: need(&self.backend, "backend")?,
            },
            "create_message" => Operation::CreateMessage {
                backend: need(&self.backend, "backend")?,
            },
            "elicit" => Operation::Elicit {
                backend: need(&self.backend, "backend")?,
            },
            "list_roots" => Operation::ListRoots {
                backend: need(&self.backend, "backend")?,
            },
            other => {
                return Err(format!(
                    "unknown action `{other}` (one of {})",
                    ACTIONS.join(", ")
                ));
            }
        })
    }
}

impl Engine {
    /// Every name `principal`, `op` and `history` use that this engine does not know: a
    /// tool outside the catalog, an argument the tool's schema does not declare, a
    /// principal attribute not declared in `[auth]`, a tool or group in the history that
    /// does not exist. Empty when all are known.
    pub fn unknown_names(
        &self,
        principal: &Principal,
        op: &Operation<'_>,
        history: &HistoryFacts,
    ) -> Vec<String> {
        let mut unknown = Vec::new();
        for name in principal.attributes.keys() {
            if !self.attributes.contains_key(name) {
                let mut declared: Vec<&str> = self.attributes.keys().map(String::as_str).collect();
                declared.sort_unstable();
                unknown.push(format!(
                    "principal attribute `{name}` is not declared (declared: {})",
                    list_or_none(&declared)
                ));
            }
        }
        if let Operation::CallTool { tool, arguments } = op {
            match self.tools.get(*tool) {
                Some(entry) => undeclared(&entry.arguments, arguments, "", tool, &mut unknown),
                None if self.quarantined.iter().any(|(t, _)| t == tool) => {}
                None => unknown.push(format!("tool `{tool}` is not in the catalog")),
            }
        }
        for tool in &history.tools {
            if !self.tools.contains_key(tool) && !self.quarantined.iter().any(|(t, _)| t == tool) {
                unknown.push(format!("history tool `{tool}` is not in the catalog"));
            }
        }
        for group in &history.groups {
            if !self.tools.values().any(|t| t.groups.contains(group)) {
                unknown.push(format!("history group `{group}` holds no tool"));
            }
        }
        unknown
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Members of `object` that the record type does not declare, recursively.
fn undeclared(
    ty: &RecordType,
    object: &Map<String, Value>,
    prefix: &str,
    tool: &str,
    out: &mut Vec<String>,
) {
    // A free-form object (no declared members, others allowed): policies cannot name its
    // members, and the tool may take any.
    if ty.declared.is_empty() && !ty.closed {
        return;
    }
    for (name, value) in object {
        let path = super::arguments::member_path(prefix, name);
        if !ty.declared.contains(name) {
            out.push(format!(
                "argument `{path}` is not in `{tool}`'s input schema"
            ));
            continue;
        }
        if let (Some(field), Value::Object(inner)) = (ty.fields.get(name), value)
            && let ArgType::Record(record) = &field.ty
        {
            undeclared(record, inner, &path, tool, out);
        }
    }
}
