//! The hub's authorization engine: built from the policy files and every tool the proxy
//! knows, swapped whole when a backend's tools change. Tools of a backend that is down stay
//! known (from its last list, or the saved catalog), so policies naming them keep validating.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, RwLock},
};

use crate::{
    authz::{
        AttrType, AttributeDecl, BuildMode, Engine, Hints, PolicyError, PolicySource, ToolInfo,
        parse_catalog,
    },
    config::{AttrKind, BackendSettings, Config},
    mcp::catalog::Catalog,
};

pub struct AuthzState {
    policies: Vec<PolicySource>,
    attributes: Vec<AttributeDecl>,
    /// Exposed tool name -> what the engine knows of it.
    known: Mutex<BTreeMap<String, ToolInfo>>,
    engine: RwLock<Option<Arc<Engine>>>,
}

impl AuthzState {
    pub fn new(config: &Config) -> Self {
        let (policies, attributes) = (policy_sources(config), attribute_decls(config));
        let mut known = BTreeMap::new();
        if let Some(catalog) = &config.authz.catalog {
            match saved_tools(config, &catalog.text) {
                Ok(tools) => known.extend(tools.into_iter().map(|t| (t.exposed.clone(), t))),
                Err(e) => {
                    tracing::warn!(file = %catalog.file, error = %e, "saved tool catalog ignored")
                }
            }
        }
        AuthzState {
            policies,
            attributes,
            known: Mutex::new(known),
            engine: RwLock::new(None),
        }
    }

    pub fn engine(&self) -> Option<Arc<Engine>> {
        self.engine
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Takes in the tools the catalog exposes now; true when anything changed.
    pub fn learn(&self, catalog: &Catalog, backends: &[BackendSettings]) -> bool {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = false;
        for entry in catalog.tools() {
            let backend = &backends[entry.backend];
            let mut info = tool_info(&entry.item, &backend.name);
            vet(&mut info, backend, &entry.original);
            if known.get(&info.exposed) != Some(&info) {
                known.insert(info.exposed.clone(), info);
                changed = true;
            }
        }
        changed
    }

    /// What startup does: [`build_for_start`] over every tool known now, swapped in.
    pub fn start(&self) -> Result<(), Vec<PolicyError>> {
        let started = build_for_start(&self.policies, &self.known_tools(), &self.attributes)?;
        if !started.strict_errors.is_empty() {
            tracing::warn!(errors = %describe(&started.strict_errors), "policies do not validate strictly against the tools available now");
        }
        self.swap(started.engine);
        Ok(())
    }

    fn known_tools(&self) -> Vec<ToolInfo> {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn swap(&self, engine: Engine) {
        for (tool, reason) in engine.quarantined() {
            tracing::warn!(%tool, %reason, "tool quarantined: hidden and denied until its schema fits the policies again");
        }
        *self.engine.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(engine));
    }

    /// Builds a new engine and swaps it in; on error the previous engine stays.
    pub fn rebuild(&self, mode: BuildMode) -> Result<(), Vec<PolicyError>> {
        let engine = Engine::build(&self.policies, &self.known_tools(), &self.attributes, mode)?;
        self.swap(engine);
        Ok(())
    }
}

/// An engine as startup builds it, and the strict validation's errors it had to absorb.
pub struct Started {
    pub engine: Engine,
    /// Empty when the policies validated strictly; otherwise the tools these errors are
    /// attributed to are quarantined in `engine`.
    pub strict_errors: Vec<PolicyError>,
}

/// The one way startup (and `mcp-warden check`) builds the engine from the policies and
/// the tools known: strict validation; failing that, quarantine of the tools the failures
/// are attributed to (a tool a policy names that no backend lists or catalog holds, a
/// tool whose schema no longer fits); an error only when quarantine cannot absorb them.
pub fn build_for_start(
    policies: &[PolicySource],
    tools: &[ToolInfo],
    attributes: &[AttributeDecl],
) -> Result<Started, Vec<PolicyError>> {
    match Engine::build(policies, tools, attributes, BuildMode::Strict) {
        Ok(engine) => Ok(Started {
            engine,
            strict_errors: Vec::new(),
        }),
        Err(strict_errors) => Engine::build(policies, tools, attributes, BuildMode::Quarantine)
            .map(|engine| Started {
                engine,
                strict_errors,
            }),
    }
}

/// What the operator's configuration of `backend` says about its tool `original`: which
/// hints count ([`vetted`]) and whether undeclared arguments are refused.
pub fn vet(info: &mut ToolInfo, backend: &BackendSettings, original: &str) {
    info.hints = vetted(info.hints, backend, original);
    info.refuse_undeclared = backend
        .refuse_undeclared
        .as_ref()
        .is_some_and(|globs| globs.is_match(original));
}

/// The hints a tool's policies see. A backend's annotations are claims: they count only
/// when the operator trusts that backend (`trust_hints`); otherwise the MCP defaults apply
/// (not read-only, destructive, not idempotent, open world) — a tool is never put in `read`
/// on a backend's word. The operator's own `hints` (per tool) win either way.
pub fn vetted(claimed: Hints, backend: &BackendSettings, original: &str) -> Hints {
    let mut h = if backend.trust_hints {
        claimed
    } else {
        Hints::default()
    };
    if let Some(o) = backend.hints.get(original) {
        h.read_only = o.read_only.or(h.read_only);
        h.destructive = o.destructive.or(h.destructive);
        h.idempotent = o.idempotent.or(h.idempotent);
        h.open_world = o.open_world.or(h.open_world);
    }
    h
}

/// A saved tool catalog read as the running proxy would see it: the annotations of a
/// configured backend's tools count only as [`vetted`] allows.
pub fn saved_tools(
    config: &Config,
    text: &str,
) -> Result<Vec<ToolInfo>, crate::authz::CatalogError> {
    let mut tools = parse_catalog(text)?;
    for t in &mut tools {
        if let Some(b) = config.backends.iter().find(|b| b.name == t.backend) {
            let original = original_name(b, &t.exposed, &config.server.separator);
            vet(t, b, &original);
        }
    }
    Ok(tools)
}

/// The backend's own name of an exposed tool (alias, or namespace + separator + name).
fn original_name(backend: &BackendSettings, exposed: &str, separator: &str) -> String {
    if let Some((from, _)) = backend.aliases.iter().find(|(_, to)| *to == exposed) {
        return from.clone();
    }
    match exposed.strip_prefix(&format!("{}{separator}", backend.namespace)) {
        Some(name) if !backend.namespace.is_empty() => name.to_owned(),
        _ => exposed.to_owned(),
    }
}

/// The configuration's policy files, as the engine takes them.
pub fn policy_sources(config: &Config) -> Vec<PolicySource> {
    config
        .authz
        .policies
        .iter()
        .map(|p| PolicySource {
            file: p.file.clone(),
            text: p.text.clone(),
        })
        .collect()
}

/// The claim attributes the configuration declares, as the engine's schema types.
pub fn attribute_decls(config: &Config) -> Vec<AttributeDecl> {
    let ty = |kind: &AttrKind| match kind {
        AttrKind::String => AttrType::String,
        AttrKind::Long => AttrType::Long,
        AttrKind::Bool => AttrType::Bool,
        AttrKind::Set => AttrType::StringSet,
    };
    config
        .auth
        .attributes
        .iter()
        .map(|(name, kind)| AttributeDecl {
            name: name.clone(),
            ty: ty(kind),
        })
        .collect()
}

/// What authorization needs of an exposed tool.
pub fn tool_info(tool: &rmcp::model::Tool, backend: &str) -> ToolInfo {
    let a = tool.annotations.as_ref();
    ToolInfo {
        exposed: tool.name.to_string(),
        backend: backend.to_owned(),
        input_schema: (*tool.input_schema).clone(),
        hints: Hints {
            read_only: a.and_then(|a| a.read_only_hint),
            destructive: a.and_then(|a| a.destructive_hint),
            idempotent: a.and_then(|a| a.idempotent_hint),
            open_world: a.and_then(|a| a.open_world_hint),
        },
        refuse_undeclared: false,
    }
}

/// Policy errors as `file:line:column: message` lines.
pub fn describe(errors: &[PolicyError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}:{}:{}: {}", e.file, e.line, e.column, e.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests;
