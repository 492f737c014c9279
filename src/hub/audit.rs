//! Records the proxy writes on its own behalf: start, stop and policy changes, and the
//! requests refused before MCP ever saw them (authentication failures, foreign sessions).

use std::collections::BTreeMap;

use crate::audit::ProxyFields;
use crate::audit::record::OutcomeField;
use crate::audit::{AuditError, Entry, Kind};

use super::Hub;
use crate::sync::Locked;

/// The most bytes of one client-controlled field a refusal record keeps (a claim quoted in a
/// reason, a path, a request id). Longer values are cut at a character boundary and marked
/// with `…`, so an unauthenticated request cannot make the log write more than a few KiB.
pub const MAX_FIELD_BYTES: usize = 256;

/// `text` cut to at most [`MAX_FIELD_BYTES`] (plus the `…` marking the cut).
pub fn bounded(text: &str) -> String {
    if text.len() <= MAX_FIELD_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_FIELD_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Every value of a record's `detail` cut to [`MAX_FIELD_BYTES`].
fn bounded_detail(detail: BTreeMap<String, String>) -> BTreeMap<String, String> {
    detail
        .into_iter()
        .map(|(key, value)| (key, bounded(&value)))
        .collect()
}

/// A request no MCP handler recorded (refused before one saw it, or one no handler
/// serves: a notification, the GET stream, a session's DELETE), as its record holds it.
pub struct Refused {
    pub kind: Kind,
    /// The proxy's id for the request.
    pub request_id: Option<String>,
    /// The session the request named, if any.
    pub session: Option<String>,
    /// Who sent it, once authenticated (recorded as the audit log's settings say:
    /// pseudonymised where configured).
    pub principal: Option<std::sync::Arc<crate::authn::Principal>>,
    /// `http <method> <path>`.
    pub action: String,
    /// The HTTP status it got.
    pub status: u16,
    pub detail: BTreeMap<String, String>,
}

impl Hub {
    /// A `start`, `stop` or `policy` record with the policy and schema in force.
    pub async fn record_lifecycle(&self, kind: Kind) -> Result<(), AuditError> {
        self.record_lifecycle_with(kind, BTreeMap::new()).await
    }

    /// [`Hub::record_lifecycle`] with more `detail` (a reload's trigger and previous hash).
    pub async fn record_lifecycle_with(
        &self,
        kind: Kind,
        detail: BTreeMap<String, String>,
    ) -> Result<(), AuditError> {
        self.record_lifecycle_as(kind, detail, self.authz().as_ref())
            .await
    }

    /// [`Hub::record_lifecycle_with`] naming the policies of `engine` (a reload's, before
    /// it is in force) rather than those in force.
    pub async fn record_lifecycle_as(
        &self,
        kind: Kind,
        detail: BTreeMap<String, String>,
        engine: Option<&std::sync::Arc<crate::authz::Engine>>,
    ) -> Result<(), AuditError> {
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        let mut entry = Entry::new(kind);
        entry.detail = bounded_detail(detail);
        if let Some(engine) = engine {
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

    /// The tools' integrity findings as of the engine in force: counted, and each new one
    /// (a tool, its definition, what is wrong with it) logged and recorded once, as a
    /// `config` record naming the tool, its backend, the finding and what was done.
    pub async fn record_integrity(&self) {
        let found = self.authz.findings();
        for kind in ["changed", "unpinned", "suspicious"] {
            let count = found
                .iter()
                .filter(|e| e.findings.iter().any(|f| f.kind() == kind))
                .count();
            self.metrics
                .tool_integrity
                .get_or_create(&crate::telemetry::KindLabels { kind })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        let held = self
            .authz()
            .map(|e| {
                e.quarantined()
                    .iter()
                    .map(|(t, _)| t.clone())
                    .collect::<std::collections::BTreeSet<_>>()
            })
            .unwrap_or_default();
        // Names two backends make look alike: reported once a pair.
        let catalog = self.catalog();
        let named: Vec<(String, String)> = catalog
            .tools()
            .filter_map(|e| {
                let backend = catalog.backend(e.backend)?.settings.name.clone();
                Some((e.item.name.to_string(), backend))
            })
            .collect();
        let pairs =
            crate::pinning::names::confusable(named.iter().map(|(n, b)| (n.as_str(), b.as_str())));
        let new: Vec<_> = {
            let mut recorded = self.integrity_recorded.locked();
            for (a, b) in pairs {
                if recorded.insert(("confusable".to_owned(), a.0.clone(), b.0.clone())) {
                    tracing::warn!(
                        first = %a.0, first_backend = %a.1, second = %b.0, second_backend = %b.1,
                        "two backends expose tool names that look alike: a model choosing by name can be steered to the wrong one (rename one with `aliases`, or hide it)"
                    );
                }
            }
            found
                .into_iter()
                .filter(|e| recorded.insert((e.exposed.clone(), e.definition.clone(), e.reason())))
                .collect()
        };
        for e in new {
            let action = if held.contains(&e.exposed) {
                "held"
            } else {
                "recorded"
            };
            tracing::warn!(tool = %e.exposed, backend = %e.backend, action, finding = %e.reason(), "tool integrity");
            let mut detail = BTreeMap::from([
                ("event".to_owned(), "tool_integrity".to_owned()),
                ("tool".to_owned(), e.exposed.clone()),
                ("backend".to_owned(), e.backend.clone()),
                ("name".to_owned(), e.name.clone()),
                ("definition".to_owned(), format!("sha256:{}", e.definition)),
                ("action".to_owned(), action.to_owned()),
                ("reason".to_owned(), e.reason()),
                ("findings".to_owned(), {
                    let mut kinds: Vec<&str> = e.findings.iter().map(|f| f.kind()).collect();
                    kinds.dedup();
                    kinds.join(",")
                }),
            ]);
            for f in &e.findings {
                if let crate::pinning::Finding::Changed { parts, pinned, .. } = f {
                    detail.insert("changed".to_owned(), parts.join(","));
                    detail.insert("pinned".to_owned(), format!("sha256:{pinned}"));
                }
            }
            let Some(audit) = &self.audit else { continue };
            let mut entry = Entry::new(Kind::Config);
            entry.detail = bounded_detail(detail);
            if let Err(err) = audit.append(entry, None).await {
                tracing::error!(error = %err, tool = %e.exposed, "the tool integrity finding could not be recorded");
            }
        }
    }

    /// An operator's change through the admin API (a kill switch, a breaker reset, a
    /// purge, a session ended, a reload): a `config` record naming who did what to which.
    pub async fn record_admin(
        &self,
        principal: &crate::authn::Principal,
        action: &str,
        resource: &str,
        detail: BTreeMap<String, String>,
    ) -> Result<(), AuditError> {
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        let mut entry = Entry::new(Kind::Config);
        entry.request_id = Some(crate::ids::request_id());
        entry.principal = Some(audit.entries().principal(principal));
        entry.action = Some(format!("admin {action}"));
        entry.resource = Some(bounded(resource));
        entry.detail = bounded_detail(detail);
        if let Some(engine) = self.authz() {
            entry.policy_hash = Some(format!("sha256:{}", engine.policy_set_hash()));
        }
        audit.append(entry, None).await.map(drop).inspect_err(|e| {
            self.metrics.audit_refusals.inc();
            tracing::error!(error = %e, "could not record an admin change");
        })
    }

    /// A request refused at the HTTP layer: `status` is the HTTP status it got and
    /// `detail.reason` why (kept in the log, never told to the client).
    pub async fn record_refusal(&self, refused: Refused) {
        let Some(audit) = &self.audit else { return };
        let mut entry = Entry::new(refused.kind);
        entry.request_id = refused.request_id;
        entry.session = refused.session.as_deref().map(bounded);
        entry.principal = refused
            .principal
            .as_ref()
            .map(|p| audit.entries().principal(p));
        entry.action = Some(bounded(&refused.action));
        entry.detail = bounded_detail(refused.detail);
        entry.outcome = Some(OutcomeField {
            status: match refused.status {
                200..=299 => "ok",
                401 => "unauthenticated",
                429 => "rate_limited",
                _ => "error",
            }
            .to_owned(),
            code: Some(i64::from(refused.status)),
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
    ) -> Result<(), AuditError> {
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        let mut entry = Entry::new(Kind::Request);
        entry.request_id = Some(crate::ids::request_id());
        let recorded = origin.recorded.as_ref();
        entry.session = recorded.and_then(|r| r.session.clone());
        entry.principal = Some(audit.entries().principal(&origin.principal));
        entry.action = Some(action.to_owned());
        entry.resource = Some(backend.to_owned());
        if let Some(r) = recorded {
            entry
                .detail
                .insert("caused_by".to_owned(), bounded(&r.request));
        }
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
        audit.append(entry, None).await.map(drop).inspect_err(|e| {
            self.metrics.audit_refusals.inc();
            tracing::error!(error = %e, "could not record a relayed server request: refusing it");
        })
    }
}

/// Each step of a call waiting for approval, as a `config` record written before the step
/// takes effect: who took it, the request's id, the caller (as the log names principals),
/// the tool and the hash of the arguments — never the arguments.
pub struct ApprovalLog {
    pub audit: std::sync::Arc<crate::audit::Audit>,
}

impl crate::approvals::Recorder for ApprovalLog {
    fn record<'a>(
        &'a self,
        event: crate::approvals::Event<'a>,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let entries = self.audit.entries();
            let view = event.view;
            let mut entry = Entry::new(Kind::Config);
            entry.request_id = Some(crate::ids::request_id());
            entry.session = Some(bounded(&view.session));
            entry.principal = event.by.map(|p| entries.principal(p));
            entry.action = Some(format!("approval {}", event.step));
            entry.resource = Some(bounded(&view.tool));
            let caller = crate::authn::Principal {
                id: view.caller.clone(),
                ..crate::authn::Principal::local()
            };
            let mut detail = BTreeMap::from([
                ("approval".to_owned(), view.id.clone()),
                ("caller".to_owned(), entries.principal(&caller).id),
                ("arguments_sha256".to_owned(), view.arguments_sha256.clone()),
                ("roles".to_owned(), view.roles.join(",")),
                (
                    "expires".to_owned(),
                    crate::audit::show::rfc3339(view.expires_us),
                ),
            ]);
            if let Some(reason) = event.reason {
                detail.insert("reason".to_owned(), reason.to_owned());
            }
            entry.detail = bounded_detail(detail);
            self.audit
                .append(entry, None)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_cuts_long_fields_at_a_character_boundary() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(10_000);
        let cut = bounded(&long);
        assert!(
            cut.len() <= MAX_FIELD_BYTES + '…'.len_utf8(),
            "{}",
            cut.len()
        );
        assert!(cut.ends_with('…'));
        assert_eq!(bounded(&"a".repeat(MAX_FIELD_BYTES)).len(), MAX_FIELD_BYTES);
    }
}
