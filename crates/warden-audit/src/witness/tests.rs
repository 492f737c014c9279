//! A witness cosigns checkpoints that extend what it cosigned, tells a client that is
//! behind where it is, and refuses a fork; its cosignatures check, and only its own.

use super::*;
use crate::merkle::consistency_proof;
use crate::testlog::TestLog;

fn witness(log: &TestLog) -> Witness {
    let (signer, _, _) = WitnessSigner::generate("witness.example/w1").unwrap();
    Witness {
        signer,
        logs: vec![log.verifier.clone()],
        state: WitnessState::default(),
    }
}

fn leaves(log: &TestLog) -> Vec<Hash> {
    log.lines
        .iter()
        .map(|l| crate::merkle::leaf_hash(l))
        .collect()
}

fn note(log: &TestLog, size: u64) -> String {
    log.note(size, 1_000 + size, log.root(size), &log.signer)
}

#[tokio::test]
async fn a_witness_cosigns_what_extends_its_view_and_refuses_a_fork() {
    let log = TestLog::build(30, 10).await;
    let mut w = witness(&log);
    let verifier = WitnessVerifier::from_vkey(&w.signer.vkey()).unwrap();
    // First sight: from nothing.
    let line = w
        .add_checkpoint(&add_checkpoint_request(0, &[], &note(&log, 10)), 5)
        .unwrap();
    let cosigned = format!("{}{line}", note(&log, 10));
    assert_eq!(verifier.cosigned(&cosigned), Some(5));
    assert_eq!(
        cosigners(&cosigned, std::slice::from_ref(&verifier)),
        ["witness.example/w1"]
    );
    // The log's own signature is still good on the cosigned note.
    crate::note::open(&cosigned, &log.verifier).unwrap();

    // Behind: told where the witness is; then with the right proof, cosigned.
    let stale = w.add_checkpoint(&add_checkpoint_request(0, &[], &note(&log, 30)), 6);
    assert_eq!(stale, Err(Refusal::Conflict(10)));
    let proof = consistency_proof(&leaves(&log), 10).unwrap();
    w.add_checkpoint(&add_checkpoint_request(10, &proof, &note(&log, 30)), 7)
        .unwrap();
    assert_eq!(w.state.logs[crate::testlog::ORIGIN].size, 30);

    // Another history at a larger size, signed by the same log key: a fork.
    let mut other = TestLog::build(40, 10).await;
    other.signer = log.signer.clone();
    let forked = other.note(40, 9_999, other.root(40), &log.signer);
    let proof = consistency_proof(&leaves(&other), 30).unwrap();
    let refused = w.add_checkpoint(&add_checkpoint_request(30, &proof, &forked), 8);
    assert!(
        matches!(&refused, Err(Refusal::Fork(why)) if why.contains("does not extend")),
        "{refused:?}"
    );
    assert_eq!(refused.unwrap_err().status(), 422);
    assert_eq!(
        w.state.logs[crate::testlog::ORIGIN].size,
        30,
        "nothing changed"
    );
}

#[tokio::test]
async fn strangers_tampered_cosignatures_and_bad_requests_are_refused() {
    let log = TestLog::build(10, 10).await;
    let mut w = witness(&log);
    let stranger = TestLog::build(10, 10).await;
    let refused = w.add_checkpoint(&add_checkpoint_request(0, &[], &note(&stranger, 10)), 1);
    assert_eq!(refused.unwrap_err().status(), 403);
    for bad in ["", "old x\n\nnote", "old 0\nnot-base64!\n\nnote"] {
        assert_eq!(
            w.add_checkpoint(bad, 1).unwrap_err().status(),
            400,
            "{bad:?}"
        );
    }
    let line = w
        .add_checkpoint(&add_checkpoint_request(0, &[], &note(&log, 10)), 2)
        .unwrap();
    let verifier = WitnessVerifier::from_vkey(&w.signer.vkey()).unwrap();
    let other_log_note = format!("{}{line}", note(&log, 10).replace("\n10\n", "\n11\n"));
    assert_eq!(
        verifier.cosigned(&other_log_note),
        None,
        "bound to the checkpoint text"
    );
    let (someone, _, _) = WitnessSigner::generate("witness.example/w1").unwrap();
    let impostor = WitnessVerifier::from_vkey(&someone.vkey()).unwrap();
    assert_eq!(
        impostor.cosigned(&format!("{}{line}", note(&log, 10))),
        None
    );
    // Witness keys are not log keys, and the other way round.
    assert!(WitnessVerifier::from_vkey(&log.signer.vkey()).is_err());
    assert!(crate::note::NoteVerifier::from_vkey(&w.signer.vkey()).is_err());
}
