//! The local write-ahead log: the first place a record becomes durable, and the source of
//! every segment. Records are written as their canonical lines (audit/FORMAT.md §3) to
//! `wal/%020d(first).wal`; at a seal the records' bytes are uploaded as the segment of the
//! same first index.
//!
//! **Records overwrite space that is already on disk.** A WAL file is either a file whose
//! segment the store already holds (recycled: renamed to `wal/spare` once uploaded, with
//! zeros added to make room for twice its segment), or, at startup, a file filled with
//! zeros and synced ahead (the one records start in, and a spare for the first seal,
//! written by the uploader). Overwriting allocated blocks changes no metadata, so each
//! batch's `fdatasync` flushes only data: ~25% less than an append that grows the file on
//! ext4 (`benches/audit.rs` measures both). A file whose records outgrow it simply grows.
//! The bytes past the records (zeros, or an older segment's lines) are never uploaded: a
//! sealed file carries its records' length.
//!
//! After a crash the files still present are replayed. A file's records are its longest
//! prefix of lines that continue the chain; what follows is unwritten space, an older
//! segment's lines, or the batch that was being written when the machine went down, whose
//! pages may have reached the disk in any order and whose callers were never answered.
//! A batch writes at most [`MAX_UNSYNCED`] bytes between two fsyncs, so a line that would
//! continue the log found further than that past the last intact record was acknowledged:
//! that is damage, and startup stops (it is not ours to repair).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
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

/// The most bytes written to the WAL between two fsyncs (a larger batch is written in
/// parts). Recovery relies on it to tell a torn batch from damage.
pub const MAX_UNSYNCED: usize = 256 * 1024;

/// Zero bytes written ahead into the WAL file created at startup, before any file can be
/// recycled: ~4,000 records.
pub const PREALLOCATE: u64 = 4 << 20;

/// A WAL file that is complete and waits to be uploaded as a segment.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub first: u64,
    pub end: u64,
    pub path: PathBuf,
    /// The length of its records; the bytes after them are not part of the segment.
    pub len: u64,
    /// The state after its last record: what `tree.json` becomes once it is uploaded.
    pub after: TreeState,
    pub root: Hash,
}

/// The file records are being written to, from its start.
pub struct ActiveWal {
    file: File,
    /// The file's identity (device, inode), to notice the path naming another file.
    identity: (u64, u64),
    pub first: u64,
    pub path: PathBuf,
    /// Bytes of records written (and synced) so far.
    pub len: u64,
    /// Writes made durable so far, one fdatasync each.
    pub syncs: u64,
}

impl ActiveWal {
    /// Starts `wal/%020d(first).wal`: the spare file if one waits, else a new file with
    /// `preallocate` zero bytes written and synced ahead (none: it grows as it is written).
    pub fn create(dir: &Path, first: u64, preallocate: u64) -> io::Result<ActiveWal> {
        let path = wal_path(dir, first);
        let file = match fs::rename(spare_path(dir), &path) {
            Ok(()) => OpenOptions::new().write(true).open(&path)?,
            Err(_) => {
                let mut file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .open(&path)?;
                zero_fill(&mut file, preallocate)?;
                file.seek(io::SeekFrom::Start(0))?;
                file
            }
        };
        sync_dir(&dir.join("wal"))?;
        Ok(ActiveWal {
            identity: identity_at(&path)?,
            file,
            first,
            path,
            len: 0,
            syncs: 0,
        })
    }

    /// Writes `bytes` after the records so far and makes them durable: one fdatasync.
    /// More than one record at a time is at most [`MAX_UNSYNCED`] bytes.
    pub fn append_durably(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.file.sync_data()?;
        // Records written to a file nobody can find again are not durable: the file was
        // removed or replaced behind the proxy's back (one stat per fsync).
        if identity_at(&self.path).ok() != Some(self.identity) {
            return Err(io::Error::other(format!(
                "{} is no longer the file the proxy writes (removed or replaced by another \
                 process)",
                self.path.display()
            )));
        }
        self.len += bytes.len() as u64;
        self.syncs += 1;
        Ok(())
    }
}

#[cfg(unix)]
fn identity(m: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn identity(_: &fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// The identity of the file `path` names now, read without its timestamps on Linux: a stat
/// that reads them marks the ctime as seen (multigrain timestamps, Linux 6.13 on), so the
/// next batch's write dirties the inode and its `fdatasync` must write it too (measured in
/// `benches/README.md`, *Appends*).
fn identity_at(path: &Path) -> io::Result<(u64, u64)> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{AtFlags, CWD, StatxFlags, makedev, statx};
        match statx(CWD, path, AtFlags::empty(), StatxFlags::INO) {
            Ok(st) => return Ok((makedev(st.stx_dev_major, st.stx_dev_minor), st.stx_ino)),
            // A kernel without statx (before 4.11), or a sandbox that refuses it.
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
    }
    fs::metadata(path).map(|m| identity(&m))
}

pub fn wal_path(dir: &Path, first: u64) -> PathBuf {
    dir.join("wal").join(format!("{first:020}.wal"))
}

/// Where an uploaded WAL file waits to be written over as the next one.
pub fn spare_path(dir: &Path) -> PathBuf {
    dir.join("wal").join("spare")
}

/// The records of a sealed WAL file: its first `len` bytes.
pub fn read_records(path: &Path, len: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(len as usize);
    File::open(path)?.take(len).read_to_end(&mut bytes)?;
    if (bytes.len() as u64) < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{} holds {} bytes, not {len}", path.display(), bytes.len()),
        ));
    }
    Ok(bytes)
}

/// Once its segment is stored, a WAL file becomes the spare (replacing an older one); the
/// next seal writes over it. It is first given `room` bytes, zeros after what it holds,
/// if it is smaller (see [`headroom`]).
pub fn recycle(dir: &Path, path: &Path, room: u64) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    zero_fill(&mut file, room)?;
    fs::rename(path, spare_path(dir))
}

/// The room a WAL file is given for the next segment, after one of `len` bytes: twice
/// that (rates vary from one seal to the next), never less than startup's [`PREALLOCATE`].
/// A segment that outgrows its file still grows it, at the cost of synced metadata.
pub fn headroom(len: u64) -> u64 {
    PREALLOCATE.max(len.saturating_mul(2))
}

/// Writes a spare ahead when there is none (at startup, before a first upload has
/// recycled a file), so that the first seal, too, writes over allocated space: zeros to
/// `wal/spare.new`, synced, then renamed. A seal that comes first finds no spare and
/// starts a file that grows, as it would without one.
pub fn prepare_spare(dir: &Path) -> io::Result<()> {
    if spare_path(dir).exists() {
        return Ok(());
    }
    let new = dir.join("wal").join("spare.new");
    let mut file = File::create(&new)?;
    zero_fill(&mut file, PREALLOCATE)?;
    fs::rename(&new, spare_path(dir))
}

/// Writes zeros from the end of `file` up to `size` bytes, if it is smaller, and makes them
/// durable: its blocks are allocated and its length synced, so records written over them
/// later change no metadata.
fn zero_fill(file: &mut File, size: u64) -> io::Result<()> {
    let mut at = file.seek(io::SeekFrom::End(0))?;
    if at >= size {
        return Ok(());
    }
    let zeros = vec![0u8; 64 * 1024];
    while at < size {
        let n = (size - at).min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])?;
        at += n as u64;
    }
    file.sync_all()
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
    for (first, path) in files {
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
        let mut len = 0;
        let mut why = "the file ends".to_owned();
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            let Some(text) = line.strip_suffix(b"\n") else {
                why = "a line without its line feed".to_owned();
                break;
            };
            match Record::parse_canonical(text) {
                Ok((_, r)) if r.index == tree.size() && r.prev == prev => {
                    let (hash, next) = link(text);
                    tree.append(hash);
                    prev = next;
                    last_time_us = last_time_us.max(r.time_us);
                    len += line.len();
                    replayed += 1;
                }
                Ok((_, r)) if r.index != tree.size() => {
                    why = format!("record {} where record {} was due", r.index, tree.size());
                    break;
                }
                Ok(_) => {
                    why = format!(
                        "a record {} that does not link to the one before",
                        tree.size()
                    );
                    break;
                }
                Err(e) => {
                    why = e;
                    break;
                }
            }
        }
        check_tail(&path, &bytes[len..], len, tree.size(), &why)?;
        if tree.size() == first {
            fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            continue;
        }
        sealed.push(Sealed {
            first,
            end: tree.size(),
            path,
            len: len as u64,
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

/// Judges what follows a WAL file's records. Zeros or an older segment's lines are unused
/// space. Lines that would continue the log (index `next` or later) within
/// [`MAX_UNSYNCED`] bytes are the batch a crash cut short: never acknowledged, dropped,
/// and said so. Such a line further on was acknowledged, so the record before it was
/// damaged after it was synced: an error.
fn check_tail(path: &Path, tail: &[u8], offset: usize, next: u64, why: &str) -> Result<(), String> {
    let mut at = 0;
    let mut cut = Vec::new();
    for line in tail.split_inclusive(|&b| b == b'\n') {
        let end = at + line.len();
        if let Some(text) = line.strip_suffix(b"\n")
            && let Ok((_, r)) = Record::parse_canonical(text)
            && r.index >= next
        {
            if end > MAX_UNSYNCED {
                return Err(format!(
                    "{file}: the chain breaks at record {next} (byte {offset}: {why}), yet \
                     record {found} lies {at} bytes further on: it was acknowledged as \
                     durable, so this is damage, not a torn write. The proxy does not start \
                     on a damaged log and has changed nothing. To go on: keep a copy of the \
                     file as evidence; then either repair record {next} (the line at byte \
                     {offset}) if you know what damaged it, or cut the file at byte {offset} (`truncate -s {offset} \
                     {file}`), which drops record {next} and everything after it from the \
                     log (they stay only in your copy) and lets the chain continue from \
                     record {last}",
                    file = path.display(),
                    found = r.index,
                    last = next.saturating_sub(1),
                ));
            }
            cut.push(r.index);
        }
        at = end;
    }
    if let (Some(lo), Some(hi)) = (cut.iter().min(), cut.iter().max()) {
        tracing::warn!(
            path = %path.display(),
            from = lo,
            to = hi,
            "dropping records of a batch a crash interrupted before it was durable (none of them was acknowledged)"
        );
    } else if tail.iter().any(|&b| b != 0) {
        tracing::info!(path = %path.display(), bytes = tail.len(), "ignoring the bytes after the write-ahead log's records (an older segment's, or a record a crash cut short)");
    }
    Ok(())
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

#[cfg(test)]
mod tests;
