//! Proof files (audit/FORMAT.md §8): evidence about one record that anyone can check
//! offline with the log's public key alone. An inclusion proof shows that a record is in a
//! signed checkpoint; a disclosure adds one argument value with its salt, showing it is the
//! value the record committed to (§6) without revealing the others.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::commit::{commitment, lookup};
use super::jcs;
use super::merkle::{CompactTree, Hash, MerkleError, leaf_hash, verify_inclusion};
use super::note::{self, Checkpoint, NoteError, NoteVerifier};
use super::record::hex;
use super::store::Store;
use super::verify::base64_hashes;
use super::verify::listing::{self, CheckpointObject};
use super::verify::subtrees::RangeRoots;

/// `audit prove`: a record, a signed checkpoint and the audit path between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofFile {
    pub origin: String,
    pub index: u64,
    /// The record's canonical bytes.
    pub record: String,
    /// A signed checkpoint note whose tree contains the record.
    pub checkpoint: String,
    /// The RFC 6962 audit path, leaf upward, as base64 hashes.
    #[serde(with = "base64_hashes")]
    pub proof: Vec<Hash>,
}

/// `audit disclose`: an inclusion proof plus one argument value and its salt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisclosureFile {
    #[serde(flatten)]
    pub proof: ProofFile,
    /// The RFC 6901 path of the argument.
    pub path: String,
    pub value: Value,
    #[serde(with = "base64_salt")]
    pub salt: [u8; 32],
}

/// Why a proof could not be made or does not check.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("cannot read the audit store: {0}")]
    Store(object_store::Error),
    #[error("no signed checkpoint covers record {0} yet")]
    NotCovered(u64),
    #[error("the log cannot back a proof ({0}); run `mcp-warden audit verify`")]
    Log(String),
    #[error("the checkpoint does not verify: {0}")]
    Signature(NoteError),
    #[error("the checkpoint is for origin {checkpoint:?}, the proof says {file:?}")]
    Origin { checkpoint: String, file: String },
    #[error("the record is not valid: {0}")]
    Record(String),
    #[error("the record is not in the checkpoint's tree: {0}")]
    Inclusion(MerkleError),
    #[error("the openings cannot disclose this value: {0}")]
    Openings(String),
    #[error("the disclosed value is not the one the record committed to at `{0}`")]
    Commitment(String),
    #[error(
        "record {index} committed to no argument at `{path}` (no such field); its committed fields: {known}"
    )]
    NoSuchField {
        index: u64,
        path: String,
        known: String,
    },
}

// The causes are part of the messages, not error sources, so they print once.
impl From<object_store::Error> for ProofError {
    fn from(e: object_store::Error) -> Self {
        ProofError::Store(e)
    }
}

impl From<NoteError> for ProofError {
    fn from(e: NoteError) -> Self {
        ProofError::Signature(e)
    }
}

impl From<MerkleError> for ProofError {
    fn from(e: MerkleError) -> Self {
        ProofError::Inclusion(e)
    }
}

/// Proves record `index` against the newest checkpoint that covers it (with `key`: the
/// newest whose signature verifies). Reads the segments up to that checkpoint's size and
/// checks they hash to its root.
pub async fn prove(
    store: &Store,
    key: Option<&NoteVerifier>,
    index: u64,
) -> Result<ProofFile, ProofError> {
    let listing = listing::list(store).await?;
    let (checkpoint, note) = newest_covering(store, &listing.checkpoints, key, index).await?;
    let size = checkpoint.size;
    let mut path = RangeRoots::inclusion(index, size);
    let mut record = None;
    let tree = read_leaves(store, &listing.segments, size, |at, line, leaf| {
        path.feed(at, leaf);
        if at == index {
            record = Some(line.to_vec());
        }
    })
    .await?;
    if tree.root() != checkpoint.root {
        return Err(ProofError::Log(format!(
            "the records do not hash to the root of the checkpoint of {size} records"
        )));
    }
    let record = String::from_utf8(record.unwrap_or_default())
        .map_err(|_| ProofError::Log(format!("record {index} is not UTF-8")))?;
    let proof = path
        .proof()
        .ok_or_else(|| ProofError::Log("the audit path is incomplete".into()))?;
    let file = ProofFile {
        origin: checkpoint.origin.clone(),
        index,
        record,
        checkpoint: note,
        proof,
    };
    check_record(&file)?;
    Ok(file)
}

/// Reads the first `size` records of the log in order, handing each to `visit` with its
/// index and leaf hash; returns their tree. Fails when the segments do not continue each
/// other or hold fewer records.
pub(crate) async fn read_leaves(
    store: &Store,
    segments: &[listing::SegmentObject],
    size: u64,
    mut visit: impl FnMut(u64, &[u8], Hash),
) -> Result<CompactTree, ProofError> {
    let mut tree = CompactTree::new();
    let count = segments.partition_point(|s| s.first < size);
    let segments = &segments[..count];
    let keys = segments.iter().map(|s| s.key.clone()).collect();
    let mut reads = listing::read_each(store, keys, 4).zip(futures::stream::iter(segments));
    while let Some((data, segment)) = reads.next().await {
        let data = data?;
        if segment.first != tree.size() {
            return Err(ProofError::Log(format!(
                "{} does not continue the log at record {}",
                segment.key,
                tree.size()
            )));
        }
        let data = data.as_ref();
        for line in data
            .strip_suffix(b"\n")
            .unwrap_or(data)
            .split(|&b| b == b'\n')
        {
            let at = tree.size();
            if at == size {
                break;
            }
            let leaf = leaf_hash(line);
            tree.append(leaf);
            visit(at, line, leaf);
        }
    }
    if tree.size() < size {
        return Err(ProofError::Log(format!(
            "the store holds {} records, fewer than the checkpoint's {size}",
            tree.size()
        )));
    }
    Ok(tree)
}

/// The newest checkpoint of more than `index` records (signed by `key`, if given).
async fn newest_covering(
    store: &Store,
    objects: &[CheckpointObject],
    key: Option<&NoteVerifier>,
    index: u64,
) -> Result<(Checkpoint, String), ProofError> {
    for object in objects.iter().rev().filter(|o| o.size > index) {
        let data = listing::read(store, &object.key).await?;
        let Ok(text) = std::str::from_utf8(data.as_ref()) else {
            continue;
        };
        let body = match key {
            Some(key) => note::open(text, key).ok(),
            None => text.rfind("\n\n").map(|at| text[..=at].to_owned()),
        };
        if let Some(checkpoint) = body.and_then(|b| Checkpoint::parse(&b).ok())
            && checkpoint.size > index
        {
            return Ok((checkpoint, text.to_owned()));
        }
    }
    Err(ProofError::NotCovered(index))
}

/// Checks an inclusion proof: the checkpoint's signature by `key`, its origin, the record's
/// form and index, and the audit path from the record's leaf hash to the signed root.
pub fn check_proof(file: &ProofFile, key: &NoteVerifier) -> Result<(), ProofError> {
    let body = note::open(&file.checkpoint, key)?;
    let checkpoint = Checkpoint::parse(&body)?;
    if checkpoint.origin != file.origin {
        return Err(ProofError::Origin {
            checkpoint: checkpoint.origin,
            file: file.origin.clone(),
        });
    }
    check_record(file)?;
    let leaf = leaf_hash(file.record.as_bytes());
    verify_inclusion(
        &leaf,
        file.index,
        checkpoint.size,
        &file.proof,
        &checkpoint.root,
    )?;
    Ok(())
}

/// The record must be canonical, at the proof's index and of the proof's origin.
fn check_record(file: &ProofFile) -> Result<Value, ProofError> {
    let value: Value = serde_json::from_str(&file.record)
        .map_err(|e| ProofError::Record(format!("not JSON: {e}")))?;
    if jcs::to_vec(&value) != file.record.as_bytes() {
        return Err(ProofError::Record("not in canonical form".into()));
    }
    let index = value.get("index").and_then(Value::as_u64);
    if index != Some(file.index) {
        return Err(ProofError::Record(format!(
            "its index is {index:?}, the proof is for {}",
            file.index
        )));
    }
    let origin = value.get("origin").and_then(Value::as_str);
    if origin != Some(file.origin.as_str()) {
        return Err(ProofError::Record(format!(
            "its origin is {origin:?}, the proof is for {:?}",
            file.origin
        )));
    }
    Ok(value)
}

/// Adds to `proof` the value at argument `path` of its record, with the salt from the
/// openings file of the record's segment in `openings_dir` (`%020d.jsonl`, named by the
/// segment's first index: the largest such name not above the record's index).
pub fn disclose(
    proof: ProofFile,
    openings_dir: &Path,
    path: &str,
) -> Result<DisclosureFile, ProofError> {
    let record = check_record(&proof)?;
    let committed = committed(&record, proof.index, path)?;
    let file = openings_file(openings_dir, proof.index)?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| ProofError::Openings(format!("{}: {e}", file.display())))?;
    let mut seen = false;
    // A line may repeat after a crash and replay; the one that opens the commitment wins.
    for line in text.lines() {
        let Ok(opening) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if opening.get("index").and_then(Value::as_u64) != Some(proof.index) {
            continue;
        }
        seen = true;
        let salt = opening
            .get("salts")
            .and_then(|s| s.get(path))
            .and_then(Value::as_str)
            .and_then(|s| B64.decode(s).ok())
            .and_then(|s| <[u8; 32]>::try_from(s).ok());
        let value = opening.get("arguments").and_then(|a| lookup(a, path));
        if let (Some(salt), Some(value)) = (salt, value)
            && hex(&commitment(path, value, &salt)) == committed
        {
            return Ok(DisclosureFile {
                proof,
                path: path.to_owned(),
                value: value.clone(),
                salt,
            });
        }
    }
    Err(ProofError::Openings(if seen {
        format!(
            "the opening of record {} in {} does not open `{path}`",
            proof.index,
            file.display()
        )
    } else {
        format!(
            "{} has no opening for record {}",
            file.display(),
            proof.index
        )
    }))
}

/// The commitment record `index` holds for `path` (hex); a path it holds none for is
/// "no such field", with the paths it does hold.
fn committed(record: &Value, index: u64, path: &str) -> Result<String, ProofError> {
    let commitments = record
        .get("arguments")
        .and_then(|a| a.get("commitments"))
        .and_then(Value::as_object);
    commitments
        .and_then(|c| c.get(path))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            let known: Vec<String> = commitments
                .map(|c| c.keys().map(|k| format!("`{k}`")).collect())
                .unwrap_or_default();
            ProofError::NoSuchField {
                index,
                path: path.to_owned(),
                known: if known.is_empty() {
                    "none (the request carried no arguments)".to_owned()
                } else {
                    known.join(", ")
                },
            }
        })
}

/// The openings file of the segment holding record `index`.
fn openings_file(dir: &Path, index: u64) -> Result<std::path::PathBuf, ProofError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ProofError::Openings(format!("{}: {e}", dir.display())))?;
    let best = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let digits = name.strip_suffix(".jsonl")?;
            let first: u64 = digits.parse().ok()?;
            (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) && first <= index)
                .then_some(first)
        })
        .max()
        .ok_or_else(|| {
            ProofError::Openings(format!(
                "{} has no openings file for record {index}",
                dir.display()
            ))
        })?;
    Ok(dir.join(format!("{best:020}.jsonl")))
}

/// Checks a disclosure: its inclusion proof, then that the record's commitment at `path`
/// opens to `value` with `salt`.
pub fn check_disclosure(file: &DisclosureFile, key: &NoteVerifier) -> Result<(), ProofError> {
    check_proof(&file.proof, key)?;
    let record = check_record(&file.proof)?;
    let committed = committed(&record, file.proof.index, &file.path)?;
    if hex(&commitment(&file.path, &file.value, &file.salt)) != committed {
        return Err(ProofError::Commitment(file.path.clone()));
    }
    Ok(())
}

mod base64_salt {
    pub use crate::verify::base64_hash::{deserialize, serialize};
}

#[cfg(test)]
mod tests;
