//! What a request's audit record learns from the layers below: the decision, the guard
//! that blocked it, what redaction replaced. Exactly one record per request is written by
//! [`crate::mcp::Audited`], outermost, after the request is decided and answered.
//!
//! The notes travel with the request explicitly: `Audited` puts them in the request's
//! context, the session hands them to the call's [`crate::backend::Origin`], and whatever
//! decides or guards writes there. A denial is an error, and a refused call never reaches
//! a response, so the notes are a place beside the call's outcome rather than part of it.
//! Nothing is ambient: a task spawned for a call (coalescing, the hot path) carries them
//! in the call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::authz::Decision;
use crate::sync::Locked;

/// What the layers below learned about one request.
#[derive(Default)]
pub struct Slot {
    /// The first decision taken for the request (its own action); later ones, such as
    /// input requests decided during the call, do not replace it.
    pub decision: Option<Decision>,
    /// The engine that took it: the policy set and schema the request was decided on.
    pub engine: Option<std::sync::Arc<crate::authz::Engine>>,
    /// The guard rule that blocked the call and where (never the matched text).
    pub guard: Option<(String, String)>,
    /// Replacements made in the result, by redaction rule.
    pub redactions: BTreeMap<String, usize>,
    /// The person's approval the call went on with (`@approval`).
    pub approval: Option<crate::approvals::Grant>,
}

/// One request's notes, or none (nothing records the request: no audit log, an admin
/// request, a backend's own request).
#[derive(Clone, Default)]
pub struct Notes(Option<Arc<Mutex<Slot>>>);

impl std::fmt::Debug for Notes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Notes"
        } else {
            "Notes(none)"
        })
    }
}

impl Notes {
    /// Notes for a request that is recorded.
    pub fn recorded() -> Notes {
        Notes(Some(Arc::default()))
    }

    fn with(&self, f: impl FnOnce(&mut Slot)) {
        if let Some(slot) = &self.0 {
            f(&mut slot.locked());
        }
    }

    /// Records `decision` and the engine that took it (none: the kill switch), if it is
    /// the request's first.
    pub fn decision(&self, decision: &Decision, engine: Option<&Arc<crate::authz::Engine>>) {
        self.with(|slot| {
            if slot.decision.is_none() {
                slot.decision = Some(decision.clone());
                slot.engine = engine.cloned();
            }
        });
    }

    /// Records the guard rule that blocked the request.
    pub fn guard(&self, rule: &str, path: &str) {
        self.with(|slot| slot.guard = Some((rule.to_owned(), path.to_owned())));
    }

    /// Records what redaction replaced in the request's result.
    pub fn redactions(&self, by_rule: &BTreeMap<String, usize>) {
        self.with(|slot| {
            for (rule, n) in by_rule {
                *slot.redactions.entry(rule.clone()).or_default() += n;
            }
        });
    }

    /// Records the approval the call went on with.
    pub fn approval(&self, grant: &crate::approvals::Grant) {
        self.with(|slot| slot.approval = Some(grant.clone()));
    }

    /// The decision so far as a receipt: the policy set's hash and the determining
    /// policies (a parent's word to a child mcp-warden).
    pub fn receipt(&self) -> Option<(String, Vec<String>)> {
        let mut receipt = None;
        self.with(|slot| {
            if let (Some(decision), Some(engine)) = (&slot.decision, &slot.engine) {
                receipt = Some((
                    format!("sha256:{}", engine.policy_set_hash()),
                    decision.determining.clone(),
                ));
            }
        });
        receipt
    }

    /// Everything noted, taken out.
    pub fn take(&self) -> Slot {
        let mut taken = Slot::default();
        self.with(|slot| taken = std::mem::take(slot));
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_decision_stays_and_unrecorded_requests_note_nothing() {
        let notes = Notes::recorded();
        notes.decision(&Decision::deny("first".to_owned()), None);
        notes.decision(&Decision::deny("second".to_owned()), None);
        let mut redactions = BTreeMap::from([("email".to_owned(), 2)]);
        notes.redactions(&redactions);
        redactions.insert("email".to_owned(), 1);
        notes.redactions(&redactions);
        let slot = notes.clone().take();
        assert_eq!(slot.decision.map(|d| d.reason), Some("first".to_owned()));
        assert_eq!(slot.redactions["email"], 3);

        let nobody = Notes::default();
        nobody.guard("rule", "$.x");
        assert!(nobody.take().guard.is_none());
    }
}
