//! Recovery: what a WAL file may hold after a crash, and what startup makes of it.

use super::{
    MAX_UNSYNCED, PREALLOCATE, TreeState, headroom, prepare_spare, recover, recycle, spare_path,
    wal_path,
};
use crate::merkle::{CompactTree, leaf_hash};
use crate::record::{GENESIS_PREV, Record, hex};
use crate::tests::scratch;
use crate::{Entry, Kind};

/// The canonical lines of records `0..n`, chained from genesis.
fn lines(n: u64) -> Vec<Vec<u8>> {
    let mut prev = GENESIS_PREV.to_owned();
    (0..n)
        .map(|index| {
            let mut entry = Entry::new(Kind::Request);
            entry.action = Some("tools/call".to_owned());
            entry.resource = Some(format!("tool{index}"));
            let r = Record {
                v: 1,
                origin: "o".to_owned(),
                index,
                time_us: 1,
                replica: "r".to_owned(),
                prev: prev.clone(),
                entry,
            };
            let mut bytes = r.canonical();
            prev = hex(&leaf_hash(&bytes));
            bytes.push(b'\n');
            bytes
        })
        .collect()
}

fn genesis() -> TreeState {
    TreeState::of(&CompactTree::new(), GENESIS_PREV, 0)
}

/// Writes `bytes` as WAL file 0 in a fresh state directory and recovers it.
fn recover_file(bytes: &[u8]) -> Result<super::Recovered, String> {
    let dir = scratch("wal");
    std::fs::create_dir_all(dir.join("wal")).unwrap();
    std::fs::write(wal_path(&dir, 0), bytes).unwrap();
    recover(&dir, &genesis())
}

#[test]
fn records_end_where_the_zeros_written_ahead_begin() {
    let records = lines(3).concat();
    let mut file = records.clone();
    file.resize(records.len() + 64 * 1024, 0);
    let recovered = recover_file(&file).unwrap();
    assert_eq!(recovered.replayed, 3);
    assert_eq!(recovered.sealed[0].len, records.len() as u64);
    assert_eq!(recovered.sealed[0].end, 3);
}

#[test]
fn an_older_segments_lines_after_the_records_are_unused_space() {
    // A recycled file: records 0..2 written over the start of a longer, older file whose
    // lines (here a different chain) carry other indexes.
    let all = lines(8);
    let mut file = all[..2].concat();
    let older = all[2..].concat();
    file.extend_from_slice(&older[17..]);
    let recovered = recover_file(&file).unwrap();
    assert_eq!(recovered.replayed, 2);
    assert_eq!(recovered.sealed[0].len, all[..2].concat().len() as u64);
}

#[test]
fn a_torn_last_record_is_dropped() {
    let records = lines(3).concat();
    let mut file = records.clone();
    file.extend_from_slice(br#"{"entry":{"act"#);
    let recovered = recover_file(&file).unwrap();
    assert_eq!(recovered.replayed, 3);
    assert_eq!(recovered.sealed[0].len, records.len() as u64);
}

#[test]
fn a_batch_whose_pages_landed_out_of_order_is_dropped() {
    // Records 0..2 were synced; the batch 2..6 was not: its first page never reached the
    // disk (zeros) while a later one did. None of 2..6 was acknowledged.
    let all = lines(6);
    let synced = all[..2].concat();
    let mut file = synced.clone();
    file.resize(synced.len() + all[2].len() + 10, 0);
    file.extend_from_slice(&all[3][10..]);
    file.extend_from_slice(&all[4..].concat());
    let recovered = recover_file(&file).unwrap();
    assert_eq!(recovered.replayed, 2);
    assert_eq!(recovered.sealed[0].len, synced.len() as u64);
    assert_eq!(recovered.tree.size(), 2);
}

#[test]
fn a_damaged_record_followed_by_acknowledged_ones_stops_startup() {
    // More records after the damaged one than any batch writes between two fsyncs: they
    // were acknowledged, so the damage is not a torn write and recovery must not cut it.
    let mut all = lines(2);
    let mut n = 2;
    while all[1..].concat().len() <= MAX_UNSYNCED {
        n += 64;
        all = lines(n);
    }
    // Record 0 changed still parses, but record 1 no longer continues the chain.
    let mut file = all.concat();
    let at = file.windows(4).position(|w| w == b"tool").unwrap();
    file[at] = b'T';
    let err = recover_file(&file).err().expect("damage must stop startup");
    assert!(err.contains("chain breaks at record 1"), "{err}");
    // It says what it found and how to go on; following that works.
    let offset = all[0].len();
    assert!(
        err.contains(&format!("byte {offset}: a record 1 that does not link")),
        "{err}"
    );
    assert!(err.contains(&format!("truncate -s {offset} ")), "{err}");
    assert_eq!(recover_file(&file[..offset]).unwrap().replayed, 1);
    // Within one batch's reach of the damage, the same shape is a torn batch.
    let short = lines(4).concat();
    let mut torn = short.clone();
    let at = torn.windows(4).position(|w| w == b"tool").unwrap();
    torn[at] = b'T';
    assert_eq!(recover_file(&torn).unwrap().replayed, 1);
}

#[test]
fn a_file_that_does_not_continue_the_log_stops_startup() {
    let dir = scratch("wal");
    std::fs::create_dir_all(dir.join("wal")).unwrap();
    std::fs::write(wal_path(&dir, 5), lines(1).concat()).unwrap();
    let err = recover(&dir, &genesis()).err().unwrap();
    assert!(err.contains("continue at record 0"), "{err}");
}

#[test]
fn a_recycled_file_keeps_its_bytes_and_gets_room_for_twice_its_segment() {
    let dir = scratch("wal");
    std::fs::create_dir_all(dir.join("wal")).unwrap();
    let path = wal_path(&dir, 0);
    // A segment larger than half of what startup writes ahead: the file grows to twice it.
    let segment: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8 + 1).collect();
    std::fs::write(&path, &segment).unwrap();
    let len = segment.len() as u64;
    recycle(&dir, &path, headroom(len)).unwrap();
    assert!(!path.exists());
    let spare = std::fs::read(spare_path(&dir)).unwrap();
    assert_eq!(spare.len() as u64, 2 * len);
    assert_eq!(&spare[..segment.len()], &segment[..]);
    assert!(spare[segment.len()..].iter().all(|&b| b == 0));
    // A small segment's file keeps at least what startup writes ahead, and a file that
    // is already large enough is renamed as it is.
    std::fs::write(&path, b"{}\n").unwrap();
    recycle(&dir, &path, headroom(3)).unwrap();
    assert_eq!(fs_len(&spare_path(&dir)), PREALLOCATE);
    std::fs::write(&path, vec![1u8; 5 << 20]).unwrap();
    recycle(&dir, &path, headroom(1)).unwrap();
    assert_eq!(fs_len(&spare_path(&dir)), 5 << 20);
}

#[test]
fn a_spare_is_written_ahead_only_where_there_is_none() {
    let dir = scratch("wal");
    std::fs::create_dir_all(dir.join("wal")).unwrap();
    prepare_spare(&dir).unwrap();
    let spare = std::fs::read(spare_path(&dir)).unwrap();
    assert_eq!(spare.len() as u64, PREALLOCATE);
    assert!(spare.iter().all(|&b| b == 0));
    assert!(!dir.join("wal").join("spare.new").exists());
    // A spare already there (a recycled file) is kept as it is.
    std::fs::write(spare_path(&dir), b"older segment\n").unwrap();
    prepare_spare(&dir).unwrap();
    assert_eq!(std::fs::read(spare_path(&dir)).unwrap(), b"older segment\n");
    // Recovery takes neither the spare nor a half-written one for a WAL file.
    std::fs::write(dir.join("wal").join("spare.new"), b"\0\0").unwrap();
    let recovered = recover(&dir, &genesis()).unwrap();
    assert!(recovered.sealed.is_empty());
}

fn fs_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// The check after each fsync reads the same (device, inode) as std's metadata, without the
/// timestamps, and tells a file put in the WAL's place from the one the proxy writes.
#[cfg(unix)]
#[test]
fn the_identity_checked_after_each_fsync_names_the_file_and_sees_a_replacement() {
    let dir = scratch("identity");
    let path = dir.join("a.wal");
    std::fs::write(&path, b"x").unwrap();
    let written = super::identity(&std::fs::metadata(&path).unwrap());
    assert_eq!(super::identity_at(&path).unwrap(), written);
    let other = dir.join("b.wal");
    std::fs::write(&other, b"y").unwrap();
    std::fs::rename(&other, &path).unwrap();
    let replaced = super::identity_at(&path).unwrap();
    assert_ne!(replaced, written);
    assert_eq!(
        replaced,
        super::identity(&std::fs::metadata(&path).unwrap())
    );
    std::fs::remove_file(&path).unwrap();
    assert!(super::identity_at(&path).is_err());
}
