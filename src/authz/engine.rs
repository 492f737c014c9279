//! Building the engine: everything slow happens here, once per load or reload — schema
//! generation, parsing, strict validation, quarantine, slicing, precomputed entities — so
//! that a decision only converts the request and evaluates its slice. The engine is immutable;
//! a reload builds a new one and swaps it in whole.

use std::collections::{BTreeSet, HashMap, HashSet};

use cedar_policy::{Authorizer, Entities, Entity, EntityUid, Schema};

use super::argtype::{RecordType, arguments_type};
use super::build::{accept_tools, coverage, general, policy_hash, request_actions, sha256_hex};
use super::entities::{GATEWAY_ID, TENANT_ATTRIBUTE, Types};
use super::memo::Memo;
use super::policies::{self, line_column};
use super::schema::{self, ToolSchema};
use super::slice::Slice;
use super::types::{AttrType, AttributeDecl, BuildMode, PolicyError, PolicySource, ToolInfo};
use super::validate;

/// A request action: the entities every request for it needs (the action with its groups,
/// and for a tool the tool in its backend; the principal is added per request, which is
/// several times cheaper than building the store anew) and its slice.
pub(crate) struct ActionEntry {
    pub uid: EntityUid,
    pub entities: Entities,
    pub slice: Slice,
}

/// A callable tool: its argument type and its resource entity's id.
pub(crate) struct ToolEntry {
    pub arguments: RecordType,
    pub uid: EntityUid,
    /// The `[tools.groups]` it is in.
    pub groups: Vec<String>,
}

/// The Cedar authorization engine for one configuration, policy set and tool catalog.
pub struct Engine {
    pub(crate) types: Types,
    pub(crate) schema: Schema,
    pub(crate) schema_text: String,
    pub(crate) actions: HashMap<String, ActionEntry>,
    pub(crate) tools: HashMap<String, ToolEntry>,
    pub(crate) quarantined: Vec<(String, String)>,
    pub(crate) untyped: Vec<(String, String)>,
    pub(crate) adjusted: Vec<(String, String)>,
    pub(crate) locations: HashMap<String, (String, usize)>,
    /// Permits that allow only with a person's approval: policy id -> the approvers' role.
    pub(crate) approvals: HashMap<String, String>,
    pub(crate) attributes: HashMap<String, AttrType>,
    pub(crate) gateway: (EntityUid, Entity),
    pub(crate) whole: Slice,
    pub(crate) policy_count: usize,
    pub(crate) policy_hash: String,
    pub(crate) schema_hash: String,
    pub(crate) authorizer: Authorizer,
    /// Principal entities merged into tool actions' entities, per caller and tool.
    pub(crate) memo: Memo,
    /// Backend -> the tenants it belongs to (absent or empty: shared).
    pub(crate) tenancy: HashMap<String, Vec<String>>,
}

/// Which backends belong to which tenants: backend -> tenants (none: shared by all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenancy(pub HashMap<String, Vec<String>>);

impl Tenancy {
    /// As the tools say.
    pub fn of(tools: &[ToolInfo]) -> Tenancy {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for tool in tools {
            map.entry(tool.backend.clone()).or_insert_with(|| {
                let mut t = tool.tenants.clone();
                t.sort();
                t
            });
        }
        Tenancy(map)
    }

    /// From backend names and their tenants.
    pub fn from_backends<'a>(
        backends: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> Tenancy {
        Tenancy(
            backends
                .into_iter()
                .map(|(b, t)| {
                    let mut t = t.to_vec();
                    t.sort();
                    (b.to_owned(), t)
                })
                .collect(),
        )
    }
}

impl Engine {
    /// Builds the engine, or reports every problem at once. Which backends belong to
    /// which tenants comes from the tools' `tenants`.
    pub fn build(
        policies: &[PolicySource],
        tools: &[ToolInfo],
        attributes: &[AttributeDecl],
        mode: BuildMode,
    ) -> Result<Engine, Vec<PolicyError>> {
        // The tools' word is what `build_with_tenancy` falls back on.
        Engine::build_with_tenancy(policies, tools, attributes, &Tenancy::default(), mode)
    }

    /// [`Engine::build`] with the configuration's word on which backends belong to which
    /// tenants (it covers backends with no tools, whose resources and prompts are theirs
    /// too, and wins over what tools say).
    pub fn build_with_tenancy(
        policies: &[PolicySource],
        tools: &[ToolInfo],
        attributes: &[AttributeDecl],
        tenancy: &Tenancy,
        mode: BuildMode,
    ) -> Result<Engine, Vec<PolicyError>> {
        let types = Types::new();
        let mut errors = Vec::new();
        // The configuration's word first; the tools' for backends it does not name (a saved
        // catalog's, a policy set checked offline).
        let mut tenancy = tenancy.clone();
        for (backend, tenants) in Tenancy::of(tools).0 {
            tenancy.0.entry(backend).or_insert(tenants);
        }
        if attributes.iter().any(|a| a.name == TENANT_ATTRIBUTE) {
            errors.push(general(format!(
                "principal attribute `{TENANT_ATTRIBUTE}` is the principal's tenant (`principal.tenant`): name the claim attribute otherwise"
            )));
        }
        let mut declared = HashMap::new();
        for a in attributes {
            if declared.insert(a.name.clone(), a.ty).is_some() {
                errors.push(general(format!(
                    "principal attribute `{}` is declared twice",
                    a.name
                )));
            }
        }
        let mut quarantined = Vec::new();
        let accepted = accept_tools(tools, mode, &mut quarantined, &mut errors);
        let mut untyped = Vec::new();
        let typed: Vec<(&ToolInfo, RecordType)> = accepted
            .iter()
            .map(|t| {
                let mut args = arguments_type(&t.exposed, &t.input_schema, &mut untyped);
                if t.refuse_undeclared {
                    args.close_all();
                }
                (*t, args)
            })
            .collect();
        let tool_schemas: Vec<ToolSchema<'_>> = typed
            .iter()
            .map(|(t, args)| ToolSchema {
                exposed: &t.exposed,
                backend: &t.backend,
                arguments: args,
                read_only: t.hints.read_only == Some(true),
                groups: &t.groups,
            })
            .collect();
        let builder = schema::Builder::new(attributes).map_err(|e| vec![general(e.to_string())])?;
        let built = builder
            .full(&tool_schemas)
            .map_err(|e| vec![general(e.to_string())]);
        let loaded = policies::load(policies);
        let (built, loaded) = match (built, loaded) {
            (Ok(b), Ok(l)) if errors.is_empty() => (b, l),
            (b, l) => {
                errors.extend(b.err().into_iter().flatten());
                errors.extend(l.err().into_iter().flatten());
                return Err(errors);
            }
        };
        let coverage = coverage(&tool_schemas);
        let by_name: HashMap<&str, &ToolSchema<'_>> =
            tool_schemas.iter().map(|t| (t.exposed, t)).collect();
        let subset = |names: &BTreeSet<&str>| {
            let tools: Vec<&ToolSchema<'_>> = names
                .iter()
                .map(|n| by_name.get(n).copied())
                .collect::<Option<_>>()?;
            builder.subset(tools.into_iter()).ok()
        };
        let validated = validate::validate(
            &built.schema,
            &subset,
            policies,
            loaded,
            &coverage,
            &types,
            mode,
        )?;
        quarantined.extend(validated.quarantined);
        let out_of_service: HashSet<&str> = quarantined.iter().map(|(t, _)| t.as_str()).collect();

        let prepared = request_actions(
            &types,
            &built.schema,
            typed,
            &out_of_service,
            &validated.policies,
            &tenancy.0,
        )?;

        let locations = validated
            .policies
            .iter()
            .map(|l| {
                let source = &policies[l.source];
                let (line, _) = line_column(&source.text, l.offset);
                (l.id.clone(), (source.file.clone(), line))
            })
            .collect();
        let approvals = validated
            .policies
            .iter()
            .filter_map(|l| Some((l.id.clone(), l.approval.clone()?)))
            .collect();
        let whole = Slice::of(&validated.policies).map_err(|e| vec![general(e.to_string())])?;
        let gateway_uid = Types::uid(&types.gateway, GATEWAY_ID);
        Ok(Engine {
            gateway: (gateway_uid.clone(), Entity::with_uid(gateway_uid)),
            schema_hash: sha256_hex(built.text.as_bytes()),
            policy_hash: policy_hash(&validated.policies),
            policy_count: validated.policies.len(),
            whole,
            schema: built.schema,
            schema_text: built.text,
            types,
            actions: prepared.actions,
            tools: prepared.tools,
            quarantined,
            untyped,
            adjusted: validated.adjusted,
            locations,
            approvals,
            attributes: declared,
            authorizer: Authorizer::new(),
            memo: Memo::default(),
            tenancy: tenancy.0,
        })
    }

    /// Whether any policy reads `context.history` (only then is history kept).
    pub fn keeps_history(&self) -> bool {
        self.whole.reads.history
    }

    /// Whether a policy that can match a call of `tool` reads `context.history`.
    pub fn reads_history(&self, tool: &str) -> bool {
        self.actions
            .get(tool)
            .is_some_and(|a| a.slice.reads.history)
    }

    /// The `[tools.groups]` of `tool`.
    pub fn tool_groups(&self, tool: &str) -> &[String] {
        self.tools.get(tool).map_or(&[], |t| t.groups.as_slice())
    }

    /// Tools that are hidden and denied, with the reason.
    pub fn quarantined(&self) -> &[(String, String)] {
        &self.quarantined
    }

    /// Arguments left out of the generated types (`tool.argument` path, why).
    pub fn untyped(&self) -> &[(String, String)] {
        &self.untyped
    }

    /// Policies that quarantine narrowed or dropped (policy id, what was done).
    pub fn adjusted_policies(&self) -> &[(String, String)] {
        &self.adjusted
    }

    /// The full schema (base and generated), in cedarschema syntax.
    pub fn schema_text(&self) -> String {
        self.schema_text.clone()
    }

    /// Where a policy is defined: its file and 1-based line.
    pub fn policy_location(&self, id: &str) -> Option<(String, usize)> {
        self.locations.get(id).cloned()
    }

    /// Number of policies in force (enforcing and shadow).
    /// Every policy's id (enforcing and shadow), sorted.
    pub fn policy_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.locations.keys().cloned().collect();
        ids.sort();
        ids
    }

    pub fn policy_count(&self) -> usize {
        self.policy_count
    }

    /// Hex SHA-256 of the effective policy set (ids, modes and texts).
    pub fn policy_set_hash(&self) -> String {
        self.policy_hash.clone()
    }

    /// Hex SHA-256 of `schema_text()`.
    pub fn schema_hash(&self) -> String {
        self.schema_hash.clone()
    }

    /// How many policies a decision for this action evaluates (tool name or built-in action).
    pub fn slice_len(&self, action: &str) -> Option<usize> {
        self.actions.get(action).map(|a| a.slice.len())
    }
}
