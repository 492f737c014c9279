//! The hub's authorization engine: built from the policy files and every tool the proxy
//! knows, swapped whole when a backend's tools change. Tools of a backend that is down stay
//! known (from its last list, or the saved catalog), so policies naming them keep validating.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, RwLock},
};

use crate::sync::{Locked, RwLocked};
use crate::{
    authz::{
        AttrType, AttributeDecl, BuildMode, Engine, Hints, PolicyError, PolicySource, Tenancy,
        ToolInfo, parse_catalog,
    },
    config::{AttrKind, BackendSettings, Config, ToolsSettings},
    mcp::catalog::Catalog,
    pinning::{Definition, Examined, Mode},
};

pub struct AuthzState {
    /// The policies and claim attributes the engine is built from (replaced by a reload).
    inputs: RwLock<Inputs>,
    /// Exposed tool name -> what the saved catalog says of it.
    saved: Mutex<BTreeMap<String, ToolInfo>>,
    /// Exposed tool name -> what a backend listed (wins over the saved catalog; kept while
    /// the backend is down).
    live: Mutex<BTreeMap<String, ToolInfo>>,
    engine: RwLock<Option<Arc<Engine>>>,
    /// One build at a time: a reload and a backend's new tools never swap in each other's
    /// stale engine.
    building: Mutex<()>,
    /// The integrity findings of the tools the engine in force was built with.
    findings: Mutex<Vec<Examined>>,
}

/// A reload's engine, built and not yet in force, with what it was built from.
pub struct Pending {
    pub engine: Arc<Engine>,
    policies: Vec<PolicySource>,
    saved: BTreeMap<String, ToolInfo>,
    live: Option<BTreeMap<String, ToolInfo>>,
    tools: ToolsSettings,
    findings: Vec<Examined>,
    tenancy: Tenancy,
}

/// `saved`, overlaid by `live`.
fn overlay(saved: &BTreeMap<String, ToolInfo>, live: &BTreeMap<String, ToolInfo>) -> Vec<ToolInfo> {
    let mut tools = saved.clone();
    tools.extend(live.iter().map(|(k, v)| (k.clone(), v.clone())));
    tools.into_values().collect()
}

/// What authorization knows of each tool `catalog` exposes.
fn catalog_tools(catalog: &Catalog) -> impl Iterator<Item = ToolInfo> + '_ {
    catalog.tools().filter_map(|entry| {
        let backend = &catalog.backend(entry.backend)?.settings;
        let mut info = tool_info(&entry.item, &backend.name);
        vet(&mut info, backend, &entry.original);
        info.definition = Some(Arc::new(Definition::of(
            &entry.item,
            &backend.name,
            &entry.original,
        )));
        Some(info)
    })
}

struct Inputs {
    policies: Vec<PolicySource>,
    attributes: Vec<AttributeDecl>,
    /// `[tools]`: pins, description rules, groups.
    tools: ToolsSettings,
    /// Joins backend and tool names (a description naming another backend's tool).
    separator: String,
    /// Which configured backends belong to which tenants.
    tenancy: Tenancy,
}

/// The configured backends' tenants.
pub fn tenancy(config: &Config) -> Tenancy {
    Tenancy::from_backends(
        config
            .backends
            .iter()
            .map(|b| (b.name.as_str(), b.tenants.as_slice())),
    )
}

impl Inputs {
    /// `tools` in their `[tools.groups]` and examined for their integrity: with
    /// `pinning = "enforce"`, each tool with a finding is held (hidden and denied, the
    /// finding as its reason). Look-alike names are reported by `Hub::record_integrity`.
    fn examine(&self, tools: Vec<ToolInfo>) -> (Vec<ToolInfo>, Vec<Examined>) {
        examine(&self.tools, &self.separator, tools)
    }
}

/// `tools` in their `[tools.groups]`, examined for their integrity.
fn examine(
    settings: &ToolsSettings,
    separator: &str,
    mut tools: Vec<ToolInfo>,
) -> (Vec<ToolInfo>, Vec<Examined>) {
    if !settings.groups.is_empty() {
        for tool in tools.iter_mut() {
            tool.groups = settings.groups_of(&tool.exposed);
        }
    }
    let integrity = &settings.integrity;
    let found = {
        let defs: Vec<&Definition> = tools
            .iter()
            .filter_map(|t| t.definition.as_deref())
            .collect();
        integrity.examine(&defs, separator)
    };
    if integrity.mode == Mode::Enforce {
        for tool in tools.iter_mut() {
            if let Some(e) = found.iter().find(|e| e.exposed == tool.exposed) {
                tool.held = Some(e.reason());
            }
        }
    }
    (tools, found)
}

/// The saved catalog's tools as the running proxy sees them (none, and a warning, when it
/// cannot be read).
fn saved_by_name(config: &Config) -> BTreeMap<String, ToolInfo> {
    let Some(catalog) = &config.authz.catalog else {
        return BTreeMap::new();
    };
    match saved_tools(config, &catalog.text) {
        Ok(tools) => tools.into_iter().map(|t| (t.exposed.clone(), t)).collect(),
        Err(e) => {
            tracing::warn!(file = %catalog.file, error = %e, "saved tool catalog ignored");
            BTreeMap::new()
        }
    }
}

impl AuthzState {
    pub fn new(config: &Config) -> Self {
        AuthzState {
            inputs: RwLock::new(Inputs {
                policies: policy_sources(config),
                attributes: attribute_decls(config),
                tools: config.tools.clone(),
                separator: config.server.separator.clone(),
                tenancy: tenancy(config),
            }),
            saved: Mutex::new(saved_by_name(config)),
            live: Mutex::new(BTreeMap::new()),
            engine: RwLock::new(None),
            building: Mutex::new(()),
            findings: Mutex::new(Vec::new()),
        }
    }

    /// The integrity findings of the tools the engine in force was built with.
    pub fn findings(&self) -> Vec<Examined> {
        self.findings.locked().clone()
    }

    fn set_findings(&self, found: Vec<Examined>) {
        *self.findings.locked() = found;
    }

    pub fn engine(&self) -> Option<Arc<Engine>> {
        self.engine.read_locked().clone()
    }

    /// Takes in the tools the catalog exposes now; true when anything changed.
    pub fn learn(&self, catalog: &Catalog) -> bool {
        let mut live = self.live.locked();
        let mut changed = false;
        for info in catalog_tools(catalog) {
            if live.get(&info.exposed) != Some(&info) {
                live.insert(info.exposed.clone(), info);
                changed = true;
            }
        }
        changed
    }

    /// The tools authorization would know with the backends of `catalog` in force: what
    /// it knows now of the backends that stay (`stays`, by name; a backend that is down
    /// keeps its last list), overlaid by what `catalog` exposes.
    pub fn live_with(
        &self,
        catalog: &Catalog,
        stays: impl Fn(&str) -> bool,
    ) -> BTreeMap<String, ToolInfo> {
        let mut live: BTreeMap<String, ToolInfo> = self
            .live
            .locked()
            .iter()
            .filter(|(_, t)| stays(&t.backend))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for info in catalog_tools(catalog) {
            live.insert(info.exposed.clone(), info);
        }
        live
    }

    /// What startup does: [`build_for_start`] over every tool known now, swapped in.
    pub fn start(&self) -> Result<(), Vec<PolicyError>> {
        let _one = self.building.locked();
        let (started, found) = {
            let inputs = self.inputs.read_locked();
            let (tools, found) = inputs.examine(self.known_tools());
            let started = build_for_start(
                &inputs.policies,
                &tools,
                &inputs.attributes,
                &inputs.tenancy,
            )?;
            (started, found)
        };
        if !started.strict_errors.is_empty() {
            tracing::warn!(errors = %describe(&started.strict_errors), "policies do not validate strictly against the tools available now");
        }
        self.swap(started.engine);
        self.set_findings(found);
        Ok(())
    }

    /// A reload: the policies and saved catalog of `config`, built as startup builds them
    /// against every tool known; nothing changes until [`AuthzState::commit`].
    /// The claim attributes stay those the proxy started with (`[auth]` needs a restart).
    /// With `live`, the tools of a new set of backends ([`AuthzState::live_with`]) take the
    /// place of those known now.
    pub fn replace(
        &self,
        config: &Config,
        live: Option<BTreeMap<String, ToolInfo>>,
    ) -> Result<Pending, Vec<PolicyError>> {
        let _one = self.building.locked();
        let policies = policy_sources(config);
        // At startup an unreadable catalog is a warning; in a reload it is a bad edit.
        if let Some(catalog) = &config.authz.catalog
            && let Err(e) = saved_tools(config, &catalog.text)
        {
            return Err(vec![PolicyError {
                file: catalog.file.clone(),
                line: 0,
                column: 0,
                message: e.to_string(),
            }]);
        }
        let saved = saved_by_name(config);
        let tools = match &live {
            Some(live) => overlay(&saved, live),
            None => self.with_live(&saved),
        };
        let settings = config.tools.clone();
        let (tools, findings) = examine(&settings, &config.server.separator, tools);
        let tenancy = tenancy(config);
        let started = {
            let inputs = self.inputs.read_locked();
            build_for_start(&policies, &tools, &inputs.attributes, &tenancy)?
        };
        if !started.strict_errors.is_empty() {
            tracing::warn!(errors = %describe(&started.strict_errors), "the reloaded policies do not validate strictly against the tools available now");
        }
        Ok(Pending {
            engine: Arc::new(started.engine),
            policies,
            saved,
            live,
            tools: settings,
            findings,
            tenancy,
        })
    }

    /// Makes a reload's engine and inputs the current ones (what the next build starts
    /// from); publishing it to calls is the hub's.
    pub fn commit(&self, pending: Pending) -> Arc<Engine> {
        let _one = self.building.locked();
        {
            let mut inputs = self.inputs.write_locked();
            inputs.policies = pending.policies;
            inputs.tools = pending.tools;
            inputs.tenancy = pending.tenancy;
        }
        self.set_findings(pending.findings);
        *self.saved.locked() = pending.saved;
        if let Some(live) = pending.live {
            *self.live.locked() = live;
        }
        self.swap_arc(pending.engine.clone());
        pending.engine
    }

    /// The saved catalog's tools, overlaid by what the backends listed.
    fn known_tools(&self) -> Vec<ToolInfo> {
        let saved = self.saved.locked().clone();
        self.with_live(&saved)
    }

    /// `saved`, overlaid by what the backends listed.
    fn with_live(&self, saved: &BTreeMap<String, ToolInfo>) -> Vec<ToolInfo> {
        overlay(saved, &self.live.locked())
    }

    fn swap(&self, engine: Engine) {
        self.swap_arc(Arc::new(engine));
    }

    fn swap_arc(&self, engine: Arc<Engine>) {
        for (tool, reason) in engine.quarantined() {
            tracing::warn!(%tool, %reason, "tool quarantined: hidden and denied");
        }
        *self.engine.write_locked() = Some(engine);
    }

    /// Builds a new engine and swaps it in; on error the previous engine stays.
    pub fn rebuild(&self, mode: BuildMode) -> Result<(), Vec<PolicyError>> {
        let _one = self.building.locked();
        let (engine, found) = {
            let inputs = self.inputs.read_locked();
            let (tools, found) = inputs.examine(self.known_tools());
            let engine = Engine::build_with_tenancy(
                &inputs.policies,
                &tools,
                &inputs.attributes,
                &inputs.tenancy,
                mode,
            )?;
            (engine, found)
        };
        self.swap(engine);
        self.set_findings(found);
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
    tenancy: &Tenancy,
) -> Result<Started, Vec<PolicyError>> {
    let build = |mode| Engine::build_with_tenancy(policies, tools, attributes, tenancy, mode);
    match build(BuildMode::Strict) {
        Ok(engine) => Ok(Started {
            engine,
            strict_errors: Vec::new(),
        }),
        Err(strict_errors) => build(BuildMode::Quarantine).map(|engine| Started {
            engine,
            strict_errors,
        }),
    }
}

/// What the operator's configuration of `backend` says about its tool `original`: which
/// hints count ([`vetted`]) and whether undeclared arguments are refused.
pub fn vet(info: &mut ToolInfo, backend: &BackendSettings, original: &str) {
    info.hints = vetted(info.hints, backend, original);
    info.tenants = backend.tenants.clone();
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
        if !config.tools.groups.is_empty() {
            t.groups = config.tools.groups_of(&t.exposed);
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
        definition: None,
        groups: Vec::new(),
        tenants: Vec::new(),
        held: None,
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
