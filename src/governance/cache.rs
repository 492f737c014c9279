//! The response cache: opt-in per tool (`cache_ttl_secs`, never from a backend's own hint),
//! bounded in bytes, keyed by tool + canonical arguments + the caller's authorization
//! scope, so one principal's result is never served to another. Entries of a backend are
//! dropped when its tools change or it reconnects, and on demand by tool or backend.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache as Moka;
use rmcp::model::ServerResult;
use sha2::{Digest, Sha256};

use crate::audit::jcs;
use crate::authn::Principal;

#[derive(Clone)]
pub struct Entry {
    pub result: Arc<ServerResult>,
    pub backend: usize,
    pub tool: Arc<str>,
    ttl: Duration,
}

struct PerEntry;

impl Expiry<[u8; 32], Entry> for PerEntry {
    fn expire_after_create(&self, _: &[u8; 32], e: &Entry, _: Instant) -> Option<Duration> {
        Some(e.ttl)
    }
}

pub struct ResponseCache {
    entries: Moka<[u8; 32], Entry>,
}

/// The caller's authorization scope: everything Cedar sees of the principal (identity,
/// issuer, kind, roles, tenant, attributes). Two callers share cache entries only if they
/// are the same principal with the same claims.
pub fn scope(p: &Principal) -> Vec<u8> {
    let mut roles = p.roles.clone();
    roles.sort();
    let value = serde_json::json!({
        "id": p.id,
        "issuer": p.issuer,
        "kind": format!("{:?}", p.kind),
        "roles": roles,
        "tenant": p.tenant,
        "attributes": p.attributes,
    });
    jcs::to_vec(&value)
}

/// The cache (and coalescing) key of a tool call.
pub fn key(
    tool: &str,
    arguments: Option<&serde_json::Map<String, serde_json::Value>>,
    scope: &[u8],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tool.as_bytes());
    h.update([0]);
    let args = serde_json::Value::Object(arguments.cloned().unwrap_or_default());
    h.update(jcs::to_vec(&args));
    h.update([0]);
    h.update(scope);
    h.finalize().into()
}

impl ResponseCache {
    pub fn new(max_bytes: u64) -> ResponseCache {
        ResponseCache {
            entries: Moka::builder()
                .max_capacity(max_bytes)
                .weigher(|_, e: &Entry| {
                    let bytes = serde_json::to_vec(&*e.result).map_or(0, |v| v.len());
                    u32::try_from(bytes + 64).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntry)
                .support_invalidation_closures()
                .build(),
        }
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<ServerResult>> {
        self.entries.get(key).map(|e| e.result)
    }

    pub fn insert(
        &self,
        key: [u8; 32],
        backend: usize,
        tool: &str,
        result: ServerResult,
        ttl: Duration,
    ) {
        self.entries.insert(
            key,
            Entry {
                result: Arc::new(result),
                backend,
                tool: tool.into(),
                ttl,
            },
        );
    }

    /// Drops every entry of a backend.
    pub fn invalidate_backend(&self, backend: usize) {
        let _ = self
            .entries
            .invalidate_entries_if(move |_, e| e.backend == backend);
    }

    /// Drops every entry of an exposed tool.
    pub fn invalidate_tool(&self, tool: &str) {
        let tool: Arc<str> = tool.into();
        let _ = self
            .entries
            .invalidate_entries_if(move |_, e| e.tool == tool);
    }
}
