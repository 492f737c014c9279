//! Valid logs for tests of the auditor's side: records in segments with a signed
//! checkpoint after each, in an in-memory store, plus the openings of their arguments —
//! and the raw access tests need to tamper with them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::{Value, json};

use super::commit::{Committed, commit};
use super::merkle::{CompactTree, Hash, leaf_hash};
use super::note::{Checkpoint, NoteSigner, NoteVerifier};
use super::record::{
    ArgumentsField, DecisionField, Entry, GENESIS_PREV, Kind, OutcomeField, PrincipalField, Record,
    VERSION, hex,
};
use super::store::{Store, checkpoint_key, segment_key};

/// The time of record 0.
pub const START_US: u64 = 1_795_000_000_000_000;
/// Records are this far apart.
pub const STEP_US: u64 = 1_000_000;
/// The heartbeat written in the checkpoints.
pub const HEARTBEAT_S: u64 = 60;
pub const ORIGIN: &str = "warden.test/audit";

/// A log in a memory store.
pub struct TestLog {
    pub store: Store,
    pub signer: NoteSigner,
    pub verifier: NoteVerifier,
    /// Canonical bytes of every record.
    pub lines: Vec<Vec<u8>>,
    /// First index of every segment.
    pub segments: Vec<u64>,
    /// `(size, time_us)` of every checkpoint.
    pub checkpoints: Vec<(u64, u64)>,
    /// Where the openings files are (removed on drop).
    pub openings: PathBuf,
    /// Indexes whose record is a `stop` (set before appending them).
    pub stops: Vec<u64>,
    /// Leave out argument commitments (smaller records, about 400 bytes).
    pub compact: bool,
}

impl Drop for TestLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.openings);
    }
}

impl TestLog {
    /// `records` records in segments of `per_segment`, a checkpoint after each segment.
    pub async fn build(records: u64, per_segment: u64) -> TestLog {
        let store = Store::open("memory://", &BTreeMap::new()).unwrap();
        let (signer, _, vkey) = NoteSigner::generate(ORIGIN).unwrap();
        let verifier = NoteVerifier::from_vkey(&vkey).unwrap();
        let openings = std::env::temp_dir().join(format!(
            "warden-openings-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&openings).unwrap();
        let mut log = TestLog {
            store,
            signer,
            verifier,
            lines: Vec::new(),
            segments: Vec::new(),
            checkpoints: Vec::new(),
            openings,
            stops: Vec::new(),
            compact: false,
        };
        let times: Vec<u64> = (0..records).map(|i| START_US + i * STEP_US).collect();
        log.append(&times, per_segment).await;
        log
    }

    /// Appends records at `times`, in segments of `per_segment` with a checkpoint after each.
    pub async fn append(&mut self, times: &[u64], per_segment: u64) {
        for chunk in times.chunks(per_segment.max(1) as usize) {
            let first = self.lines.len() as u64;
            let mut segment = Vec::new();
            let mut openings = Vec::new();
            for (k, &time_us) in chunk.iter().enumerate() {
                let index = first + k as u64;
                let prev = self
                    .lines
                    .last()
                    .map_or(GENESIS_PREV.to_owned(), |l| hex(&leaf_hash(l)));
                let (entry, opening) = entry(index, self.stops.contains(&index));
                let (entry, opening) = if self.compact {
                    (without_arguments(entry), None)
                } else {
                    (entry, opening)
                };
                let record = Record {
                    v: VERSION,
                    origin: ORIGIN.to_owned(),
                    index,
                    time_us,
                    replica: "r1".to_owned(),
                    prev,
                    entry,
                };
                let bytes = record.canonical();
                segment.extend_from_slice(&bytes);
                segment.push(b'\n');
                self.lines.push(bytes);
                if let Some(o) = opening {
                    openings.push(o);
                }
            }
            let text: String = openings.iter().map(|o| format!("{o}\n")).collect();
            std::fs::write(self.openings.join(format!("{first:020}.jsonl")), text).unwrap();
            self.put(&seg(first), segment).await;
            self.segments.push(first);
            let size = self.lines.len() as u64;
            let time = chunk.last().unwrap() + STEP_US / 2;
            self.checkpoint(size, time, self.root(size)).await;
        }
    }

    /// The tree hash of the first `size` records.
    pub fn root(&self, size: u64) -> Hash {
        let mut tree = CompactTree::new();
        for line in &self.lines[..size as usize] {
            tree.append(leaf_hash(line));
        }
        tree.root()
    }

    /// Writes a checkpoint signed by the log's key.
    pub async fn checkpoint(&mut self, size: u64, time_us: u64, root: Hash) {
        let note = self.note(size, time_us, root, &self.signer);
        self.put(&cp(size, time_us), note.into_bytes()).await;
        self.checkpoints.push((size, time_us));
    }

    /// A checkpoint note of this log signed by `signer`.
    pub fn note(&self, size: u64, time_us: u64, root: Hash, signer: &NoteSigner) -> String {
        let body = Checkpoint {
            origin: ORIGIN.to_owned(),
            size,
            root,
            extensions: vec![
                format!("time {time_us}"),
                format!("heartbeat {HEARTBEAT_S}"),
            ],
        };
        signer.sign(&body.to_text()).unwrap()
    }

    /// A moment just after the newest checkpoint.
    pub fn now(&self) -> u64 {
        self.checkpoints
            .iter()
            .map(|c| c.1)
            .max()
            .unwrap_or(START_US)
            + STEP_US
    }

    /// Writes (or overwrites) an object.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) {
        self.store
            .inner
            .put(&Path::from(key), PutPayload::from(bytes))
            .await
            .unwrap();
    }

    /// Reads an object.
    pub async fn get(&self, key: &str) -> Vec<u8> {
        let got = self.store.inner.get(&Path::from(key)).await.unwrap();
        got.bytes().await.unwrap().to_vec()
    }

    /// Deletes an object.
    pub async fn delete(&self, key: &str) {
        self.store.inner.delete(&Path::from(key)).await.unwrap();
    }
}

/// The key of the segment starting at `first`.
pub fn seg(first: u64) -> String {
    segment_key(&Path::default(), first).to_string()
}

/// The key of a checkpoint.
pub fn cp(size: u64, time_us: u64) -> String {
    checkpoint_key(&Path::default(), size, time_us).to_string()
}

/// A varied entry for record `index`: a start record first (a stop where asked), then calls by two principals,
/// every third denied, with committed arguments (and their opening line).
fn entry(index: u64, stop: bool) -> (Entry, Option<Value>) {
    if stop {
        return (Entry::new(Kind::Stop), None);
    }
    if index == 0 {
        let mut entry = Entry::new(Kind::Start);
        entry.detail.insert("version".into(), "test".into());
        return (entry, None);
    }
    let mut entry = Entry::new(Kind::Request);
    let who = if index.is_multiple_of(2) {
        "alice"
    } else {
        "bob"
    };
    entry.request_id = Some(format!("req-{index}"));
    entry.principal = Some(PrincipalField {
        id: who.to_owned(),
        kind: "User".to_owned(),
        roles: vec!["trader".to_owned()],
        tenant: Some("acme".to_owned()),
        issuer: None,
    });
    entry.action = Some("tools/call".to_owned());
    entry.resource = Some(format!(
        "trading__{}",
        ["quote", "order"][index as usize % 2]
    ));
    let allow = !index.is_multiple_of(3);
    entry.decision = Some(DecisionField {
        effect: if allow { "allow" } else { "deny" }.to_owned(),
        policies: vec!["p1".to_owned()],
        errors: Vec::new(),
        shadow: Vec::new(),
        reason: "policy".to_owned(),
    });
    let arguments = json!({"symbol": "ACME", "amount": index});
    let Committed {
        commitments, salts, ..
    } = commit(&arguments);
    entry.arguments = Some(ArgumentsField {
        commitments,
        disclosed: BTreeMap::new(),
    });
    entry.outcome = Some(OutcomeField {
        status: if allow { "ok" } else { "denied" }.to_owned(),
        code: None,
        latency_us: 1_000 + index % 7,
        result_hash: None,
    });
    let b64 = base64::engine::general_purpose::STANDARD;
    let salts: serde_json::Map<String, Value> = salts
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(b64.encode(v))))
        .collect();
    let opening = json!({"index": index, "salts": salts, "arguments": arguments});
    (entry, Some(opening))
}

fn without_arguments(mut entry: Entry) -> Entry {
    entry.arguments = None;
    entry
}

fn rand_suffix() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}
