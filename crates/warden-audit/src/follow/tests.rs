//! A follower hands out each record once, in order, only under a signed checkpoint;
//! resumes from its saved position; and stops at any record that does not check, or a log
//! rewritten under what it already handed out.

use super::*;
use crate::testlog::{START_US, STEP_US, TestLog, seg};

#[tokio::test]
async fn records_come_once_in_order_and_resume_from_the_saved_position() {
    let mut log = TestLog::build(25, 10).await;
    let mut follower = Follower::new(None).unwrap();
    let batch = follower
        .next_batch(&log.store, &log.verifier)
        .await
        .unwrap();
    assert_eq!(batch, log.lines);
    assert!(
        follower
            .next_batch(&log.store, &log.verifier)
            .await
            .unwrap()
            .is_empty()
    );
    let saved = follower.position().unwrap();
    let text = serde_json::to_string(&saved).unwrap();

    let times: Vec<u64> = (25..42).map(|i| START_US + i * STEP_US).collect();
    log.append(&times, 10).await;
    let mut resumed = Follower::new(Some(&serde_json::from_str(&text).unwrap())).unwrap();
    let more = resumed.next_batch(&log.store, &log.verifier).await.unwrap();
    assert_eq!(more, log.lines[25..].to_vec());
    assert_eq!(resumed.size(), 42);
}

#[tokio::test]
async fn a_changed_record_or_a_rewritten_history_stops_the_stream() {
    let mut log = TestLog::build(20, 10).await;
    let mut follower = Follower::new(None).unwrap();
    follower
        .next_batch(&log.store, &log.verifier)
        .await
        .unwrap();
    // Rewrite a record already handed out, and sign new checkpoints over the rewrite.
    let mut data = log.get(&seg(0)).await;
    let at = data.iter().position(|&b| b == b'q').unwrap();
    data[at] = b'Q';
    log.put(&seg(0), data).await;
    let times: Vec<u64> = (20..30).map(|i| START_US + i * STEP_US).collect();
    log.append(&times, 10).await;
    let mut tree = crate::merkle::CompactTree::new();
    let stored = log.get(&seg(0)).await;
    for line in stored.strip_suffix(b"\n").unwrap().split(|&b| b == b'\n') {
        tree.append(crate::merkle::leaf_hash(line));
    }
    for line in &log.lines[10..] {
        tree.append(crate::merkle::leaf_hash(line));
    }
    log.checkpoint(30, START_US + 99 * STEP_US, tree.root())
        .await;
    let stopped = follower.next_batch(&log.store, &log.verifier).await;
    assert!(
        matches!(&stopped, Err(FollowError::Tampered(why)) if why.contains("no longer extends")),
        "{stopped:?}"
    );

    // A record changed before it was handed out: caught by its chain or the root.
    let log = TestLog::build(20, 10).await;
    let mut data = log.get(&seg(10)).await;
    let at = data.iter().position(|&b| b == b'q').unwrap();
    data[at] = b'Q';
    log.put(&seg(10), data).await;
    let mut fresh = Follower::new(None).unwrap();
    assert!(matches!(
        fresh.next_batch(&log.store, &log.verifier).await,
        Err(FollowError::Tampered(_))
    ));
    assert_eq!(
        fresh.size(),
        0,
        "nothing handed out from a batch that failed"
    );
}
