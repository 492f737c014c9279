//! Verified tokens, by the SHA-256 of the token, until they expire: a repeat caller skips
//! signature verification (~35 µs for RS256). Bounded: when full, expired entries go first,
//! then everything (the next calls simply verify again).

use std::{collections::HashMap, sync::Mutex};

use super::principal::Principal;

const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], (Principal, u64)>>,
}

impl TokenCache {
    /// The principal of a token verified earlier and not expired at `now` (epoch seconds).
    pub fn get(&self, hash: &[u8; 32], now: u64) -> Option<Principal> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(hash)
            .filter(|(_, exp)| *exp > now)
            .map(|(p, _)| p.clone())
    }

    pub fn insert(&self, hash: [u8; 32], principal: Principal, exp: u64, now: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, e)| *e > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(hash, (principal, exp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let cache = TokenCache::default();
        cache.insert([1; 32], Principal::anonymous(), 100, 50);
        assert!(cache.get(&[1; 32], 99).is_some());
        assert!(cache.get(&[1; 32], 100).is_none());
        assert!(cache.get(&[2; 32], 0).is_none());
    }
}
