//! The one pass over every record (audit/FORMAT.md §7 items 2 and 4): segment tiling,
//! canonical form, index, origin and chain per line; the Merkle tree built incrementally,
//! with its root taken at each size a checkpoint (or the saved state) names.
//!
//! Each line is read once: a single pass over its bytes proves it canonical, yields the
//! few members the checks need and finds where the line ends (`canonical::fast_line`); a
//! line that pass cannot vouch for is searched for its line feed, parsed into a
//! `serde_json::Value` and its re-serialization compared byte for byte. One SHA-256 per
//! line gives the leaf hash, which is also the next line's expected `prev`; the lines of a
//! segment are hashed a batch at a time, several in flight at once, and a batch goes into
//! the tree as whole subtrees when no size the pass looks at falls inside it.
//!
//! An incremental pass starts from a saved state instead: the tree's right edge at the
//! state's size, and the segment holding the last record it verified, whose leaf hash must
//! be unchanged; every record after it is checked as in a full pass.

use futures::StreamExt;
use serde_json::Value;

use super::canonical::{self, Fields};
use super::finding::{Finding, FindingKind, Findings};
use super::listing::{self, SegmentObject};
use super::state::Resume;
use super::subtrees::RangeRoots;
use super::timeline::Timeline;
use crate::merkle::{CompactTree, Hash, leaf_hashes};
use crate::record::{VERSION, hex_hash};
use crate::store::Store;

/// Segments fetched ahead of the one being checked.
const PREFETCH: usize = 4;
/// Lines whose leaf hashes are computed together ([`leaf_hashes`]).
const BATCH: usize = 64;

/// What the pass established.
#[derive(Debug, Default)]
pub struct Scanned {
    /// Lines read, in all segments (in an incremental pass: from the last record verified
    /// before).
    pub lines: u64,
    /// Segments read.
    pub segments: u64,
    /// Records in the contiguous prefix from 0 that the tree covers.
    pub tree_size: u64,
    /// Whether every segment could be read (otherwise missing records are not evidence).
    pub complete: bool,
    /// `(size, root)` at each wanted size the tree reached, by size.
    pub roots: Vec<(u64, Hash)>,
    /// Whether the last record read is a `stop` record.
    pub ends_with_stop: bool,
    /// The origin the records were checked against (the first record's, if none was given).
    pub origin: Option<String>,
    /// Where a later incremental pass can pick up, taken at the plan's `capture_at` size.
    pub resume: Option<Resume>,
}

/// An incremental pass's starting point: the tree over the first `tree.size()` records a
/// saved state verified, and what it knew of the last of them.
pub struct Start {
    pub tree: CompactTree,
    pub resume: Resume,
}

/// What to read and what to take from it.
pub struct Plan<'p> {
    /// The segments to read, by `first` (for an incremental pass, from the one holding
    /// the last record verified before).
    pub segments: &'p [SegmentObject],
    /// The log's origin, if known.
    pub origin: Option<String>,
    /// The sizes (sorted, deduplicated) whose roots are needed.
    pub wanted: &'p [u64],
    /// Continue from a saved state instead of from record 0.
    pub start: Option<Start>,
    /// The size at which to take the resume point (the newest checkpoint's).
    pub capture_at: Option<u64>,
    /// Told the records read so far after each segment.
    pub progress: &'p (dyn Fn(u64) + Sync),
}

/// Reads and checks the plan's segments in order.
pub async fn scan(
    store: &Store,
    plan: Plan<'_>,
    mut ranges: Option<&mut RangeRoots>,
    timeline: &mut Timeline,
    findings: &mut Findings,
) -> Scanned {
    let segments = plan.segments;
    let mut state = Pass {
        out: Scanned {
            complete: true,
            origin: plan.origin,
            ..Scanned::default()
        },
        tree: CompactTree::new(),
        wanted: plan.wanted,
        next_want: 0,
        position: Some(0),
        aligned: true,
        prev: Some([0; 32]),
        last_time: None,
        buffer: Vec::with_capacity(1024),
        verified: None,
        capture_at: plan.capture_at,
        segment_first: 0,
    };
    if let Some(start) = plan.start {
        let last = start.tree.size() - 1;
        timeline.record(start.resume.last_time_us, last, start.resume.last_stop);
        state.position = Some(segments.first().map_or(start.tree.size(), |s| s.first));
        state.prev = None;
        state.last_time = Some((last, start.resume.last_time_us));
        state.out.ends_with_stop = start.resume.last_stop;
        if state.capture_at == Some(start.tree.size()) {
            state.out.resume = Some(start.resume.clone());
        }
        state.tree = start.tree;
        state.verified = Some((last, start.resume.last_leaf, false));
    }
    state.snapshot();
    let keys = segments.iter().map(|s| s.key.clone()).collect();
    let mut reads = listing::read_each(store, keys, PREFETCH).zip(futures::stream::iter(segments));
    while let Some((data, segment)) = reads.next().await {
        match data {
            Ok(data) => {
                state.out.segments += 1;
                state.segment(
                    segment,
                    data.as_ref(),
                    ranges.as_deref_mut(),
                    timeline,
                    findings,
                );
            }
            Err(e) => {
                findings.push(
                    Finding::new(
                        FindingKind::Unreadable,
                        format!("cannot read the segment: {e}"),
                    )
                    .at(&segment.key),
                );
                state.out.complete = false;
                state.aligned = false;
                state.position = None;
                state.prev = None;
            }
        }
        (plan.progress)(state.out.lines);
    }
    if let Some((last, _, false)) = state.verified
        && state.out.complete
    {
        findings.push(
            Finding::new(
                FindingKind::Truncated,
                format!("record {last}, the last one the saved state verified, is no longer in the store"),
            )
            .records(last, last),
        );
    }
    state.out.tree_size = state.tree.size();
    state.out
}

struct Pass<'w> {
    out: Scanned,
    tree: CompactTree,
    wanted: &'w [u64],
    next_want: usize,
    /// The index the next line should have; unknown after an unreadable segment.
    position: Option<u64>,
    /// Whether every line so far sits at its place from 0 (the tree is only built then).
    aligned: bool,
    /// The previous line's leaf hash, when the next line's `prev` can be checked.
    prev: Option<Hash>,
    last_time: Option<(u64, u64)>,
    buffer: Vec<u8>,
    /// In an incremental pass: the index and leaf hash of the last record verified before,
    /// and whether it was found again.
    verified: Option<(u64, Hash, bool)>,
    capture_at: Option<u64>,
    /// The `first` of the segment being read.
    segment_first: u64,
}

impl Pass<'_> {
    fn segment(
        &mut self,
        segment: &SegmentObject,
        data: &[u8],
        mut ranges: Option<&mut RangeRoots>,
        timeline: &mut Timeline,
        findings: &mut Findings,
    ) {
        let key = segment.key.as_ref();
        let first = segment.first;
        self.segment_first = first;
        match self.position {
            Some(position) if first > position => {
                findings.push(
                    Finding::new(
                        FindingKind::Gap,
                        format!("no segment holds records {position}..{}", first - 1),
                    )
                    .at(key)
                    .records(position, first - 1),
                );
                self.misalign();
            }
            Some(position) if first < position => {
                findings.push(
                    Finding::new(
                        FindingKind::Gap,
                        format!(
                            "the segment starts at {first} but the previous one ends at {}: the segments overlap",
                            position - 1
                        ),
                    )
                    .at(key)
                    .records(first, position - 1),
                );
                self.misalign();
            }
            _ => {}
        }
        self.position = Some(first);
        if data.is_empty() {
            findings.push(Finding::new(FindingKind::NonCanonical, "the segment is empty").at(key));
            return;
        }
        let body = match data.strip_suffix(b"\n") {
            Some(body) => body,
            None => {
                findings.push(
                    Finding::new(
                        FindingKind::NonCanonical,
                        "the segment does not end with a line feed",
                    )
                    .at(key),
                );
                data
            }
        };
        let mut reader = Lines {
            body,
            start: 0,
            done: false,
        };
        let (mut lines, mut parsed) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
        let mut leaves = [[0; 32]; BATCH];
        // In an incremental pass, the lines before the last one verified are passed over
        // unhashed (`before_start` skips them).
        if let Some((last, _, _)) = self.verified
            && last > first
        {
            let mut skipped = 0;
            while skipped < last - first && reader.pass_over() {
                skipped += 1;
            }
            self.position = Some(first + skipped);
        }
        loop {
            lines.clear();
            parsed.clear();
            for (line, fields) in reader.by_ref().take(BATCH) {
                lines.push(line);
                parsed.push(fields);
            }
            if lines.is_empty() {
                break;
            }
            let leaves = &mut leaves[..lines.len()];
            leaf_hashes(&lines, leaves);
            // The whole batch goes into the tree at once unless a size the pass must
            // look at falls inside it.
            let batch = self.whole_batch(self.position.unwrap_or(first), leaves.len());
            for ((&line, fields), &leaf) in lines.iter().zip(parsed.drain(..)).zip(leaves.iter()) {
                let index = self.position.unwrap_or(first);
                if !self.before_start(key, index, leaf, findings) {
                    self.line(
                        key,
                        index,
                        (line, fields, leaf),
                        ranges.as_deref_mut(),
                        timeline,
                        findings,
                    );
                    if self.aligned && !batch {
                        self.tree.append(leaf);
                        self.grown(leaf);
                    }
                }
                self.position = Some(index.saturating_add(1));
            }
            if batch && let Some(&last) = leaves.last() {
                self.tree.append_many(leaves);
                self.grown(last);
            }
        }
    }

    /// In an incremental pass, whether the line at `index` was verified before (and is
    /// skipped): the last of those must still be the same record, which links the new
    /// records to the old ones.
    fn before_start(&mut self, key: &str, index: u64, leaf: Hash, findings: &mut Findings) -> bool {
        let Some((last, verified, seen)) = &mut self.verified else {
            return false;
        };
        if index < *last {
            return true;
        }
        if index > *last {
            return false;
        }
        *seen = true;
        if leaf != *verified {
            findings.record(FindingKind::Rollback, key, index, || {
                "the last record the saved state verified is no longer the one it verified: the log was rewritten".to_owned()
            });
        }
        self.prev = Some(leaf);
        true
    }

    fn misalign(&mut self) {
        self.aligned = false;
        self.prev = None;
    }

    fn line(
        &mut self,
        key: &str,
        index: u64,
        (line, fields, leaf): (&[u8], Option<Fields<'_>>, Hash),
        ranges: Option<&mut RangeRoots>,
        timeline: &mut Timeline,
        findings: &mut Findings,
    ) {
        self.out.lines += 1;
        let parsed;
        let (canonical, fields) = match fields {
            Some(fields) => (true, Ok(fields)),
            None => {
                parsed = serde_json::from_slice::<Value>(line);
                canonical::slow(line, &parsed, &mut self.buffer)
            }
        };
        match fields {
            Ok(f) => {
                if !canonical {
                    findings.record(FindingKind::NonCanonical, key, index, || {
                        "the line is not the record's canonical (RFC 8785) form".to_owned()
                    });
                }
                self.check(key, index, &f, timeline, findings);
            }
            Err(why) => {
                findings.record(FindingKind::NonCanonical, key, index, || {
                    format!("not a version {VERSION} record: {why}")
                });
                self.out.ends_with_stop = false;
            }
        }
        if self.aligned
            && let Some(ranges) = ranges
        {
            ranges.feed(index, leaf);
        }
        self.prev = Some(leaf);
    }

    /// Whether the `n` lines from `index` can go into the tree as one batch: they sit at
    /// their places, none was verified by an earlier pass, and no size whose root or
    /// resume point the pass takes falls strictly inside them.
    fn whole_batch(&self, index: u64, n: usize) -> bool {
        let (from, to) = (self.tree.size(), self.tree.size() + n as u64);
        let inside = |size: u64| from < size && size < to;
        self.aligned
            && index == from
            && self.verified.is_none_or(|(last, _, _)| last < index)
            && !self.wanted[self.next_want..]
                .iter()
                .take_while(|&&w| w < to)
                .any(|&w| inside(w))
            && !self.capture_at.is_some_and(inside)
    }

    /// After the tree grew to end with `leaf`: takes the roots and resume point due at
    /// its new size.
    fn grown(&mut self, leaf: Hash) {
        self.snapshot();
        if self.capture_at == Some(self.tree.size()) {
            self.out.resume = Some(Resume {
                frontier: self.tree.hashes().to_vec(),
                last_leaf: leaf,
                last_time_us: self.last_time.map_or(0, |(_, t)| t),
                last_stop: self.out.ends_with_stop,
                segment_first: self.segment_first,
            });
        }
    }

    fn check(
        &mut self,
        key: &str,
        index: u64,
        f: &Fields<'_>,
        timeline: &mut Timeline,
        findings: &mut Findings,
    ) {
        if f.index != index {
            findings.record(FindingKind::Index, key, index, || {
                format!("the record says index {} at position {index}", f.index)
            });
        }
        match &self.out.origin {
            Some(origin) if origin != f.origin => {
                findings.record(FindingKind::Origin, key, index, || {
                    format!(
                        "the record names origin {:?}, the log is {origin:?}",
                        f.origin
                    )
                });
            }
            Some(_) => {}
            None => self.out.origin = Some(f.origin.to_owned()),
        }
        if let Some(prev) = &self.prev
            && !hex_is(f.prev, prev)
        {
            findings.record(FindingKind::Chain, key, index, || {
                if index == 0 {
                    "the first record's `prev` is not 64 zeros".to_owned()
                } else {
                    format!(
                        "`prev` is not the leaf hash of record {}: one of the two was altered, or records were removed or inserted",
                        index - 1
                    )
                }
            });
        }
        if let Some((last_index, last_time)) = self.last_time
            && f.time_us.saturating_add(1_000_000) < last_time
        {
            findings.record(FindingKind::TimeGap, key, index, || {
                format!(
                    "the record is {:.3} s older than record {last_index}, more than the one second clocks may disagree",
                    (last_time - f.time_us) as f64 / 1e6
                )
            });
        }
        self.last_time = Some((index, f.time_us));
        let stop = f.kind == "stop";
        self.out.ends_with_stop = stop;
        timeline.record(f.time_us, index, stop);
    }

    /// Records the root at every wanted size the tree has reached.
    fn snapshot(&mut self) {
        let size = self.tree.size();
        while let Some(&want) = self.wanted.get(self.next_want) {
            if want > size {
                break;
            }
            if want == size {
                self.out.roots.push((size, self.tree.root()));
            }
            self.next_want += 1;
        }
    }
}

/// A segment body's lines, split at line feeds, each with its members when the
/// canonical-form pass vouches for it ([`canonical::fast_line`]): that pass ends where
/// the line does, so only the lines it cannot read are searched for their line feed.
struct Lines<'b> {
    body: &'b [u8],
    start: usize,
    done: bool,
}

impl<'b> Lines<'b> {
    /// The rest of the body from the next line, or `None` after the last line.
    fn rest(&self) -> Option<&'b [u8]> {
        (!self.done).then(|| &self.body[self.start..])
    }

    /// Moves past a line of `len` bytes and its line feed, and returns it.
    fn advance(&mut self, len: usize) -> &'b [u8] {
        let line = &self.body[self.start..self.start + len];
        self.start += len + 1;
        // The last line is the one no line feed ends.
        self.done = self.start > self.body.len();
        line
    }

    /// Passes over one line unread; false when none is left.
    fn pass_over(&mut self) -> bool {
        let Some(rest) = self.rest() else {
            return false;
        };
        self.advance(memchr::memchr(b'\n', rest).unwrap_or(rest.len()));
        true
    }
}

impl<'b> Iterator for Lines<'b> {
    type Item = (&'b [u8], Option<Fields<'b>>);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest()?;
        Some(match canonical::fast_line(rest) {
            Some((fields, len)) => (self.advance(len), Some(fields)),
            None => (
                self.advance(memchr::memchr(b'\n', rest).unwrap_or(rest.len())),
                None,
            ),
        })
    }
}

/// Whether `text` is the lowercase hex of `hash`.
fn hex_is(text: &str, hash: &Hash) -> bool {
    text.as_bytes() == hex_hash(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testlog::TestLog;

    /// The lines found through the canonical-form pass are the body split at line feeds,
    /// whatever surrounds a record: junk after it on its line, empty lines, no final
    /// line feed, a raw line feed where a record should continue.
    #[tokio::test]
    async fn lines_are_the_body_split_at_line_feeds() {
        let log = TestLog::build(3, 10).await;
        let [a, b, c] = [&log.lines[0], &log.lines[1], &log.lines[2]].map(|l| l.as_slice());
        let cut = &a[..a.len() / 2];
        let bodies: Vec<Vec<u8>> = vec![
            [a, b, c].join(&b'\n'),
            [a, b"", c].join(&b'\n'),
            [a, b, b""].join(&b'\n'),
            [b"", a].join(&b'\n'),
            [&[a, b"x"].concat()[..], b].join(&b'\n'),
            [&[a, b" "].concat()[..], b].join(&b'\n'),
            [&[a, b].concat()[..], c].join(&b'\n'),
            [cut, &a[a.len() / 2..], b].join(&b'\n'),
            b"".to_vec(),
            b"\n\n".to_vec(),
            a.to_vec(),
        ];
        for body in &bodies {
            let read: Vec<_> = Lines {
                body,
                start: 0,
                done: false,
            }
            .collect();
            let split: Vec<&[u8]> = body.split(|&c| c == b'\n').collect();
            let lines: Vec<&[u8]> = read.iter().map(|(line, _)| *line).collect();
            assert_eq!(lines, split, "{}", String::from_utf8_lossy(body));
            for (line, fields) in &read {
                assert_eq!(
                    *fields,
                    canonical::fast(line),
                    "{}",
                    String::from_utf8_lossy(line)
                );
            }
            let mut passing = Lines {
                body,
                start: 0,
                done: false,
            };
            let mut passed = 0;
            while passing.pass_over() {
                passed += 1;
            }
            assert_eq!(passed, split.len());
        }
    }
}
