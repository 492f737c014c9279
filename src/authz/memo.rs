//! Per-engine memo of the entities a tool call evaluates against: the tool action's
//! precomputed entities plus the caller's principal entity. Building the principal entity and
//! merging it into the store is a quarter of a decision's cost, and a caller usually makes
//! many calls. The memo lives inside one immutable engine, so a reload (new policies, new
//! attribute declarations, a new catalog) starts from an empty memo and nothing stale
//! survives. The key is the whole principal (identity, kind, roles, tenant, attributes),
//! compared in full, never a hash alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cedar_policy::{Entities, EntityUid, PolicySet};

use super::types::Decision;
use crate::authn::principal::Principal;
use crate::sync::Locked;

/// Entries kept before the memo starts over (principals × tools they call).
const CAPACITY: usize = 8_192;

/// The principal as a tool call's evaluation needs it, with the merged entities.
pub(crate) struct Prepared {
    pub uid: EntityUid,
    pub parents: Vec<EntityUid>,
    pub entities: Entities,
    /// The caller's buckets of the tool's slice merged into one set.
    pub merged: Option<PolicySet>,
    /// The decision itself, when no policy of the tool's slice reads the context: the
    /// request is then this entry's principal, the tool's action and resource, and an empty
    /// context, so every call (whatever its arguments, once they fit their types) gets the
    /// same answer from Cedar.
    pub decided: OnceLock<Decision>,
}

/// Prepared entries by principal, then by tool (looked up without allocating a key).
#[derive(Default)]
pub(crate) struct Memo {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_principal: HashMap<Principal, HashMap<String, Arc<Prepared>>>,
    len: usize,
}

impl Memo {
    /// The memoised entry, or `build`'s result (remembered when it succeeds).
    pub fn get_or_try<E>(
        &self,
        principal: &Principal,
        tool: &str,
        build: impl FnOnce() -> Result<Prepared, E>,
    ) -> Result<Arc<Prepared>, E> {
        if let Some(found) = self
            .lock()
            .by_principal
            .get(principal)
            .and_then(|tools| tools.get(tool))
        {
            return Ok(found.clone());
        }
        let prepared = Arc::new(build()?);
        let mut entries = self.lock();
        if entries.len >= CAPACITY {
            *entries = Entries::default();
        }
        let previous = entries
            .by_principal
            .entry(principal.clone())
            .or_default()
            .insert(tool.to_owned(), prepared.clone());
        if previous.is_none() {
            entries.len += 1;
        }
        Ok(prepared)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves only a cache behind: keep using it.
        self.entries.locked()
    }
}
