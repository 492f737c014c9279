//! `audit follow`: the log as a verified stream, for a SIEM. Records are handed out only
//! once a signed checkpoint covers them and they check: canonical form, origin, index in
//! order, each `prev` the leaf hash of the record before, and the tree of everything read so
//! far hashing to that checkpoint's signed root — which also proves the log still extends
//! what was handed out before. The position (an auditor's state, `verify --state`'s format)
//! is saved after each batch, so a restarted follower resumes where it stopped, and any
//! failure to verify stops the stream.

use futures::StreamExt;

use super::merkle::{CompactTree, Hash};
use super::note::{self, Checkpoint, NoteVerifier};
use super::record::{GENESIS_PREV, hex};
use super::store::Store;
use super::verify::canonical;
use super::verify::listing::{self, CheckpointObject};
use super::verify::{Resume, State};

/// Why the stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("cannot read the audit store: {0}")]
    Store(#[from] object_store::Error),
    #[error("TAMPERED: {0}")]
    Tampered(String),
    #[error("the saved position cannot be continued from: {0}")]
    Position(String),
}

/// Where a follower is: the records handed out so far and the tree over them.
pub struct Follower {
    origin: Option<String>,
    tree: CompactTree,
    /// The `prev` the next record must carry.
    prev: String,
    last_time_us: u64,
    last_stop: bool,
    /// The newest checkpoint handed out up to.
    checkpoint: Option<(Checkpoint, String)>,
    /// The first index of the segment the next record is in (or after).
    segment_first: u64,
}

impl Follower {
    /// From the start of the log, or from a saved position.
    pub fn new(position: Option<&State>) -> Result<Follower, FollowError> {
        let Some(state) = position else {
            return Ok(Follower {
                origin: None,
                tree: CompactTree::new(),
                prev: GENESIS_PREV.to_owned(),
                last_time_us: 0,
                last_stop: false,
                checkpoint: None,
                segment_first: 0,
            });
        };
        let resume = state
            .resume
            .as_ref()
            .ok_or_else(|| FollowError::Position("it has no resume point".into()))?;
        let tree = CompactTree::from_parts(state.size, resume.frontier.clone())
            .map_err(|e| FollowError::Position(e.to_string()))?;
        if tree.root() != state.root {
            return Err(FollowError::Position(
                "its tree does not hash to its root".into(),
            ));
        }
        let checkpoint = Checkpoint::parse(
            state
                .checkpoint
                .rfind("\n\n")
                .map_or("", |at| &state.checkpoint[..=at]),
        )
        .map_err(|e| FollowError::Position(e.to_string()))?;
        Ok(Follower {
            origin: Some(state.origin.clone()),
            tree,
            prev: hex(&resume.last_leaf),
            last_time_us: resume.last_time_us,
            last_stop: resume.last_stop,
            checkpoint: Some((checkpoint, state.checkpoint.clone())),
            segment_first: resume.segment_first,
        })
    }

    /// Records handed out so far.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// The position to save (`None` before the first batch).
    pub fn position(&self) -> Option<State> {
        let (checkpoint, note) = self.checkpoint.as_ref()?;
        let last_leaf = hex_decode(&self.prev)?;
        Some(State::of(
            checkpoint,
            note,
            Some(Resume {
                frontier: self.tree.hashes().to_vec(),
                last_leaf,
                last_time_us: self.last_time_us,
                last_stop: self.last_stop,
                segment_first: self.segment_first,
            }),
        ))
    }

    /// The records a newer signed checkpoint covers, verified; empty when there is none.
    pub async fn next_batch(
        &mut self,
        store: &Store,
        key: &NoteVerifier,
    ) -> Result<Vec<Vec<u8>>, FollowError> {
        let listing = listing::list(store).await?;
        let Some((checkpoint, text)) =
            newest(store, &listing.checkpoints, key, self.size()).await?
        else {
            return Ok(Vec::new());
        };
        if let Some(origin) = &self.origin
            && *origin != checkpoint.origin
        {
            return Err(FollowError::Tampered(format!(
                "a checkpoint of origin {:?} in the log of {origin:?}",
                checkpoint.origin
            )));
        }
        let start = listing
            .segments
            .partition_point(|s| s.first <= self.size())
            .saturating_sub(1);
        let segments: Vec<_> = listing.segments[start..]
            .iter()
            .take_while(|s| s.first < checkpoint.size)
            .cloned()
            .collect();
        let keys = segments.iter().map(|s| s.key.clone()).collect();
        let mut reads = listing::read_each(store, keys, 4).zip(futures::stream::iter(&segments));
        // Checked against a copy: nothing moves until the checkpoint's root is reached.
        let mut next = self.clone_tree();
        let mut batch = Vec::new();
        while let Some((data, segment)) = reads.next().await {
            let data = data?;
            let data = data.as_ref();
            let lines = data
                .strip_suffix(b"\n")
                .unwrap_or(data)
                .split(|&b| b == b'\n');
            for (index, line) in (segment.first..).zip(lines) {
                if index >= next.tree.size() && index < checkpoint.size {
                    next.take(line, index, &checkpoint.origin)?;
                    next.segment_first = segment.first;
                    batch.push(line.to_vec());
                }
            }
        }
        if next.tree.size() != checkpoint.size {
            return Err(FollowError::Tampered(format!(
                "the checkpoint covers {} records, the store holds {}",
                checkpoint.size,
                next.tree.size()
            )));
        }
        if next.tree.root() != checkpoint.root {
            return Err(FollowError::Tampered(format!(
                "the records do not hash to the signed root of the checkpoint of {} records (or the log no longer extends what was handed out)",
                checkpoint.size
            )));
        }
        next.origin = Some(checkpoint.origin.clone());
        next.checkpoint = Some((checkpoint, text));
        *self = next;
        Ok(batch)
    }

    fn clone_tree(&self) -> Follower {
        Follower {
            origin: self.origin.clone(),
            tree: self.tree.clone(),
            prev: self.prev.clone(),
            last_time_us: self.last_time_us,
            last_stop: self.last_stop,
            checkpoint: self.checkpoint.clone(),
            segment_first: self.segment_first,
        }
    }

    /// One record at `index`: its form, origin, place and link to the one before.
    fn take(&mut self, line: &[u8], index: u64, origin: &str) -> Result<(), FollowError> {
        let value = serde_json::from_slice(line);
        let mut buffer = Vec::new();
        let fields = match canonical::fast(line) {
            Some(f) => f,
            None => match canonical::slow(line, &value, &mut buffer) {
                (true, Ok(f)) => f,
                (false, _) => {
                    return Err(FollowError::Tampered(format!(
                        "record {index} is not in canonical form"
                    )));
                }
                (_, Err(why)) => {
                    return Err(FollowError::Tampered(format!("record {index}: {why}")));
                }
            },
        };
        if fields.index != index || fields.origin != origin || fields.prev != self.prev {
            return Err(FollowError::Tampered(format!(
                "record {index} does not continue the chain (index {}, origin {:?}, prev {})",
                fields.index, fields.origin, fields.prev
            )));
        }
        let (leaf, link) = super::record::link(line);
        self.tree.append(leaf);
        self.prev = link;
        self.last_time_us = fields.time_us;
        self.last_stop = fields.kind == "stop";
        Ok(())
    }
}

/// The newest checkpoint of more than `size` records whose signature verifies.
async fn newest(
    store: &Store,
    objects: &[CheckpointObject],
    key: &NoteVerifier,
    size: u64,
) -> Result<Option<(Checkpoint, String)>, FollowError> {
    for object in objects.iter().rev().filter(|o| o.size > size) {
        let data = listing::read(store, &object.key).await?;
        let Ok(text) = std::str::from_utf8(data.as_ref()) else {
            continue;
        };
        if let Ok(checkpoint) = note::open(text, key).and_then(|b| Checkpoint::parse(&b))
            && checkpoint.size > size
        {
            return Ok(Some((checkpoint, text.to_owned())));
        }
    }
    Ok(None)
}

fn hex_decode(text: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests;
