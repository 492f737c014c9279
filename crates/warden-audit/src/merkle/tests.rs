use super::*;

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn h(s: &str) -> Hash {
    unhex(s).try_into().expect("32-byte hash")
}

/// The reference tree used across Certificate Transparency implementations
/// (e.g. transparency-dev/merkle, proof/verify_test.go): leaf data in hex.
const LEAF_DATA: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Published roots of the reference tree for sizes 1..=8.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn reference_leaves() -> Vec<Hash> {
    LEAF_DATA.iter().map(|d| leaf_hash(&unhex(d))).collect()
}

/// Distinct leaf hashes for synthetic trees.
fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn flipped(proof: &[Hash], i: usize) -> Vec<Hash> {
    let mut p = proof.to_vec();
    p[i][0] ^= 0x10;
    p
}

#[test]
fn empty_root_is_sha256_of_nothing() {
    let want = h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(empty_root(), want);
    assert_eq!(root(&[]), want);
    assert_eq!(CompactTree::new().root(), want);
}

#[test]
fn reference_roots() {
    let leaves = reference_leaves();
    for (n, want) in ROOTS.iter().enumerate() {
        assert_eq!(root(&leaves[..=n]), h(want), "size {}", n + 1);
    }
    // A one-leaf tree's root is its leaf hash: SHA-256 of the single byte 0x00.
    assert_eq!(leaves[0], h(ROOTS[0]));
}

#[test]
fn reference_inclusion_proofs() {
    let leaves = reference_leaves();
    // (index, size, proof) from the published vectors (there with 1-based leaves).
    let vectors: [(u64, u64, &[&str]); 4] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (index, size, want) in vectors {
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        let tree = &leaves[..size as usize];
        assert_eq!(
            inclusion_proof(tree, index).unwrap(),
            want,
            "({index}, {size})"
        );
        let r = h(ROOTS[size as usize - 1]);
        verify_inclusion(&leaves[index as usize], index, size, &want, &r).unwrap();
        // Wrong tree height, as in the published tests.
        assert!(verify_inclusion(&leaves[index as usize], index, size * 2, &want, &r).is_err());
        if index < size / 2 {
            assert!(verify_inclusion(&leaves[index as usize], index, size / 2, &want, &r).is_err());
        }
    }
}

#[test]
fn reference_consistency_proofs() {
    let leaves = reference_leaves();
    let vectors: [(u64, u64, &[&str]); 4] = [
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    for (old, new, want) in vectors {
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        assert_eq!(
            consistency_proof(&leaves[..new as usize], old).unwrap(),
            want
        );
        let (r1, r2) = (h(ROOTS[old as usize - 1]), h(ROOTS[new as usize - 1]));
        verify_consistency(old, new, &r1, &r2, &want).unwrap();
        assert!(
            verify_consistency(old, new, &r2, &r1, &want).is_err(),
            "swapped roots"
        );
        assert!(verify_consistency(old, new * 2, &r1, &r2, &want).is_err());
        assert!(verify_consistency(old, new / 2, &r1, &r2, &want).is_err());
        assert!(verify_consistency(old, new, &r1, &r2, &[]).is_err());
    }
}

#[test]
fn every_reference_proof_up_to_eight() {
    let all = reference_leaves();
    for size in 1..=8u64 {
        let tree = &all[..size as usize];
        let r = h(ROOTS[size as usize - 1]);
        for index in 0..size {
            let proof = inclusion_proof(tree, index).unwrap();
            verify_inclusion(&all[index as usize], index, size, &proof, &r).unwrap();
        }
        for old in 1..=size {
            let proof = consistency_proof(tree, old).unwrap();
            verify_consistency(old, size, &h(ROOTS[old as usize - 1]), &r, &proof).unwrap();
        }
    }
}

#[test]
fn inclusion_round_trip_and_tampering_up_to_64() {
    let all = leaves(64);
    for size in 1..=64u64 {
        let tree = &all[..size as usize];
        let r = root(tree);
        for index in 0..size {
            let leaf = &all[index as usize];
            let proof = inclusion_proof(tree, index).unwrap();
            assert_eq!(verify_inclusion(leaf, index, size, &proof, &r), Ok(()));

            for i in 0..proof.len() {
                let bad = flipped(&proof, i);
                assert!(verify_inclusion(leaf, index, size, &bad, &r).is_err());
            }
            if let Some((_, short)) = proof.split_last() {
                assert!(verify_inclusion(leaf, index, size, short, &r).is_err());
            }
            let mut long = proof.clone();
            long.push(r);
            assert!(verify_inclusion(leaf, index, size, &long, &r).is_err());
            let mut front = vec![*leaf];
            front.extend_from_slice(&proof);
            assert!(verify_inclusion(leaf, index, size, &front, &r).is_err());

            let others = [
                index.wrapping_sub(1),
                index + 1,
                index ^ 1,
                index ^ 2,
                size - 1 - index,
            ];
            for other in others.into_iter().filter(|&o| o < size && o != index) {
                assert!(verify_inclusion(leaf, other, size, &proof, &r).is_err());
            }
            assert!(verify_inclusion(leaf, index, size * 2, &proof, &r).is_err());
            if index < size / 2 {
                assert!(verify_inclusion(leaf, index, size / 2, &proof, &r).is_err());
            }
            assert!(verify_inclusion(&all[0].map(|b| !b), index, size, &proof, &r).is_err());
            assert_eq!(
                verify_inclusion(leaf, index, size, &proof, &empty_root()),
                Err(MerkleError::RootMismatch)
            );
        }
        assert_eq!(
            inclusion_proof(tree, size),
            Err(MerkleError::IndexOutOfRange { index: size, size })
        );
        assert_eq!(
            verify_inclusion(&all[0], size, size, &[], &r),
            Err(MerkleError::IndexOutOfRange { index: size, size })
        );
    }
    assert!(inclusion_proof(&[], 0).is_err());
    assert!(verify_inclusion(&all[0], 0, 0, &[], &empty_root()).is_err());
}

#[test]
fn consistency_round_trip_and_tampering_up_to_64() {
    let all = leaves(64);
    let roots: Vec<Hash> = (0..=64).map(|n| root(&all[..n])).collect();
    for new in 1..=64u64 {
        let tree = &all[..new as usize];
        let r2 = roots[new as usize];
        for old in 0..=new {
            let r1 = roots[old as usize];
            let proof = consistency_proof(tree, old).unwrap();
            assert_eq!(
                verify_consistency(old, new, &r1, &r2, &proof),
                Ok(()),
                "{old}->{new}"
            );
            if old == 0 || old == new {
                assert!(proof.is_empty());
                assert!(verify_consistency(old, new, &r1, &r2, &[r1]).is_err());
                if old == new {
                    assert!(verify_consistency(old, new, &r1, &roots[0], &[]).is_err());
                }
                continue;
            }
            assert!(
                verify_consistency(old, new, &r1, &r2, &[]).is_err(),
                "empty proof"
            );
            for i in 0..proof.len() {
                assert!(verify_consistency(old, new, &r1, &r2, &flipped(&proof, i)).is_err());
            }
            assert!(verify_consistency(old, new, &r1, &r2, &proof[..proof.len() - 1]).is_err());
            for extra in [r1, r2] {
                let mut long = proof.clone();
                long.push(extra);
                assert!(verify_consistency(old, new, &r1, &r2, &long).is_err());
                let mut front = vec![extra];
                front.extend_from_slice(&proof);
                assert!(verify_consistency(old, new, &r1, &r2, &front).is_err());
            }
            assert!(
                verify_consistency(old, new, &r2, &r1, &proof).is_err(),
                "swapped"
            );
            assert!(verify_consistency(old, new, &r1, &r1, &proof).is_err());
            assert!(verify_consistency(old, new, &r2, &r2, &proof).is_err());
            for other in [old - 1, old + 1, old ^ 2] {
                if other > 0 && other < new && other != old {
                    let r = roots[other as usize];
                    assert!(verify_consistency(other, new, &r1, &r2, &proof).is_err());
                    assert!(verify_consistency(other, new, &r, &r2, &proof).is_err());
                }
            }
            assert!(verify_consistency(old, new * 2, &r1, &r2, &proof).is_err());
            if old < new / 2 {
                assert!(verify_consistency(old, new / 2, &r1, &r2, &proof).is_err());
            }
        }
        assert_eq!(
            consistency_proof(tree, new + 1),
            Err(MerkleError::OldSizeTooLarge {
                old_size: new + 1,
                new_size: new
            })
        );
        assert!(verify_consistency(new + 1, new, &r2, &r2, &[]).is_err());
    }
}

#[test]
fn consistency_from_the_empty_tree() {
    let all = leaves(5);
    let r = root(&all);
    verify_consistency(0, 5, &empty_root(), &r, &[]).unwrap();
    verify_consistency(0, 0, &empty_root(), &empty_root(), &[]).unwrap();
    assert_eq!(
        verify_consistency(0, 5, &r, &r, &[]),
        Err(MerkleError::RootMismatch)
    );
    assert_eq!(
        verify_consistency(0, 5, &empty_root(), &r, &[r]),
        Err(MerkleError::BadProofLength {
            expected: 0,
            got: 1
        })
    );
}

#[test]
fn compact_tree_matches_root_up_to_300() {
    let all = leaves(300);
    let mut tree = CompactTree::new();
    assert_eq!(tree.root(), root(&[]));
    for n in 1..=300usize {
        tree.append(all[n - 1]);
        assert_eq!(tree.size(), n as u64);
        assert_eq!(tree.hashes().len(), n.count_ones() as usize);
        assert_eq!(tree.root(), root(&all[..n]), "size {n}");
    }
}

/// A batch appended at once gives the same tree as its leaves one by one, from any size
/// (on a subtree boundary or not) and for batches shorter and longer than one subtree.
#[test]
fn append_many_is_append_one_by_one() {
    let all = leaves(400);
    for start in 0..130usize {
        let mut before = CompactTree::new();
        for leaf in &all[..start] {
            before.append(*leaf);
        }
        for len in [1, 2, 3, 5, 8, 31, 32, 33, 63, 64, 65, 100, 129, 200] {
            let mut one_by_one = before.clone();
            let mut batched = before.clone();
            for leaf in &all[start..start + len] {
                one_by_one.append(*leaf);
            }
            batched.append_many(&all[start..start + len]);
            assert_eq!(batched, one_by_one, "from {start}, {len} leaves");
        }
    }
}

#[test]
fn compact_tree_matches_reference_roots() {
    let mut tree = CompactTree::new();
    for (leaf, want) in reference_leaves().into_iter().zip(ROOTS) {
        tree.append(leaf);
        assert_eq!(tree.root(), h(want));
    }
}

#[test]
fn compact_tree_persists_and_resumes() {
    let all = leaves(100);
    let mut tree = CompactTree::new();
    for (i, leaf) in all.iter().enumerate() {
        // Reload from the persisted parts at every step, then keep appending.
        let reloaded = CompactTree::from_parts(tree.size(), tree.hashes().to_vec()).unwrap();
        assert_eq!(reloaded, tree);
        tree = reloaded;
        tree.append(*leaf);
        assert_eq!(tree.root(), root(&all[..=i]));
    }
}

#[test]
fn from_parts_rejects_wrong_lengths() {
    let x = leaf_hash(b"x");
    assert_eq!(CompactTree::from_parts(0, vec![]), Ok(CompactTree::new()));
    assert_eq!(
        CompactTree::from_parts(0, vec![x]),
        Err(MerkleError::SizeMismatch {
            size: 0,
            expected: 0,
            got: 1
        })
    );
    assert_eq!(
        CompactTree::from_parts(1, vec![]),
        Err(MerkleError::SizeMismatch {
            size: 1,
            expected: 1,
            got: 0
        })
    );
    assert!(CompactTree::from_parts(7, vec![x, x]).is_err());
    assert!(CompactTree::from_parts(7, vec![x; 4]).is_err());
    assert!(CompactTree::from_parts(7, vec![x; 3]).is_ok());
    assert!(CompactTree::from_parts(u64::MAX, vec![x; 63]).is_err());
    assert!(CompactTree::from_parts(u64::MAX, vec![x; 64]).is_ok());
}

#[test]
fn larger_tree_agrees_everywhere() {
    let all = leaves(5_003);
    let mut tree = CompactTree::new();
    all.iter().for_each(|l| tree.append(*l));
    let r = root(&all);
    assert_eq!(tree.root(), r);
    for index in [0u64, 1, 4_095, 4_096, 4_999, 5_002] {
        let proof = inclusion_proof(&all, index).unwrap();
        verify_inclusion(&all[index as usize], index, 5_003, &proof, &r).unwrap();
    }
    for old in [1u64, 4_096, 4_097, 5_002] {
        let proof = consistency_proof(&all, old).unwrap();
        let r1 = root(&all[..old as usize]);
        verify_consistency(old, 5_003, &r1, &r, &proof).unwrap();
    }
}

/// The batched leaf hashes are the one-at-a-time ones, at every padding edge (lengths
/// around each 64-byte block, where `0x00 || data` and the length field spill over), for
/// batches of every size up to past the widest kernel.
#[test]
fn batched_leaf_hashes_are_leaf_hashes() {
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    let lengths: Vec<usize> = (0..300)
        .chain([1023, 1024, 1073, 1082, 4096, 4999])
        .collect();
    let lines: Vec<&[u8]> = lengths.iter().map(|&n| &data[n % 17..n % 17 + n]).collect();
    for batch in [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 64, lines.len()] {
        for chunk in lines.chunks(batch) {
            let mut out = vec![[0; 32]; chunk.len()];
            leaf_hashes(chunk, &mut out);
            for (line, hash) in chunk.iter().zip(&out) {
                assert_eq!(
                    *hash,
                    leaf_hash(line),
                    "{} bytes, batch {batch}",
                    line.len()
                );
            }
        }
    }
}
