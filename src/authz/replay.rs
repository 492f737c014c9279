//! Deciding a recorded request again, under another policy set (`mcp-warden policy
//! replay`). A record holds what the proxy knew, minus what it keeps out of the log: the
//! argument values it did not disclose, the principal's claims, the transport. Each of
//! those is a Cedar *unknown* here, and partial evaluation says whether the policies decide
//! the request the same way whatever the unknowns were. When they do not, the answer is
//! "undetermined", naming the unknowns the policies read: replay never guesses.

use std::collections::{BTreeMap, BTreeSet};

use cedar_policy::{Context, Entity, PolicySet, Request, RestrictedExpression};
use serde_json::Value;

use super::argtype::{ArgType, RecordType};
use super::arguments::{ArgumentError, member_path, refuse_undeclared, value_of};
use super::decide::{merge, quoted};
use super::engine::Engine;
use super::entities::{Types, history_value};
use super::types::{Decision, HistoryFacts, Operation};
use crate::authn::principal::Principal;

/// What a record tells of a call's arguments, as a tree of RFC 6901 tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// Disclosed in clear.
    Known(Value),
    /// An object whose members are listed (from their commitments), some perhaps disclosed.
    Members(BTreeMap<String, Recorded>),
    /// Present (committed), value not disclosed.
    Hidden,
}

/// What is known of a call's arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordedArguments {
    /// The top-level members: which are present is known exactly.
    Members(BTreeMap<String, Recorded>),
    /// Too many leaves were committed to know which members were present.
    Unknown,
}

/// A recorded request, as far as the record tells it.
pub struct Recalled<'a> {
    /// The caller; its `attributes` are ignored when `claims_known` is false.
    pub principal: &'a Principal,
    /// The operation; a tool call's `arguments` are ignored (`arguments` below holds them).
    pub op: Operation<'a>,
    pub arguments: Option<&'a RecordedArguments>,
    pub epoch_seconds: i64,
    /// `None` where the record names no session.
    pub session: Option<&'a str>,
    pub client: Option<&'a str>,
    pub transport: Option<&'a str>,
    /// What the session did before, when known.
    pub history: Option<&'a HistoryFacts>,
    /// Whether `principal.attributes` are the caller's claims (records do not hold them).
    pub claims_known: bool,
}

/// The candidate policies' answer to a recalled request.
#[derive(Debug, Clone, PartialEq)]
pub enum Replayed {
    /// Decided, whatever the unknowns were.
    Decided(Decision),
    /// It depends on what the record does not hold.
    Undetermined {
        /// The unknowns the deciding policies read (`arguments.amount`, `history`,
        /// `request.transport`, `principal.department`, ...).
        unknowns: Vec<String>,
        /// The policies whose outcome depends on them.
        policies: Vec<String>,
    },
}

const UNKNOWN_CLAIMS_HAS: &str = "principal's claims (the log does not record them)";

impl Engine {
    /// Decides a recalled request against this engine's enforcing policies (shadow
    /// policies are not replayed: they never decide).
    pub fn replay(&self, recalled: &Recalled<'_>) -> Replayed {
        let target = match self.target(&recalled.op) {
            Ok(t) => t,
            Err(reason) => return Replayed::Decided(Decision::deny(reason)),
        };
        let arguments = match (target.arguments, recalled.arguments) {
            (Some((ty, _)), Some(RecordedArguments::Members(members))) => {
                match partial_record(ty, members, "") {
                    Ok(value) => Some(value),
                    Err(e) => return Replayed::Decided(Decision::invalid_arguments(e.to_string())),
                }
            }
            (Some(_), _) => Some(RestrictedExpression::new_unknown("arguments")),
            (None, _) => None,
        };
        let principal = match self.recalled_principal(recalled) {
            Ok(p) => p,
            Err(reason) => return Replayed::Decided(Decision::deny(reason)),
        };
        let buckets = target
            .action
            .slice
            .by_principal
            .buckets(&principal.0, principal.1.iter());
        let merged = merge(buckets.clone());
        let sets: Vec<&PolicySet> = match &merged {
            Some(m) => vec![m],
            None => buckets,
        };
        if !recalled.claims_known && !self.attributes.is_empty() {
            let asks_has: Vec<String> = sets
                .iter()
                .flat_map(|s| s.policies())
                .filter(|p| tests_principal_has(&p.to_string()))
                .map(|p| p.id().to_string())
                .collect();
            if !asks_has.is_empty() {
                return Replayed::Undetermined {
                    unknowns: vec![UNKNOWN_CLAIMS_HAS.to_owned()],
                    policies: asks_has,
                };
            }
        }
        let context = match context(recalled, arguments) {
            Ok(c) => c,
            Err(e) => {
                return Replayed::Decided(Decision::deny_with("the context could not be built", e));
            }
        };
        let request = match Request::new(
            principal.0.clone(),
            target.action.uid.clone(),
            target.resource,
            context,
            None,
        ) {
            Ok(r) => r,
            Err(e) => {
                return Replayed::Decided(Decision::deny_with(
                    "the request does not fit the schema",
                    e,
                ));
            }
        };
        let entities = match target
            .action
            .entities
            .clone()
            .add_entities(std::iter::once(principal.2).chain(target.entity), None)
        {
            Ok(e) => e,
            Err(e) => {
                return Replayed::Decided(Decision::deny_with(
                    "the entities could not be built",
                    e,
                ));
            }
        };
        let mut outcome = Outcome::default();
        for set in sets {
            outcome.add(
                &self
                    .authorizer
                    .is_authorized_partial(&request, set, &entities),
            );
        }
        match outcome.finish() {
            Replayed::Decided(mut d) if d.allowed => {
                d.approval = self.approval_for(&d.determining);
                Replayed::Decided(d)
            }
            other => other,
        }
    }

    /// The caller's entity: its roles, tenant and issuer as recorded; its claims, unknowns
    /// unless known.
    fn recalled_principal(
        &self,
        recalled: &Recalled<'_>,
    ) -> Result<
        (
            cedar_policy::EntityUid,
            Vec<cedar_policy::EntityUid>,
            Entity,
        ),
        String,
    > {
        let p = recalled.principal;
        let mut known = p.clone();
        if !recalled.claims_known {
            known.attributes.clear();
        }
        let built = super::entities::principal_entity(&self.types, &known, &self.attributes)
            .map_err(|e| e.to_string())?;
        if recalled.claims_known || self.attributes.is_empty() {
            return Ok((built.uid, built.parents, built.entity));
        }
        let attrs = self
            .attributes
            .keys()
            .map(|name| {
                (
                    name.clone(),
                    RestrictedExpression::new_unknown(format!("principal.{name}")),
                )
            })
            .collect::<std::collections::HashMap<_, _>>();
        let entity = Entity::new(
            Types::uid(self.types.principal_type(p.kind), &p.id),
            attrs,
            built.parents.iter().cloned().collect(),
        )
        .map_err(|e| e.to_string())?;
        Ok((built.uid, built.parents, entity))
    }
}

impl Engine {
    /// The principal ids the enforcing policies name (`Mcp::User::"alice"`, …).
    pub fn principal_literals(&self) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for policy in self.whole.enforcing.policies() {
            let text = policy.to_string();
            for kind in ["User", "Agent", "Service"] {
                ids.extend(literals(&text, &format!("Mcp::{kind}::\"")));
            }
        }
        ids
    }

    /// Whether an enforcing policy names an issuer (`Mcp::Issuer::"…"`).
    pub fn names_issuers(&self) -> bool {
        self.whole
            .enforcing
            .policies()
            .any(|p| p.to_string().contains("Mcp::Issuer::"))
    }
}

/// The string literals that follow `opening` (which ends in the literal's `"`) in `text`.
fn literals(text: &str, opening: &str) -> Vec<String> {
    text.match_indices(opening)
        .filter_map(|(at, m)| {
            let mut out = String::new();
            let mut chars = text[at + m.len()..].chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => return Some(out),
                    '\\' => out.push(chars.next()?),
                    c => out.push(c),
                }
            }
            None
        })
        .collect()
}

/// Whether a policy's text tests `principal has …` (which an unknown claim would answer
/// "yes" to). Conservative: any `principal` followed by `has`.
fn tests_principal_has(text: &str) -> bool {
    text.match_indices("principal").any(|(at, _)| {
        text[at + "principal".len()..]
            .trim_start()
            .strip_prefix("has")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_whitespace() || c == '"'))
    })
}

/// The context with the record's facts, and unknowns for what it does not hold.
fn context(
    recalled: &Recalled<'_>,
    arguments: Option<RestrictedExpression>,
) -> Result<Context, String> {
    let known_or = |value: Option<&str>, name: &str| match value {
        Some(v) => RestrictedExpression::new_string(v.to_owned()),
        None => RestrictedExpression::new_unknown(format!("request.{name}")),
    };
    let facts = super::time::facts_at(recalled.epoch_seconds, "", "", "");
    let request = RestrictedExpression::new_record([
        (
            "time".to_owned(),
            RestrictedExpression::new_long(facts.epoch_seconds),
        ),
        (
            "hour".to_owned(),
            RestrictedExpression::new_long(facts.hour),
        ),
        (
            "weekday".to_owned(),
            RestrictedExpression::new_long(facts.weekday),
        ),
        ("client".to_owned(), known_or(recalled.client, "client")),
        (
            "transport".to_owned(),
            known_or(recalled.transport, "transport"),
        ),
        ("session".to_owned(), known_or(recalled.session, "session")),
    ])
    .map_err(|e| e.to_string())?;
    let mut pairs = vec![("request".to_owned(), request)];
    if let Some(arguments) = arguments {
        pairs.push(("arguments".to_owned(), arguments));
        pairs.push((
            "history".to_owned(),
            recalled.history.map_or_else(
                || RestrictedExpression::new_unknown("history"),
                history_value,
            ),
        ));
    }
    Context::from_pairs(pairs).map_err(|e| e.to_string())
}

/// The `context.arguments` record as far as it is known: disclosed members typed along the
/// tool's declared type, hidden ones unknown, absent ones absent.
fn partial_record(
    ty: &RecordType,
    members: &BTreeMap<String, Recorded>,
    prefix: &str,
) -> Result<RestrictedExpression, ArgumentError> {
    refuse_undeclared(ty, members.keys(), prefix)?;
    let mut pairs = Vec::with_capacity(ty.fields.len());
    for (name, field) in &ty.fields {
        let path = member_path(prefix, name);
        let value = match (members.get(name), &field.ty) {
            (Some(Recorded::Known(v)), ty) => value_of(ty, v, &path)?,
            (Some(Recorded::Members(inner)), ArgType::Record(record)) => {
                partial_record(record, inner, &path)?
            }
            (Some(_), _) => RestrictedExpression::new_unknown(format!("arguments.{path}")),
            (None, _) if field.required => return Err(ArgumentError::Missing { path }),
            (None, _) => continue,
        };
        pairs.push((name.clone(), value));
    }
    RestrictedExpression::new_record(pairs).map_err(|_| ArgumentError::Mismatch {
        path: prefix.to_owned(),
        expected: "an object",
    })
}

/// The partial answers of a decision's disjoint policy sets, combined as the live decision
/// combines its sets (any error or satisfied forbid denies; otherwise a satisfied permit
/// allows), undetermined wherever a residual could change that.
#[derive(Default)]
struct Outcome {
    permits: Vec<String>,
    forbids: Vec<String>,
    errored: Vec<String>,
    /// Residual policies: (id, is a forbid, its text).
    residual: Vec<(String, bool, String)>,
}

impl Outcome {
    fn add(&mut self, response: &cedar_policy::PartialResponse) {
        self.errored
            .extend(response.definitely_errored().map(|id| id.to_string()));
        for p in response.definitely_satisfied() {
            match p.effect() {
                cedar_policy::Effect::Permit => self.permits.push(p.id().to_string()),
                cedar_policy::Effect::Forbid => self.forbids.push(p.id().to_string()),
            }
        }
        for p in response.nontrivial_residuals() {
            let forbid = p.effect() == cedar_policy::Effect::Forbid;
            self.residual
                .push((p.id().to_string(), forbid, p.to_string()));
        }
    }

    fn finish(mut self) -> Replayed {
        for list in [&mut self.permits, &mut self.forbids, &mut self.errored] {
            list.sort();
            list.dedup();
        }
        if !self.errored.is_empty() {
            let reason = format!(
                "{} could not be evaluated",
                quoted("policy", "policies", &self.errored)
            );
            return Replayed::Decided(Decision {
                determining: self.errored,
                ..Decision::deny(reason)
            });
        }
        if !self.forbids.is_empty() {
            let reason = format!("denied by {}", quoted("policy", "policies", &self.forbids));
            return Replayed::Decided(Decision {
                determining: self.forbids,
                ..Decision::deny(reason)
            });
        }
        // Nothing can permit it: denied, whatever a residual forbid would say.
        if self.permits.is_empty() && self.residual.iter().all(|(_, forbid, _)| *forbid) {
            return Replayed::Decided(Decision::deny("no policy permits this request"));
        }
        // Any residual forbid could deny; a residual permit could allow (when nothing else
        // does) or fail to evaluate (which denies).
        if !self.residual.is_empty() {
            let unknowns: BTreeSet<String> = self
                .residual
                .iter()
                .flat_map(|(_, _, text)| unknowns_in(text))
                .collect();
            let policies = self.residual.into_iter().map(|(id, _, _)| id).collect();
            return Replayed::Undetermined {
                unknowns: unknowns.into_iter().collect(),
                policies,
            };
        }
        let reason = format!("allowed by {}", quoted("policy", "policies", &self.permits));
        Replayed::Decided(Decision {
            allowed: true,
            determining: self.permits,
            ..Decision::deny(reason)
        })
    }
}

/// The names of the unknowns a residual policy's text mentions (`unknown("arguments.x")`).
fn unknowns_in(text: &str) -> Vec<String> {
    text.match_indices("unknown(\"")
        .filter_map(|(at, m)| {
            let rest = &text[at + m.len()..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests;
