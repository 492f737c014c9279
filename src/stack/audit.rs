//! The audit layer: exactly one record per request, written after the request is decided
//! and answered and — with `before-response` durability — durable before the answer leaves.
//!
//! Why outermost: it must see everything below it, denials and errors included, and a
//! request refused for any reason still gets its record. The record is written by
//! [`crate::mcp::Audited`], which wraps every MCP request a session handles; the
//! authorization layer, deeper in the same task, leaves its decision in the request's
//! [`Slot`] so the record can carry it.

use std::sync::{Arc, Mutex};

use crate::authz::Decision;

/// What the layers below learned about one request.
#[derive(Debug, Default)]
pub struct Slot {
    /// The first decision taken for the request (its own action); later ones, such as
    /// input requests decided during the call, do not replace it.
    pub decision: Option<Decision>,
    /// The guard rule that blocked the call and where (never the matched text).
    pub guard: Option<(String, String)>,
    /// Replacements made in the result, by redaction rule.
    pub redactions: std::collections::BTreeMap<String, usize>,
}

tokio::task_local! {
    static SLOT: Arc<Mutex<Slot>>;
}

/// Runs `fut` with `slot` as the request's audit slot.
pub fn scope<F: Future>(slot: Arc<Mutex<Slot>>, fut: F) -> impl Future<Output = F::Output> {
    SLOT.scope(slot, fut)
}

/// Records `decision` in the current request's slot, if there is one and it is the first.
pub fn note_decision(decision: &Decision) {
    let _ = SLOT.try_with(|slot| {
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.decision.is_none() {
            slot.decision = Some(decision.clone());
        }
    });
}

/// Records the guard rule that blocked the current request.
pub fn note_guard(rule: &str, path: &str) {
    let _ = SLOT.try_with(|slot| {
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.guard = Some((rule.to_owned(), path.to_owned()));
    });
}

/// Records what redaction replaced in the current request's result.
pub fn note_redactions(by_rule: &std::collections::BTreeMap<String, usize>) {
    let _ = SLOT.try_with(|slot| {
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        for (rule, n) in by_rule {
            *slot.redactions.entry(rule.clone()).or_default() += n;
        }
    });
}
