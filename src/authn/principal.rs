//! Who is calling: the principal every request carries after authentication, built from
//! verified token claims, a static bearer token's configuration, or the anonymous mode.
//! Authorization turns it into a Cedar principal entity (`Mcp::User`, `Mcp::Agent` or
//! `Mcp::Service`, in `Mcp::Role` and `Mcp::Tenant` groups).

use std::collections::BTreeMap;

/// The kind of caller, from the token (a configured claim) or the static token's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    User,
    Agent,
    Service,
}

impl PrincipalKind {
    /// The Cedar entity type name (without namespace).
    pub fn entity_type(self) -> &'static str {
        match self {
            PrincipalKind::User => "User",
            PrincipalKind::Agent => "Agent",
            PrincipalKind::Service => "Service",
        }
    }
}

/// A typed claim attribute, as declared in the configuration (and the Cedar schema).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    Bool(bool),
    Long(i64),
    String(String),
    Set(Vec<String>),
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// Stable identifier: the token subject, or the static token's configured id.
    pub id: String,
    pub kind: PrincipalKind,
    pub roles: Vec<String>,
    pub tenant: Option<String>,
    /// The issuer that vouched for it (`None` for static tokens and anonymous).
    pub issuer: Option<String>,
    /// The issuer's `principal_prefix`, when it has one: `id`, `roles` and `tenant` then
    /// already read `<prefix>/<value>`, and Cedar puts the principal in
    /// `Mcp::Issuer::"<prefix>"`. Principals of different issuers never share an id.
    pub namespace: Option<String>,
    /// Typed attributes mapped from claims, by attribute name.
    pub attributes: BTreeMap<String, AttrValue>,
}

impl Principal {
    /// The caller of a proxy configured for anonymous access (loopback only).
    pub fn anonymous() -> Self {
        Principal {
            id: "anonymous".to_owned(),
            kind: PrincipalKind::User,
            roles: vec!["anonymous".to_owned()],
            tenant: None,
            issuer: None,
            namespace: None,
            attributes: BTreeMap::new(),
        }
    }

    /// The client of `serve --stdio`: the local user who started the proxy.
    pub fn local() -> Self {
        Principal {
            id: "local".to_owned(),
            kind: PrincipalKind::User,
            roles: vec!["local".to_owned()],
            tenant: None,
            issuer: None,
            namespace: None,
            attributes: BTreeMap::new(),
        }
    }

    /// A key that identifies this principal for session ownership and cache scopes.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}",
            self.issuer.as_deref().unwrap_or(""),
            self.kind.entity_type(),
            self.id
        )
    }

    /// Whether `key` is this principal's [`Principal::key`] (compared without building it).
    pub fn has_key(&self, key: &str) -> bool {
        key.strip_prefix(self.issuer.as_deref().unwrap_or(""))
            .and_then(|rest| rest.strip_prefix('|'))
            .and_then(|rest| rest.strip_prefix(self.kind.entity_type()))
            .and_then(|rest| rest.strip_prefix('|'))
            == Some(self.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Principal, PrincipalKind};

    fn principal(issuer: Option<String>, kind: PrincipalKind, id: String) -> Principal {
        Principal {
            id,
            kind,
            issuer,
            ..Principal::anonymous()
        }
    }

    fn kind() -> impl Strategy<Value = PrincipalKind> {
        prop_oneof![
            Just(PrincipalKind::User),
            Just(PrincipalKind::Agent),
            Just(PrincipalKind::Service)
        ]
    }

    proptest! {
        /// `has_key` answers exactly as comparing with the built key would, separators in
        /// issuers and ids included.
        #[test]
        fn has_key_is_comparing_keys(
            a in (proptest::option::of("[a|U]{0,4}"), kind(), "[a|Uger]{0,5}"),
            b in (proptest::option::of("[a|U]{0,4}"), kind(), "[a|Uger]{0,5}"),
        ) {
            let (a, b) = (principal(a.0, a.1, a.2), principal(b.0, b.1, b.2));
            prop_assert_eq!(a.has_key(&b.key()), a.key() == b.key());
            prop_assert!(a.has_key(&a.key()));
            let longer = a.key() + "|";
            prop_assert!(!a.has_key(&longer));
        }
    }
}
