//! The tamper matrix: a valid log verifies; each way of changing, removing or adding
//! records, segments or checkpoints is found under its own name with the right exit status.

use super::*;
use crate::merkle::leaf_hash;
use crate::note::NoteSigner;
use crate::record::{Record, hex};
use crate::testlog::{START_US, STEP_US, TestLog, cp, seg};

const HOUR: u64 = 3_600_000_000;

/// 50 records in 5 segments of 10, a checkpoint after each.
async fn log() -> TestLog {
    TestLog::build(50, 10).await
}

async fn check(log: &TestLog, state: Option<&State>, now: u64) -> Report {
    verify(&log.store, &log.verifier, state, now).await
}

fn kinds(report: &Report) -> Vec<FindingKind> {
    report.findings.iter().map(|f| f.kind).collect()
}

#[track_caller]
fn assert_found(report: &Report, kind: FindingKind, code: u8) {
    assert!(
        kinds(report).contains(&kind),
        "no {kind:?} in {:#?}",
        report.findings
    );
    assert_eq!(report.exit_code(), code, "{:#?}", report.findings);
}

fn finding(report: &Report, kind: FindingKind) -> &Finding {
    report.findings.iter().find(|f| f.kind == kind).unwrap()
}

/// Rewrites the lines of the segment starting at `first`.
pub(super) async fn edit(log: &TestLog, first: u64, f: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let data = log.get(&seg(first)).await;
    let mut lines: Vec<Vec<u8>> = data
        .strip_suffix(b"\n")
        .unwrap()
        .split(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    f(&mut lines);
    log.put(
        &seg(first),
        lines.join(&b'\n').into_iter().chain([b'\n']).collect(),
    )
    .await;
}

pub(super) fn replace(line: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(line.to_vec()).unwrap();
    assert!(text.contains(from), "{text}");
    text.replacen(from, to, 1).into_bytes()
}

/// Recomputes the chain from `from` on, after records were changed.
fn rechain(lines: &mut [Vec<u8>], from: usize) {
    for i in from..lines.len() {
        let mut record: Record = serde_json::from_slice(&lines[i]).unwrap();
        record.prev = hex(&leaf_hash(&lines[i - 1]));
        lines[i] = record.canonical();
    }
}

#[tokio::test]
async fn an_untouched_log_verifies() {
    let log = log().await;
    let report = check(&log, None, log.now()).await;
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert_eq!(report.exit_code(), 0);
    assert_eq!(
        (report.records, report.segments, report.checkpoints),
        (50, 5, 5)
    );
    assert_eq!(report.origin.as_deref(), Some(crate::testlog::ORIGIN));
    let state = report.state().unwrap();
    assert_eq!((state.size, state.root), (50, log.root(50)));
    // With the state it just produced, it still verifies.
    let again = check(&log, Some(&state), log.now()).await;
    assert_eq!(again.exit_code(), 0, "{:#?}", again.findings);
}

#[tokio::test]
async fn a_changed_byte_breaks_the_chain_and_the_roots() {
    let log = log().await;
    edit(&log, 10, |lines| {
        lines[5] = replace(&lines[5], "req-15", "req-16")
    })
    .await;
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::Chain, 1);
    let chain = finding(&report, FindingKind::Chain);
    assert_eq!((chain.first, chain.last), (Some(16), Some(16)));
    assert_eq!(chain.segment.as_deref(), Some(seg(10).as_str()));
    assert_found(&report, FindingKind::Root, 1);
    assert!(!kinds(&report).contains(&FindingKind::NonCanonical));
}

#[tokio::test]
async fn a_deleted_record_is_found() {
    let log = log().await;
    edit(&log, 10, |lines| {
        lines.remove(5);
    })
    .await;
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::Chain, 1);
    assert_found(&report, FindingKind::Index, 1);
    let index = finding(&report, FindingKind::Index);
    assert_eq!((index.first, index.last), (Some(15), Some(18)));
    assert_found(&report, FindingKind::Gap, 1);
}

#[tokio::test]
async fn an_inserted_record_is_found() {
    let log = log().await;
    edit(&log, 10, |lines| {
        let copy = lines[3].clone();
        lines.insert(4, copy);
    })
    .await;
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::Index, 1);
    assert_found(&report, FindingKind::Chain, 1);
}

#[tokio::test]
async fn swapped_records_are_found() {
    let log = log().await;
    edit(&log, 10, |lines| lines.swap(3, 4)).await;
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::Index, 1);
    assert_found(&report, FindingKind::Chain, 1);
}

#[tokio::test]
async fn a_deleted_middle_segment_is_a_gap() {
    let log = log().await;
    log.delete(&seg(20)).await;
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::Gap, 1);
    let gap = finding(&report, FindingKind::Gap);
    assert_eq!((gap.first, gap.last), (Some(20), Some(29)));
    assert_found(&report, FindingKind::MissingRecords, 1);
}

#[tokio::test]
async fn a_deleted_tail_is_truncation_with_a_state_and_stale_without() {
    let log = log().await;
    let state = check(&log, None, log.now()).await.state().unwrap();
    log.delete(&seg(40)).await;
    let (size, time) = *log.checkpoints.last().unwrap();
    log.delete(&cp(size, time)).await;

    let report = check(&log, Some(&state), log.now()).await;
    assert_found(&report, FindingKind::Truncated, 1);
    let truncated = finding(&report, FindingKind::Truncated);
    assert_eq!((truncated.first, truncated.last), (Some(40), Some(49)));

    let report = check(&log, None, log.now() + HOUR).await;
    assert_found(&report, FindingKind::Stale, 2);
    assert!(report.state().is_none());
}

#[tokio::test]
async fn a_rewritten_log_signed_by_another_key_is_found() {
    let log = log().await;
    let mut lines = log.lines.clone();
    lines[25] = replace(&lines[25], "\"effect\":\"allow\"", "\"effect\":\"deny\"");
    rechain(&mut lines, 26);
    for first in [20, 30, 40] {
        let mut data = Vec::new();
        for line in &lines[first as usize..first as usize + 10] {
            data.extend_from_slice(line);
            data.push(b'\n');
        }
        log.put(&seg(first), data).await;
    }
    let (other, _, _) = NoteSigner::generate(crate::testlog::ORIGIN).unwrap();
    for &(size, time) in log.checkpoints.iter().filter(|c| c.0 > 20) {
        let root = crate::merkle::root(
            &lines[..size as usize]
                .iter()
                .map(|l| leaf_hash(l))
                .collect::<Vec<_>>(),
        );
        log.put(
            &cp(size, time),
            log.note(size, time, root, &other).into_bytes(),
        )
        .await;
    }
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::Signature, 1);
    assert!(
        !kinds(&report).contains(&FindingKind::Chain),
        "{:#?}",
        report.findings
    );
}

#[tokio::test]
async fn an_extra_object_is_an_orphan() {
    let log = log().await;
    log.put("segments/notes.txt", b"hello".to_vec()).await;
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::Orphan, 1);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
}

#[tokio::test]
async fn two_checkpoints_of_one_size_are_a_fork() {
    let log = log().await;
    let time = log.checkpoints[1].1 + 1;
    let note = log.note(20, time, [9; 32], &log.signer);
    log.put(&cp(20, time), note.into_bytes()).await;
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::Fork, 1);
    assert_found(&report, FindingKind::Root, 1);
}

#[tokio::test]
async fn whitespace_makes_a_record_non_canonical() {
    let log = log().await;
    edit(&log, 10, |lines| {
        lines[2] = replace(&lines[2], "{\"action\"", "{ \"action\"")
    })
    .await;
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::NonCanonical, 1);
    let nc = finding(&report, FindingKind::NonCanonical);
    assert_eq!((nc.first, nc.last), (Some(12), Some(12)));
}

#[tokio::test]
async fn garbage_objects_are_findings_not_crashes() {
    let log = log().await;
    edit(&log, 10, |lines| {
        lines[1] = vec![0xff, 0x00, b'{'];
        lines[2] = b"[1,2]".to_vec();
        lines[3] = b"{\"v\":1}".to_vec();
    })
    .await;
    log.put(&seg(50), Vec::new()).await;
    let (size, time) = log.checkpoints[0];
    log.put(&cp(size, time), vec![0xfe, 0xff]).await;
    log.put(&cp(size, time + 1), b"not a note\n\n\n".to_vec())
        .await;
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::NonCanonical, 1);
    assert_found(&report, FindingKind::Signature, 1);
}

#[tokio::test]
async fn extreme_keys_and_sizes_do_not_crash() {
    let log = log().await;
    let mut last = log.get(&seg(40)).await;
    last.truncate(last.len() - 1);
    log.put(&seg(u64::MAX), last).await;
    let note = log.note(0, START_US - 1, [1; 32], &log.signer);
    log.put(&cp(0, START_US - 1), note.into_bytes()).await;
    let note = log.note(u64::MAX, START_US, [1; 32], &log.signer);
    log.put(&cp(u64::MAX, START_US), note.into_bytes()).await;
    let report = check(&log, None, u64::MAX).await;
    assert_found(&report, FindingKind::Gap, 1);
    assert_found(&report, FindingKind::Root, 1);
    assert_found(&report, FindingKind::MissingRecords, 1);
}

#[tokio::test]
async fn a_renamed_checkpoint_is_a_key_mismatch() {
    let log = log().await;
    let (size, time) = log.checkpoints[0];
    let note = log.get(&cp(size, time)).await;
    log.put(&cp(size, time + 5), note).await;
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::Key, 1);
}

#[tokio::test]
async fn a_silence_is_a_time_gap_unless_after_a_stop() {
    let mut log = TestLog::build(20, 10).await;
    let later = START_US + 20 * STEP_US + HOUR;
    log.append(
        &(0..10).map(|i| later + i * STEP_US).collect::<Vec<_>>(),
        10,
    )
    .await;
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::TimeGap, 1);
    let gap = finding(&report, FindingKind::TimeGap);
    assert_eq!((gap.first, gap.last), (Some(19), Some(20)));

    let mut log = TestLog::build(0, 10).await;
    log.stops.push(19);
    log.append(
        &(0..20).map(|i| START_US + i * STEP_US).collect::<Vec<_>>(),
        10,
    )
    .await;
    log.append(
        &(0..10).map(|i| later + i * STEP_US).collect::<Vec<_>>(),
        10,
    )
    .await;
    let report = check(&log, None, log.now()).await;
    assert_eq!(report.exit_code(), 0, "{:#?}", report.findings);
}

#[tokio::test]
async fn records_going_back_in_time_are_a_time_gap() {
    let mut log = TestLog::build(0, 10).await;
    let mut times: Vec<u64> = (0..20).map(|i| START_US + i * STEP_US).collect();
    times[12] -= 5 * STEP_US;
    log.append(&times, 10).await;
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::TimeGap, 1);
    assert_eq!(finding(&report, FindingKind::TimeGap).first, Some(12));
}

#[tokio::test]
async fn a_log_ending_with_a_sealed_stop_is_never_stale() {
    let mut log = TestLog::build(0, 10).await;
    log.stops.push(19);
    log.append(
        &(0..20).map(|i| START_US + i * STEP_US).collect::<Vec<_>>(),
        10,
    )
    .await;
    let report = check(&log, None, log.now() + 100 * HOUR).await;
    assert_eq!(report.exit_code(), 0, "{:#?}", report.findings);
}

#[tokio::test]
async fn an_empty_store_is_incomplete() {
    let log = TestLog::build(0, 10).await;
    let report = check(&log, None, START_US).await;
    assert_found(&report, FindingKind::Empty, 2);
}

#[tokio::test]
async fn records_without_a_checkpoint_are_unsealed() {
    let log = log().await;
    let (size, time) = *log.checkpoints.last().unwrap();
    log.delete(&cp(size, time)).await;
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::Unsealed, 2);
    let unsealed = finding(&report, FindingKind::Unsealed);
    assert_eq!((unsealed.first, unsealed.last), (Some(40), Some(49)));
}

#[tokio::test]
async fn a_state_the_log_no_longer_extends_is_a_rollback() {
    let log = log().await;
    let time = log.checkpoints[1].1;
    let note = log.note(20, time, [7; 32], &log.signer);
    let state = State {
        origin: crate::testlog::ORIGIN.to_owned(),
        size: 20,
        root: [7; 32],
        checkpoint: note,
        resume: None,
    };
    let report = check(&log, Some(&state), log.now()).await;
    assert_found(&report, FindingKind::Rollback, 1);
}

#[tokio::test]
async fn a_grown_log_is_consistent_with_the_saved_state() {
    let mut log = TestLog::build(23, 10).await;
    let state = check(&log, None, log.now()).await.state().unwrap();
    assert_eq!(state.size, 23);
    let next = START_US + 23 * STEP_US;
    log.append(&(0..41).map(|i| next + i * STEP_US).collect::<Vec<_>>(), 7)
        .await;
    let report = check(&log, Some(&state), log.now()).await;
    assert_eq!(report.exit_code(), 0, "{:#?}", report.findings);
    assert_eq!(report.state().unwrap().size, 64);
}

#[tokio::test]
async fn a_state_signed_by_another_key_cannot_be_used() {
    let log = log().await;
    let (other, _, _) = NoteSigner::generate("someone-else").unwrap();
    let (size, time) = log.checkpoints[1];
    let state = State {
        origin: crate::testlog::ORIGIN.to_owned(),
        size,
        root: log.root(size),
        checkpoint: log.note(size, time, log.root(size), &other),
        resume: None,
    };
    let report = check(&log, Some(&state), log.now()).await;
    assert_found(&report, FindingKind::Unreadable, 3);
}

#[tokio::test]
async fn a_record_of_another_log_is_an_origin_finding() {
    let log = log().await;
    let mut lines = log.lines.clone();
    lines[33] = replace(&lines[33], "warden.test/audit", "elsewhere/audit");
    rechain(&mut lines, 34);
    edit(&log, 30, |seg| seg.clone_from_slice(&lines[30..40])).await;
    let report = check(&log, None, log.now()).await;
    assert_found(&report, FindingKind::Origin, 1);
    assert_eq!(finding(&report, FindingKind::Origin).first, Some(33));
}

#[tokio::test]
async fn findings_come_in_a_stable_order() {
    let log = log().await;
    log.delete(&seg(20)).await;
    edit(&log, 10, |lines| lines.swap(1, 2)).await;
    let a = check(&log, None, log.now()).await.findings;
    let b = check(&log, None, log.now()).await.findings;
    assert_eq!(a, b);
}

#[tokio::test]
#[ignore = "a measurement: cargo test --release -- --ignored throughput --nocapture"]
async fn throughput() {
    let records = 100_000;
    let mut log = TestLog::build(0, 1).await;
    log.compact = true;
    let times: Vec<u64> = (0..records).map(|i| START_US + i * STEP_US / 100).collect();
    log.append(&times, 10_000).await;
    let bytes: usize = log.lines.iter().map(|l| l.len() + 1).sum();
    let start = std::time::Instant::now();
    let report = check(&log, None, log.now()).await;
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(report.exit_code(), 0, "{:#?}", report.findings);
    println!(
        "verified {records} records ({} bytes each on average) in {elapsed:.3} s: {:.0} records/s",
        bytes / records as usize,
        records as f64 / elapsed
    );
}
