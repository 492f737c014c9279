//! Verified tokens, by the SHA-256 of the token, until they expire: a repeat caller skips
//! signature verification (~35 µs for RS256). An entry remembers the issuer and the key
//! that verified it and is honoured only while that key is still in the issuer's key set:
//! a key withdrawn from the JWKS takes its cached verifications with it. Bounded: when
//! full, expired entries go first, then everything (the next calls simply verify again).

use std::{collections::HashMap, sync::Mutex};

use super::principal::Principal;
use crate::sync::Locked;

const MAX_ENTRIES: usize = 10_000;

struct Entry {
    principal: Principal,
    expires: u64,
    /// Index of the issuer among the configured ones, and the key's fingerprint.
    issuer: usize,
    key: [u8; 32],
}

#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl TokenCache {
    /// The principal of a token verified earlier, not expired at `now` (epoch seconds),
    /// whose key `key_held(issuer, fingerprint)` says is still published. An entry whose
    /// key is gone is dropped.
    pub fn get(
        &self,
        hash: &[u8; 32],
        now: u64,
        key_held: impl Fn(usize, &[u8; 32]) -> bool,
    ) -> Option<Principal> {
        let mut entries = self.entries.locked();
        let entry = entries.get(hash)?;
        if entry.expires <= now {
            return None;
        }
        if !key_held(entry.issuer, &entry.key) {
            entries.remove(hash);
            return None;
        }
        Some(entry.principal.clone())
    }

    pub fn insert(
        &self,
        hash: [u8; 32],
        principal: Principal,
        (expires, issuer, key): (u64, usize, [u8; 32]),
        now: u64,
    ) {
        let mut entries = self.entries.locked();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            hash,
            Entry {
                principal,
                expires,
                issuer,
                key,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let cache = TokenCache::default();
        cache.insert([1; 32], Principal::anonymous(), (100, 0, [9; 32]), 50);
        assert!(cache.get(&[1; 32], 99, |_, _| true).is_some());
        assert!(cache.get(&[1; 32], 100, |_, _| true).is_none());
        assert!(cache.get(&[2; 32], 0, |_, _| true).is_none());
    }

    #[test]
    fn an_entry_goes_with_its_key() {
        let cache = TokenCache::default();
        cache.insert([1; 32], Principal::anonymous(), (100, 1, [9; 32]), 50);
        assert!(
            cache
                .get(&[1; 32], 60, |i, k| i == 1 && k == &[9; 32])
                .is_some()
        );
        assert!(cache.get(&[1; 32], 60, |_, k| k == &[8; 32]).is_none());
        // dropped for good, even if the key came back
        assert!(cache.get(&[1; 32], 60, |_, _| true).is_none());
    }
}
