//! Records the proxy writes on its own behalf: start, stop and policy changes, and the
//! requests refused before MCP ever saw them (authentication failures, foreign sessions).

use std::collections::BTreeMap;

use crate::audit::record::OutcomeField;
use crate::audit::{AuditError, Entry, Kind};

use super::Hub;

impl Hub {
    /// A `start`, `stop` or `policy` record with the policy and schema in force.
    pub async fn record_lifecycle(&self, kind: Kind) -> Result<(), AuditError> {
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        let mut entry = Entry::new(kind);
        if let Some(engine) = self.authz() {
            entry.policy_hash = Some(format!("sha256:{}", engine.policy_set_hash()));
            entry.schema_hash = Some(format!("sha256:{}", engine.schema_hash()));
            entry.detail.insert(
                "quarantined".to_owned(),
                engine
                    .quarantined()
                    .iter()
                    .map(|(tool, _)| tool.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        entry
            .detail
            .insert("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned());
        audit.append(entry, None).await.map(|_| ())
    }

    /// A request refused at the HTTP layer: `status` is the HTTP status it got and
    /// `reason` why (kept in the log, never told to the client).
    pub async fn record_refusal(
        &self,
        kind: Kind,
        request_id: Option<String>,
        action: String,
        status: u16,
        detail: BTreeMap<String, String>,
    ) {
        let Some(audit) = &self.audit else { return };
        let mut entry = Entry::new(kind);
        entry.request_id = request_id;
        entry.action = Some(action);
        entry.detail = detail;
        entry.outcome = Some(OutcomeField {
            status: if status == 401 {
                "unauthenticated"
            } else {
                "error"
            }
            .to_owned(),
            code: Some(i64::from(status)),
            latency_us: 0,
            result_hash: None,
        });
        if let Err(e) = audit.append(entry, None).await {
            self.metrics.audit_refusals.inc();
            tracing::error!(error = %e, "could not record a refused request");
        }
    }

    /// A request a backend sent to a client (sampling, elicitation, roots), decided for
    /// the principal whose call caused it: relayed or refused, it has its record, in the
    /// causing call's session.
    pub async fn record_relayed(
        &self,
        origin: &crate::backend::Origin,
        action: &str,
        backend: &str,
        decision: Option<&crate::authz::Decision>,
        result: Result<(), &rmcp::ErrorData>,
    ) {
        let Some(audit) = &self.audit else { return };
        let mut entry = Entry::new(Kind::Request);
        entry.request_id = Some(crate::ids::request_id());
        entry.session = origin.recorded_session.clone();
        entry.principal = Some(audit.entries().principal(&origin.principal));
        entry.action = Some(action.to_owned());
        entry.resource = Some(backend.to_owned());
        entry.detail.insert(
            "caused_by".to_owned(),
            crate::ids::client_id(&origin.request_id.to_string()),
        );
        let denied = !decision.is_some_and(|d| d.allowed);
        entry.decision = decision.map(|d| audit.entries().decision(d));
        entry.outcome = Some(OutcomeField {
            status: match result {
                Ok(()) => "ok",
                Err(_) if denied => "denied",
                Err(_) => "error",
            }
            .to_owned(),
            code: result.err().map(|e| i64::from(e.code.0)),
            latency_us: 0,
            result_hash: None,
        });
        if let Err(e) = audit.append(entry, None).await {
            self.metrics.audit_refusals.inc();
            tracing::error!(error = %e, "could not record a relayed server request");
        }
    }
}
