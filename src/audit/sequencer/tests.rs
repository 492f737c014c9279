//! One batch larger than [`MAX_UNSYNCED`]: written in parts, each answered once durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{MAX_UNSYNCED, Msg, Pending, Sequencer};
use crate::audit::merkle::CompactTree;
use crate::audit::record::{GENESIS_PREV, Record, Template};
use crate::audit::tests::scratch;
use crate::audit::wal::ActiveWal;
use crate::audit::{Entry, Health, Kind};

#[test]
fn a_batch_beyond_the_unsynced_limit_is_written_in_parts() {
    let dir = scratch("sequencer");
    std::fs::create_dir_all(dir.join("wal")).unwrap();
    let (uploads, _sealed) = mpsc::unbounded_channel();
    let mut sequencer = Sequencer {
        dir: dir.clone(),
        tree: CompactTree::new(),
        prev: GENESIS_PREV.to_owned(),
        last_time_us: 0,
        wal: ActiveWal::create(&dir, 0, 0).unwrap(),
        segment_records: 1_000_000,
        seal_interval: Duration::from_secs(3600),
        uploads,
        health: Arc::new(Health {
            wal_ok: AtomicBool::new(true),
            store_ok: AtomicBool::new(true),
            conflict: AtomicBool::new(false),
            durable: AtomicU64::new(0),
        }),
        openings_file: None,
        opened: Instant::now(),
        buffer: Vec::new(),
        openings: Vec::new(),
        _owner: crate::audit::owner::Ownership::take(&dir).unwrap(),
    };
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
