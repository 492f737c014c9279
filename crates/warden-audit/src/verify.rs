//! The auditor's check of a whole log (audit/FORMAT.md §7): every object in the store, every
//! record, every checkpoint, the time line, the tail and, given the auditor's saved state,
//! that the log still extends what was verified before. The result is a [`Report`] of
//! [`Finding`]s and an exit status; a malformed object is a finding, never an error.

pub(crate) mod canonical;
mod checkpoints;
mod finding;
pub mod listing;
mod scan;
mod state;
pub(crate) mod subtrees;
mod timeline;

#[cfg(test)]
mod incremental_tests;
#[cfg(test)]
mod tests;

use crate::merkle::{Hash, verify_consistency};
use crate::note::{self, Checkpoint, NoteVerifier};
use crate::store::Store;

use checkpoints::Signed;
use finding::Findings;
pub use finding::{Class, Finding, FindingKind};
use scan::Scanned;
pub use state::{Resume, State, StateError};
pub(crate) use state::{base64_hash, base64_hashes};
use subtrees::RangeRoots;
use timeline::Timeline;

/// The outcome of [`verify`].
#[derive(Debug, Clone)]
pub struct Report {
    /// What was found, in a deterministic order.
    pub findings: Vec<Finding>,
    /// The log's origin (from the state, the checkpoints or the first record).
    pub origin: Option<String>,
    /// Record lines read.
    pub records: u64,
    /// Segments read.
    pub segments: u64,
    /// Checkpoint objects in the store.
    pub checkpoints: u64,
    /// The newest validly signed checkpoint of this log (largest size, then latest time)
    /// and its signed note text.
    pub newest: Option<(Checkpoint, String)>,
    /// Records verified before and not read again (an incremental verification).
    pub resumed_from: u64,
    /// Why an incremental verification read the whole log instead.
    pub full_because: Option<String>,
    /// Where the next incremental verification can pick up.
    resume: Option<Resume>,
}

/// How to verify.
#[derive(Clone, Copy, Default)]
pub struct Options<'p> {
    /// Start from the saved state's resume point instead of reading every record: the
    /// records it verified are not read again (their last one must be unchanged), every
    /// later record and checkpoint is checked in full, and the newest checkpoint's root,
    /// recomputed from the saved tree and the new records, proves it extends the state.
    pub incremental: bool,
    /// Told the segment count once the store is listed, then the records read so far.
    pub progress: Option<&'p (dyn Progress + Sync)>,
}

/// What a long verification reports as it goes (a progress bar, for people).
pub trait Progress {
    /// The segments to read.
    fn segments(&self, total: u64);
    /// A segment was read; `records` have been read so far.
    fn advanced(&self, records: u64);
}

impl Report {
    /// 0 verified; 1 tampered (any tampering finding); else 3 if something could not be
    /// read; else 2 if something could not be confirmed.
    pub fn exit_code(&self) -> u8 {
        match self.worst() {
            None => 0,
            Some(Class::Tampered) => 1,
            Some(Class::Incomplete) => 2,
            Some(Class::CouldNotVerify) => 3,
        }
    }

    /// The most serious class among the findings (tampered, then could not verify, then
    /// incomplete).
    pub fn worst(&self) -> Option<Class> {
        let has = |class| self.findings.iter().any(|f| f.class() == class);
        [Class::Tampered, Class::CouldNotVerify, Class::Incomplete]
            .into_iter()
            .find(|&c| has(c))
    }

    /// Findings of `class`.
    pub fn count(&self, class: Class) -> usize {
        self.findings.iter().filter(|f| f.class() == class).count()
    }

    /// The state to save: the newest checkpoint, only when the log verified completely.
    pub fn state(&self) -> Option<State> {
        if self.exit_code() != 0 {
            return None;
        }
        self.newest
            .as_ref()
            .map(|(c, note)| State::of(c, note, self.resume.clone()))
    }
}

/// Verifies the log in `store` against the checkpoint key, the auditor's saved `state` if
/// any, at the moment `now_us` (microseconds since the epoch; checkpoints older than twice
/// their heartbeat before it are stale).
pub async fn verify(
    store: &Store,
    key: &NoteVerifier,
    state: Option<&State>,
    now_us: u64,
) -> Report {
    verify_with(store, key, state, now_us, Options::default()).await
}

/// [`verify`] with [`Options`].
pub async fn verify_with(
    store: &Store,
    key: &NoteVerifier,
    state: Option<&State>,
    now_us: u64,
    options: Options<'_>,
) -> Report {
    let mut findings = Findings::default();
    let mut report = Report {
        findings: Vec::new(),
        origin: None,
        records: 0,
        segments: 0,
        checkpoints: 0,
        newest: None,
        resumed_from: 0,
        full_because: None,
        resume: None,
    };
    let listing = match listing::list(store).await {
        Ok(listing) => listing,
        Err(e) => {
            report.findings.push(Finding::new(
                FindingKind::Unreadable,
                format!("cannot list the audit store {}: {e}", store.url()),
            ));
            return report;
        }
    };
    report.checkpoints = listing.checkpoints.len() as u64;
    for key in &listing.orphans {
        findings.push(
            Finding::new(
                FindingKind::Orphan,
                "neither a segment nor a checkpoint key: nothing else belongs in the log",
            )
            .at(key),
        );
    }
    let state = state.filter(|state| match check_state(state, key) {
        Ok(()) => true,
        Err(why) => {
            findings.push(Finding::new(FindingKind::Unreadable, why));
            false
        }
    });

    let start = match (options.incremental, state) {
        (false, _) => None,
        (true, None) => {
            report.full_because = Some("there is no usable saved state".into());
            None
        }
        (true, Some(state)) => match state.tree() {
            Some((tree, resume)) => Some(scan::Start {
                tree,
                resume: resume.clone(),
            }),
            None => {
                report.full_because = Some(if state.resume.is_none() {
                    "the saved state has no resume point (it was saved by an older version)".into()
                } else {
                    "the saved state's resume point does not hash to its root".into()
                });
                None
            }
        },
    };
    // Incremental: checkpoints older than the state and segments wholly before its last
    // record were verified before.
    let from = start.as_ref().map_or(0, |s| s.tree.size());
    report.resumed_from = from;
    let checkpoint_objects: Vec<_> = listing
        .checkpoints
        .iter()
        .filter(|c| c.size >= from)
        .cloned()
        .collect();
    let segments = match (from.checked_sub(1), &start) {
        (Some(last), Some(start)) => {
            // From the segment that held the last verified record. One starting after it
            // but at or before that record overlaps what was verified (a full pass calls
            // that a gap too).
            let saved = start.resume.segment_first;
            for s in &listing.segments {
                if s.first > saved && s.first <= last {
                    findings.push(
                        Finding::new(
                            FindingKind::Gap,
                            format!(
                                "the segment starts at {} inside records verified before (their segment starts at {saved}): the segments overlap",
                                s.first
                            ),
                        )
                        .at(&s.key)
                        .records(s.first, last),
                    );
                }
            }
            let at = listing.segments.partition_point(|s| s.first < saved);
            &listing.segments[at..]
        }
        _ => &listing.segments[..],
    };
    if let Some(progress) = options.progress {
        progress.segments(segments.len() as u64);
    }

    let read = checkpoints::read_all(
        store,
        &checkpoint_objects,
        key,
        state.map(|s| s.origin.clone()),
        &mut findings,
    )
    .await;
    let valid = &read.valid;
    forks(valid, &mut findings);
    let newest = read.newest.as_ref().map(|n| &n.0);

    let mut wanted: Vec<u64> = valid.iter().map(|s| s.size).collect();
    wanted.extend(state.map(|s| s.size));
    wanted.sort_unstable();
    wanted.dedup();
    // An incremental pass proves consistency by construction (the newest root is
    // recomputed from the saved tree), so it needs no proof.
    let mut ranges = match (state, newest) {
        (Some(s), Some(n)) if from == 0 && s.size > 0 && s.size < n.size => {
            Some(RangeRoots::consistency(s.size, n.size))
        }
        _ => None,
    };
    let mut timeline = Timeline::new(
        valid
            .iter()
            .map(|s| (s.time_us, s.heartbeat_s, s.size))
            .collect(),
    );
    let advanced = |records: u64| {
        if let Some(progress) = options.progress {
            progress.advanced(records);
        }
    };
    let plan = scan::Plan {
        segments,
        origin: read.origin.clone(),
        wanted: &wanted,
        start,
        capture_at: newest.map(|n| n.size).filter(|&size| size > 0),
        progress: &advanced,
    };
    let scanned = scan::scan(store, plan, ranges.as_mut(), &mut timeline, &mut findings).await;
    report.records = scanned.lines;
    report.segments = scanned.segments;

    roots(valid, &scanned, &mut findings);
    let segments = &listing.segments;
    for finding in timeline.finish(|index| {
        let at = segments.partition_point(|s| s.first <= index);
        at.checked_sub(1).map(|i| segments[i].key.to_string())
    }) {
        findings.push(finding);
    }
    tail(newest, &scanned, now_us, &mut findings);
    if from > 0 && newest.is_none_or(|n| n.size < from) {
        findings.push(
            Finding::new(
                FindingKind::Truncated,
                format!("no valid checkpoint covers the {from} records the saved state verified: checkpoints were deleted"),
            )
            .records(0, from - 1),
        );
    }
    if let Some(state) = state {
        let proven = from > 0;
        against_state(
            state,
            newest,
            &scanned,
            ranges.as_ref(),
            proven,
            &mut findings,
        );
    }

    report.resume = scanned.resume.clone();
    report.origin = scanned.origin;
    report.newest = read.newest.map(|(_, checkpoint, note)| (checkpoint, note));
    report.findings = findings.0;
    report
}

/// The saved state must be a checkpoint signed by the key that says what the state says.
fn check_state(state: &State, key: &NoteVerifier) -> Result<(), String> {
    let why = |e: String| format!("the saved state cannot be used: {e}");
    let body = note::open(&state.checkpoint, key).map_err(|e| {
        why(format!(
            "its checkpoint does not verify with `{}`: {e}",
            key.name()
        ))
    })?;
    let checkpoint = Checkpoint::parse(&body).map_err(|e| why(e.to_string()))?;
    if checkpoint.origin != state.origin
        || checkpoint.size != state.size
        || checkpoint.root != state.root
    {
        return Err(why(
            "its origin, size or root differ from its checkpoint's".into()
        ));
    }
    Ok(())
}

/// Two signed checkpoints of one size with different roots.
fn forks(valid: &[Signed], findings: &mut Findings) {
    for pair in valid.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.size == b.size && a.root != b.root {
            findings.push(
                Finding::new(
                    FindingKind::Fork,
                    format!(
                        "two signed checkpoints of {} records with different roots: this one and {}",
                        b.size, a.key
                    ),
                )
                .at(&b.key),
            );
        }
    }
}

fn root_at(scanned: &Scanned, size: u64) -> Option<&Hash> {
    let at = scanned.roots.binary_search_by_key(&size, |r| r.0).ok()?;
    Some(&scanned.roots[at].1)
}

/// Each checkpoint's size and root against the records.
fn roots(valid: &[Signed], scanned: &Scanned, findings: &mut Findings) {
    for s in valid {
        let size = s.size;
        match root_at(scanned, size) {
            Some(root) if *root == s.root => {}
            Some(_) => {
                let mut finding = Finding::new(
                    FindingKind::Root,
                    format!("the signed root is not the tree hash of the first {size} records"),
                )
                .at(&s.key);
                if size > 0 {
                    finding = finding.records(0, size - 1);
                }
                findings.push(finding);
            }
            // Records that could not be read are already reported as unreadable.
            None if scanned.complete => findings.push(
                Finding::new(
                    FindingKind::MissingRecords,
                    format!(
                        "the checkpoint covers {size} records; the store holds {} in order from 0",
                        scanned.tree_size
                    ),
                )
                .at(&s.key)
                .records(scanned.tree_size, size - 1),
            ),
            None => {}
        }
    }
}

/// The tail: an empty log, a stale newest checkpoint, records no checkpoint covers.
fn tail(newest: Option<&Signed>, scanned: &Scanned, now_us: u64, findings: &mut Findings) {
    if scanned.lines == 0 && scanned.tree_size == 0 && scanned.complete {
        findings.push(Finding::new(FindingKind::Empty, "the log holds no records"));
    }
    let Some(newest) = newest else {
        if scanned.lines > 0 {
            findings.push(
                Finding::new(
                    FindingKind::Unsealed,
                    "no valid checkpoint covers any record: nothing is signed",
                )
                .records(0, scanned.lines - 1),
            );
        }
        return;
    };
    let size = newest.size;
    let covered_stop = scanned.ends_with_stop && size >= scanned.tree_size && scanned.complete;
    let limit = newest.heartbeat_s.saturating_mul(2_000_000);
    if !covered_stop && now_us.saturating_sub(newest.time_us) > limit {
        findings.push(
            Finding::new(
                FindingKind::Stale,
                format!(
                    "the newest checkpoint ({size} records) was made at {}, {} s before {}: more than twice its {} s heartbeat, so the tail may have been deleted or the writer stopped",
                    crate::show::rfc3339(newest.time_us),
                    now_us.saturating_sub(newest.time_us) / 1_000_000,
                    crate::show::rfc3339(now_us),
                    newest.heartbeat_s,
                ),
            )
            .at(&newest.key),
        );
    }
    if scanned.complete && scanned.tree_size > size {
        findings.push(
            Finding::new(
                FindingKind::Unsealed,
                format!(
                    "{} records after the newest checkpoint are not signed yet",
                    scanned.tree_size - size
                ),
            )
            .records(size, scanned.tree_size - 1),
        );
    }
}

/// The log must still hold and extend what the saved state verified (§7 item 6).
fn against_state(
    state: &State,
    newest: Option<&Signed>,
    scanned: &Scanned,
    ranges: Option<&RangeRoots>,
    proven: bool,
    findings: &mut Findings,
) {
    let s = state.size;
    let Some(root) = root_at(scanned, s) else {
        if scanned.complete {
            findings.push(
                Finding::new(
                    FindingKind::Truncated,
                    format!(
                        "the saved state verified {s} records; the store holds {} in order from 0",
                        scanned.tree_size
                    ),
                )
                .records(scanned.tree_size, s - 1),
            );
        }
        return;
    };
    if *root != state.root {
        findings.push(
            Finding::new(
                FindingKind::Rollback,
                format!("the first {s} records no longer hash to the saved root: the log was rewritten or forked"),
            )
            .records(0, s.saturating_sub(1)),
        );
        return;
    }
    let Some(newest) = newest else { return };
    let n = newest.size;
    if n < s {
        findings.push(
            Finding::new(
                FindingKind::Truncated,
                format!("the newest checkpoint covers {n} records, fewer than the {s} of the saved state: checkpoints were deleted"),
            )
            .records(n, s - 1),
        );
        return;
    }
    // Incremental: the newest root was recomputed from the saved tree, which `roots`
    // compared; that is the consistency proof.
    if proven {
        return;
    }
    // The proof is built from the records, so it only fails if the signed root does not
    // match them, which `roots` reports; a failure here is still reported in its terms.
    let proof = match ranges {
        Some(ranges) => ranges.proof(),
        None => Some(Vec::new()),
    };
    if let Some(proof) = proof
        && root_at(scanned, n) == Some(&newest.root)
        && let Err(e) = verify_consistency(s, n, &state.root, &newest.root, &proof)
    {
        findings.push(
            Finding::new(
                FindingKind::Rollback,
                format!("no consistency proof from the saved state ({s} records) to the newest checkpoint ({n}): {e}"),
            )
            .at(&newest.key),
        );
    }
}
