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
    // Everything the issuer says about who the caller is lives in the issuer's namespace:
    // a partner's `sub=admin` (or role `admin`) is never taken for the proxy's own.
    let (id, roles, tenant) = match &issuer.principal_prefix {
        None => {
            let names = std::iter::once(&id).chain(&roles).chain(&tenant);
            for name in names {
                if let Some(p) = issuer
                    .reserved_prefixes
                    .iter()
                    .find(|p| name.starts_with(&format!("{p}/")))
                {
                    return Err(format!("`{name}` lies in the namespace of issuer `{p}`"));
                }
            }
            (id, roles, tenant)
        }
        Some(prefix) => (
            format!("{prefix}/{id}"),
            roles.iter().map(|r| format!("{prefix}/{r}")).collect(),
            tenant.map(|t| format!("{prefix}/{t}")),
        ),
    };
    Ok(Principal {
        id,
        kind,
        roles,
        tenant,
        issuer: Some(issuer.issuer.clone()),
        namespace: issuer.principal_prefix.clone(),
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn issuer(prefix: Option<&str>, reserved: &[&str]) -> IssuerSettings {
        IssuerSettings {
            roles_claim: Some("roles".to_owned()),
            tenant_claim: Some("tenant".to_owned()),
            principal_prefix: prefix.map(str::to_owned),
            reserved_prefixes: reserved.iter().map(|p| (*p).to_owned()).collect(),
            ..IssuerSettings::for_tests("https://idp.test")
        }
    }

    #[test]
    fn a_prefixed_issuer_names_everything_in_its_namespace() {
        let claims = json!({"sub": "admin", "roles": ["payer"], "tenant": "acme"});
        let p = principal(&claims, &issuer(Some("partner"), &[]), &BTreeMap::new()).unwrap();
        assert_eq!(p.id, "partner/admin");
        assert_eq!(p.roles, ["partner/payer"]);
        assert_eq!(p.tenant.as_deref(), Some("partner/acme"));
        assert_eq!(p.namespace.as_deref(), Some("partner"));
        let home = principal(&claims, &issuer(None, &["partner"]), &BTreeMap::new()).unwrap();
        assert_eq!((home.id.as_str(), home.namespace), ("admin", None));
    }

    #[test]
    fn the_home_issuer_cannot_name_principals_in_another_namespace() {
        let home = issuer(None, &["partner"]);
        for claims in [
            json!({"sub": "partner/admin"}),
            json!({"sub": "x", "roles": ["partner/payer"]}),
            json!({"sub": "x", "tenant": "partner/acme"}),
        ] {
            let err = principal(&claims, &home, &BTreeMap::new()).unwrap_err();
            assert!(err.contains("namespace of issuer `partner`"), "{err}");
        }
        assert!(principal(&json!({"sub": "partnerx/admin"}), &home, &BTreeMap::new()).is_ok());
    }
}
