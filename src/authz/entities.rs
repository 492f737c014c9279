//! Cedar entities and request facts built from trusted data with `Entity::new`: the principal
//! from its verified claims, the resource from the catalog. Nothing here parses JSON, and
//! shapes are checked against the declared attribute types instead of Cedar's (slow) schema
//! conformance check on every request.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};

use super::types::{AttrType, RequestFacts, ResolvedHints};
use crate::authn::principal::{AttrValue, Principal, PrincipalKind};

/// The namespace of everything mcp-warden puts in Cedar.
pub(crate) const NAMESPACE: &str = "Mcp";
/// The principal's tenant as an entity attribute (`principal.tenant`); no claim attribute
/// may take the name.
pub(crate) const TENANT_ATTRIBUTE: &str = "tenant";
/// The id of the `Mcp::Gateway` entity, the resource of list and admin operations.
pub(crate) const GATEWAY_ID: &str = "mcp-warden";

/// Parsed entity type names, made once.
#[derive(Debug, Clone)]
pub(crate) struct Types {
    pub user: EntityTypeName,
    pub agent: EntityTypeName,
    pub service: EntityTypeName,
    pub role: EntityTypeName,
    pub tenant: EntityTypeName,
    pub issuer: EntityTypeName,
    pub backend: EntityTypeName,
    pub tool: EntityTypeName,
    pub resource: EntityTypeName,
    pub prompt: EntityTypeName,
    pub gateway: EntityTypeName,
    pub action: EntityTypeName,
}

impl Types {
    pub(crate) fn new() -> Types {
        let t = |name: &str| {
            // The names are fixed identifiers; they always parse.
            EntityTypeName::from_str(&format!("{NAMESPACE}::{name}"))
                .unwrap_or_else(|_| unreachable!("`{name}` is a valid type name"))
        };
        Types {
            user: t("User"),
            agent: t("Agent"),
            service: t("Service"),
            role: t("Role"),
            tenant: t("Tenant"),
            issuer: t("Issuer"),
            backend: t("Backend"),
            tool: t("Tool"),
            resource: t("Resource"),
            prompt: t("Prompt"),
            gateway: t("Gateway"),
            action: t("Action"),
        }
    }

    pub(crate) fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    pub(crate) fn action(&self, id: &str) -> EntityUid {
        Types::uid(&self.action, id)
    }

    pub(crate) fn principal_type(&self, kind: PrincipalKind) -> &EntityTypeName {
        match kind {
            PrincipalKind::User => &self.user,
            PrincipalKind::Agent => &self.agent,
            PrincipalKind::Service => &self.service,
        }
    }
}

/// Why a principal could not be turned into an entity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PrincipalError {
    #[error("principal attribute `{name}` must be {expected}")]
    AttributeType {
        name: String,
        expected: &'static str,
    },
    #[error("principal `{id}` could not be built: {cause}")]
    Entity { id: String, cause: String },
}

/// The principal as Cedar sees it.
pub(crate) struct PrincipalEntity {
    pub uid: EntityUid,
    /// Its roles and tenant: all its ancestors (roles and tenants form no hierarchy).
    pub parents: Vec<EntityUid>,
    pub entity: Entity,
}

/// The principal entity: in `Mcp::Role::"<role>"` for each role and `Mcp::Tenant::"<tenant>"`;
/// declared attributes only (undeclared ones cannot be named by a valid policy).
pub(crate) fn principal_entity(
    types: &Types,
    principal: &Principal,
    declared: &HashMap<String, AttrType>,
) -> Result<PrincipalEntity, PrincipalError> {
    let uid = Types::uid(types.principal_type(principal.kind), &principal.id);
    let mut parents: Vec<EntityUid> = principal
        .roles
        .iter()
        .map(|r| Types::uid(&types.role, r))
        .collect();
    if let Some(tenant) = &principal.tenant {
        parents.push(Types::uid(&types.tenant, tenant));
    }
    if let Some(namespace) = &principal.namespace {
        parents.push(Types::uid(&types.issuer, namespace));
    }
    parents.sort();
    parents.dedup();
    let mut attrs = HashMap::new();
    // `principal.tenant`, so that a policy can say `resource in principal.tenant`.
    if let Some(tenant) = &principal.tenant {
        attrs.insert(
            TENANT_ATTRIBUTE.to_owned(),
            RestrictedExpression::new_entity_uid(Types::uid(&types.tenant, tenant)),
        );
    }
    for (name, value) in &principal.attributes {
        let Some(ty) = declared.get(name) else {
            continue;
        };
        if name == TENANT_ATTRIBUTE {
            continue;
        }
        let expr = match (ty, value) {
            (AttrType::String, AttrValue::String(s)) => RestrictedExpression::new_string(s.clone()),
            (AttrType::Long, AttrValue::Long(i)) => RestrictedExpression::new_long(*i),
            (AttrType::Bool, AttrValue::Bool(b)) => RestrictedExpression::new_bool(*b),
            (AttrType::StringSet, AttrValue::Set(items)) => RestrictedExpression::new_set(
                items
                    .iter()
                    .map(|s| RestrictedExpression::new_string(s.clone())),
            ),
            // A claim of the wrong type must not just vanish: a `forbid` guarded by
            // `principal has ...` would silently stop applying.
            _ => {
                return Err(PrincipalError::AttributeType {
                    name: name.clone(),
                    expected: ty.describe(),
                });
            }
        };
        attrs.insert(name.clone(), expr);
    }
    let entity =
        Entity::new(uid.clone(), attrs, parents.iter().cloned().collect()).map_err(|e| {
            PrincipalError::Entity {
                id: principal.id.clone(),
                cause: e.to_string(),
            }
        })?;
    Ok(PrincipalEntity {
        uid,
        parents,
        entity,
    })
}

/// A backend: in `Mcp::Tenant::"<tenant>"` for each tenant it belongs to, `shared` when
/// it belongs to none.
pub(crate) fn backend_entity(
    types: &Types,
    backend: &str,
    tenants: &[String],
) -> Result<Entity, String> {
    let parents = tenants
        .iter()
        .map(|t| Types::uid(&types.tenant, t))
        .collect();
    let attrs = HashMap::from([(
        "shared".to_owned(),
        RestrictedExpression::new_bool(tenants.is_empty()),
    )]);
    Entity::new(Types::uid(&types.backend, backend), attrs, parents).map_err(|e| e.to_string())
}

/// The `Mcp::Tool` entity of an exposed tool, in its `Mcp::Backend`.
pub(crate) fn tool_entity(
    types: &Types,
    exposed: &str,
    backend: &str,
    hints: ResolvedHints,
    shared: bool,
) -> Result<Entity, String> {
    let attrs = HashMap::from([
        ("shared".to_owned(), RestrictedExpression::new_bool(shared)),
        (
            "name".to_owned(),
            RestrictedExpression::new_string(exposed.to_owned()),
        ),
        (
            "backend".to_owned(),
            RestrictedExpression::new_string(backend.to_owned()),
        ),
        (
            "read_only".to_owned(),
            RestrictedExpression::new_bool(hints.read_only),
        ),
        (
            "destructive".to_owned(),
            RestrictedExpression::new_bool(hints.destructive),
        ),
        (
            "idempotent".to_owned(),
            RestrictedExpression::new_bool(hints.idempotent),
        ),
        (
            "open_world".to_owned(),
            RestrictedExpression::new_bool(hints.open_world),
        ),
    ]);
    let parents = HashSet::from([Types::uid(&types.backend, backend)]);
    Entity::new(Types::uid(&types.tool, exposed), attrs, parents).map_err(|e| e.to_string())
}

/// A `Mcp::Resource` or `Mcp::Prompt` entity: `key` is `uri` or `name`.
pub(crate) fn backend_item_entity(
    ty: &EntityTypeName,
    backend_ty: &EntityTypeName,
    key: &str,
    id: &str,
    backend: &str,
    shared: bool,
) -> Result<Entity, String> {
    let attrs = HashMap::from([
        ("shared".to_owned(), RestrictedExpression::new_bool(shared)),
        (
            key.to_owned(),
            RestrictedExpression::new_string(id.to_owned()),
        ),
        (
            "backend".to_owned(),
            RestrictedExpression::new_string(backend.to_owned()),
        ),
    ]);
    let parents = HashSet::from([Types::uid(backend_ty, backend)]);
    Entity::new(Types::uid(ty, id), attrs, parents).map_err(|e| e.to_string())
}

/// The `context.request` record.
pub(crate) fn request_value(facts: &RequestFacts) -> Result<RestrictedExpression, String> {
    let fields = [
        ("time", RestrictedExpression::new_long(facts.epoch_seconds)),
        ("hour", RestrictedExpression::new_long(facts.hour)),
        ("weekday", RestrictedExpression::new_long(facts.weekday)),
        (
            "client",
            RestrictedExpression::new_string(facts.client_addr.clone()),
        ),
        (
            "transport",
            RestrictedExpression::new_string(facts.transport.clone()),
        ),
        (
            "session",
            RestrictedExpression::new_string(facts.session.clone()),
        ),
    ];
    RestrictedExpression::new_record(fields.map(|(k, v)| (k.to_owned(), v)))
        .map_err(|e| e.to_string())
}

/// `context.history`: what the session did before this call.
pub(crate) fn history_value(history: &super::types::HistoryFacts) -> RestrictedExpression {
    let set = |items: &[String]| {
        RestrictedExpression::new_set(items.iter().cloned().map(RestrictedExpression::new_string))
    };
    RestrictedExpression::new_record([
        ("tools".to_owned(), set(&history.tools)),
        ("groups".to_owned(), set(&history.groups)),
        (
            "calls".to_owned(),
            RestrictedExpression::new_long(history.calls),
        ),
        (
            "recent_calls".to_owned(),
            RestrictedExpression::new_long(history.recent_calls),
        ),
    ])
    .expect("four distinct keys")
}
