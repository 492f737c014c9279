//! The local write-ahead log: the first place a record becomes durable, and the source of
//! every segment. Records are appended as their canonical line (audit/FORMAT.md §3) to
//! `wal/%020d(first).wal`; a file is sealed whole and uploaded as the segment of the same
//! first index, then deleted once the store holds it and `tree.json` says so. After a crash
//! the files still present are replayed: a torn last line is cut off, anything else that
//! does not continue the chain stops startup (it is not ours to repair).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::merkle::{CompactTree, Hash};
use super::record::{Record, hex, link};

/// What the store already holds, persisted after each upload (`tree.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TreeState {
    /// Records in the store.
    pub size: u64,
    /// The compact tree over them (hex hashes, one per set bit of `size`).
    pub hashes: Vec<String>,
    /// `prev` for the next record.
    pub prev: String,
    /// Time of the last record, so times never go backwards across restarts.
    pub last_time_us: u64,
}

impl TreeState {
    pub fn tree(&self) -> Result<CompactTree, String> {
        let hashes = self
            .hashes
            .iter()
            .map(|h| unhex(h).ok_or_else(|| format!("bad hash `{h}` in tree.json")))
            .collect::<Result<Vec<Hash>, String>>()?;
        CompactTree::from_parts(self.size, hashes).map_err(|e| format!("tree.json: {e}"))
    }

    pub fn of(tree: &CompactTree, prev: &str, last_time_us: u64) -> TreeState {
        TreeState {
            size: tree.size(),
            hashes: tree.hashes().iter().map(|h| hex(h)).collect(),
            prev: prev.to_owned(),
            last_time_us,
        }
    }

    /// Loads `tree.json`; `None` when it does not exist yet.
    pub fn load(dir: &Path) -> Result<Option<TreeState>, String> {
        let path = dir.join("tree.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes `tree.json` atomically (temporary file, fsync, rename, fsync the directory).
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        write_atomically(&dir.join("tree.json"), &bytes)
    }
}

/// A WAL file that is complete and waits to be uploaded as a segment.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub first: u64,
    pub end: u64,
    pub path: PathBuf,
    /// The state after its last record: what `tree.json` becomes once it is uploaded.
    pub after: TreeState,
    pub root: Hash,
}

/// The file records are being appended to.
pub struct ActiveWal {
    file: File,
    pub first: u64,
    pub path: PathBuf,
}

impl ActiveWal {
    /// Creates `wal/%020d(first).wal` (truncating a leftover empty file of that name).
    pub fn create(dir: &Path, first: u64) -> io::Result<ActiveWal> {
        let path = wal_path(dir, first);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        sync_dir(&dir.join("wal"))?;
        Ok(ActiveWal { file, first, path })
    }

    /// Appends `bytes` and makes them durable: one fdatasync for the whole batch.
    pub fn append_durably(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.file.sync_data()
    }
}

pub fn wal_path(dir: &Path, first: u64) -> PathBuf {
    dir.join("wal").join(format!("{first:020}.wal"))
}

/// The state recovered at startup.
pub struct Recovered {
    pub tree: CompactTree,
    pub prev: String,
    pub last_time_us: u64,
    /// Files to upload, oldest first.
    pub sealed: Vec<Sealed>,
    /// Records replayed from the WAL.
    pub replayed: u64,
}

/// Replays the WAL on top of `state` (what the store holds). Files wholly below
/// `state.size` were uploaded already and are removed.
pub fn recover(dir: &Path, state: &TreeState) -> Result<Recovered, String> {
    fs::create_dir_all(dir.join("wal")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut tree = state.tree()?;
    let mut prev = state.prev.clone();
    let mut last_time_us = state.last_time_us;
    let mut files = list(dir)?;
    files.sort();
    let mut sealed = Vec::new();
    let mut replayed = 0;
    let count = files.len();
    for (n, (first, path)) in files.into_iter().enumerate() {
        let last_file = n + 1 == count;
        if first < tree.size() {
            // Uploaded and recorded in tree.json; the deletion did not happen.
            fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            continue;
        }
        if first != tree.size() {
            return Err(format!(
                "{}: the WAL should continue at record {}, not {first}",
                path.display(),
                tree.size()
            ));
        }
        let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut good = 0;
        let mut rest = bytes.as_slice();
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let line = &rest[..end];
            let parsed = Record::parse_canonical(line).and_then(|(_, r)| {
                if r.index != tree.size() {
                    Err(format!(
                        "index {} where {} was expected",
                        r.index,
                        tree.size()
                    ))
                } else if r.prev != prev {
                    Err(format!("record {} does not continue the chain", r.index))
                } else {
                    Ok(r)
                }
            });
            match parsed {
                Ok(r) => {
                    let (hash, next) = link(line);
                    tree.append(hash);
                    prev = next;
                    last_time_us = last_time_us.max(r.time_us);
                    good += end + 1;
                    replayed += 1;
                    rest = &rest[end + 1..];
                }
                // A last line cut short by a crash may still end in a newline only if the
                // newline itself was written: a broken *last* line is torn, anything
                // earlier is corruption.
                Err(_) if last_file && !rest[end + 1..].contains(&b'\n') => break,
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        if good < bytes.len() {
            if !last_file {
                return Err(format!(
                    "{}: incomplete record in a WAL file that is not the last",
                    path.display()
                ));
            }
            tracing::warn!(path = %path.display(), bytes = bytes.len() - good, "cutting a torn record off the write-ahead log");
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            f.set_len(good as u64)
                .and_then(|()| f.sync_all())
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        if tree.size() == first {
            fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            continue;
        }
        sealed.push(Sealed {
            first,
            end: tree.size(),
            path,
            after: TreeState::of(&tree, &prev, last_time_us),
            root: tree.root(),
        });
    }
    Ok(Recovered {
        tree,
        prev,
        last_time_us,
        sealed,
        replayed,
    })
}

fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, String> {
    let wal = dir.join("wal");
    let mut out = Vec::new();
    for entry in fs::read_dir(&wal).map_err(|e| format!("{}: {e}", wal.display()))? {
        let entry = entry.map_err(|e| format!("{}: {e}", wal.display()))?;
        let name = entry.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((first, entry.path()));
    }
    Ok(out)
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn unhex(s: &str) -> Option<Hash> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}
