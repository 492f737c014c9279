//! One batch larger than [`MAX_UNSYNCED`]: written in parts, each answered once durable;
//! and a crash while any part is written, whatever pages of it reached the disk, never
//! stops startup nor loses an answered record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{MAX_UNSYNCED, Msg, Pending, Sequencer};
use crate::merkle::CompactTree;
use crate::record::{GENESIS_PREV, Record, Template};
use crate::tests::scratch;
use crate::wal::ActiveWal;
use crate::{Entry, Health, Kind};

fn sequencer(
    dir: &std::path::Path,
    uploads: mpsc::UnboundedSender<crate::wal::Sealed>,
) -> Sequencer {
    Sequencer {
        dir: dir.to_owned(),
        tree: CompactTree::new(),
        prev: GENESIS_PREV.to_owned(),
        last_time_us: 0,
        wal: ActiveWal::create(dir, 0, 0).unwrap(),
        segment_records: 1_000_000,
        seal_interval: Duration::from_secs(3600),
        uploads,
        health: Arc::new(Health::new(0)),
        openings_file: None,
        opened: Instant::now(),
        buffer: Vec::new(),
        openings: Vec::new(),
        _owner: crate::owner::Ownership::take(dir).unwrap(),
    }
}

#[test]
fn a_batch_beyond_the_unsynced_limit_is_written_in_parts() {
    let dir = scratch("sequencer");
    std::fs::create_dir_all(dir.join("wal")).unwrap();
    let (uploads, _sealed) = mpsc::unbounded_channel();
    let mut sequencer = sequencer(&dir, uploads);
    let mut entry = Entry::new(Kind::Request);
    entry.action = Some("tools/call".to_owned());
    entry.resource = Some("x".repeat(1_000));
    let (mut batch, mut answers) = (Vec::new(), Vec::new());
    for _ in 0..600 {
        let (tx, rx) = oneshot::channel();
        batch.push(Msg::Append(Box::new(Pending {
            record: Template::new("o", "r", &entry),
            openings: None,
            done: Some(tx),
        })));
        answers.push(rx);
    }
    sequencer.commit(batch);
    for (i, mut rx) in answers.into_iter().enumerate() {
        assert_eq!(rx.try_recv().unwrap().unwrap(), i as u64);
    }
    let written = std::fs::read(&sequencer.wal.path).unwrap();
    assert_eq!(written.len() as u64, sequencer.wal.len);
    assert!(written.len() > 2 * MAX_UNSYNCED, "{}", written.len());
    let parts = written.len().div_ceil(MAX_UNSYNCED) as u64;
    assert!(
        sequencer.wal.syncs >= parts && sequencer.wal.syncs <= parts + 1,
        "{} fsyncs for {} bytes",
        sequencer.wal.syncs,
        written.len()
    );
    for (i, line) in written
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        assert_eq!(Record::parse_canonical(line).unwrap().1.index, i as u64);
    }
}

/// Record sizes from a line or two of text to beyond [`MAX_UNSYNCED`] alone.
const SIZES: [usize; 5] = [300, 5_000, 60_000, 200_000, 400_000];
const PAGE: usize = 4096;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Batches of records of any size; then a crash while one part of one batch was being
    /// written, with any subset of that part's pages on disk (written over, pages land in
    /// any order). Recovery must start, keep every record before that part (they were
    /// answered), and keep only records the sequencer wrote.
    #[test]
    fn a_crash_while_any_part_is_written_never_stops_startup_or_loses_an_answered_record(
        batches in proptest::collection::vec(proptest::collection::vec(0..SIZES.len(), 1..8), 1..5),
        crashed in proptest::prelude::any::<proptest::sample::Index>(),
        part in proptest::prelude::any::<proptest::sample::Index>(),
        pages in proptest::collection::vec(proptest::prelude::any::<bool>(), 1..256),
    ) {
        let dir = scratch("sequencer-crash");
        std::fs::create_dir_all(dir.join("wal")).unwrap();
        let (uploads, _sealed) = mpsc::unbounded_channel();
        let mut sequencer = sequencer(&dir, uploads);
        // (file length, records) after each batch.
        let mut after = vec![(0usize, 0u64)];
        for sizes in &batches {
            let batch = sizes
                .iter()
                .map(|&s| {
                    let mut entry = Entry::new(Kind::Request);
                    entry.resource = Some("x".repeat(SIZES[s]));
                    Msg::Append(Box::new(Pending {
                        record: Template::new("o", "r", &entry),
                        openings: None,
                        done: None,
                    }))
                })
                .collect();
            sequencer.commit(batch);
            after.push((sequencer.wal.len as usize, sequencer.tree.size()));
        }
        let written = std::fs::read(&sequencer.wal.path).unwrap();
        // The crashed batch, split into parts as the sequencer bounds them: lines adding up
        // to at most MAX_UNSYNCED, or one line alone.
        let c = crashed.index(batches.len());
        let (start, first_record) = after[c];
        let end = after[c + 1].0;
        let mut parts: Vec<(usize, usize, u64)> = Vec::new();
        let (mut at, mut record) = (start, first_record);
        for line in written[start..end].split_inclusive(|&b| b == b'\n') {
            match parts.last_mut() {
                Some((s, e, _)) if *e - *s + line.len() <= MAX_UNSYNCED => *e += line.len(),
                _ => parts.push((at, at + line.len(), record)),
            }
            at += line.len();
            record += 1;
        }
        let (from, to, answered) = parts[part.index(parts.len())];
        // The disk after the crash: everything before the part, any of its pages, and
        // nothing of what came after it.
        let mut image = written[..from].to_vec();
        image.resize(written.len(), 0);
        for (i, page_start) in (from / PAGE * PAGE..to).step_by(PAGE).enumerate() {
            if pages[i % pages.len()] {
                let (a, b) = (page_start.max(from), (page_start + PAGE).min(to));
                image[a..b].copy_from_slice(&written[a..b]);
            }
        }
        let crash = scratch("sequencer-crash-image");
        std::fs::create_dir_all(crash.join("wal")).unwrap();
        std::fs::write(crate::wal::wal_path(&crash, 0), &image).unwrap();
        let genesis = crate::wal::TreeState::of(&CompactTree::new(), GENESIS_PREV, 0);
        let recovered = crate::wal::recover(&crash, &genesis)
            .unwrap_or_else(|e| panic!("startup stopped: {e}"));
        proptest::prop_assert!(recovered.replayed >= answered, "{} < {answered}", recovered.replayed);
        proptest::prop_assert!(recovered.replayed <= sequencer.tree.size());
        // What was kept is what the sequencer wrote, byte for byte.
        let kept = recovered.sealed.first().map_or(0, |s| s.len as usize);
        proptest::prop_assert_eq!(&image[..kept], &written[..kept]);
    }
}
