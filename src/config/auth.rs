//! Validation of `[auth]`: who may call. Part of the one validation pass; no I/O (a JWKS
//! file is read when the proxy starts, not here).

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use super::{
    file::{AuthSection, IssuerSection, TokenSection},
    validate::Issues,
};
use crate::authn::principal::{Principal, PrincipalKind};

/// Runtime authentication settings.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    pub anonymous: bool,
    /// The protected resource's URL, for metadata and `WWW-Authenticate`; `None` (loopback
    /// binds only): the MCP endpoint on the address the proxy listens on.
    pub resource: Option<String>,
    /// Authentication failures recorded per client address and minute (also the burst).
    pub failures_per_minute: u32,
    /// Declared claim attributes, by name.
    pub attributes: BTreeMap<String, AttrKind>,
    pub issuers: Vec<IssuerSettings>,
    pub tokens: Vec<TokenSettings>,
    /// Client certificates that name principals.
    pub certificates: Vec<CertificateSettings>,
    /// Gateways this one sits behind (`[[auth.parents]]`).
    pub parents: Vec<std::sync::Arc<crate::federation::Parent>>,
}

/// A client certificate's subject and the principal it names.
#[derive(Debug, Clone)]
pub struct CertificateSettings {
    pub common_name: String,
    pub organization: Option<String>,
    pub principal: Principal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrKind {
    String,
    Long,
    Bool,
    Set,
}

#[derive(Debug, Clone)]
pub enum KeySource {
    Url(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct IssuerSettings {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub keys: KeySource,
    pub leeway: Duration,
    pub refresh: Duration,
    pub min_refresh: Duration,
    /// Longest accepted token lifetime (`exp` - `iat`, or `exp` - now without `iat`).
    pub max_lifetime: Duration,
    pub subject_claim: String,
    pub roles_claim: Option<String>,
    pub tenant_claim: Option<String>,
    pub kind_claim: Option<String>,
    pub kind: PrincipalKind,
    /// Attribute name -> claim path.
    pub claims: BTreeMap<String, String>,
    /// Tenants served; empty: any.
    pub tenants: Vec<String>,
    /// Prefix of this issuer's principal ids, roles and tenant (`<prefix>/<value>`).
    pub principal_prefix: Option<String>,
    /// For the one issuer without a prefix: the other issuers' prefixes. A token whose
    /// subject, role or tenant starts with `<prefix>/` is refused.
    pub reserved_prefixes: Vec<String>,
}

#[cfg(test)]
impl IssuerSettings {
    /// An issuer as validation would make it from `issuer = "<issuer>"`, `audiences = ["a"]`
    /// and a key file, everything else at its default: what unit tests start from.
    pub(crate) fn for_tests(issuer: &str) -> IssuerSettings {
        IssuerSettings {
            issuer: issuer.to_owned(),
            audiences: vec!["a".to_owned()],
            keys: KeySource::File("/nonexistent".into()),
            leeway: Duration::from_secs(30),
            refresh: Duration::from_secs(300),
            min_refresh: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(86_400),
            subject_claim: "sub".to_owned(),
            roles_claim: None,
            tenant_claim: None,
            kind_claim: None,
            kind: PrincipalKind::User,
            claims: BTreeMap::new(),
            tenants: Vec::new(),
            principal_prefix: None,
            reserved_prefixes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub sha256: [u8; 32],
    pub principal: Principal,
}

/// Authentication failures recorded per client address and minute, by default.
pub const DEFAULT_FAILURES_PER_MINUTE: u32 = 60;

/// Without `auth.resource`, the URL in metadata and `WWW-Authenticate` is built from the
/// bind address, which only names the server clients use when it is loopback. The `Host`
/// header is never used: a client could make the proxy advertise any URL.
pub fn resource_needed(bind: SocketAddr) -> Result<(), String> {
    if bind.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "required when `server.bind` (`{bind}`) is not a loopback address: the URL clients use for this server"
        ))
    }
}

pub(super) fn auth(
    section: Option<&AuthSection>,
    bind: Option<SocketAddr>,
    issues: &mut Issues,
) -> AuthSettings {
    let Some(a) = section else {
        issues.push(
            "auth",
            "required: set `anonymous = true` (loopback only), or `issuers` and/or `tokens`",
        );
        return AuthSettings::default();
    };
    let anonymous = a.anonymous.unwrap_or(false);
    if anonymous {
        if !a.issuers.is_empty() || !a.tokens.is_empty() || !a.certificates.is_empty() {
            issues.push(
                "auth.anonymous",
                "cannot be combined with `issuers`, `tokens` or `certificates`",
            );
        }
        if bind.is_some_and(|b| !b.ip().is_loopback()) {
            issues.push(
                "auth.anonymous",
                "only allowed when `server.bind` is a loopback address",
            );
        }
    } else if a.issuers.is_empty() && a.tokens.is_empty() && a.certificates.is_empty() {
        issues.push(
            "auth",
            "no way to authenticate: set `issuers`, `tokens`, `certificates` or `anonymous = true`",
        );
    }
    if let Some(resource) = &a.resource
        && !(resource.starts_with("https://") || resource.starts_with("http://"))
    {
        issues.push(
            "auth.resource",
            format!("`{resource}` must be an http(s) URL"),
        );
    }
    if a.resource.is_none()
        && let Some(bind) = bind
        && let Err(message) = resource_needed(bind)
    {
        issues.push("auth.resource", message);
    }
    let failures_per_minute = a.failures_per_minute.unwrap_or(DEFAULT_FAILURES_PER_MINUTE);
    if failures_per_minute == 0 {
        issues.push("auth.failures_per_minute", "must be at least 1");
    }
    let mut attributes = BTreeMap::new();
    for (name, kind) in &a.attributes {
        let path = format!("auth.attributes.{name}");
        if !cedar_identifier(name) {
            issues.push(
                &path,
                format!("`{name}` must be an identifier (letters, digits, `_`)"),
            );
        }
        let kind = match kind.as_str() {
            "string" => AttrKind::String,
            "long" => AttrKind::Long,
            "bool" => AttrKind::Bool,
            "set" => AttrKind::Set,
            other => {
                issues.push(
                    &path,
                    format!("`{other}` must be `string`, `long`, `bool` or `set`"),
                );
                continue;
            }
        };
        attributes.insert(name.clone(), kind);
    }
    let mut issuers: Vec<IssuerSettings> = a
        .issuers
        .iter()
        .enumerate()
        .filter_map(|(i, s)| issuer(i, s, &attributes, issues))
        .collect();
    namespaces(a, &mut issuers, issues);
    let mut tokens: Vec<TokenSettings> = Vec::new();
    for (i, t) in a.tokens.iter().enumerate() {
        if let Some(t) = token(i, t, issues) {
            if tokens
                .iter()
                .any(|o| o.sha256 == t.sha256 || o.principal.id == t.principal.id)
            {
                issues.push(
                    format!("auth.tokens[{i}]"),
                    "same `sha256` or `id` as an earlier token",
                );
            }
            tokens.push(t);
        }
    }
    let mut certificates: Vec<CertificateSettings> = Vec::new();
    for (i, c) in a.certificates.iter().enumerate() {
        let at = |f: &str| format!("auth.certificates[{i}].{f}");
        let common_name = c.common_name.clone().unwrap_or_default();
        if common_name.is_empty() {
            issues.push(at("common_name"), "required: the subject's CN");
        }
        let id = c.id.clone().unwrap_or_else(|| common_name.clone());
        if certificates
            .iter()
            .any(|o| o.common_name == common_name && o.organization == c.organization)
        {
            issues.push(
                format!("auth.certificates[{i}]"),
                "the same subject as an earlier certificate",
            );
        }
        let kind = kind(c.kind.as_deref(), &at("kind"), issues);
        certificates.push(CertificateSettings {
            common_name,
            organization: c.organization.clone(),
            principal: Principal {
                id,
                kind,
                roles: c.roles.clone(),
                tenant: c.tenant.clone(),
                issuer: None,
                namespace: None,
                attributes: BTreeMap::new(),
            },
        });
    }
    AuthSettings {
        anonymous,
        resource: a.resource.clone(),
        failures_per_minute,
        attributes,
        issuers,
        tokens,
        certificates,
        parents: Vec::new(),
    }
}

/// Principals of different sources (each issuer; the static tokens as one) must never share
/// an id. Every source but one needs its own `principal_prefix`; the one left without
/// (the "home" source) may not use names in another's namespace: its static tokens are
/// checked here, its tokens' claims when they are mapped (`reserved_prefixes`).
fn namespaces(a: &AuthSection, issuers: &mut [IssuerSettings], issues: &mut Issues) {
    let bare = a
        .issuers
        .iter()
        .filter(|s| s.principal_prefix.is_none())
        .count()
        + usize::from(!a.tokens.is_empty());
    let mut seen: Vec<String> = Vec::new();
    for (i, s) in a.issuers.iter().enumerate() {
        let path = format!("auth.issuers[{i}].principal_prefix");
        match s.principal_prefix.as_deref() {
            None if bare > 1 => issues.push(
                &path,
                "required: only one source of principals (one issuer, or the static tokens) \
                 may go without a prefix, so principals of different issuers never share an id",
            ),
            None => {}
            Some(p) if p.is_empty() || p.contains('/') || p.chars().any(char::is_whitespace) => {
                issues.push(
                    &path,
                    format!("`{p}` must be non-empty, without `/` or spaces"),
                )
            }
            Some(p) if seen.iter().any(|s| s == p) => {
                issues.push(&path, format!("`{p}` is the prefix of an earlier issuer"))
            }
            Some(p) => seen.push(p.to_owned()),
        }
    }
    let taken = |name: &str| seen.iter().find(|p| name.starts_with(&format!("{p}/")));
    for (i, t) in a.tokens.iter().enumerate() {
        let names = t.id.iter().chain(&t.roles).chain(&t.tenant);
        for name in names {
            if let Some(p) = taken(name) {
                issues.push(
                    format!("auth.tokens[{i}]"),
                    format!(
                        "`{name}` lies in the namespace of the issuer with principal_prefix `{p}`"
                    ),
                );
            }
        }
    }
    for issuer in issuers.iter_mut().filter(|i| i.principal_prefix.is_none()) {
        issuer.reserved_prefixes = seen.clone();
    }
}

fn cedar_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn kind(value: Option<&str>, path: &str, issues: &mut Issues) -> PrincipalKind {
    match value.unwrap_or("user") {
        "user" => PrincipalKind::User,
        "agent" => PrincipalKind::Agent,
        "service" => PrincipalKind::Service,
        other => {
            issues.push(
                path,
                format!("`{other}` must be `user`, `agent` or `service`"),
            );
            PrincipalKind::User
        }
    }
}

fn issuer(
    i: usize,
    s: &IssuerSection,
    attributes: &BTreeMap<String, AttrKind>,
    issues: &mut Issues,
) -> Option<IssuerSettings> {
    let at = |f: &str| format!("auth.issuers[{i}].{f}");
    let before = issues.0.len();
    let issuer = s.issuer.clone().unwrap_or_default();
    if issuer.is_empty() {
        issues.push(at("issuer"), "required");
    }
    if s.audiences.is_empty() || s.audiences.iter().any(String::is_empty) {
        issues.push(
            at("audiences"),
            "at least one non-empty audience is required",
        );
    }
    let keys = match (&s.jwks_url, &s.jwks_file) {
        (Some(url), None) => {
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| url.starts_with(p));
            if !url.starts_with("https://") && !loopback {
                issues.push(
                    at("jwks_url"),
                    format!("`{url}` must be https:// (http:// only on loopback)"),
                );
            }
            Some(KeySource::Url(url.clone()))
        }
        (None, Some(file)) => Some(KeySource::File(PathBuf::from(file))),
        _ => {
            issues.push(
                at("jwks_url"),
                "set exactly one of `jwks_url` and `jwks_file`",
            );
            None
        }
    };
    let seconds = |v: Option<u64>, d: u64, f: &str, issues: &mut Issues| {
        let v = v.unwrap_or(d);
        if f != "leeway_s" && v == 0 {
            issues.push(at(f), "must be greater than 0");
        }
        Duration::from_secs(v)
    };
    let leeway = seconds(s.leeway_s, 30, "leeway_s", issues);
    let refresh = seconds(s.refresh_s, 300, "refresh_s", issues);
    let min_refresh = seconds(s.min_refresh_s, 30, "min_refresh_s", issues);
    let max_lifetime = seconds(s.max_lifetime_s, 86_400, "max_lifetime_s", issues);
    let kind = kind(s.kind.as_deref(), &at("kind"), issues);
    if !s.tenants.is_empty() && s.tenant_claim.is_none() {
        issues.push(at("tenants"), "needs `tenant_claim`");
    }
    for (attr, claim) in &s.claims {
        if !attributes.contains_key(attr) {
            issues.push(
                at(&format!("claims.{attr}")),
                format!("`{attr}` is not declared in `auth.attributes`"),
            );
        }
        if claim.is_empty() {
            issues.push(
                at(&format!("claims.{attr}")),
                "claim path must not be empty",
            );
        }
    }
    if issues.0.len() != before {
        return None;
    }
    Some(IssuerSettings {
        issuer,
        audiences: s.audiences.clone(),
        keys: keys?,
        leeway,
        refresh,
        min_refresh,
        max_lifetime,
        subject_claim: s.subject_claim.clone().unwrap_or_else(|| "sub".to_owned()),
        roles_claim: s.roles_claim.clone(),
        tenant_claim: s.tenant_claim.clone(),
        kind_claim: s.kind_claim.clone(),
        kind,
        claims: s.claims.clone(),
        tenants: s.tenants.clone(),
        principal_prefix: s.principal_prefix.clone(),
        reserved_prefixes: Vec::new(),
    })
}

fn token(i: usize, t: &TokenSection, issues: &mut Issues) -> Option<TokenSettings> {
    let at = |f: &str| format!("auth.tokens[{i}].{f}");
    let hex = t.sha256.clone().unwrap_or_default();
    let sha256 = decode_hex32(&hex);
    if sha256.is_none() {
        issues.push(
            at("sha256"),
            "must be 64 hex digits (the SHA-256 of the token)",
        );
    }
    let id = t.id.clone().unwrap_or_default();
    if id.is_empty() {
        issues.push(at("id"), "required");
    }
    let kind = kind(t.kind.as_deref(), &at("kind"), issues);
    Some(TokenSettings {
        sha256: sha256?,
        principal: Principal {
            id,
            kind,
            roles: t.roles.clone(),
            tenant: t.tenant.clone(),
            issuer: None,
            namespace: None,
            attributes: BTreeMap::new(),
        },
    })
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
