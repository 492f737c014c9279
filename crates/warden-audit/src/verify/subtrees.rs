//! RFC 6962 proofs built while the leaves stream by, without keeping them: the subtrees an
//! inclusion proof (index, size) or a consistency proof (old, new) consists of are known
//! from those numbers alone, so each gets its own small tree, fed as the leaves go by.

use crate::merkle::{CompactTree, Hash};

/// The subtree roots of one proof, collected from the leaves.
#[derive(Debug)]
pub struct RangeRoots {
    /// The proof's subtrees `[lo, hi)`, in proof order.
    ranges: Vec<(u64, u64)>,
    /// One tree per range.
    trees: Vec<CompactTree>,
    /// Range numbers by `lo`, and the position in that order of the range being fed.
    by_start: Vec<usize>,
    next: usize,
}

impl RangeRoots {
    /// Collects the consistency proof from `old` to `new` leaves.
    pub fn consistency(old: u64, new: u64) -> RangeRoots {
        RangeRoots::of(consistency_ranges(old, new))
    }

    /// Collects the inclusion proof of leaf `index` in the tree of `size` leaves.
    pub fn inclusion(index: u64, size: u64) -> RangeRoots {
        RangeRoots::of(inclusion_ranges(index, size))
    }

    /// The ranges must be disjoint.
    fn of(ranges: Vec<(u64, u64)>) -> RangeRoots {
        let mut by_start: Vec<usize> = (0..ranges.len()).collect();
        by_start.sort_by_key(|&i| ranges[i].0);
        RangeRoots {
            trees: vec![CompactTree::new(); ranges.len()],
            ranges,
            by_start,
            next: 0,
        }
    }

    /// Takes the leaf at `index`; leaves must come in order from 0.
    pub fn feed(&mut self, index: u64, leaf: Hash) {
        while let Some(&i) = self.by_start.get(self.next) {
            let (lo, hi) = self.ranges[i];
            if index >= hi {
                self.next += 1;
                continue;
            }
            if index >= lo {
                self.trees[i].append(leaf);
            }
            return;
        }
    }

    /// The proof, once every range has all its leaves.
    pub fn proof(&self) -> Option<Vec<Hash>> {
        self.ranges
            .iter()
            .zip(&self.trees)
            .map(|(&(lo, hi), tree)| (tree.size() == hi - lo).then(|| tree.root()))
            .collect()
    }
}

/// The subtrees `[lo, hi)` of RFC 6962's PROOF(old, D[new]) (§2.1.2), in proof order:
/// the same walk as [`crate::merkle::consistency_proof`], on ranges instead of hashes.
pub(crate) fn consistency_ranges(old: u64, new: u64) -> Vec<(u64, u64)> {
    if old == 0 || old >= new {
        return Vec::new();
    }
    let mut siblings = Vec::new();
    let (mut lo, mut hi, mut m) = (0u64, new, old);
    let mut whole = true;
    while m != hi - lo {
        let k = split(hi - lo);
        if m <= k {
            siblings.push((lo + k, hi));
            hi = lo + k;
        } else {
            siblings.push((lo, lo + k));
            lo += k;
            m -= k;
            whole = false;
        }
    }
    let mut out = Vec::with_capacity(siblings.len() + 1);
    if !whole {
        out.push((lo, hi));
    }
    out.extend(siblings.into_iter().rev());
    out
}

/// The subtrees `[lo, hi)` of RFC 6962's PATH(index, D[size]) (§2.1.1), leaf upward: the
/// same walk as [`crate::merkle::inclusion_proof`], on ranges.
fn inclusion_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    let mut path = Vec::new();
    if index >= size {
        return path;
    }
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let k = split(hi - lo);
        if index - lo < k {
            path.push((lo + k, hi));
            hi = lo + k;
        } else {
            path.push((lo, lo + k));
            lo += k;
        }
    }
    path.reverse();
    path
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency};

    #[test]
    fn matches_the_proof_built_from_all_leaves() {
        let leaves: Vec<Hash> = (0u32..70).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for new in 1..=70u64 {
            for old in 1..=new {
                let mut collector = RangeRoots::consistency(old, new);
                for (i, leaf) in leaves[..new as usize].iter().enumerate() {
                    collector.feed(i as u64, *leaf);
                }
                let proof = collector.proof().expect("every range complete");
                let want = consistency_proof(&leaves[..new as usize], old).unwrap();
                assert_eq!(proof, want, "old {old} new {new}");
                let (a, b) = (root(&leaves[..old as usize]), root(&leaves[..new as usize]));
                verify_consistency(old, new, &a, &b, &proof).unwrap();
            }
        }
    }

    #[test]
    fn inclusion_matches_the_proof_built_from_all_leaves() {
        let leaves: Vec<Hash> = (0u32..40).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for size in 1..=40u64 {
            for index in 0..size {
                let mut collector = RangeRoots::inclusion(index, size);
                for (i, leaf) in leaves[..size as usize].iter().enumerate() {
                    collector.feed(i as u64, *leaf);
                }
                let want = inclusion_proof(&leaves[..size as usize], index).unwrap();
                assert_eq!(collector.proof(), Some(want), "index {index} size {size}");
            }
        }
    }

    #[test]
    fn an_incomplete_pass_gives_no_proof() {
        let mut collector = RangeRoots::consistency(3, 8);
        for i in 0..5u64 {
            collector.feed(i, leaf_hash(&i.to_be_bytes()));
        }
        assert!(collector.proof().is_none());
    }
}
