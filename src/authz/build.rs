//! The steps of building an engine that are not Cedar's own: which tools may take part
//! (their names become action ids), what each action group covers, the per-action entities
//! and slices, and the hashes that identify a policy set and schema in the audit log.

use std::collections::{BTreeMap, HashMap, HashSet};

use cedar_policy::{Entities, Entity, EntityUid, Schema};
use sha2::{Digest, Sha256};

use super::argtype::RecordType;
use super::engine::{ActionEntry, ToolEntry};
use super::entities::{Types, backend_entity, tool_entity};
use super::policies::{Loaded, Mode};
use super::schema::{BACKEND_GROUP_PREFIX, GROUPS, ToolSchema};
use super::slice::{ActionScope, ResourceShape, slices};
use super::types::{BuildMode, PolicyError, ToolInfo};
use super::validate::Coverage;

/// The operations that are not tool calls: (action id, its resource type).
pub(crate) const BUILTIN_ACTIONS: [(&str, Builtin); 17] = [
    ("list_tools", Builtin::Gateway),
    ("list_prompts", Builtin::Gateway),
    ("list_resources", Builtin::Gateway),
    ("read_resource", Builtin::Resource),
    ("subscribe", Builtin::Resource),
    ("get_prompt", Builtin::Prompt),
    ("complete", Builtin::Backend),
    ("create_message", Builtin::Backend),
    ("elicit", Builtin::Backend),
    ("list_roots", Builtin::Backend),
    ("set_log_level", Builtin::Gateway),
    ("admin_read", Builtin::Gateway),
    ("admin_switch", Builtin::Gateway),
    ("admin_reset", Builtin::Gateway),
    ("admin_sessions", Builtin::Gateway),
    ("admin_reload", Builtin::Gateway),
    ("admin_approve", Builtin::Gateway),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Gateway,
    Resource,
    Prompt,
    Backend,
}

/// The tools that may take part; the others are quarantined (or, in strict mode, errors).
pub(crate) fn accept_tools<'t>(
    tools: &'t [ToolInfo],
    mode: BuildMode,
    quarantined: &mut Vec<(String, String)>,
    errors: &mut Vec<PolicyError>,
) -> Vec<&'t ToolInfo> {
    let mut accepted: Vec<&ToolInfo> = Vec::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for tool in tools {
        *counts.entry(tool.exposed.as_str()).or_default() += 1;
    }
    for tool in tools {
        if let Some(reason) = &tool.held {
            if !quarantined.iter().any(|(t, _)| t == &tool.exposed) {
                quarantined.push((tool.exposed.clone(), reason.clone()));
            }
            continue;
        }
        let twice = counts.get(tool.exposed.as_str()).is_some_and(|&n| n > 1);
        match name_problem(&tool.exposed, twice) {
            None => accepted.push(tool),
            // One entry per name: with two tools of one name, neither can be told apart.
            Some(_) if quarantined.iter().any(|(t, _)| t == &tool.exposed) => {}
            Some(problem) if mode == BuildMode::Quarantine => {
                quarantined.push((tool.exposed.clone(), problem));
            }
            Some(problem) => {
                if !errors.iter().any(|e: &PolicyError| {
                    e.message.starts_with(&format!("tool `{}`: ", tool.exposed))
                }) {
                    errors.push(general(format!("tool `{}`: {problem}", tool.exposed)));
                }
            }
        }
    }
    accepted
}

/// Request actions by id, and callable tools by exposed name.
pub(crate) struct RequestActions {
    pub actions: HashMap<String, ActionEntry>,
    pub tools: HashMap<String, ToolEntry>,
}

/// The request actions (every accepted, non-quarantined tool and every built-in operation):
/// their entities and slices, and the tools' argument types.
pub(crate) fn request_actions(
    types: &Types,
    schema: &Schema,
    typed: Vec<(&ToolInfo, RecordType)>,
    out_of_service: &HashSet<&str>,
    policies: &[Loaded],
    tenancy: &HashMap<String, Vec<String>>,
) -> Result<RequestActions, Vec<PolicyError>> {
    let action_entities = schema.action_entities().map_err(|e| {
        vec![general(format!(
            "the schema's actions could not be built: {e}"
        ))]
    })?;
    let mut tool_entries = HashMap::new();
    let mut tool_entities = HashMap::new();
    let mut requests: Vec<(String, EntityUid, ResourceShape)> = Vec::new();
    for (tool, arguments) in typed {
        if out_of_service.contains(tool.exposed.as_str()) {
            continue;
        }
        let tenants = tenancy.get(&tool.backend).map_or(&[][..], Vec::as_slice);
        let entity = tool_entity(
            types,
            &tool.exposed,
            &tool.backend,
            tool.hints.resolved(),
            tenants.is_empty(),
        )
        .map_err(|e| vec![general(format!("tool `{}`: {e}", tool.exposed))])?;
        let uid = Types::uid(&types.tool, &tool.exposed);
        // The tool in its backend, the backend in its tenants.
        let mut ancestors = vec![Types::uid(&types.backend, &tool.backend)];
        ancestors.extend(tenants.iter().map(|t| Types::uid(&types.tenant, t)));
        let shape = ResourceShape::Fixed {
            uid: uid.clone(),
            ancestors,
        };
        requests.push((tool.exposed.clone(), types.action(&tool.exposed), shape));
        let backend = backend_entity(types, &tool.backend, tenants)
            .map_err(|e| vec![general(format!("backend `{}`: {e}", tool.backend))])?;
        tool_entities.insert(tool.exposed.clone(), [entity, backend]);
        tool_entries.insert(
            tool.exposed.clone(),
            ToolEntry {
                arguments,
                uid,
                groups: tool.groups.clone(),
            },
        );
    }
    for (name, builtin) in BUILTIN_ACTIONS {
        let ty = match builtin {
            Builtin::Gateway => &types.gateway,
            Builtin::Resource => &types.resource,
            Builtin::Prompt => &types.prompt,
            Builtin::Backend => &types.backend,
        };
        requests.push((
            name.to_owned(),
            types.action(name),
            ResourceShape::OfTypes(vec![ty.clone()]),
        ));
    }
    let mut entities = HashMap::new();
    let mut ancestors = HashMap::new();
    for (key, uid, _) in &requests {
        let Some(entity) = action_entities.get(uid) else {
            return Err(vec![general(format!(
                "action `{key}` is missing from the schema"
            ))]);
        };
        let groups: HashSet<EntityUid> = action_entities
            .ancestors(uid)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        entities.insert(key.clone(), entity.clone());
        ancestors.insert(key.clone(), groups);
    }
    let scopes: Vec<(String, ActionScope<'_>)> = requests
        .iter()
        .map(|(key, uid, resource)| {
            (
                key.clone(),
                ActionScope {
                    uid,
                    ancestors: &ancestors[key],
                    resource,
                },
            )
        })
        .collect();
    let mut sliced = slices(policies, &scopes).map_err(|e| vec![general(e.to_string())])?;
    let mut actions = HashMap::new();
    for (key, uid, _) in requests {
        let slice = sliced.remove(&key).unwrap_or_default();
        let entity = entities
            .remove(&key)
            .unwrap_or_else(|| Entity::with_uid(uid.clone()));
        let store = Entities::from_entities(
            [entity]
                .into_iter()
                .chain(tool_entities.remove(&key).into_iter().flatten()),
            None,
        )
        .map_err(|e| {
            vec![general(format!(
                "the entities of action `{key}` could not be built: {e}"
            ))]
        })?;
        actions.insert(
            key,
            ActionEntry {
                uid,
                entities: store,
                slice,
            },
        );
    }

    Ok(RequestActions {
        actions,
        tools: tool_entries,
    })
}

/// What is wrong with a tool's name, if anything: it must not collide with another tool or a
/// built-in action or group, since the name becomes its action's id.
fn name_problem(name: &str, listed_twice: bool) -> Option<String> {
    if name.is_empty() {
        return Some("its name is empty".to_owned());
    }
    if BUILTIN_ACTIONS.iter().any(|(b, _)| *b == name) || GROUPS.contains(&name) {
        return Some(format!("its name is that of the built-in action `{name}`"));
    }
    if name.starts_with(BACKEND_GROUP_PREFIX) {
        return Some(format!(
            "its name starts with `{BACKEND_GROUP_PREFIX}`, reserved for backend groups"
        ));
    }
    if listed_twice {
        return Some("its name is listed more than once".to_owned());
    }
    None
}

/// The tools each group (and built-in action) covers, as the generated schema defines them.
pub(crate) fn coverage(tools: &[ToolSchema<'_>]) -> Coverage {
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    for name in GROUPS
        .iter()
        .copied()
        .chain(BUILTIN_ACTIONS.iter().map(|(n, _)| *n))
    {
        groups.insert(name.to_owned(), Vec::new());
    }
    for t in tools {
        let rw = if t.read_only { "read" } else { "write" };
        for group in ["call_tool", rw] {
            groups
                .entry(group.to_owned())
                .or_default()
                .push(t.exposed.to_owned());
        }
        groups
            .entry(format!("{BACKEND_GROUP_PREFIX}{}", t.backend))
            .or_default()
            .push(t.exposed.to_owned());
    }
    Coverage {
        tools: tools.iter().map(|t| t.exposed.to_owned()).collect(),
        groups,
    }
}

pub(crate) fn general(message: String) -> PolicyError {
    PolicyError {
        file: String::new(),
        line: 0,
        column: 0,
        message,
    }
}

pub(crate) fn policy_hash(policies: &[Loaded]) -> String {
    let ordered: BTreeMap<&str, &Loaded> = policies.iter().map(|l| (l.id.as_str(), l)).collect();
    let mut hasher = Sha256::new();
    for (id, l) in ordered {
        let mode = match l.mode {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        };
        let text = l.policy.to_cedar().unwrap_or_else(|| l.policy.to_string());
        for part in [id, mode, text.as_str()] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
    }
    hex::encode(hasher.finalize())
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
