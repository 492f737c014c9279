//! The audit log, from the `warden-audit` crate (its format, writer and verifier), and what
//! only the proxy knows: how its principals and decisions become a record's plain fields.
//! The crate depends on nothing of the proxy; the mapping lives here, written out, so a
//! renamed type or variant can never change the wire format.

pub use warden_audit::*;

use crate::authn::{Principal, PrincipalKind};
use crate::authz::Decision;

/// The principal's kind as records write it (audit/FORMAT.md §2).
pub fn kind_name(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "User",
        PrincipalKind::Agent => "Agent",
        PrincipalKind::Service => "Service",
    }
}

/// The proxy's principals and decisions as record fields, under the log's settings.
pub trait ProxyFields {
    /// The principal as recorded (its id pseudonymised where the log pseudonymises).
    fn principal(&self, p: &Principal) -> record::PrincipalField;
    /// The decision as recorded.
    fn decision(&self, d: &Decision) -> record::DecisionField;
}

impl ProxyFields for EntryBuilder {
    fn principal(&self, p: &Principal) -> record::PrincipalField {
        record::PrincipalField {
            id: self.principal_id(&p.id),
            kind: kind_name(p.kind).to_owned(),
            roles: p.roles.clone(),
            tenant: p.tenant.clone(),
            issuer: p.issuer.clone(),
        }
    }

    fn decision(&self, d: &Decision) -> record::DecisionField {
        let mut errors = d.errors.clone();
        errors.extend(d.shadow_errors.iter().map(|e| format!("shadow: {e}")));
        record::DecisionField {
            effect: if d.allowed { "allow" } else { "deny" }.to_owned(),
            policies: d.determining.clone(),
            errors,
            shadow: d
                .shadow
                .iter()
                .map(|s| record::ShadowField {
                    policy: s.policy.clone(),
                    effect: s.effect.to_string(),
                    would_change: s.would_change,
                })
                .collect(),
            reason: d.reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire names of the kinds are fixed, whatever the enum's variants are called.
    #[test]
    fn kinds_are_written_as_the_format_says() {
        assert_eq!(
            [
                PrincipalKind::User,
                PrincipalKind::Agent,
                PrincipalKind::Service
            ]
            .map(kind_name),
            ["User", "Agent", "Service"]
        );
    }
}
