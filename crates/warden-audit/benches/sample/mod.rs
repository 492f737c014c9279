//! The proxy's typical `tools/call` records, and logs of them built without the writer,
//! for the benchmarks: the auditor's crate's (`verify.rs`) and the proxy's audit harness
//! (`benches/audit.rs`, which includes this file by path).

use std::collections::BTreeMap;

use serde_json::json;
use warden_audit::merkle::{CompactTree, leaf_hash};
use warden_audit::note::Checkpoint;
use warden_audit::record::{
    ArgumentsField, DecisionField, GENESIS_PREV, OutcomeField, PrincipalField, VERSION, hex,
};
use warden_audit::store::{checkpoint_key, segment_key};
use warden_audit::{Entry, Kind, NoteSigner, NoteVerifier, Record, Store, commitment};

pub const ORIGIN: &str = "bench.example/audit";
pub const HASH: &str = "5f2b8e0c6a1d4f3e9b7a2c8d0e1f4a6b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e2f";

/// A `tools/call` record's entry as the proxy writes it.
pub fn entry(i: u64, lean: bool) -> Entry {
    let mut e = Entry::new(Kind::Request);
    e.request_id = Some(i.to_string());
    e.principal = Some(PrincipalField {
        id: format!("user-{}@example.com", i % 50),
        kind: "User".to_owned(),
        roles: vec!["dev".to_owned()],
        tenant: Some("acme".to_owned()),
        issuer: Some("https://idp.example.com/".to_owned()),
    });
    e.action = Some("tools/call".to_owned());
    e.resource = Some("demo__echo".to_owned());
    e.decision = Some(DecisionField {
        effect: "allow".to_owned(),
        policies: vec!["echo".to_owned()],
        errors: Vec::new(),
        shadow: Vec::new(),
        reason: "allowed by policy `echo`".to_owned(),
    });
    e.outcome = Some(OutcomeField {
        status: "ok".to_owned(),
        code: None,
        latency_us: 400 + i % 300,
        result_hash: (!lean).then(|| HASH.to_owned()),
    });
    if !lean {
        e.session = Some("4c1f0a9e8b7d4e2fa1c3b5d7e9f01234".to_owned());
        e.policy_hash = Some(format!("sha256:{HASH}"));
        e.schema_hash = Some(format!("sha256:{HASH}"));
        let args = json!({"text": "benchmark payload", "count": i % 100});
        let salt = [i as u8; 32];
        let commitments = [
            ("", args.clone()),
            ("/count", args["count"].clone()),
            ("/text", args["text"].clone()),
        ]
        .into_iter()
        .map(|(path, value)| (path.to_owned(), hex(&commitment(path, &value, &salt))))
        .collect();
        e.arguments = Some(ArgumentsField {
            commitments,
            disclosed: BTreeMap::new(),
        });
    }
    e
}

/// A log of `records` records in a memory store, a segment of `per_segment` records and a
/// signed checkpoint after each: its verifier, the time to verify it at and its size in
/// bytes. Byte for byte what the writer would write for these entries.
pub async fn build(records: u64, per_segment: u64, lean: bool) -> (Store, NoteVerifier, u64, u64) {
    let store = Store::open("memory://", &BTreeMap::new()).unwrap();
    let (signer, _, vkey) = NoteSigner::generate(ORIGIN).unwrap();
    let verifier = NoteVerifier::from_vkey(&vkey).unwrap();
    let templates: Vec<Entry> = (0..64).map(|i| entry(i, lean)).collect();
    let base = 1_795_000_000_000_000;
    let (mut tree, mut prev) = (CompactTree::new(), GENESIS_PREV.to_owned());
    let (mut segment, mut first, mut total) = (Vec::new(), 0, 0);
    for index in 0..records {
        let mut e = templates[(index % 64) as usize].clone();
        e.request_id = Some(index.to_string());
        let record = Record {
            v: VERSION,
            origin: ORIGIN.to_owned(),
            index,
            time_us: base + index,
            replica: "r0".to_owned(),
            prev,
            entry: e,
        };
        let bytes = record.canonical();
        let leaf = leaf_hash(&bytes);
        tree.append(leaf);
        prev = hex(&leaf);
        segment.extend_from_slice(&bytes);
        segment.push(b'\n');
        total += bytes.len() as u64 + 1;
        if tree.size() - first == per_segment || index + 1 == records {
            let segment = std::mem::take(&mut segment);
            store
                .create(&segment_key(&store.prefix, first), segment)
                .await
                .unwrap();
            let time_us = base + index + 1;
            let body = Checkpoint {
                origin: ORIGIN.to_owned(),
                size: tree.size(),
                root: tree.root(),
                extensions: vec![format!("time {time_us}"), "heartbeat 60".to_owned()],
            };
            let note = signer.sign(&body.to_text()).unwrap();
            let key = checkpoint_key(&store.prefix, tree.size(), time_us);
            store.create(&key, note.into_bytes()).await.unwrap();
            first = tree.size();
        }
    }
    (store, verifier, base + records, total)
}
