//! The sequencer: the state that gives records their place in the log and makes them
//! durable, one batch at a time. The writer thread ([`super::writer`]) hands it every entry
//! waiting as one batch; it numbers and chains them, writes the batch to the WAL with a
//! single fdatasync, and only then answers the callers waiting for durability.
//!
//! It also seals: the WAL file becomes a segment after `segment_records` records or
//! `seal_interval`, whichever comes first, and goes to the uploader. If the WAL cannot be
//! written the log is failed closed: every waiting and later call gets an error.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tokio::sync::{mpsc, oneshot};

use super::jcs;
use super::merkle::CompactTree;
use super::record::{Template, link};
use super::wal::{ActiveWal, MAX_UNSYNCED, Sealed, TreeState, recycle};
use super::{AuditError, Health};

/// Where a caller waits for its record's index, or the reason it has none.
pub(crate) type Done = oneshot::Sender<Result<u64, AuditError>>;

/// One record on its way in, with the salts of its argument commitments.
pub(crate) struct Pending {
    /// The record's bytes, built by the caller, but for its place in the log.
    pub record: Template,
    /// The opening line of the entry's argument commitments without its index: built by
    /// the caller, so the sequencer only prefixes the index (see [`opening_tail`]).
    pub openings: Option<Vec<u8>>,
    /// Answered with the record's index once it is durable.
    pub done: Option<Done>,
}

/// What one fdatasync covers: lines, their openings, and who waits for them.
struct Part {
    lines: Vec<u8>,
    openings: Vec<u8>,
    waiters: Vec<(u64, Option<Done>)>,
}

pub(crate) enum Msg {
    Append(Box<Pending>),
    /// Seal what is there and answer when it is handed to the uploader.
    Seal(oneshot::Sender<()>),
}

pub(crate) struct Sequencer {
    pub dir: PathBuf,
    pub tree: CompactTree,
    pub prev: String,
    pub last_time_us: u64,
    pub wal: ActiveWal,
    pub segment_records: u64,
    pub seal_interval: Duration,
    pub uploads: mpsc::UnboundedSender<Sealed>,
    pub health: Arc<Health>,
    /// The openings file of the current segment, by its first index.
    pub openings_file: Option<(u64, std::fs::File)>,
    /// When the current WAL file started to fill (or was last found empty).
    pub opened: Instant,
    /// The batch's lines, and its opening lines; kept to reuse their allocations.
    pub buffer: Vec<u8>,
    pub openings: Vec<u8>,
    /// The state directory stays this process's until the writer thread ends.
    pub _owner: super::owner::Ownership,
}

impl Sequencer {
    /// Sequences `batch`, makes it durable with one fdatasync (one per [`MAX_UNSYNCED`]
    /// bytes), answers its callers, and seals when the segment is full, its interval is
    /// up, or a seal was asked for. An empty batch only checks the interval.
    pub fn commit(&mut self, batch: Vec<Msg>) {
        let mut part = Part {
            lines: std::mem::take(&mut self.buffer),
            openings: std::mem::take(&mut self.openings),
            waiters: Vec::with_capacity(batch.len()),
        };
        let mut seal_requests = Vec::new();
        for msg in batch {
            match msg {
                Msg::Append(p) => {
                    let Pending {
                        record,
                        openings,
                        done,
                    } = *p;
                    if !part.lines.is_empty()
                        && part.lines.len() + record.placed_len() > MAX_UNSYNCED
                    {
                        self.write(&mut part);
                    }
                    if !self.health.wal_ok.load(Ordering::Acquire) {
                        if let Some(done) = done {
                            let _ = done.send(Err(AuditError::WalFailed));
                        }
                        continue;
                    }
                    let index = self.sequence(&record, &mut part.lines);
                    if let Some(tail) = openings {
                        part.openings.extend_from_slice(b"{\"index\":");
                        part.openings
                            .extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
                        part.openings.push(b',');
                        part.openings.extend_from_slice(&tail);
                    }
                    part.waiters.push((index, done));
                }
                Msg::Seal(done) => seal_requests.push(done),
            }
        }
        if !part.lines.is_empty() {
            self.write(&mut part);
        }
        self.buffer = part.lines;
        self.openings = part.openings;
        let pending = self.tree.size() - self.wal.first;
        if pending > 0
            && (pending >= self.segment_records
                || self.opened.elapsed() >= self.seal_interval
                || !seal_requests.is_empty())
        {
            if self.seal().is_err() {
                self.health.wal_ok.store(false, Ordering::Release);
            }
            self.opened = Instant::now();
        } else if pending == 0 {
            self.opened = Instant::now();
        }
        for done in seal_requests {
            let _ = done.send(());
        }
    }

    /// Writes a part of a batch with one fdatasync and answers its callers; if the WAL
    /// cannot be written, fails the log closed.
    fn write(&mut self, part: &mut Part) {
        let written = self.wal.append_durably(&part.lines);
        part.lines.clear();
        match written {
            Ok(()) => {
                self.health
                    .durable
                    .store(self.tree.size(), Ordering::Release);
                for (index, done) in part.waiters.drain(..) {
                    if let Some(done) = done {
                        let _ = done.send(Ok(index));
                    }
                }
                if !part.openings.is_empty() {
                    self.write_openings(&mut part.openings);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, path = %self.wal.path.display(), "the audit write-ahead log cannot be written: failing closed");
                self.health.wal_ok.store(false, Ordering::Release);
                for (_, done) in part.waiters.drain(..) {
                    if let Some(done) = done {
                        let _ = done.send(Err(AuditError::WalFailed));
                    }
                }
                part.openings.clear();
            }
        }
    }

    /// When the current WAL file is sealed at the latest (if it holds records by then).
    pub fn seal_deadline(&self) -> Instant {
        self.opened + self.seal_interval
    }

    /// At shutdown: seals what is left without starting another file; a file without
    /// records goes back to being the spare.
    pub fn finish(self) {
        if self.tree.size() > self.wal.first {
            let _ = self.uploads.send(self.sealed(&self.wal));
        } else if let Err(e) = recycle(&self.dir, &self.wal.path, 0) {
            tracing::debug!(error = %e, "could not keep the unused write-ahead log file as the spare");
        }
    }

    /// Numbers, timestamps and chains one record; appends its line to `buffer`.
    fn sequence(&mut self, record: &Template, buffer: &mut Vec<u8>) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        // Never backwards, so time gaps and ranges read the way the log was written.
        self.last_time_us = self.last_time_us.max(now);
        let index = self.tree.size();
        let start = buffer.len();
        record.place(buffer, index, self.last_time_us, &self.prev);
        let (hash, next) = link(&buffer[start..]);
        self.tree.append(hash);
        self.prev = next;
        buffer.push(b'\n');
        index
    }

    /// Hands the current WAL file to the uploader and starts the next one.
    fn seal(&mut self) -> Result<(), AuditError> {
        let next = ActiveWal::create(&self.dir, self.tree.size(), 0).map_err(|e| {
            tracing::error!(error = %e, "cannot start a new write-ahead log file: failing closed");
            AuditError::WalFailed
        })?;
        let done = std::mem::replace(&mut self.wal, next);
        let _ = self.uploads.send(self.sealed(&done));
        Ok(())
    }

    /// `wal`, holding every record so far, as a segment to upload.
    fn sealed(&self, wal: &ActiveWal) -> Sealed {
        Sealed {
            first: wal.first,
            end: self.tree.size(),
            path: wal.path.clone(),
            len: wal.len,
            after: TreeState::of(&self.tree, &self.prev, self.last_time_us),
            root: self.tree.root(),
        }
    }

    /// Appends openings (salts and values) to the current segment's openings file, kept
    /// open for the segment. They are not part of the log; losing them only loses the
    /// ability to disclose.
    fn write_openings(&mut self, lines: &mut Vec<u8>) {
        use std::io::Write;
        let first = self.wal.first;
        if self.openings_file.as_ref().is_none_or(|(f, _)| *f != first) {
            let path = self.dir.join("openings").join(format!("{first:020}.jsonl"));
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                Ok(file) => self.openings_file = Some((first, file)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not open the argument openings file");
                    self.openings_file = None;
                    lines.clear();
                    return;
                }
            }
        }
        if let Some((_, file)) = self.openings_file.as_mut()
            && let Err(e) = file.write_all(lines)
        {
            tracing::warn!(error = %e, "could not write argument openings");
        }
        lines.clear();
    }
}

/// The opening line of one record, less its leading `{"index":N,`: salts and values
/// (`arguments`, canonical bytes).
pub(crate) fn opening_tail(salts: &BTreeMap<String, [u8; 32]>, arguments: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut line = Vec::with_capacity(64 + 80 * salts.len() + arguments.len());
    line.extend_from_slice(b"\"salts\":{");
    for (i, (path, salt)) in salts.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        jcs::string(&mut line, path);
        line.extend_from_slice(b":\"");
        line.extend_from_slice(b64.encode(salt).as_bytes());
        line.push(b'"');
    }
    line.extend_from_slice(b"},\"arguments\":");
    line.extend_from_slice(arguments);
    line.extend_from_slice(b"}\n");
    line
}

#[cfg(test)]
mod tests;
