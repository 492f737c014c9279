//! Gateways behind gateways: a parent mcp-warden tells a child which principal each call is
//! for, signed, and the child decides on that principal with its own policies. Beside the
//! traffic path: the backend layer asks [`ActorSigner`] for a header, the authentication
//! layer asks [`Parent`] to open one.
//!
//! The assertion is a C2SP signed note (the audit log's format and keys: `mcp-warden audit
//! keygen --name <parent> --out <file>`) whose text is one JSON line — the parent, the
//! principal (id, kind, roles, tenant), the parent's request id, when, and the parent's
//! decision receipt (its policy set's hash and determining policies) — sent base64url in
//! `warden-actor` on every call to a backend marked `actor = true`. A child that lists the
//! parent in `[[auth.parents]]` accepts it only from the principal the parent
//! authenticates as, only within a minute of when it was made, and names the principal
//! within the parent (`<parent>/<id>`, roles and tenant likewise), so a parent can never
//! speak for the child's own principals. The child's records name the parent, its request
//! id and its receipt, so the two logs join.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::audit::{NoteSigner, NoteVerifier};
use crate::authn::{Principal, PrincipalKind};

/// The request header that carries the assertion.
pub const HEADER: &str = "warden-actor";
/// How old (or how far ahead) an assertion may be.
const FRESH_S: u64 = 60;

/// What a parent asserts about one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assertion {
    /// The parent's name (its key's).
    pub parent: String,
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    /// The parent's request id (its record's).
    pub request_id: String,
    /// Unix seconds.
    pub at: u64,
    /// The parent's decision: its policy set's hash and the policies that allowed the call.
    #[serde(default)]
    pub policy_hash: Option<String>,
    #[serde(default)]
    pub policies: Vec<String>,
}

/// A parent's key, signing an assertion per call.
pub struct ActorSigner {
    name: String,
    signer: NoteSigner,
}

impl std::fmt::Debug for ActorSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ActorSigner({})", self.name)
    }
}

impl ActorSigner {
    /// From a C2SP signer key (`mcp-warden audit keygen`'s `.key`).
    pub fn from_skey(skey: &str) -> Result<ActorSigner, String> {
        let signer = NoteSigner::from_skey(skey.trim()).map_err(|e| e.to_string())?;
        Ok(ActorSigner {
            name: signer.name().to_owned(),
            signer,
        })
    }

    /// The header value asserting `principal` for the parent's request `request_id`.
    pub fn header(
        &self,
        principal: &Principal,
        request_id: &str,
        receipt: Option<(String, Vec<String>)>,
    ) -> Option<http::HeaderValue> {
        let (policy_hash, policies) = receipt.unzip();
        let assertion = Assertion {
            parent: self.name.clone(),
            id: principal.id.clone(),
            kind: principal.kind.entity_type().to_owned(),
            roles: principal.roles.clone(),
            tenant: principal.tenant.clone(),
            request_id: request_id.to_owned(),
            at: crate::ids::unix_seconds(),
            policy_hash,
            policies: policies.unwrap_or_default(),
        };
        // One JSON line: serde_json escapes every control character.
        let line = serde_json::to_string(&assertion).ok()?;
        let note = self.signer.sign(&format!("{line}\n")).ok()?;
        let mut value = http::HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(note)).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

/// A parent a child trusts (`[[auth.parents]]`).
#[derive(Debug)]
pub struct Parent {
    /// The id of the principal the parent authenticates as (its token's).
    pub principal: String,
    verifier: NoteVerifier,
}

/// Which parent a request came through, for its record.
#[derive(Debug, Clone)]
pub struct Via {
    pub parent: String,
    pub request_id: String,
    /// `<policy hash> <policies…>`: the parent's decision.
    pub receipt: Option<String>,
}

impl Parent {
    pub fn new(principal: String, vkey: &str) -> Result<Parent, String> {
        Ok(Parent {
            principal,
            verifier: NoteVerifier::from_vkey(vkey).map_err(|e| e.to_string())?,
        })
    }

    pub fn name(&self) -> &str {
        self.verifier.name()
    }

    /// The principal a header asserts, named within the parent, or why not.
    pub fn open(&self, header: &str) -> Result<(Principal, Via), String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(header.trim())
            .map_err(|_| "the assertion is not base64url".to_owned())?;
        let note = String::from_utf8(bytes).map_err(|_| "the assertion is not text")?;
        let text = crate::audit::note::open(&note, &self.verifier)
            .map_err(|e| format!("the assertion does not verify: {e}"))?;
        let a: Assertion = serde_json::from_str(text.trim_end())
            .map_err(|e| format!("the assertion is not one: {e}"))?;
        if a.parent != self.name() {
            return Err("the assertion names another parent".to_owned());
        }
        let now = crate::ids::unix_seconds();
        if a.at + FRESH_S < now || a.at > now + FRESH_S {
            return Err(format!(
                "the assertion was made {} s from now, more than {FRESH_S}",
                a.at.abs_diff(now)
            ));
        }
        let within = |s: &str| format!("{}/{s}", self.name());
        let kind = match a.kind.as_str() {
            "Agent" => PrincipalKind::Agent,
            "Service" => PrincipalKind::Service,
            _ => PrincipalKind::User,
        };
        if a.id.is_empty() {
            return Err("the assertion names no principal".to_owned());
        }
        let principal = Principal {
            id: within(&a.id),
            kind,
            roles: a.roles.iter().map(|r| within(r)).collect(),
            tenant: a.tenant.as_deref().map(within),
            issuer: None,
            namespace: Some(self.name().to_owned()),
            attributes: Default::default(),
        };
        let receipt = a
            .policy_hash
            .map(|h| format!("{h} {}", a.policies.join(",")));
        Ok((
            principal,
            Via {
                parent: self.name().to_owned(),
                request_id: a.request_id,
                receipt,
            },
        ))
    }
}

/// The parents of `[[auth.parents]]`, shared.
pub type Parents = Arc<Vec<Parent>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(name: &str) -> (ActorSigner, Parent) {
        let (_, skey, vkey) = NoteSigner::generate(name).unwrap();
        (
            ActorSigner::from_skey(&skey).unwrap(),
            Parent::new("hq-service".to_owned(), &vkey).unwrap(),
        )
    }

    fn ann() -> Principal {
        Principal {
            id: "ann".to_owned(),
            kind: PrincipalKind::User,
            roles: vec!["dev".to_owned()],
            tenant: Some("acme".to_owned()),
            issuer: Some("https://login".to_owned()),
            namespace: None,
            attributes: Default::default(),
        }
    }

    #[test]
    fn a_child_reads_who_the_parent_speaks_for_named_within_the_parent() {
        let (signer, parent) = keys("hq");
        let header = signer
            .header(
                &ann(),
                "abc-7",
                Some(("sha256:ff".to_owned(), vec!["devs".to_owned()])),
            )
            .unwrap();
        let (p, via) = parent.open(header.to_str().unwrap()).unwrap();
        assert_eq!(p.id, "hq/ann");
        assert_eq!(p.roles, ["hq/dev"]);
        assert_eq!(p.tenant.as_deref(), Some("hq/acme"));
        assert_eq!(p.namespace.as_deref(), Some("hq"));
        assert_eq!(via.request_id, "abc-7");
        assert_eq!(via.receipt.as_deref(), Some("sha256:ff devs"));
    }

    #[test]
    fn another_key_a_changed_assertion_or_an_old_one_is_refused() {
        let (signer, parent) = keys("hq");
        let (other, _) = keys("hq");
        let forged = other.header(&ann(), "1", None).unwrap();
        assert!(parent.open(forged.to_str().unwrap()).is_err());
        let good = signer.header(&ann(), "1", None).unwrap();
        let mut note =
            String::from_utf8(URL_SAFE_NO_PAD.decode(good.to_str().unwrap()).unwrap()).unwrap();
        note = note.replacen("\"ann\"", "\"root\"", 1);
        assert!(parent.open(&URL_SAFE_NO_PAD.encode(&note)).is_err());
        for junk in ["", "!!!", "aGVsbG8", &"A".repeat(10_000)] {
            assert!(parent.open(junk).is_err(), "{junk:?}");
        }
        // An assertion made long ago (signed with the right key) is refused.
        let (_, skey, vkey) = NoteSigner::generate("hq").unwrap();
        let stale = Assertion {
            parent: "hq".to_owned(),
            id: "ann".to_owned(),
            kind: "User".to_owned(),
            roles: vec![],
            tenant: None,
            request_id: "1".to_owned(),
            at: crate::ids::unix_seconds() - 3600,
            policy_hash: None,
            policies: vec![],
        };
        let signed = NoteSigner::from_skey(&skey)
            .unwrap()
            .sign(&format!("{}\n", serde_json::to_string(&stale).unwrap()))
            .unwrap();
        let parent = Parent::new("x".to_owned(), &vkey).unwrap();
        let e = parent.open(&URL_SAFE_NO_PAD.encode(signed)).unwrap_err();
        assert!(e.contains("more than 60"), "{e}");
    }
}
