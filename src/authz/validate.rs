//! Strict validation of every policy against the schema (warnings count as errors: Cedar
//! only warns about `action == <group>`, which never matches), and quarantine: when a
//! backend changes a tool's schema under running policies, a policy that now fails only
//! because of tools it names explicitly is narrowed to the other actions it names (or
//! dropped when none are left) and those tools are quarantined — hidden and denied — rather
//! than failing the whole reload or, worse, skipping a `forbid` for everything else.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use cedar_policy::{
    ActionConstraint, EntityUid, Policy, PolicySet, Schema, ValidationMode, Validator,
};
use serde_json::{Value, json};

use super::entities::Types;
use super::policies::{Loaded, diagnostic_error, line_column};
use super::types::{BuildMode, PolicyError, PolicySource};

/// The policies that passed, and what quarantine did to get there.
#[derive(Debug, Default)]
pub(crate) struct Validated {
    pub policies: Vec<Loaded>,
    /// (tool, reason)
    pub quarantined: Vec<(String, String)>,
    /// (policy id, what was done to it)
    pub adjusted: Vec<(String, String)>,
}

/// Which tool actions each request action or group covers.
#[derive(Debug, Default)]
pub(crate) struct Coverage {
    /// Every tool action.
    pub tools: HashSet<String>,
    /// Group and built-in action ids to the tools they cover (none for built-ins).
    pub groups: HashMap<String, Vec<String>>,
}

/// Builds a schema holding only the named tools (`None` if it cannot).
pub(crate) type Subset<'a> = dyn Fn(&BTreeSet<&str>) -> Option<Schema> + 'a;

/// Validates `loaded` strictly; in quarantine mode, attributes failures to tools.
pub(crate) fn validate(
    schema: &Schema,
    subset: &Subset<'_>,
    sources: &[PolicySource],
    loaded: Vec<Loaded>,
    coverage: &Coverage,
    types: &Types,
    mode: BuildMode,
) -> Result<Validated, Vec<PolicyError>> {
    let tools = &coverage.tools;
    let validator = Validator::new(schema.clone());
    let failures = failures(&validator, subset, sources, &loaded, coverage, types)?;
    if failures.is_empty() {
        return Ok(Validated {
            policies: loaded,
            ..Validated::default()
        });
    }
    if mode == BuildMode::Strict {
        return Err(failures.into_values().flatten().collect());
    }
    let mut errors = Vec::new();
    let mut out = Validated::default();
    let mut fixes: HashMap<usize, Option<Policy>> = HashMap::new();
    for (i, policy_errors) in failures {
        let l = &loaded[i];
        match attribute(&validator, &l.policy, tools, types) {
            Some(Attribution {
                implicated,
                narrowed,
                message,
            }) => {
                let (line, _) = line_column(&sources[l.source].text, l.offset);
                let place = format!("{}:{line}", sources[l.source].file);
                for tool in &implicated {
                    if !out.quarantined.iter().any(|(t, _)| t == tool) {
                        out.quarantined.push((
                            tool.clone(),
                            format!(
                                "policy `{}` ({place}) no longer validates against the tool's schema: {message}",
                                l.id
                            ),
                        ));
                    }
                }
                let names = implicated
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>();
                let what = if narrowed.is_some() {
                    "no longer applies to"
                } else {
                    "dropped: it only applied to"
                };
                out.adjusted.push((
                    l.id.clone(),
                    format!("{what} quarantined {}", names.join(", ")),
                ));
                fixes.insert(i, narrowed);
            }
            None => errors.extend(policy_errors),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for (i, mut l) in loaded.into_iter().enumerate() {
        match fixes.remove(&i) {
            None => out.policies.push(l),
            Some(Some(narrowed)) => {
                l.policy = narrowed;
                out.policies.push(l);
            }
            Some(None) => {}
        }
    }
    Ok(out)
}

/// The problems of every failing policy, by index. Policies scoped to named tools are first
/// checked against a schema of just those tools; only those that fail there (and policies
/// with broader scopes) are checked against the full schema, whose verdict is the one kept.
fn failures(
    validator: &Validator,
    subset: &Subset<'_>,
    sources: &[PolicySource],
    loaded: &[Loaded],
    coverage: &Coverage,
    types: &Types,
) -> Result<BTreeMap<usize, Vec<PolicyError>>, Vec<PolicyError>> {
    let mut full = Vec::new();
    let mut groups: BTreeMap<BTreeSet<&str>, Vec<usize>> = BTreeMap::new();
    for (i, l) in loaded.iter().enumerate() {
        match covered_tools(&l.policy, coverage, types) {
            Some(key) => groups.entry(key).or_default().push(i),
            None => full.push(i),
        }
    }
    for (key, members) in groups {
        match subset(&key) {
            Some(reduced) => {
                let reduced = Validator::new(reduced);
                full.extend(check(&reduced, sources, loaded, &members)?.into_keys());
            }
            None => full.extend(members),
        }
    }
    full.sort_unstable();
    check(validator, sources, loaded, &full)
}

/// The tools a policy's action scope can cover, when that is known and a minority of the
/// catalog (otherwise the full schema is as cheap).
fn covered_tools<'c>(
    policy: &Policy,
    coverage: &'c Coverage,
    types: &Types,
) -> Option<BTreeSet<&'c str>> {
    let uids = match policy.action_constraint() {
        ActionConstraint::Any => return None,
        ActionConstraint::Eq(uid) => vec![uid],
        ActionConstraint::In(uids) => uids,
    };
    let mut covered = BTreeSet::new();
    for uid in &uids {
        if uid.type_name() != &types.action {
            return None;
        }
        let id = uid.id().unescaped();
        if let Some(tool) = coverage.tools.get(id) {
            covered.insert(tool.as_str());
        } else {
            covered.extend(coverage.groups.get(id)?.iter().map(String::as_str));
        }
    }
    (covered.len() * 2 <= coverage.tools.len()).then_some(covered)
}

/// Validates the policies at `indices` together; their problems by index.
fn check(
    validator: &Validator,
    sources: &[PolicySource],
    loaded: &[Loaded],
    indices: &[usize],
) -> Result<BTreeMap<usize, Vec<PolicyError>>, Vec<PolicyError>> {
    let mut failures: BTreeMap<usize, Vec<PolicyError>> = BTreeMap::new();
    if indices.is_empty() {
        return Ok(failures);
    }
    let set = PolicySet::from_policies(indices.iter().map(|&i| loaded[i].policy.clone()))
        .map_err(|e| vec![plain(format!("the policy set could not be built: {e}"))])?;
    let result = validator.validate(&set, ValidationMode::Strict);
    let index: HashMap<String, usize> =
        indices.iter().map(|&i| (loaded[i].id.clone(), i)).collect();
    let diagnostics = result
        .validation_errors()
        .map(|e| (e.policy_id(), e as &dyn miette::Diagnostic))
        .chain(
            result
                .validation_warnings()
                .map(|w| (w.policy_id(), w as &dyn miette::Diagnostic)),
        );
    for (id, diag) in diagnostics {
        let Some(&i) = index.get(&id.to_string()) else {
            return Err(vec![plain(format!(
                "validation named an unknown policy `{id}`"
            ))]);
        };
        failures
            .entry(i)
            .or_default()
            .push(diagnostic_error(&sources[loaded[i].source], diag));
    }
    Ok(failures)
}

struct Attribution {
    implicated: Vec<String>,
    /// The policy without the implicated actions; `None` when nothing is left.
    narrowed: Option<Policy>,
    message: String,
}

/// Finds the tools a failing policy fails because of: only tool actions the policy names in
/// its action scope, each checked on its own, and only if the policy is valid without them.
fn attribute(
    validator: &Validator,
    policy: &Policy,
    tools: &HashSet<String>,
    types: &Types,
) -> Option<Attribution> {
    let named: Vec<EntityUid> = match policy.action_constraint() {
        ActionConstraint::Any => return None,
        ActionConstraint::Eq(uid) => vec![uid],
        ActionConstraint::In(uids) => uids,
    };
    let mut implicated = Vec::new();
    let mut rest = Vec::new();
    let mut message = None;
    for uid in named {
        let is_tool = uid.type_name() == &types.action && tools.contains(uid.id().unescaped());
        if !is_tool {
            rest.push(uid);
            continue;
        }
        let problems = problems(validator, &restrict(policy, std::slice::from_ref(&uid))?);
        match problems.into_iter().next() {
            Some(first) => {
                message.get_or_insert(first);
                implicated.push(uid.id().unescaped().to_owned());
            }
            None => rest.push(uid),
        }
    }
    if implicated.is_empty() {
        return None;
    }
    let narrowed = if rest.is_empty() {
        None
    } else {
        let narrowed = restrict(policy, &rest)?;
        if !problems(validator, &narrowed).is_empty() {
            return None;
        }
        Some(narrowed)
    };
    Some(Attribution {
        implicated,
        narrowed,
        message: message.unwrap_or_default(),
    })
}

/// The policy with its action scope replaced by `action in [actions]`.
fn restrict(policy: &Policy, actions: &[EntityUid]) -> Option<Policy> {
    let mut est = policy.to_json().ok()?;
    let entities: Vec<Value> = actions
        .iter()
        .map(|a| json!({ "type": a.type_name().to_string(), "id": a.id().unescaped() }))
        .collect();
    *est.get_mut("action")? = json!({ "op": "in", "entities": entities });
    Policy::from_json(Some(policy.id().clone()), est).ok()
}

/// Error and warning messages of one policy.
fn problems(validator: &Validator, policy: &Policy) -> Vec<String> {
    let Ok(set) = PolicySet::from_policies([policy.clone()]) else {
        return vec!["the policy could not be checked".to_owned()];
    };
    let result = validator.validate(&set, ValidationMode::Strict);
    result
        .validation_errors()
        .map(|e| e.to_string())
        .chain(result.validation_warnings().map(|w| w.to_string()))
        .collect()
}

fn plain(message: String) -> PolicyError {
    PolicyError {
        file: String::new(),
        line: 0,
        column: 0,
        message,
    }
}
