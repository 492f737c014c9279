//! Proofs and disclosures made from a valid log check offline; any change to them, or a
//! wrong key, is refused.

use serde_json::json;

use super::*;
use crate::testlog::{TestLog, seg};

async fn proved(log: &TestLog, index: u64) -> ProofFile {
    prove(&log.store, Some(&log.verifier), index).await.unwrap()
}

#[tokio::test]
async fn a_proof_round_trips_through_json_and_checks() {
    let log = TestLog::build(50, 10).await;
    for index in [0, 17, 49] {
        let file = proved(&log, index).await;
        assert_eq!(file.record.as_bytes(), log.lines[index as usize]);
        let text = serde_json::to_string_pretty(&file).unwrap();
        let back: ProofFile = serde_json::from_str(&text).unwrap();
        assert_eq!(back, file);
        check_proof(&back, &log.verifier).unwrap();
        // The newest checkpoint covering the record is used.
        assert!(
            file.checkpoint.starts_with("warden.test/audit\n50\n"),
            "{}",
            file.checkpoint
        );
    }
    let unverified = prove(&log.store, None, 3).await.unwrap();
    check_proof(&unverified, &log.verifier).unwrap();
}

#[tokio::test]
async fn records_beyond_the_newest_checkpoint_cannot_be_proven() {
    let log = TestLog::build(20, 10).await;
    assert!(matches!(
        prove(&log.store, Some(&log.verifier), 20).await,
        Err(ProofError::NotCovered(20))
    ));
}

#[tokio::test]
async fn a_tampered_log_backs_no_proof() {
    let log = TestLog::build(30, 10).await;
    let mut data = log.get(&seg(10)).await;
    let at = data.iter().position(|&b| b == b'q').unwrap();
    data[at] = b'Q';
    log.put(&seg(10), data).await;
    assert!(matches!(
        prove(&log.store, Some(&log.verifier), 25).await,
        Err(ProofError::Log(_))
    ));
}

#[tokio::test]
async fn changed_proofs_are_refused() {
    let log = TestLog::build(50, 10).await;
    let good = proved(&log, 17).await;
    let refused = |file: &ProofFile| check_proof(file, &log.verifier).is_err();

    let mut file = good.clone();
    file.record = file.record.replacen("req-17", "req-18", 1);
    assert!(refused(&file));

    let mut file = good.clone();
    file.index = 18;
    assert!(refused(&file));

    let mut file = good.clone();
    file.proof[2][0] ^= 1;
    assert!(refused(&file));

    let mut file = good.clone();
    file.proof.pop();
    assert!(refused(&file));

    let mut file = good.clone();
    file.origin = "elsewhere".into();
    assert!(matches!(
        check_proof(&file, &log.verifier),
        Err(ProofError::Origin { .. })
    ));

    let mut file = good.clone();
    file.record = file.record.replacen("{\"action\"", "{ \"action\"", 1);
    assert!(refused(&file));

    let other = TestLog::build(1, 1).await;
    assert!(matches!(
        check_proof(&good, &other.verifier),
        Err(ProofError::Signature(_))
    ));
}

#[tokio::test]
async fn a_disclosure_round_trips_and_checks() {
    let log = TestLog::build(50, 10).await;
    let file = disclose(proved(&log, 17).await, &log.openings, "/amount").unwrap();
    assert_eq!(file.value, json!(17));
    let text = serde_json::to_string(&file).unwrap();
    let back: DisclosureFile = serde_json::from_str(&text).unwrap();
    assert_eq!(back, file);
    check_disclosure(&back, &log.verifier).unwrap();

    let whole = disclose(proved(&log, 17).await, &log.openings, "").unwrap();
    assert_eq!(whole.value, json!({"symbol": "ACME", "amount": 17}));
    check_disclosure(&whole, &log.verifier).unwrap();
}

#[tokio::test]
async fn a_mistyped_field_is_no_such_field_not_tampering() {
    let log = TestLog::build(50, 10).await;
    let e = disclose(proved(&log, 17).await, &log.openings, "/amuont").unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, ProofError::NoSuchField { index: 17, .. }),
        "{text}"
    );
    assert!(text.contains("no such field"), "{text}");
    assert!(text.contains("`/amount`"), "{text}");
    assert!(!text.contains("not the one the record committed"), "{text}");
}

#[tokio::test]
async fn a_wrong_value_salt_or_path_is_refused() {
    let log = TestLog::build(50, 10).await;
    let good = disclose(proved(&log, 17).await, &log.openings, "/amount").unwrap();
    let refused = |file: &DisclosureFile| {
        matches!(
            check_disclosure(file, &log.verifier),
            Err(ProofError::Commitment(_))
        )
    };
    assert!(refused(&DisclosureFile {
        value: json!(18),
        ..good.clone()
    }));
    assert!(refused(&DisclosureFile {
        value: json!("17"),
        ..good.clone()
    }));
    assert!(refused(&DisclosureFile {
        salt: [0; 32],
        ..good.clone()
    }));
    assert!(refused(&DisclosureFile {
        path: "/symbol".into(),
        ..good.clone()
    }));
    assert!(matches!(
        check_disclosure(
            &DisclosureFile {
                path: "/nothing".into(),
                ..good
            },
            &log.verifier
        ),
        Err(ProofError::NoSuchField { .. })
    ));
}

#[tokio::test]
async fn disclosing_needs_the_openings() {
    let log = TestLog::build(20, 10).await;
    let file = proved(&log, 0).await;
    // Record 0 is a start record: nothing was committed.
    assert!(disclose(file, &log.openings, "/amount").is_err());
    std::fs::remove_file(log.openings.join(format!("{:020}.jsonl", 10))).unwrap();
    let file = proved(&log, 15).await;
    assert!(matches!(
        disclose(file, &log.openings, "/amount"),
        Err(ProofError::Openings(_))
    ));
}
