//! A newer checkpoint of a growing log is proven to extend an older one, the proof checks
//! offline and fails when altered; a rewritten history (a fork) is named as one.

use super::*;
use crate::testlog::{TestLog, seg};

fn note_of(log: &TestLog, size: u64) -> String {
    let time = log
        .checkpoints
        .iter()
        .find(|(s, _)| *s == size)
        .map(|(_, t)| *t)
        .unwrap();
    log.note(size, time, log.root(size), &log.signer)
}

#[tokio::test]
async fn a_growing_log_extends_each_older_checkpoint() {
    let log = TestLog::build(70, 10).await;
    for old in [10, 30, 70] {
        let file = prove_consistency(&log.store, &log.verifier, &note_of(&log, old), None)
            .await
            .unwrap();
        assert!(file.new.starts_with("warden.test/audit\n70\n"));
        let text = serde_json::to_string(&file).unwrap();
        let back: ConsistencyFile = serde_json::from_str(&text).unwrap();
        check_consistency(&back, &log.verifier).unwrap();
    }
    // Between two given checkpoints.
    let file = prove_consistency(
        &log.store,
        &log.verifier,
        &note_of(&log, 20),
        Some(&note_of(&log, 50)),
    )
    .await
    .unwrap();
    check_consistency(&file, &log.verifier).unwrap();
    // An altered proof, swapped checkpoints or another key do not check.
    let mut bad = file.clone();
    bad.consistency[0][0] ^= 1;
    assert!(check_consistency(&bad, &log.verifier).is_err());
    let swapped = ConsistencyFile {
        old: file.new.clone(),
        new: file.old.clone(),
        ..file.clone()
    };
    assert!(matches!(
        check_consistency(&swapped, &log.verifier),
        Err(ConsistencyError::Order { .. })
    ));
    let other = TestLog::build(1, 1).await;
    assert!(check_consistency(&file, &other.verifier).is_err());
}

#[tokio::test]
async fn a_rewritten_history_is_a_fork() {
    let mut log = TestLog::build(40, 10).await;
    let old = note_of(&log, 20);
    // The operator rewrites record 12 and re-signs every later checkpoint.
    let mut data = log.get(&seg(10)).await;
    let at = data.iter().position(|&b| b == b'q').unwrap();
    data[at] = b'Q';
    log.put(&seg(10), data.clone()).await;
    let lines: Vec<Vec<u8>> = data
        .strip_suffix(b"\n")
        .unwrap()
        .split(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    log.lines.splice(10..20, lines);
    let root = log.root(40);
    log.checkpoint(40, crate::testlog::START_US + 90_000_000, root)
        .await;
    let forked = prove_consistency(&log.store, &log.verifier, &old, None).await;
    match forked {
        Err(e @ ConsistencyError::Fork { size: 20, .. }) => {
            assert!(
                e.to_string().starts_with("FORK: the log does not extend"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
}
