//! The auditor's saved state (audit/FORMAT.md §8): the last checkpoint a verification
//! accepted, so the next one can tell a log that was cut short or rewritten since.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::merkle::CompactTree;
use crate::note::Checkpoint;

/// The last verified checkpoint: its origin, size, root and signed note text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub origin: String,
    pub size: u64,
    #[serde(with = "base64_hash")]
    pub root: [u8; 32],
    /// The signed note the state was taken from.
    pub checkpoint: String,
    /// Where an incremental verification picks up (absent in states saved before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

/// What an incremental verification needs to continue after the first `size` records
/// without reading them again: the Merkle tree's right edge at `size`, and the last
/// record's leaf hash (the next record's `prev`), time and whether it was a `stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    #[serde(with = "base64_hashes")]
    pub frontier: Vec<[u8; 32]>,
    #[serde(with = "base64_hash")]
    pub last_leaf: [u8; 32],
    pub last_time_us: u64,
    pub last_stop: bool,
    /// The `first` of the segment holding that record: an incremental pass reads from
    /// that segment, and a segment starting after it but at or before the record would
    /// be one overlapping what was verified.
    pub segment_first: u64,
}

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("state file {path} is not a saved audit state: {error}")]
    Format {
        path: String,
        error: serde_json::Error,
    },
}

impl State {
    /// The state after verifying `checkpoint`, whose signed note is `note`.
    pub fn of(checkpoint: &Checkpoint, note: &str, resume: Option<Resume>) -> State {
        State {
            origin: checkpoint.origin.clone(),
            size: checkpoint.size,
            root: checkpoint.root,
            checkpoint: note.to_owned(),
            resume,
        }
    }

    /// The Merkle tree at the state's size, when the state can resume and its right edge
    /// hashes to its root (anything else is a state that cannot be continued from).
    pub(crate) fn tree(&self) -> Option<(CompactTree, &Resume)> {
        let resume = self.resume.as_ref()?;
        let tree = CompactTree::from_parts(self.size, resume.frontier.clone()).ok()?;
        (self.size > 0 && tree.root() == self.root).then_some((tree, resume))
    }

    /// Reads the state at `path`; `None` when there is no file yet.
    pub fn load(path: &Path) -> Result<Option<State>, StateError> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io(path, error)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|error| StateError::Format {
                path: path.display().to_string(),
                error,
            })
    }

    /// Replaces the state at `path` atomically: a temporary file beside it, synced, then
    /// renamed over it (and the directory synced), so a crash leaves the old or the new.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let mut text = serde_json::to_vec_pretty(self).map_err(|error| StateError::Format {
            path: path.display().to_string(),
            error,
        })?;
        text.push(b'\n');
        crate::files::replace(path, &text).map_err(|error| io(path, error))
    }
}

fn io(path: &Path, error: std::io::Error) -> StateError {
    StateError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// A 32-byte hash as standard base64 with padding.
pub(crate) mod base64_hash {
    use super::B64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        decode(&text).map_err(D::Error::custom)
    }

    /// Decodes one base64 hash.
    pub fn decode(text: &str) -> Result<[u8; 32], String> {
        B64.decode(text)
            .ok()
            .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
            .ok_or_else(|| format!("`{text}` is not the base64 of 32 bytes"))
    }
}

/// A list of 32-byte hashes as standard base64 strings.
pub(crate) mod base64_hashes {
    use super::B64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer, de::Error, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(hashes: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(hashes.len()))?;
        for hash in hashes {
            seq.serialize_element(&B64.encode(hash))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| super::base64_hash::decode(text).map_err(D::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads() {
        let dir = std::env::temp_dir().join(format!("warden-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert!(State::load(&path).unwrap().is_none());
        let state = State {
            origin: "o".into(),
            size: 3,
            root: [7; 32],
            checkpoint: "note\n".into(),
            resume: None,
        };
        state.save(&path).unwrap();
        state.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), Some(state));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"root\": \"BwcH"), "{text}");
        std::fs::write(&path, "{}").unwrap();
        assert!(State::load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
