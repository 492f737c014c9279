//! Consistency proofs (RFC 9162 §2.1.4) between two signed checkpoints of one log: the
//! newer tree extends the older one, so every record the older checkpoint covered is still
//! there, unchanged and in order. `audit consistency` makes one from the store (and says
//! so, naming the first size at which they part, when the log does not extend the old
//! checkpoint); `audit verify-proof` checks one offline with the public key alone.

use serde::{Deserialize, Serialize};

use super::merkle::{Hash, verify_consistency};
use super::note::{self, Checkpoint, NoteVerifier};
use super::proof::{ProofError, read_leaves};
use super::store::Store;
use super::verify::base64_hashes;
use super::verify::listing::{self, CheckpointObject};
use super::verify::subtrees::RangeRoots;

/// `audit consistency`: two signed checkpoints and the proof that the second extends the
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyFile {
    pub origin: String,
    /// The older signed checkpoint note.
    pub old: String,
    /// The newer signed checkpoint note.
    pub new: String,
    /// PROOF(old size, D[new size]), as base64 hashes.
    #[serde(with = "base64_hashes")]
    pub consistency: Vec<Hash>,
}

/// Why two checkpoints are not consistent, beyond a proof that does not check.
#[derive(Debug, thiserror::Error)]
pub enum ConsistencyError {
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("the checkpoints are of two logs: {old:?} and {new:?}")]
    Origins { old: String, new: String },
    #[error("the older checkpoint covers {old} records, more than the newer one's {new}")]
    Order { old: u64, new: u64 },
    #[error(
        "FORK: the log does not extend the older checkpoint: its first {size} records hash to {found}, the checkpoint signed {signed}"
    )]
    Fork {
        size: u64,
        found: String,
        signed: String,
    },
    #[error("the consistency proof does not check: {0}")]
    Inconsistent(super::merkle::MerkleError),
}

fn opened(text: &str, key: &NoteVerifier) -> Result<Checkpoint, ProofError> {
    Ok(Checkpoint::parse(&note::open(text, key)?)?)
}

/// The newest checkpoint in the store whose signature verifies with `key`.
pub(crate) async fn newest_signed(
    store: &Store,
    objects: &[CheckpointObject],
    key: &NoteVerifier,
) -> Result<(Checkpoint, String), ProofError> {
    for object in objects.iter().rev() {
        let data = listing::read(store, &object.key).await?;
        let Ok(text) = std::str::from_utf8(data.as_ref()) else {
            continue;
        };
        if let Ok(checkpoint) = opened(text, key) {
            return Ok((checkpoint, text.to_owned()));
        }
    }
    Err(ProofError::Log(
        "no checkpoint in the store verifies with the key".into(),
    ))
}

/// Proves that `new` (default: the store's newest signed checkpoint) extends `old`, both
/// signed notes by `key`, from the log's records: they must hash to `old`'s root at its
/// size (else the log forked) and to `new`'s at its size.
pub async fn prove_consistency(
    store: &Store,
    key: &NoteVerifier,
    old: &str,
    new: Option<&str>,
) -> Result<ConsistencyFile, ConsistencyError> {
    let old_checkpoint = opened(old, key)?;
    let listing = listing::list(store).await.map_err(ProofError::from)?;
    let (new_checkpoint, new) = match new {
        Some(text) => (opened(text, key)?, text.to_owned()),
        None => newest_signed(store, &listing.checkpoints, key).await?,
    };
    check_pair(&old_checkpoint, &new_checkpoint)?;
    let (m, n) = (old_checkpoint.size, new_checkpoint.size);
    let mut ranges = RangeRoots::consistency(m, n);
    let mut prefix = (m == 0).then(super::merkle::empty_root);
    let mut tree_at_m = super::merkle::CompactTree::new();
    let tree = read_leaves(store, &listing.segments, n, |at, _, leaf| {
        ranges.feed(at, leaf);
        if at < m {
            tree_at_m.append(leaf);
            if at + 1 == m {
                prefix = Some(tree_at_m.root());
            }
        }
    })
    .await?;
    let prefix = prefix.unwrap_or_else(super::merkle::empty_root);
    if prefix != old_checkpoint.root {
        return Err(ConsistencyError::Fork {
            size: m,
            found: super::record::hex(&prefix),
            signed: super::record::hex(&old_checkpoint.root),
        });
    }
    if tree.root() != new_checkpoint.root {
        return Err(ProofError::Log(format!(
            "the records do not hash to the root of the checkpoint of {n} records"
        ))
        .into());
    }
    let consistency = ranges
        .proof()
        .ok_or_else(|| ProofError::Log("the consistency proof is incomplete".into()))?;
    let file = ConsistencyFile {
        origin: new_checkpoint.origin.clone(),
        old: old.to_owned(),
        new,
        consistency,
    };
    check_consistency(&file, key)?;
    Ok(file)
}

fn check_pair(old: &Checkpoint, new: &Checkpoint) -> Result<(), ConsistencyError> {
    if old.origin != new.origin {
        return Err(ConsistencyError::Origins {
            old: old.origin.clone(),
            new: new.origin.clone(),
        });
    }
    if old.size > new.size {
        return Err(ConsistencyError::Order {
            old: old.size,
            new: new.size,
        });
    }
    Ok(())
}

/// Checks a consistency file offline: both notes signed by `key`, of the file's origin,
/// and the proof from the older root to the newer one.
pub fn check_consistency(
    file: &ConsistencyFile,
    key: &NoteVerifier,
) -> Result<(), ConsistencyError> {
    let (old, new) = (opened(&file.old, key)?, opened(&file.new, key)?);
    check_pair(&old, &new)?;
    if new.origin != file.origin {
        return Err(ProofError::Origin {
            checkpoint: new.origin,
            file: file.origin.clone(),
        }
        .into());
    }
    verify_consistency(old.size, new.size, &old.root, &new.root, &file.consistency)
        .map_err(ConsistencyError::Inconsistent)
}

#[cfg(test)]
mod tests;
