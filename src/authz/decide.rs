//! Deciding one request: deny by default, and fail closed — an unknown or quarantined tool,
//! an argument that does not fit its type, a request the schema rejects and any policy
//! evaluation error all deny (Cedar skips a policy that errors, so an erroring `forbid`
//! would otherwise let the request through). Shadow policies are evaluated beside the
//! enforcing slice and reported, never enforced. Visibility asks the same question with the
//! arguments unknown.

use cedar_policy::{
    Context, Decision as CedarDecision, Entities, Entity, EntityUid, PolicySet, Request,
    RestrictedExpression,
};
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use super::argtype::RecordType;
use super::arguments::arguments_value;
use super::engine::{ActionEntry, Engine};
use super::entities::{
    PrincipalEntity, Types, backend_entity, backend_item_entity, history_value, principal_entity,
    request_value,
};
use super::memo::Prepared;
use super::slice::{Reads, Slice, effect};
use super::types::{Decision, Effect, Operation, RequestFacts, ShadowOutcome};
use crate::authn::principal::Principal;

/// The action, resource and arguments of an operation.
pub(super) struct Target<'e, 'a> {
    pub action: &'e ActionEntry,
    pub resource: EntityUid,
    /// The resource entity, unless the action's entities already hold it (tools).
    pub entity: Option<Entity>,
    /// The resource's backend, in its tenants (resources and prompts).
    pub backend: Option<Entity>,
    pub arguments: Option<(&'e RecordType, &'a Map<String, Value>)>,
}

/// The decision's context: the request facts and, for a tool, its typed arguments; a
/// denial when they cannot be built (arguments that do not fit the tool's declared types
/// are denied whether or not a policy reads them). Cedar gets only the parts some policy
/// `reads`: evaluating the record into a context is the costly part.
fn context_of(
    facts: &RequestFacts,
    arguments: Option<(&RecordType, &Map<String, Value>)>,
    reads: Reads,
) -> Result<Context, Box<Decision>> {
    let mut pairs = Vec::with_capacity(2);
    // Arguments that do not fit the tool's declared types are denied whether or not a
    // policy reads them.
    if let Some((ty, args)) = arguments {
        match arguments_value(ty, args) {
            Ok(value) if reads.arguments => pairs.push(("arguments".to_owned(), value)),
            Ok(_) => {}
            Err(e) => return Err(Box::new(Decision::invalid_arguments(e.to_string()))),
        }
    }
    if reads.history && arguments.is_some() {
        pairs.push(("history".to_owned(), history_value(&facts.history)));
    }
    if !reads.request {
        return if pairs.is_empty() {
            Ok(Context::empty())
        } else {
            Context::from_pairs(pairs)
                .map_err(|e| Box::new(Decision::deny_with("the context could not be built", e)))
        };
    }
    match request_value(facts) {
        Ok(value) => pairs.push(("request".to_owned(), value)),
        Err(e) => {
            return Err(Box::new(Decision::deny(format!(
                "the request facts are invalid: {e}"
            ))));
        }
    }
    Context::from_pairs(pairs)
        .map_err(|e| Box::new(Decision::deny_with("the context could not be built", e)))
}

impl Engine {
    /// Decides one request against the policies whose scope can match it.
    pub fn decide(
        &self,
        principal: &Principal,
        op: &Operation<'_>,
        facts: &RequestFacts,
    ) -> Decision {
        self.decide_in(principal, op, facts, false)
    }

    /// The same decision against the whole policy set, with the request also validated by
    /// Cedar against the schema (for tests proving slicing and typed construction exact).
    #[doc(hidden)]
    pub fn decide_unsliced(
        &self,
        principal: &Principal,
        op: &Operation<'_>,
        facts: &RequestFacts,
    ) -> Decision {
        self.decide_in(principal, op, facts, true)
    }

    /// Whether a tool belongs in this principal's tool list: false only when no arguments
    /// could make a call allowed (partial evaluation with the arguments unknown).
    pub fn tool_visible(&self, principal: &Principal, tool: &str, facts: &RequestFacts) -> bool {
        let (Some(entry), Some(action)) = (self.tools.get(tool), self.actions.get(tool)) else {
            return false;
        };
        let Ok(PrincipalEntity {
            uid,
            entity: principal,
            ..
        }) = principal_entity(&self.types, principal, &self.attributes)
        else {
            return false;
        };
        let Ok(request_facts) = request_value(facts) else {
            return false;
        };
        let context = Context::from_pairs([
            ("request".to_owned(), request_facts),
            (
                "arguments".to_owned(),
                RestrictedExpression::new_unknown("arguments"),
            ),
            // A list shows what some session could call; the call reads its own history.
            (
                "history".to_owned(),
                RestrictedExpression::new_unknown("history"),
            ),
        ]);
        // Shown whenever the answer is not a certain deny: the call is decided in full later.
        let Ok(context) = context else { return true };
        let request = Request::builder()
            .principal(uid)
            .action(action.uid.clone())
            .resource(entry.uid.clone())
            .context(context)
            .build();
        let Ok(entities) = action.entities.clone().add_entities([principal], None) else {
            return true;
        };
        let response =
            self.authorizer
                .is_authorized_partial(&request, &action.slice.enforcing, &entities);
        let certain_deny = response.decision() == Some(CedarDecision::Deny)
            && response.definitely_errored().next().is_none();
        !certain_deny
    }

    fn decide_in(
        &self,
        principal: &Principal,
        op: &Operation<'_>,
        facts: &RequestFacts,
        whole: bool,
    ) -> Decision {
        let target = match self.target(op) {
            Ok(target) => target,
            Err(reason) => return Decision::deny(reason),
        };
        // The caller's entity merged into the action's entities; memoised per caller and
        // tool on the hot path (the whole-set reference path always builds it afresh).
        let fresh = || -> Result<Prepared, Box<Decision>> {
            let p = principal_entity(&self.types, principal, &self.attributes)
                .map_err(|e| Box::new(Decision::deny(e.to_string())))?;
            let entities = target
                .action
                .entities
                .clone()
                .add_entities(
                    std::iter::once(p.entity)
                        .chain(target.entity)
                        .chain(target.backend),
                    None,
                )
                .map_err(|e| Box::new(Decision::deny_with("the entities could not be built", e)))?;
            Ok(Prepared {
                uid: p.uid,
                parents: p.parents,
                entities,
                merged: None,
                decided: OnceLock::new(),
            })
        };
        let prepared = match op {
            Operation::CallTool { tool, .. } if !whole => {
                self.memo.get_or_try(principal, tool, || {
                    // The caller's buckets of the slice as one set: one evaluator call per
                    // decision instead of one per bucket.
                    let mut p = fresh()?;
                    p.merged = merge(
                        target
                            .action
                            .slice
                            .by_principal
                            .buckets(&p.uid, p.parents.iter()),
                    );
                    Ok(p)
                })
            }
            _ => fresh().map(Arc::new),
        };
        let principal = match prepared {
            Ok(p) => p,
            Err(denied) => return *denied,
        };
        let reads = if whole {
            Reads::ALL
        } else {
            target.action.slice.reads
        };
        let context = match context_of(facts, target.arguments, reads) {
            Ok(c) => c,
            Err(denied) => return *denied,
        };
        // A tool whose policies read no context is decided once per caller (the memo's
        // entry goes with the engine, so a reload decides afresh). Its arguments were
        // checked against their types just above, on every call.
        let once = !whole && matches!(op, Operation::CallTool { .. }) && reads == Reads::NONE;
        if once && let Some(decided) = principal.decided.get() {
            return decided.clone();
        }
        // Without schema validation a type-mismatched `forbid` would be skipped into an
        // allow. The context is typed by construction (arguments along the tool's declared
        // type, request facts from our own fields), so the hot path skips Cedar's second
        // check (~5 µs); the whole-set reference path keeps it, and the property test that
        // compares the two proves that skipping it never changes a decision.
        let schema = whole.then_some(&self.schema);
        let request = match Request::new(
            principal.uid.clone(),
            target.action.uid.clone(),
            target.resource,
            context,
            schema,
        ) {
            Ok(r) => r,
            Err(e) => return Decision::deny_with("the request does not fit the schema", e),
        };
        let entities = &principal.entities;
        let (slice, sets) = if whole {
            (&self.whole, vec![&self.whole.enforcing])
        } else if let Some(merged) = &principal.merged {
            (&target.action.slice, vec![merged])
        } else {
            let slice = &target.action.slice;
            (
                slice,
                slice
                    .by_principal
                    .buckets(&principal.uid, principal.parents.iter()),
            )
        };
        let decision = self.evaluate(&request, entities, &sets, slice);
        if once {
            principal.decided.get_or_init(|| decision.clone());
        }
        decision
    }

    /// Evaluates the enforcing `sets` (disjoint parts of one policy set) and combines them as
    /// Cedar would the whole: any satisfied forbid denies and is determining; otherwise the
    /// satisfied permits allow. Then the shadow policies of `slice`.
    fn evaluate(
        &self,
        request: &Request,
        entities: &Entities,
        sets: &[&PolicySet],
        slice: &Slice,
    ) -> Decision {
        let mut errors = Vec::new();
        let mut failed = Vec::new();
        let mut permits = Vec::new();
        let mut forbids = Vec::new();
        for set in sets {
            let response = self.authorizer.is_authorized(request, set, entities);
            let diagnostics = response.diagnostics();
            for e in diagnostics.errors() {
                errors.push(e.to_string());
                let cedar_policy::AuthorizationError::PolicyEvaluationError(p) = e;
                failed.push(p.policy_id().to_string());
            }
            let satisfied = diagnostics.reason().map(|id| id.to_string());
            match response.decision() {
                CedarDecision::Allow => permits.extend(satisfied),
                CedarDecision::Deny => forbids.extend(satisfied),
            }
        }
        let cedar_allows = forbids.is_empty() && !permits.is_empty();
        let allowed = cedar_allows && errors.is_empty();
        let forbidden = !forbids.is_empty();
        let mut determining = if forbidden { forbids } else { permits };
        determining.sort();
        errors.sort();
        let reason = if !errors.is_empty() {
            failed.sort();
            failed.dedup();
            determining = failed;
            format!(
                "{} could not be evaluated",
                quoted("policy", "policies", &determining)
            )
        } else if allowed {
            format!("allowed by {}", quoted("policy", "policies", &determining))
        } else if forbidden {
            format!("denied by {}", quoted("policy", "policies", &determining))
        } else {
            "no policy permits this request".to_owned()
        };

        // Shadow: satisfied shadow policies, and whether enforcing them would change this.
        let mut shadow = Vec::new();
        let mut shadow_errors = Vec::new();
        let mut shadow_forbids = false;
        let mut shadow_permits = false;
        for (set, fx) in [
            (&slice.shadow_forbids, Effect::Forbid),
            (&slice.shadow_permits, Effect::Permit),
        ] {
            if set.is_empty() {
                continue;
            }
            let r = self.authorizer.is_authorized(request, set, entities);
            shadow_errors.extend(r.diagnostics().errors().map(|e| e.to_string()));
            for id in r.diagnostics().reason() {
                match fx {
                    Effect::Forbid => shadow_forbids = true,
                    Effect::Permit => shadow_permits = true,
                }
                let policy = set.policy(id).map_or(fx, effect);
                shadow.push(ShadowOutcome {
                    policy: id.to_string(),
                    effect: policy,
                    would_change: false,
                });
            }
        }
        let combined = errors.is_empty()
            && shadow_errors.is_empty()
            && !forbidden
            && !shadow_forbids
            && (cedar_allows || shadow_permits);
        let would_change = combined != allowed;
        for s in &mut shadow {
            s.would_change = would_change;
        }
        shadow.sort_by(|a, b| a.policy.cmp(&b.policy));
        let approval = if allowed {
            self.approval_for(&determining)
        } else {
            Vec::new()
        };
        Decision {
            allowed,
            determining,
            errors,
            shadow,
            shadow_errors,
            reason,
            invalid_arguments: false,
            approval,
        }
    }

    /// The roles an allow by `permits` waits for: it needs a person's approval when every
    /// permit that allowed it asks for one (`@approval`); empty otherwise.
    pub(super) fn approval_for(&self, permits: &[String]) -> Vec<String> {
        if self.approvals.is_empty() {
            return Vec::new();
        }
        let roles: Option<Vec<String>> = permits
            .iter()
            .map(|id| self.approvals.get(id).cloned())
            .collect();
        let mut roles = roles.unwrap_or_default();
        roles.sort();
        roles.dedup();
        roles
    }

    pub(super) fn target<'e, 'a>(&'e self, op: &Operation<'a>) -> Result<Target<'e, 'a>, String> {
        let types = &self.types;
        let builtin = |name: &str| {
            self.actions
                .get(name)
                .ok_or_else(|| format!("action `{name}` is unknown"))
        };
        let tenants = |backend: &str| self.tenancy.get(backend).map_or(&[][..], Vec::as_slice);
        let item = |action: &str,
                    ty: &cedar_policy::EntityTypeName,
                    key: &str,
                    id: &str,
                    backend: &str| {
            let tenants = tenants(backend);
            let entity =
                backend_item_entity(ty, &types.backend, key, id, backend, tenants.is_empty())
                    .map_err(|e| format!("the resource could not be built: {e}"))?;
            Ok(Target {
                action: builtin(action)?,
                resource: Types::uid(ty, id),
                entity: Some(entity),
                backend: Some(
                    backend_entity(types, backend, tenants)
                        .map_err(|e| format!("the backend could not be built: {e}"))?,
                ),
                arguments: None,
            })
        };
        let gateway = |action: &str| {
            Ok(Target {
                action: builtin(action)?,
                resource: self.gateway.0.clone(),
                entity: Some(self.gateway.1.clone()),
                backend: None,
                arguments: None,
            })
        };
        let backend = |action: &str, backend: &str| {
            Ok(Target {
                action: builtin(action)?,
                resource: Types::uid(&types.backend, backend),
                entity: Some(
                    backend_entity(types, backend, tenants(backend))
                        .map_err(|e| format!("the backend could not be built: {e}"))?,
                ),
                backend: None,
                arguments: None,
            })
        };
        match *op {
            Operation::CallTool { tool, arguments } => {
                if let Some((_, why)) = self.quarantined.iter().find(|(t, _)| t == tool) {
                    return Err(format!("tool `{tool}` is quarantined: {why}"));
                }
                let (Some(entry), Some(action)) = (self.tools.get(tool), self.actions.get(tool))
                else {
                    return Err(format!("unknown tool `{tool}`"));
                };
                Ok(Target {
                    action,
                    resource: entry.uid.clone(),
                    entity: None,
                    backend: None,
                    arguments: Some((&entry.arguments, arguments)),
                })
            }
            Operation::ListTools => gateway("list_tools"),
            Operation::ListPrompts => gateway("list_prompts"),
            Operation::ListResources => gateway("list_resources"),
            Operation::SetLogLevel => gateway("set_log_level"),
            Operation::Admin(action) => gateway(action.action()),
            Operation::ReadResource { backend, uri } => {
                item("read_resource", &types.resource, "uri", uri, backend)
            }
            Operation::Subscribe { backend, uri } => {
                item("subscribe", &types.resource, "uri", uri, backend)
            }
            Operation::GetPrompt { backend, prompt } => {
                item("get_prompt", &types.prompt, "name", prompt, backend)
            }
            Operation::Complete { backend: b } => backend("complete", b),
            Operation::CreateMessage { backend: b } => backend("create_message", b),
            Operation::Elicit { backend: b } => backend("elicit", b),
            Operation::ListRoots { backend: b } => backend("list_roots", b),
        }
    }
}

/// One policy set holding every policy of `sets` (disjoint parts of one slice); `None` when
/// they cannot be combined (then each is evaluated on its own, with the same result).
pub(super) fn merge(sets: Vec<&PolicySet>) -> Option<PolicySet> {
    let mut merged = PolicySet::new();
    for set in sets {
        for policy in set.policies() {
            merged.add(policy.clone()).ok()?;
        }
        if set.templates().next().is_some() {
            return None;
        }
    }
    Some(merged)
}

/// "policy `a`" / "policies `a`, `b`".
pub(super) fn quoted(one: &str, many: &str, ids: &[String]) -> String {
    let list = ids
        .iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() == 1 {
        format!("{one} {list}")
    } else {
        format!("{many} {list}")
    }
}

#[cfg(test)]
mod tests;
