//! Slicing: Cedar has no index and costs about a microsecond per policy evaluated, so at load
//! time each request action gets the subset of policies whose scope can match it. A policy
//! leaves a slice only when its action scope cannot match that action, or its resource scope
//! cannot match the action's resource (a tool action's resource is fixed: the tool in its
//! backend). Anything not understood is kept: a slice may hold too much, never too little.

use std::collections::{HashMap, HashSet};

use cedar_policy::{
    ActionConstraint, EntityTypeName, EntityUid, Policy, PolicySet, PrincipalConstraint,
    ResourceConstraint,
};

use super::policies::{Loaded, Mode};
use super::types::Effect;

/// The resource a request action is asked about.
#[derive(Debug, Clone)]
pub(crate) enum ResourceShape {
    /// Always this entity, with these ancestors (a tool action: the tool in its backend).
    Fixed {
        uid: EntityUid,
        ancestors: Vec<EntityUid>,
    },
    /// Some entity of one of these types.
    OfTypes(Vec<EntityTypeName>),
}

/// One request action, as slicing needs it.
pub(crate) struct ActionScope<'a> {
    pub uid: &'a EntityUid,
    /// All its groups, transitively.
    pub ancestors: &'a HashSet<EntityUid>,
    pub resource: &'a ResourceShape,
}

/// The policies one decision for an action evaluates.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slice {
    /// Every enforcing policy that can match the action.
    pub enforcing: PolicySet,
    /// The same policies split by principal scope: a decision evaluates only the buckets its
    /// principal can match (most rules name a role, and each costs a microsecond).
    pub by_principal: PrincipalIndex,
    pub shadow_permits: PolicySet,
    pub shadow_forbids: PolicySet,
    /// Which parts of `context` any of them reads: a decision needs only those (evaluating
    /// a record into a context is the costly part of building a request).
    pub reads: Reads,
}

/// Enforcing policies by principal scope; every policy is in exactly one bucket.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrincipalIndex {
    /// `principal` unconstrained.
    any: PolicySet,
    /// `principal is T`.
    by_type: HashMap<EntityTypeName, PolicySet>,
    /// `principal == E`, `principal in E` and `principal is T in E`, by `E`.
    by_entity: HashMap<EntityUid, PolicySet>,
}

impl PrincipalIndex {
    fn of(policies: &[Policy]) -> Result<PrincipalIndex, SliceError> {
        let mut any = Vec::new();
        let mut by_type: HashMap<EntityTypeName, Vec<Policy>> = HashMap::new();
        let mut by_entity: HashMap<EntityUid, Vec<Policy>> = HashMap::new();
        for p in policies {
            match p.principal_constraint() {
                PrincipalConstraint::Any => any.push(p.clone()),
                PrincipalConstraint::Is(t) => by_type.entry(t).or_default().push(p.clone()),
                PrincipalConstraint::Eq(e)
                | PrincipalConstraint::In(e)
                | PrincipalConstraint::IsIn(_, e) => {
                    by_entity.entry(e).or_default().push(p.clone());
                }
            }
        }
        Ok(PrincipalIndex {
            any: set(any)?,
            by_type: by_type
                .into_iter()
                .map(|(k, v)| Ok((k, set(v)?)))
                .collect::<Result<_, _>>()?,
            by_entity: by_entity
                .into_iter()
                .map(|(k, v)| Ok((k, set(v)?)))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The buckets a principal can match: its own id and its parents (the principal entity
    /// is built with all its ancestors as direct parents: roles and tenant form no hierarchy).
    pub(crate) fn buckets<'s, 'u>(
        &'s self,
        principal: &'u EntityUid,
        parents: impl Iterator<Item = &'u EntityUid>,
    ) -> Vec<&'s PolicySet> {
        let mut out = Vec::with_capacity(4);
        if !self.any.is_empty() {
            out.push(&self.any);
        }
        out.extend(self.by_type.get(principal.type_name()));
        out.extend(
            std::iter::once(principal)
                .chain(parents)
                .filter_map(|e| self.by_entity.get(e)),
        );
        out
    }
}

/// The parts of a request's `context` that policies read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reads {
    /// `context.arguments`.
    pub arguments: bool,
    /// `context.request`.
    pub request: bool,
    /// `context.history`.
    pub history: bool,
}

impl Reads {
    /// No part: the decision does not depend on the context.
    pub const NONE: Reads = Reads {
        arguments: false,
        request: false,
        history: false,
    };

    /// Every part.
    pub const ALL: Reads = Reads {
        arguments: true,
        request: true,
        history: true,
    };

    /// Adds what the policy `text` reads. Conservative: each occurrence of the word
    /// `context` (in a comment or a string too) counts, as reading the part it is followed
    /// by (`context.arguments`, `context.request`), and as reading both when anything else
    /// follows (`context has …`, `context["…"]`, the word in a string). A policy cannot
    /// read the context without writing the word.
    pub fn add(&mut self, text: &str) {
        for (at, _) in text.match_indices("context") {
            let after = text[at + "context".len()..].trim_start();
            let part = after
                .strip_prefix('.')
                .map(str::trim_start)
                .and_then(|rest| {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    match name.as_str() {
                        "arguments" => Some(Reads {
                            arguments: true,
                            ..Reads::default()
                        }),
                        "request" => Some(Reads {
                            request: true,
                            ..Reads::default()
                        }),
                        "history" => Some(Reads {
                            history: true,
                            ..Reads::default()
                        }),
                        _ => None,
                    }
                })
                .unwrap_or(Reads::ALL);
            self.arguments |= part.arguments;
            self.request |= part.request;
            self.history |= part.history;
        }
    }
}

impl Slice {
    /// A slice of exactly these policies.
    pub(crate) fn of<'a>(
        policies: impl IntoIterator<Item = &'a Loaded>,
    ) -> Result<Slice, SliceError> {
        let mut enforcing = Vec::new();
        let mut shadow_permits = Vec::new();
        let mut shadow_forbids = Vec::new();
        let mut reads = Reads::default();
        for l in policies {
            reads.add(&l.policy.to_string());
            let bucket = match (l.mode, effect(&l.policy)) {
                (Mode::Enforce, _) => &mut enforcing,
                (Mode::Shadow, Effect::Permit) => &mut shadow_permits,
                (Mode::Shadow, Effect::Forbid) => &mut shadow_forbids,
            };
            bucket.push(l.policy.clone());
        }
        Ok(Slice {
            by_principal: PrincipalIndex::of(&enforcing)?,
            enforcing: set(enforcing)?,
            shadow_permits: set(shadow_permits)?,
            shadow_forbids: set(shadow_forbids)?,
            reads,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.enforcing.num_of_policies()
            + self.shadow_permits.num_of_policies()
            + self.shadow_forbids.num_of_policies()
    }
}

/// A slice could not be built (two policies with one id; ids are checked at load).
#[derive(Debug, thiserror::Error)]
#[error("a policy slice could not be built: {0}")]
pub(crate) struct SliceError(String);

fn set(policies: Vec<Policy>) -> Result<PolicySet, SliceError> {
    // A part that silently dropped a `forbid` could turn a deny into an allow: fail the build.
    PolicySet::from_policies(policies).map_err(|e| SliceError(e.to_string()))
}

pub(crate) fn effect(policy: &Policy) -> Effect {
    match policy.effect() {
        cedar_policy::Effect::Permit => Effect::Permit,
        cedar_policy::Effect::Forbid => Effect::Forbid,
    }
}

/// A policy's scope, read once.
struct Scope {
    action: ActionConstraint,
    resource: ResourceConstraint,
}

/// The slice of every action, keyed by the action's id.
pub(crate) fn slices<'a>(
    policies: &'a [Loaded],
    actions: &[(String, ActionScope<'_>)],
) -> Result<HashMap<String, Slice>, SliceError> {
    // Which request actions each action entity (a group, or the action itself) covers.
    let mut covers: HashMap<&EntityUid, Vec<usize>> = HashMap::new();
    let mut exact: HashMap<&EntityUid, usize> = HashMap::new();
    for (i, (_, a)) in actions.iter().enumerate() {
        exact.insert(a.uid, i);
        covers.entry(a.uid).or_default().push(i);
        for group in a.ancestors {
            covers.entry(group).or_default().push(i);
        }
    }
    let mut members: Vec<Vec<&'a Loaded>> = vec![Vec::new(); actions.len()];
    for l in policies {
        let scope = Scope {
            action: l.policy.action_constraint(),
            resource: l.policy.resource_constraint(),
        };
        let mut candidates: Vec<usize> = match &scope.action {
            ActionConstraint::Any => (0..actions.len()).collect(),
            ActionConstraint::Eq(uid) => exact.get(uid).copied().into_iter().collect(),
            ActionConstraint::In(uids) => uids
                .iter()
                .flat_map(|u| covers.get(u).into_iter().flatten().copied())
                .collect(),
        };
        candidates.sort_unstable();
        candidates.dedup();
        for i in candidates {
            if resource_may_match(&scope.resource, actions[i].1.resource) {
                members[i].push(l);
            }
        }
    }
    actions
        .iter()
        .zip(members)
        .map(|((key, _), members)| Ok((key.clone(), Slice::of(members)?)))
        .collect()
}

/// Whether a resource scope can match the action's resource (conservative).
fn resource_may_match(c: &ResourceConstraint, r: &ResourceShape) -> bool {
    use ResourceConstraint as C;
    match (c, r) {
        (C::Any, _) => true,
        (C::Eq(u), ResourceShape::Fixed { uid, .. }) => u == uid,
        (C::In(u), ResourceShape::Fixed { uid, ancestors }) => u == uid || ancestors.contains(u),
        (C::Is(t), ResourceShape::Fixed { uid, .. }) => uid.type_name() == t,
        (C::IsIn(t, u), ResourceShape::Fixed { uid, ancestors }) => {
            uid.type_name() == t && (u == uid || ancestors.contains(u))
        }
        (C::Eq(u), ResourceShape::OfTypes(types)) => types.contains(u.type_name()),
        (C::Is(t) | C::IsIn(t, _), ResourceShape::OfTypes(types)) => types.contains(t),
        (C::In(_), ResourceShape::OfTypes(_)) => true,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod reads_tests {
    use super::Reads;

    fn reads(text: &str) -> Reads {
        let mut r = Reads::default();
        r.add(text);
        r
    }

    #[test]
    fn a_policy_reads_the_part_it_names_and_everything_when_unsure() {
        let none = Reads::default();
        let args = Reads {
            arguments: true,
            ..Reads::default()
        };
        let request = Reads {
            request: true,
            ..Reads::default()
        };
        assert_eq!(reads("permit(principal, action, resource);"), none);
        assert_eq!(
            reads("permit(principal, action, resource) when { context.arguments.a < 3 };"),
            args
        );
        assert_eq!(
            reads("permit(principal, action, resource) when { context . request.hour < 9 };"),
            request
        );
        for unsure in [
            "permit(principal, action, resource) when { context has arguments };",
            "permit(principal, action, resource) when { context[\"arguments\"].a == 1 };",
            "permit(principal, action, resource) when { context.argumentsx == 1 };",
            "permit(principal, action, resource) when { resource.name like \"*context*\" };",
            "permit(principal, action, resource) when { context };",
        ] {
            assert_eq!(reads(unsure), Reads::ALL, "{unsure}");
        }
        let mut both =
            reads("permit(principal, action, resource) when { context.arguments.a < 3 };");
        both.add("forbid(principal, action, resource) when { context.request.client == \"\" };");
        assert_eq!(
            both,
            Reads {
                arguments: true,
                request: true,
                history: false
            }
        );
        both.add(
            "forbid(principal, action, resource) when { context.history.groups.contains(\"pii\") };",
        );
        assert_eq!(both, Reads::ALL);
    }
}
