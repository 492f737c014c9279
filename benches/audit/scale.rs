//! Section 6: the auditor's costs at scale, without writing huge logs. Proofs at 10^6 and
//! 10^8 leaves are real RFC 6962 proofs over a tree of identical leaves (every subtree's
//! root then depends on its size alone, so any proof is O(log n) to make), checked with the
//! verifier's own functions. Incremental verification of 1,000 new records on top of
//! 10,000,000: the state's tree is that of 9,999,000 placeholder leaves and 1,000 real
//! records, the store holds those real records and the new ones, and `verify --state
//! --incremental` reads only from the segment of the state's last record.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use mcp_warden::audit::merkle::{
    CompactTree, Hash, leaf_hash, node_hash, verify_consistency, verify_inclusion,
};
use mcp_warden::audit::note::Checkpoint;
use mcp_warden::audit::record::{DecisionField, OutcomeField, PrincipalField, VERSION, hex};
use mcp_warden::audit::store::{checkpoint_key, segment_key};
use mcp_warden::audit::verify::{Options, Resume, State, verify_with};
use mcp_warden::audit::{Entry, Kind, NoteSigner, NoteVerifier, Record, Store};

use super::{dist, us};

/// Roots of trees of `n` identical leaves, memoised.
struct Identical {
    leaf: Hash,
    roots: HashMap<u64, Hash>,
}

impl Identical {
    fn root(&mut self, n: u64) -> Hash {
        if n == 1 {
            return self.leaf;
        }
        if let Some(h) = self.roots.get(&n) {
            return *h;
        }
        let k = split(n);
        let h = node_hash(&self.root(k), &self.root(n - k));
        self.roots.insert(n, h);
        h
    }

    /// RFC 6962 PATH(index, D[n]), leaf upward.
    fn inclusion(&mut self, index: u64, n: u64) -> Vec<Hash> {
        let (mut lo, mut hi, mut path) = (0, n, Vec::new());
        while hi - lo > 1 {
            let k = split(hi - lo);
            if index - lo < k {
                path.push(self.root(hi - lo - k));
                hi = lo + k;
            } else {
                path.push(self.root(k));
                lo += k;
            }
        }
        path.reverse();
        path
    }

    /// RFC 6962 PROOF(m, D[n]).
    fn consistency(&mut self, m: u64, n: u64) -> Vec<Hash> {
        let (mut lo, mut hi, mut m2, mut whole) = (0u64, n, m, true);
        let mut siblings = Vec::new();
        while m2 != hi - lo {
            let k = split(hi - lo);
            if m2 <= k {
                siblings.push(self.root(hi - lo - k));
                hi = lo + k;
            } else {
                siblings.push(self.root(k));
                lo += k;
                m2 -= k;
                whole = false;
            }
        }
        let mut proof = Vec::new();
        if !whole {
            proof.push(self.root(hi - lo));
        }
        proof.extend(siblings.into_iter().rev());
        proof
    }
}

fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// A proof file's size as `audit prove` writes hashes (base64 in a JSON array).
fn json_bytes(hashes: usize) -> usize {
    hashes * 47
}

pub fn proofs(checks: usize) {
    println!("\nproofs at scale (identical leaves; check = verify_inclusion / verify_consistency)");
    println!(
        "{:>12} {:<28} {:>7} {:>10} {:>11} {:>11}",
        "leaves", "proof", "hashes", "JSON bytes", "check p50", "check p99"
    );
    let mut tree = Identical {
        leaf: leaf_hash(b"{\"a\":1}"),
        roots: HashMap::new(),
    };
    for n in [1_000_000u64, 100_000_000] {
        let root = tree.root(n);
        // (name, Some(index) for an inclusion proof, or the old size of a consistency one)
        let cases = [
            ("inclusion of leaf n/2", Ok(n / 2)),
            ("inclusion of leaf n-1", Ok(n - 1)),
            ("consistency n/2 -> n", Err(n / 2)),
            ("consistency n-1000 -> n", Err(n - 1000)),
        ];
        for (name, case) in cases {
            let proof = match case {
                Ok(index) => tree.inclusion(index, n),
                Err(m) => tree.consistency(m, n),
            };
            let old = case.err().map(|m| tree.root(m));
            let mut times = Vec::with_capacity(checks);
            for _ in 0..checks {
                let start = Instant::now();
                match (case, old) {
                    (Ok(index), _) => {
                        verify_inclusion(&tree.leaf, index, n, &proof, &root).unwrap()
                    }
                    (Err(m), Some(old)) => verify_consistency(m, n, &old, &root, &proof).unwrap(),
                    (Err(_), None) => unreachable!("computed above"),
                }
                times.push(start.elapsed());
            }
            let d = dist(times);
            println!(
                "{n:>12} {name:<28} {:>7} {:>10} {:>9.2}µs {:>9.2}µs",
                proof.len(),
                json_bytes(proof.len()),
                us(d.p50),
                us(d.p99)
            );
        }
    }
}

fn record(index: u64, prev: String, time_us: u64) -> Vec<u8> {
    let mut e = Entry::new(Kind::Request);
    e.request_id = Some(format!("r{index}"));
    e.principal = Some(PrincipalField {
        id: "ann".into(),
        kind: "User".into(),
        roles: vec!["engineer".into()],
        tenant: None,
        issuer: None,
    });
    e.action = Some("tools/call".into());
    e.resource = Some("github__create_issue".into());
    e.decision = Some(DecisionField {
        effect: "allow".into(),
        policies: vec!["engineers".into()],
        errors: vec![],
        shadow: vec![],
        reason: "allowed by policy `engineers`".into(),
    });
    e.outcome = Some(OutcomeField {
        status: "ok".into(),
        code: None,
        latency_us: 900,
        result_hash: None,
    });
    Record {
        v: VERSION,
        origin: super::ORIGIN.to_owned(),
        index,
        time_us,
        replica: "r0".into(),
        prev,
        entry: e,
    }
    .canonical()
}

/// Incremental verification of `new` records on top of `size`; (median wall, report).
pub async fn incremental(size: u64, new: u64, repeats: usize) {
    let store = Store::open("memory://", &BTreeMap::new()).unwrap();
    let (signer, _, vkey) = NoteSigner::generate(super::ORIGIN).unwrap();
    let key = NoteVerifier::from_vkey(&vkey).unwrap();
    let real = 1_000u64.min(size);
    let placeholders = size - real;
    // The tree of the placeholders, built from identical-leaf subtree roots.
    let mut identical = Identical {
        leaf: leaf_hash(b"placeholder"),
        roots: HashMap::new(),
    };
    let mut edge = Vec::new();
    for bit in (0..64).rev().filter(|b| placeholders & (1 << b) != 0) {
        edge.push(identical.root(1 << bit));
    }
    let mut tree = CompactTree::from_parts(placeholders, edge).unwrap();
    let t0 = super::now_us() - 10_000_000;
    let mut segment = Vec::new();
    let mut prev = "ab".repeat(32);
    let (mut state_tree, mut last_leaf) = (None, [0u8; 32]);
    for index in placeholders..size + new {
        let bytes = record(index, prev, t0 + index - placeholders);
        let leaf = leaf_hash(&bytes);
        tree.append(leaf);
        prev = hex(&leaf);
        segment.extend_from_slice(&bytes);
        segment.push(b'\n');
        if tree.size() == size {
            state_tree = Some(tree.clone());
            last_leaf = leaf;
        }
    }
    store
        .create(&segment_key(&store.prefix, placeholders), segment)
        .await
        .unwrap();
    let mut notes = Vec::new();
    for (t, at) in [(state_tree.clone().unwrap(), 0u64), (tree.clone(), 1)] {
        let time_us = t0 + 2 * new + at;
        let body = Checkpoint {
            origin: super::ORIGIN.to_owned(),
            size: t.size(),
            root: t.root(),
            extensions: vec![format!("time {time_us}"), "heartbeat 60".into()],
        };
        let note = signer.sign(&body.to_text()).unwrap();
        store
            .create(
                &checkpoint_key(&store.prefix, t.size(), time_us),
                note.clone().into_bytes(),
            )
            .await
            .unwrap();
        notes.push((body, note));
    }
    let at_size = state_tree.unwrap();
    let state = State::of(
        &notes[0].0,
        &notes[0].1,
        Some(Resume {
            frontier: at_size.hashes().to_vec(),
            last_leaf,
            last_time_us: t0 + real - 1,
            last_stop: false,
            segment_first: placeholders,
        }),
    );
    let now = t0 + 2 * new + 10;
    let mut walls = Vec::new();
    let mut last = None;
    for _ in 0..repeats {
        let start = Instant::now();
        let report = verify_with(
            &store,
            &key,
            Some(&state),
            now,
            Options {
                incremental: true,
                progress: None,
            },
        )
        .await;
        walls.push(start.elapsed());
        last = Some(report);
    }
    let report = last.unwrap();
    assert_eq!(report.exit_code(), 0, "{:?}", report.findings);
    assert!(report.full_because.is_none(), "{:?}", report.full_because);
    walls.sort();
    let median = walls[walls.len() / 2];
    println!(
        "\nincremental verification: {new} new records on top of {size}: median {:.1} ms over {repeats} runs (records read {}, resumed from {}); target < 1 s: {}",
        median.as_secs_f64() * 1e3,
        report.records,
        report.resumed_from,
        if median < Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        }
    );
}
