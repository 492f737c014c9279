//! Collecting witness cosignatures for the log's checkpoints (`[audit] witnesses`), beside
//! the uploader so that a slow or unreachable witness never holds up the log: the uploader
//! hands this task each sealed segment's leaves and each checkpoint it wrote; the task sends
//! the newest checkpoint to every witness with the consistency proof from the size that
//! witness last cosigned (learnt from its 409 when unknown), and stores the note with the
//! cosignatures it got as `witnessed/<size>-<time>.note` (create-only) beside the checkpoint.
//!
//! The proof comes from memory — the tree at the smallest size a witness holds and the
//! leaves since — and, for a witness further behind (after a restart), from the records in
//! the store.

use std::time::Duration;

use tokio::sync::mpsc;

use super::merkle::{CompactTree, Hash, leaf_hash, root};
use super::note::Checkpoint;
use super::proof::read_leaves;
use super::store::Store;
use super::verify::listing;
use super::verify::subtrees::{RangeRoots, consistency_ranges};
use super::witness::{WitnessVerifier, add_checkpoint_request};

/// One witness the log asks.
#[derive(Debug, Clone)]
pub struct WitnessSettings {
    /// Its base URL; requests go to `<url>/add-checkpoint`.
    pub url: String,
    /// Its public key (cosignatures that do not verify with it are not kept).
    pub key: WitnessVerifier,
}

/// What the uploader tells the cosigner, in log order.
pub(crate) enum Msg {
    /// A segment was uploaded: the tree after it and its records' leaf hashes.
    Sealed {
        after: CompactTree,
        leaves: Vec<Hash>,
    },
    /// A checkpoint was written.
    Checkpoint {
        note: String,
        checkpoint: Checkpoint,
    },
}

/// Leaves kept in memory for proofs; beyond this a proof is read from the store.
const MAX_LEAVES_KEPT: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(5);

struct Remote {
    settings: WitnessSettings,
    /// The size it last cosigned, once known.
    size: Option<u64>,
}

struct Cosigner {
    store: Store,
    client: reqwest::Client,
    remotes: Vec<Remote>,
    /// The tree at the smallest size any witness holds, and the leaves after it.
    base: Option<CompactTree>,
    leaves: Vec<Hash>,
}

/// Starts the cosigner; `None` without witnesses.
pub(crate) fn spawn(
    store: Store,
    witnesses: &[WitnessSettings],
) -> Option<mpsc::UnboundedSender<Msg>> {
    if witnesses.is_empty() {
        return None;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let cosigner = Cosigner {
        store,
        client: reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default(),
        remotes: witnesses
            .iter()
            .map(|w| Remote {
                settings: w.clone(),
                size: None,
            })
            .collect(),
        base: None,
        leaves: Vec::new(),
    };
    tokio::spawn(cosigner.run(rx));
    Some(tx)
}

/// The leaf hashes of a segment's records.
pub(crate) fn leaves_of(records: &[u8]) -> Vec<Hash> {
    records
        .strip_suffix(b"\n")
        .unwrap_or(records)
        .split(|&b| b == b'\n')
        .map(leaf_hash)
        .collect()
}

impl Cosigner {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            let mut newest = None;
            // Segments in order; of the checkpoints waiting, only the newest is cosigned.
            for msg in std::iter::once(msg).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                match msg {
                    Msg::Sealed { after, leaves } => self.sealed(after, leaves),
                    Msg::Checkpoint { note, checkpoint } => newest = Some((note, checkpoint)),
                }
            }
            if let Some((note, checkpoint)) = newest {
                self.cosign(&note, &checkpoint).await;
            }
        }
    }

    fn sealed(&mut self, after: CompactTree, leaves: Vec<Hash>) {
        match &self.base {
            Some(base)
                if base.size() + (self.leaves.len() + leaves.len()) as u64 == after.size() =>
            {
                self.leaves.extend(leaves);
            }
            _ => {
                self.base = Some(after);
                self.leaves.clear();
            }
        }
        if self.leaves.len() > MAX_LEAVES_KEPT {
            self.base = None;
            self.leaves.clear();
        }
    }

    async fn cosign(&mut self, note: &str, checkpoint: &Checkpoint) {
        let mut lines = Vec::new();
        for i in 0..self.remotes.len() {
            if let Some(line) = self.ask(i, note, checkpoint).await {
                lines.push(line);
            }
        }
        self.advance_base();
        if lines.is_empty() {
            return;
        }
        let time = checkpoint
            .extensions
            .iter()
            .find_map(|e| e.strip_prefix("time "))
            .unwrap_or("0");
        let key = listing::witnessed_key(&self.store.prefix, checkpoint.size, time);
        let text = format!("{note}{}", lines.concat());
        if let Err(e) = self.store.create(&key, text.into_bytes()).await {
            tracing::warn!(error = %e, "the witnessed checkpoint could not be stored");
        }
    }

    /// Asks witness `i` (learning its size from a 409 once); its verified cosignature.
    async fn ask(&mut self, i: usize, note: &str, checkpoint: &Checkpoint) -> Option<String> {
        for _ in 0..2 {
            let old = self.remotes[i].size.unwrap_or(0).min(checkpoint.size);
            let proof = self.proof(old, checkpoint.size).await?;
            let url = format!(
                "{}/add-checkpoint",
                self.remotes[i].settings.url.trim_end_matches('/')
            );
            let sent = self
                .client
                .post(&url)
                .body(add_checkpoint_request(old, &proof, note))
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(witness = %url, error = %e, "a witness could not be reached");
                    return None;
                }
            };
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            match status {
                200 => {
                    let witness = &self.remotes[i].settings.key;
                    if witness.cosigned(&format!("{note}{body}")).is_none() {
                        tracing::warn!(witness = %url, "a witness answered without a valid cosignature");
                        return None;
                    }
                    self.remotes[i].size = Some(checkpoint.size);
                    return body.lines().next().map(|l| format!("{l}\n"));
                }
                409 => match body.trim().parse() {
                    Ok(size) if self.remotes[i].size != Some(size) => {
                        self.remotes[i].size = Some(size);
                    }
                    _ => return None,
                },
                _ => {
                    tracing::error!(witness = %url, status, answer = %body.trim(), "a witness refused the log's checkpoint");
                    return None;
                }
            }
        }
        None
    }

    /// PROOF(old, D[new]): from memory when the kept leaves reach back to `old`, else
    /// from the store's records.
    async fn proof(&self, old: u64, new: u64) -> Option<Vec<Hash>> {
        if old == 0 || old == new {
            return Some(Vec::new());
        }
        if let Some(base) = &self.base
            && base.size() <= old
            && base.size() + self.leaves.len() as u64 == new
        {
            return Some(from_memory(base, &self.leaves, old, new));
        }
        let mut ranges = RangeRoots::consistency(old, new);
        let segments = listing::list(&self.store).await.ok()?.segments;
        read_leaves(&self.store, &segments, new, |at, _, leaf| {
            ranges.feed(at, leaf)
        })
        .await
        .ok()?;
        ranges.proof()
    }

    /// Moves the kept tree up to the smallest size a witness holds.
    fn advance_base(&mut self) {
        let Some(base) = &mut self.base else { return };
        // Witnesses not heard from yet do not hold the tree back: once one answers from
        // further back, its proof is read from the store.
        let Some(smallest) = self.remotes.iter().filter_map(|r| r.size).min() else {
            return;
        };
        let step = smallest.saturating_sub(base.size()) as usize;
        if step == 0 || step > self.leaves.len() {
            return;
        }
        for leaf in self.leaves.drain(..step) {
            base.append(leaf);
        }
    }
}

/// The proof from the tree at `base` and the leaves after it: the proof's subtrees left of
/// `old` are the tree's right edge at `old`, the others lie among the leaves.
fn from_memory(base: &CompactTree, leaves: &[Hash], old: u64, new: u64) -> Vec<Hash> {
    let mut at_old = base.clone();
    for leaf in &leaves[..(old - base.size()) as usize] {
        at_old.append(*leaf);
    }
    // The right edge at `old`: one perfect subtree per set bit, largest first.
    let mut edge = Vec::new();
    let mut start = 0u64;
    for (bit, hash) in (0..64)
        .rev()
        .filter(|b| old & (1 << b) != 0)
        .zip(at_old.hashes())
    {
        edge.push(((start, start + (1 << bit)), *hash));
        start += 1 << bit;
    }
    consistency_ranges(old, new)
        .into_iter()
        .map(|(lo, hi)| {
            if hi <= old {
                edge.iter()
                    .find(|(range, _)| *range == (lo, hi))
                    .map(|(_, h)| *h)
                    .expect("a proof's subtree left of `old` is on its right edge")
            } else {
                let b = base.size();
                root(&leaves[(lo - b) as usize..(hi - b) as usize])
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::consistency_proof;

    /// The proof from memory is RFC 6962's, for every pair of sizes and bases.
    #[test]
    fn proofs_from_memory_match_the_reference() {
        let all: Vec<Hash> = (0u32..40).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for base_size in [0usize, 1, 5, 16] {
            let mut base = CompactTree::new();
            for leaf in &all[..base_size] {
                base.append(*leaf);
            }
            for old in base_size.max(1)..40 {
                for new in old + 1..=40 {
                    let want = consistency_proof(&all[..new], old as u64).unwrap();
                    let got = from_memory(&base, &all[base_size..new], old as u64, new as u64);
                    assert_eq!(got, want, "base {base_size} old {old} new {new}");
                }
            }
        }
    }
}
