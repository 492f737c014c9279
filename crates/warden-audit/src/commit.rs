//! Argument commitments (audit/FORMAT.md §6): the log proves what a call's arguments were
//! without holding them in clear. Each leaf (and the whole object) gets a salted SHA-256;
//! the salts and values go to a separate openings file, so one value can later be
//! disclosed and proven — or all of them made undisclosable by deleting that file.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::jcs;
use super::record::hex;

/// Leaves that get a commitment of their own; the whole object is always committed.
pub const MAX_LEAVES: usize = 256;

const DOMAIN: &[u8] = b"mcp-warden/commit/v1";

/// `SHA-256(DOMAIN || 0x00 || salt || path || 0x00 || JCS(value))`.
pub fn commitment(path: &str, value: &Value, salt: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update([0]);
    h.update(salt);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(jcs::to_vec(value));
    h.finalize().into()
}

/// The commitments of the arguments object `whole` (path -> hex) and their salts (path ->
/// salt): one for the whole object, one per leaf up to [`MAX_LEAVES`].
pub fn commit(whole: &Value) -> (BTreeMap<String, String>, BTreeMap<String, [u8; 32]>) {
    let mut leaves = vec![(String::new(), whole)];
    collect(whole, String::new(), &mut leaves);
    // One draw from the OS for every salt of the record.
    let mut random = vec![[0u8; 32]; leaves.len()];
    fill(random.as_flattened_mut());
    let mut commitments = BTreeMap::new();
    let mut salts = BTreeMap::new();
    for ((path, value), salt) in leaves.into_iter().zip(random) {
        commitments.insert(path.clone(), hex(&commitment(&path, value, &salt)));
        salts.insert(path, salt);
    }
    (commitments, salts)
}

/// The leaves of `value` with their RFC 6901 paths, depth first in key order.
fn collect<'v>(value: &'v Value, path: String, out: &mut Vec<(String, &'v Value)>) {
    // The whole object is the first entry of `out`.
    if out.len() > MAX_LEAVES {
        return;
    }
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by_key(|m| m.0);
            for (k, v) in members {
                collect(v, format!("{path}/{}", escape(k)), out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                collect(item, format!("{path}/{i}"), out);
            }
        }
        _ if path.is_empty() => {}
        _ => out.push((path, value)),
    }
}

/// RFC 6901 escaping of one reference token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The value at an RFC 6901 path.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    value.pointer(path)
}

fn fill(salts: &mut [u8]) {
    // The thread's CSPRNG, seeded and reseeded from the OS random source (which failing
    // is not recoverable: an all-zero salt would still commit correctly but would let
    // low-entropy values be guessed, so it panics rather than go on).
    rand::fill(salts);
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;

    #[test]
    fn commits_every_leaf_and_the_whole() {
        let args = json!({"amount": 5, "order": {"items": ["a", {"x/y": true}]}, "e": {}});
        let (c, salts) = commit(&args);
        let paths: Vec<&str> = c.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            ["", "/amount", "/e", "/order/items/0", "/order/items/1/x~1y"]
        );
        for (path, hexed) in &c {
            let value = lookup(&args, path).unwrap();
            assert_eq!(&hex(&commitment(path, value, &salts[path])), hexed);
        }
    }

    #[test]
    fn a_different_value_or_salt_does_not_open() {
        let args = json!({"amount": 5});
        let (c, salts) = commit(&args);
        let salt = salts["/amount"];
        assert_ne!(hex(&commitment("/amount", &json!(6), &salt)), c["/amount"]);
        assert_ne!(
            hex(&commitment("/amount", &json!(5), &[0; 32])),
            c["/amount"]
        );
        assert_ne!(
            hex(&commitment("/amount", &json!("5"), &salt)),
            c["/amount"]
        );
    }

    #[test]
    fn leaves_are_bounded() {
        let many: Map<String, Value> = (0..1000).map(|i| (format!("k{i}"), json!(i))).collect();
        let (c, _) = commit(&Value::Object(many));
        assert_eq!(c.len(), MAX_LEAVES + 1);
    }
}
