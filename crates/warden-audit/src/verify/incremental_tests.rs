//! Incremental verification: from a saved state, only what is new is read, and it reaches
//! the same verdict and the same next state as reading everything — except for a change
//! to records before the state's last one, which only a full read can see.

use super::tests::{edit, replace};
use super::*;
use crate::testlog::{START_US, STEP_US, TestLog, seg};

const FIRST: u64 = 23;

/// A log of 23 records (segments of 10), verified with its state saved, then grown by 41
/// records in segments of 7.
async fn grown() -> (TestLog, State) {
    let mut log = TestLog::build(FIRST, 10).await;
    let state = verify(&log.store, &log.verifier, None, log.now())
        .await
        .state()
        .unwrap();
    assert_eq!(state.size, FIRST);
    assert!(state.resume.is_some());
    let next = START_US + FIRST * STEP_US;
    log.append(&(0..41).map(|i| next + i * STEP_US).collect::<Vec<_>>(), 7)
        .await;
    (log, state)
}

async fn incremental(log: &TestLog, state: &State) -> Report {
    let options = Options {
        incremental: true,
        progress: None,
    };
    verify_with(&log.store, &log.verifier, Some(state), log.now(), options).await
}

fn kinds(report: &Report) -> Vec<FindingKind> {
    report.findings.iter().map(|f| f.kind).collect()
}

/// Changes one record's bytes in place (its segment keeps its other lines).
async fn rewrite(log: &TestLog, first: u64, at: usize) {
    edit(log, first, |lines| {
        lines[at] = replace(&lines[at], "\"req-", "\"REQ-")
    })
    .await;
}

#[tokio::test]
async fn only_new_records_are_read_and_the_next_state_is_the_full_reads() {
    let (log, state) = grown().await;
    let seen = std::sync::Mutex::new((0, Vec::new()));
    struct Seen<'s>(&'s std::sync::Mutex<(u64, Vec<u64>)>);
    impl Progress for Seen<'_> {
        fn segments(&self, total: u64) {
            self.0.lock().unwrap().0 = total;
        }
        fn advanced(&self, records: u64) {
            self.0.lock().unwrap().1.push(records);
        }
    }
    let progress = Seen(&seen);
    let options = Options {
        incremental: true,
        progress: Some(&progress),
    };
    let report = verify_with(&log.store, &log.verifier, Some(&state), log.now(), options).await;
    assert_eq!(report.exit_code(), 0, "{:#?}", report.findings);
    assert_eq!(report.resumed_from, FIRST);
    assert_eq!(report.full_because, None);
    // The segment holding record 22 (from 20), then the six new segments of 7.
    assert_eq!((report.segments, report.records), (7, 41));
    let (total, steps) = seen.into_inner().unwrap();
    assert_eq!(total, 7);
    assert_eq!(steps.last(), Some(&41));
    assert_eq!(steps.len(), 7);

    let full = verify(&log.store, &log.verifier, Some(&state), log.now()).await;
    assert_eq!(full.exit_code(), 0);
    assert_eq!(report.state(), full.state());
    let next = report.state().unwrap();
    assert_eq!((next.size, next.root), (64, log.root(64)));

    // And again from the new state, with nothing new: still verified.
    let again = incremental(&log, &next).await;
    assert_eq!(again.exit_code(), 0, "{:#?}", again.findings);
    assert_eq!((again.resumed_from, again.records), (64, 0));
    assert_eq!(again.state(), Some(next));
}

#[tokio::test]
async fn a_new_record_changed_is_found() {
    let (log, state) = grown().await;
    // Record 40: in the segment from 37, after the state.
    rewrite(&log, 37, 3).await;
    let report = incremental(&log, &state).await;
    assert_eq!(report.exit_code(), 1);
    assert!(
        kinds(&report).contains(&FindingKind::Chain),
        "{:#?}",
        report.findings
    );
    assert!(
        kinds(&report).contains(&FindingKind::Root),
        "{:#?}",
        report.findings
    );
}

#[tokio::test]
async fn the_last_verified_record_changed_is_a_rollback() {
    let (log, state) = grown().await;
    rewrite(&log, 20, 2).await;
    let report = incremental(&log, &state).await;
    assert_eq!(report.exit_code(), 1);
    let rollback = report
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Rollback)
        .unwrap_or_else(|| panic!("{:#?}", report.findings));
    assert_eq!(rollback.first, Some(FIRST - 1));
}

#[tokio::test]
async fn the_verified_records_removed_is_truncation() {
    let (log, state) = grown().await;
    for first in [0, 10, 20] {
        log.delete(&seg(first)).await;
    }
    let report = incremental(&log, &state).await;
    assert_eq!(report.exit_code(), 1);
    assert!(
        kinds(&report).contains(&FindingKind::Truncated),
        "{:#?}",
        report.findings
    );
}

#[tokio::test]
async fn an_old_record_changed_is_seen_by_a_full_read_only() {
    let (log, state) = grown().await;
    rewrite(&log, 10, 4).await;
    assert_eq!(incremental(&log, &state).await.exit_code(), 0);
    let full = verify(&log.store, &log.verifier, Some(&state), log.now()).await;
    assert_eq!(full.exit_code(), 1);
}

#[tokio::test]
async fn a_state_without_a_usable_resume_point_reads_everything() {
    let (log, state) = grown().await;
    let old = State {
        resume: None,
        ..state.clone()
    };
    let report = incremental(&log, &old).await;
    assert_eq!(report.exit_code(), 0, "{:#?}", report.findings);
    assert_eq!((report.resumed_from, report.records), (0, 64));
    assert!(
        report
            .full_because
            .as_deref()
            .unwrap()
            .contains("older version")
    );
    // A forged right edge is not trusted: the whole log is read.
    let mut forged = state.clone();
    if let Some(resume) = forged.resume.as_mut() {
        resume.frontier[0] = [9; 32];
    }
    let report = incremental(&log, &forged).await;
    assert_eq!(report.resumed_from, 0);
    assert!(
        report
            .full_because
            .as_deref()
            .unwrap()
            .contains("does not hash")
    );
    assert_eq!(report.exit_code(), 0);
}

#[tokio::test]
async fn a_silence_right_after_the_state_is_a_time_gap() {
    let mut log = TestLog::build(FIRST, 10).await;
    let state = verify(&log.store, &log.verifier, None, log.now())
        .await
        .state()
        .unwrap();
    let later = START_US + FIRST * STEP_US + 3 * 3_600_000_000;
    log.append(&(0..5).map(|i| later + i * STEP_US).collect::<Vec<_>>(), 5)
        .await;
    let report = incremental(&log, &state).await;
    assert_eq!(report.resumed_from, FIRST);
    assert!(
        kinds(&report).contains(&FindingKind::TimeGap),
        "{:#?}",
        report.findings
    );
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test]
async fn deleted_checkpoints_are_not_a_clean_result() {
    let (log, state) = grown().await;
    // Every checkpoint from the state's on, and the records after it.
    for (size, time) in log.checkpoints.clone() {
        if size >= FIRST {
            log.delete(&crate::testlog::cp(size, time)).await;
        }
    }
    for first in log.segments.clone() {
        if first > 20 {
            log.delete(&seg(first)).await;
        }
    }
    let report = incremental(&log, &state).await;
    assert_eq!(report.exit_code(), 1, "{:#?}", report.findings);
    assert!(
        kinds(&report).contains(&FindingKind::Truncated),
        "{:#?}",
        report.findings
    );
}

#[tokio::test]
async fn a_segment_overlapping_the_verified_records_is_found() {
    let (log, state) = grown().await;
    // A clean copy of records 21.. put in a segment of its own, starting inside what was
    // verified: reading only from it would skip the real segment's later records.
    let copy: Vec<u8> = log.lines[21..30]
        .iter()
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect();
    log.put(&seg(21), copy).await;
    let report = incremental(&log, &state).await;
    assert_eq!(report.exit_code(), 1, "{:#?}", report.findings);
    assert!(
        kinds(&report).contains(&FindingKind::Gap),
        "{:#?}",
        report.findings
    );
}
