//! Merkle tree hashing for an append-only log, as specified by RFC 6962 §2.1
//! (Certificate Transparency) and restated in RFC 9162 §2.1.
//!
//! The audit log commits to its entries with a Merkle tree so that anyone holding
//! a signed tree head (a size and a root hash) can check two things without
//! trusting the log: that a given entry is in the tree (an *inclusion proof*),
//! and that a later tree still contains every entry of an earlier one, unchanged
//! and in the same order (a *consistency proof*). Leaves and interior nodes are
//! hashed with different one-byte prefixes (0x00 and 0x01) so that a leaf can
//! never be passed off as an interior node.
//!
//! The log itself only needs [`CompactTree`]: it keeps one hash per set bit of
//! the tree size (at most 64), so appending is cheap and the root is always at
//! hand. Proofs are produced from the full list of leaf hashes and checked with
//! the verification algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Errors from building trees, producing proofs and verifying them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    /// A leaf index is not inside the tree.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// A compact tree's hash list does not fit its size (one hash per set bit).
    #[error("a tree of size {size} needs {expected} subtree hashes, got {got}")]
    SizeMismatch {
        size: u64,
        expected: u32,
        got: usize,
    },
    /// The older tree of a consistency check is larger than the newer one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeTooLarge { old_size: u64, new_size: u64 },
    /// A proof has the wrong number of hashes for the sizes it claims to cover.
    #[error("proof has {got} hashes, expected {expected}")]
    BadProofLength { expected: usize, got: usize },
    /// The proof does not lead to the expected root hash(es).
    #[error("the proof does not match the root hash")]
    RootMismatch,
}

/// Hash of a leaf: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// The leaf hashes of many lines at once, `out[i]` for `lines[i]`: the same values as
/// [`leaf_hash`], several messages in flight on the CPU's SHA unit (or its vector lanes)
/// instead of one after the other — independent messages are what a single SHA-256 cannot
/// overlap. For the verifier, which hashes every line of a segment.
///
/// # Panics
///
/// When `out` and `lines` differ in length.
pub fn leaf_hashes(lines: &[&[u8]], out: &mut [Hash]) {
    tape_sha256::hash_many_prefixed(&[0x00], lines, out);
}

/// Hash of an interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The Merkle Tree Hash (MTH) of a list of leaf hashes (RFC 6962 §2.1).
///
/// Runs in O(n) hashing with O(log n) memory on the stack and no allocation.
pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return empty_root();
    }
    // The right edge of the tree built so far: roots of perfect subtrees,
    // largest first. At most one per bit of a u64 size.
    let mut stack = [[0u8; 32]; 64];
    let mut depth = 0usize;
    for (i, leaf) in leaves.iter().enumerate() {
        let mut h = *leaf;
        let mut n = i as u64;
        while n & 1 == 1 {
            depth -= 1;
            h = node_hash(&stack[depth], &h);
            n >>= 1;
        }
        stack[depth] = h;
        depth += 1;
    }
    fold_right(&stack[..depth])
}

/// The most leaves [`CompactTree::append_many`] hashes as one subtree (a power of two).
const SUBTREE: usize = 64;

/// The root of a perfect subtree over `leaves` (a power of two, at most [`SUBTREE`]):
/// each level's node hashes computed together, two neighbouring hashes of the level below
/// read as one 64-byte input in place.
fn subtree_root(leaves: &[Hash]) -> Hash {
    debug_assert!(leaves.len().is_power_of_two() && leaves.len() <= SUBTREE);
    let (mut below, mut above) = ([[0u8; 32]; SUBTREE], [[0u8; 32]; SUBTREE]);
    let (mut below, mut above) = (&mut below, &mut above);
    let mut n = leaves.len();
    below[..n].copy_from_slice(leaves);
    while n > 1 {
        let mut inputs: [&[u8]; SUBTREE / 2] = [&[]; SUBTREE / 2];
        for (input, pair) in inputs
            .iter_mut()
            .zip(below[..n].as_flattened().chunks_exact(64))
        {
            *input = pair;
        }
        n /= 2;
        tape_sha256::hash_many_prefixed(&[0x01], &inputs[..n], &mut above[..n]);
        std::mem::swap(&mut below, &mut above);
    }
    below[0]
}

/// Combines the perfect-subtree roots of a right edge, smallest (rightmost) first.
fn fold_right(edge: &[Hash]) -> Hash {
    let (last, rest) = edge.split_last().expect("non-empty edge");
    rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc))
}

/// The largest power of two strictly less than `n` (for `n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Slices `leaves[lo..hi]` by u64 bounds (callers guarantee they fit).
fn range(leaves: &[Hash], lo: u64, hi: u64) -> &[Hash] {
    &leaves[lo as usize..hi as usize]
}

/// An append-only Merkle tree that remembers only its right edge: the roots of
/// the perfect subtrees that make up the tree, from left to right, one per set
/// bit of the size. Appending is O(1) amortised and memory is O(log n).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CompactTree {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a tree from a persisted size and right edge (as returned by
    /// [`CompactTree::hashes`]). The number of hashes must equal the number of
    /// set bits of `size`.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, MerkleError> {
        let expected = size.count_ones();
        if hashes.len() != expected as usize {
            return Err(MerkleError::SizeMismatch {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect-subtree roots, left to right (largest subtree first).
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends one leaf hash (see [`leaf_hash`]).
    pub fn append(&mut self, leaf: Hash) {
        self.push_subtree(leaf, 0);
    }

    /// Appends `leaves` in order: the same tree as appending them one by one, with the
    /// interior nodes of each whole subtree that lands on its own boundary (up to
    /// [`SUBTREE`] leaves) hashed a level at a time, several in flight at once (see
    /// [`leaf_hashes`]). For the verifier, which appends a batch of lines at a time.
    pub fn append_many(&mut self, mut leaves: &[Hash]) {
        while !leaves.is_empty() {
            // The largest power of two that both fits the leaves left and keeps the
            // subtree on a boundary of its own size.
            let fits = 1 << (usize::BITS - 1 - leaves.len().min(SUBTREE).leading_zeros());
            let aligned = 1 << self.size.trailing_zeros().min(SUBTREE.trailing_zeros());
            let n = fits.min(aligned);
            let (whole, rest) = leaves.split_at(n);
            self.push_subtree(subtree_root(whole), n.trailing_zeros());
            leaves = rest;
        }
    }

    /// Appends the root `h` of a perfect subtree of 2^`height` leaves; the size must be
    /// a multiple of its leaf count.
    fn push_subtree(&mut self, mut h: Hash, height: u32) {
        debug_assert_eq!(self.size % (1 << height), 0);
        let mut n = self.size >> height;
        // Each trailing one bit of the old size is a subtree of equal height
        // that the new subtree now completes.
        while n & 1 == 1 {
            let left = self.hashes.pop().expect("one hash per set bit");
            h = node_hash(&left, &h);
            n >>= 1;
        }
        self.hashes.push(h);
        self.size += 1 << height;
    }

    /// The root hash of the tree; [`empty_root`] when it has no leaves.
    pub fn root(&self) -> Hash {
        if self.hashes.is_empty() {
            empty_root()
        } else {
            fold_right(&self.hashes)
        }
    }
}

/// Audit path for leaf `index` in the tree of all `leaves` (RFC 6962 §2.1.1,
/// PATH(m, D[n])), ordered from the leaf's sibling up to the root's child.
///
/// Work is O(n) hashing: each level hashes only the sibling subtree.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, MerkleError> {
    let size = leaves.len() as u64;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    // Walk down from the root, recording the sibling subtree at each level;
    // the proof lists them bottom-up.
    let mut path = Vec::new();
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index - lo < k {
            path.push(root(range(leaves, lo + k, hi)));
            hi = lo + k;
        } else {
            path.push(root(range(leaves, lo, lo + k)));
            lo += k;
        }
    }
    path.reverse();
    Ok(path)
}

/// Checks that `leaf` is at `index` in the tree of `size` leaves with root
/// `root`, using the algorithm of RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    // Expected length: the levels where the paths to `index` and to the last
    // leaf diverge, plus the left siblings above the point where they merge.
    let last = size - 1;
    let inner = (64 - (index ^ last).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    if proof.len() != inner + border {
        return Err(MerkleError::BadProofLength {
            expected: inner + border,
            got: proof.len(),
        });
    }

    let (mut fnode, mut snode) = (index, last);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(MerkleError::BadProofLength {
                expected: inner + border,
                got: proof.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(MerkleError::BadProofLength {
            expected: inner + border,
            got: proof.len(),
        });
    }
    if r != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Consistency proof between the tree of the first `old_size` leaves and the
/// tree of all `leaves` (RFC 6962 §2.1.2, PROOF(m, D[n])). Empty when
/// `old_size` is 0 or equal to the number of leaves.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, MerkleError> {
    let new_size = leaves.len() as u64;
    if old_size > new_size {
        return Err(MerkleError::OldSizeTooLarge { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[lo..hi], whole), unrolled: walk down recording sibling
    // subtrees; the proof is the final node followed by the siblings bottom-up.
    let mut siblings = Vec::new();
    let (mut lo, mut hi, mut m) = (0u64, new_size, old_size);
    let mut whole = true;
    while m != hi - lo {
        let k = split_point(hi - lo);
        if m <= k {
            siblings.push(root(range(leaves, lo + k, hi)));
            hi = lo + k;
        } else {
            siblings.push(root(range(leaves, lo, lo + k)));
            lo += k;
            m -= k;
            whole = false;
        }
    }
    let mut proof = Vec::with_capacity(siblings.len() + 1);
    if !whole {
        proof.push(root(range(leaves, lo, hi)));
    }
    proof.extend(siblings.into_iter().rev());
    Ok(proof)
}

/// Checks that the tree of `new_size` leaves with root `new_root` extends the
/// tree of `old_size` leaves with root `old_root`, using the algorithm of
/// RFC 9162 §2.1.4.2.
///
/// Equal sizes need an empty proof and equal roots. An old size of 0 needs an
/// empty proof and `old_root` equal to [`empty_root`]: the empty tree is a
/// prefix of every tree.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::OldSizeTooLarge { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(MerkleError::BadProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        let ok = if old_size == 0 {
            *old_root == empty_root()
        } else {
            old_root == new_root
        };
        return if ok {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }

    // Expected length: the old tree's last leaf path against the new tree's,
    // as for an inclusion proof, minus one when the old tree is a perfect
    // subtree (its root is then known and not sent).
    let (old_last, new_last) = (old_size - 1, new_size - 1);
    let low = old_last.trailing_ones();
    let inner = (64 - ((old_last ^ new_last) >> low).leading_zeros()) as usize;
    let border = (old_last >> low >> inner).count_ones() as usize;
    let start = usize::from(!old_size.is_power_of_two());
    let expected = start + inner + border;
    if proof.len() != expected {
        return Err(MerkleError::BadProofLength {
            expected,
            got: proof.len(),
        });
    }

    // RFC 9162 §2.1.4.2; a perfect old tree's root stands in as the first element.
    let (first, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        (&proof[0], &proof[1..])
    };
    let (mut fnode, mut snode) = (old_last, new_last);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return Err(MerkleError::BadProofLength {
                expected,
                got: proof.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(MerkleError::BadProofLength {
            expected,
            got: proof.len(),
        });
    }
    if fr != *old_root || sr != *new_root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
