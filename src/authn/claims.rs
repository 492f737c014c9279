//! Verified claims -> [`Principal`], as the issuer's configuration maps them. A claim of the
//! wrong type rejects the token: a principal is never built from a guess.

use std::collections::BTreeMap;

use serde_json::Value;

use super::principal::{AttrValue, Principal, PrincipalKind};
use crate::config::{AttrKind, IssuerSettings};

/// The value at a dot-separated claim path (`realm_access.roles`).
pub fn at<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(claims, |v, key| v.get(key))
}

pub fn principal(
    claims: &Value,
    issuer: &IssuerSettings,
    declared: &BTreeMap<String, AttrKind>,
) -> Result<Principal, String> {
    let id = match at(claims, &issuer.subject_claim) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(format!(
                "claim `{}` must be a non-empty string",
                issuer.subject_claim
            ));
        }
    };
    let kind = match &issuer.kind_claim {
        Some(path) => match at(claims, path).and_then(Value::as_str) {
            Some("user") => PrincipalKind::User,
            Some("agent") => PrincipalKind::Agent,
            Some("service") => PrincipalKind::Service,
            None => issuer.kind,
            Some(other) => return Err(format!("claim `{path}`: unknown principal kind `{other}`")),
        },
        None => issuer.kind,
    };
    let roles = match &issuer.roles_claim {
        Some(path) => match at(claims, path) {
            None => Vec::new(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("claim `{path}` must hold strings"))?,
            Some(_) => {
                return Err(format!(
                    "claim `{path}` must be a string or a list of strings"
                ));
            }
        },
        None => Vec::new(),
    };
    let tenant = match &issuer.tenant_claim {
        Some(path) => match at(claims, path) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(format!("claim `{path}` must be a string")),
        },
        None => None,
    };
    if !issuer.tenants.is_empty() && !tenant.as_ref().is_some_and(|t| issuer.tenants.contains(t)) {
        return Err(format!("tenant {tenant:?} is not served here"));
    }
    let mut attributes = BTreeMap::new();
    for (name, path) in &issuer.claims {
        let (Some(kind), Some(value)) = (declared.get(name), at(claims, path)) else {
            continue;
        };
        let value = match (kind, value) {
            (AttrKind::String, Value::String(s)) => AttrValue::String(s.clone()),
            (AttrKind::Long, Value::Number(n)) if n.is_i64() => {
                AttrValue::Long(n.as_i64().unwrap_or_default())
            }
            (AttrKind::Bool, Value::Bool(b)) => AttrValue::Bool(*b),
            (AttrKind::Set, Value::Array(items)) => AttrValue::Set(
                items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("claim `{path}` must hold strings"))?,
            ),
            _ => return Err(format!("claim `{path}` does not fit attribute `{name}`")),
        };
        attributes.insert(name.clone(), value);
    }
    Ok(Principal {
        id,
        kind,
        roles,
        tenant,
        issuer: Some(issuer.issuer.clone()),
        attributes,
    })
}
