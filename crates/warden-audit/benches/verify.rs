//! Verification throughput of the auditor's crate on its own, without the proxy:
//! `cargo bench -p warden-audit --bench verify` builds logs of the proxy's typical
//! `tools/call` records (about 1,070 bytes: principal, decision, policy and schema hashes,
//! argument commitments, outcome with the result's hash) and of lean ones (about 520
//! bytes), in a memory store with a signed checkpoint per segment, and verifies each on
//! one thread (a current-thread runtime), as an auditor's laptop would.
//!
//! Prints records/s from the median wall time (the runtime's one thread does all the work);
//! the target is 1,000,000 typical records/s per core. `-- --records N` changes
//! the log's size (default 1,000,000), `-- --repeats N` the runs (default 5).

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::json;
use warden_audit::merkle::{CompactTree, leaf_hash};
use warden_audit::note::Checkpoint;
use warden_audit::record::{
    ArgumentsField, DecisionField, GENESIS_PREV, OutcomeField, PrincipalField, VERSION, hex,
};
use warden_audit::store::{checkpoint_key, segment_key};
use warden_audit::verify::verify;
use warden_audit::{Entry, Kind, NoteSigner, NoteVerifier, Record, Store, commitment};

const ORIGIN: &str = "bench.example/audit";
const PER_SEGMENT: u64 = 10_000;
const HASH: &str = "5f2b8e0c6a1d4f3e9b7a2c8d0e1f4a6b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e2f";

/// A `tools/call` record's entry as the proxy writes it.
fn entry(i: u64, lean: bool) -> Entry {
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

/// A log of `records` records in a memory store: its verifier, the time to verify it at
/// and its size in bytes.
async fn build(records: u64, lean: bool) -> (Store, NoteVerifier, u64, u64) {
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
        if tree.size() - first == PER_SEGMENT || index + 1 == records {
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

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; under `cargo test --benches` a smoke pass checks that
    // every log verifies, so the benchmark cannot rot.
    let full = std::env::args().any(|a| a == "--bench");
    let records = arg("--records", if full { 1_000_000 } else { 20_000 });
    let repeats = arg("--repeats", if full { 5 } else { 1 }).max(1) as usize;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:<24} {:>9} {:>6} {:>10} {:>10} {:>11} {:>7}",
        "log", "records", "B/rec", "best ms", "median ms", "records/s", "MB/s"
    );
    let mut typical = 0.0;
    for (label, lean) in [("typical records", false), ("lean records", true)] {
        let (store, key, at, bytes) = rt.block_on(build(records, lean));
        let mut walls = Vec::new();
        for _ in 0..repeats {
            let start = Instant::now();
            let report = rt.block_on(verify(&store, &key, None, at));
            walls.push(start.elapsed());
            assert_eq!(report.exit_code(), 0, "{label}: {:?}", report.findings);
            assert_eq!(report.records, records);
        }
        walls.sort();
        let wall = walls[repeats / 2];
        let per_s = records as f64 / wall.as_secs_f64();
        println!(
            "{label:<24} {records:>9} {:>6} {:>10.1} {:>10.1} {per_s:>11.0} {:>7.0}",
            bytes / records,
            walls[0].as_secs_f64() * 1e3,
            wall.as_secs_f64() * 1e3,
            bytes as f64 / wall.as_secs_f64() / 1e6,
        );
        if !lean {
            typical = per_s;
        }
    }
    if !full {
        println!("smoke pass: every log verified (cargo bench -p warden-audit for figures)");
        return;
    }
    let verdict = if typical >= 1_000_000.0 {
        "met"
    } else {
        "MISSED"
    };
    println!("target ≥ 1,000,000 typical records/s per core: {verdict} ({typical:.0}/s)");
}
