//! Arbitrary store contents through `audit verify`: objects built from the input, some of
//! them a real log's objects (as they are, or with bytes changed), some under segment or
//! checkpoint keys with the fuzzer's bytes, some under any key. Never a panic, and never a
//! pass (exit 0) unless every object in the store is, byte for byte and under its own key,
//! one the key holder wrote: garbage never verifies.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_warden::audit::merkle::{CompactTree, leaf_hash};
use mcp_warden::audit::note::Checkpoint;
use mcp_warden::audit::record::{GENESIS_PREV, VERSION, hex};
use mcp_warden::audit::store::{checkpoint_key, segment_key};
use mcp_warden::audit::verify::{State, verify};
use mcp_warden::audit::{Entry, Kind, NoteSigner, NoteVerifier, Record, Store};

const ORIGIN: &str = "fuzz.example/audit";

/// A real log of 6 records in segments of 2, a signed checkpoint after each segment.
struct Seed {
    runtime: tokio::runtime::Runtime,
    key: NoteVerifier,
    objects: Vec<(String, Vec<u8>)>,
    /// The newest checkpoint, as an auditor's saved state.
    state: State,
    now_us: u64,
}

fn seed() -> &'static Seed {
    static SEED: OnceLock<Seed> = OnceLock::new();
    SEED.get_or_init(|| {
        let (signer, _, vkey) = NoteSigner::generate(ORIGIN).unwrap();
        let prefix = Default::default();
        let mut tree = CompactTree::new();
        let mut prev = GENESIS_PREV.to_owned();
        let mut objects = Vec::new();
        let mut segment = Vec::new();
        let mut state = None;
        let start = 1_795_000_000_000_000;
        for index in 0..6u64 {
            let mut entry = Entry::new(Kind::Request);
            entry.action = Some("tools/call".to_owned());
            entry.resource = Some(format!("demo__tool{index}"));
            let record = Record {
                v: VERSION,
                origin: ORIGIN.to_owned(),
                index,
                time_us: start + index * 1_000,
                replica: "r0".to_owned(),
                prev: prev.clone(),
                entry,
            };
            let bytes = record.canonical();
            let leaf = leaf_hash(&bytes);
            tree.append(leaf);
            prev = hex(&leaf);
            segment.extend_from_slice(&bytes);
            segment.push(b'\n');
            if index % 2 == 1 {
                let first = index - 1;
                objects.push((
                    segment_key(&prefix, first).to_string(),
                    std::mem::take(&mut segment),
                ));
                let checkpoint = Checkpoint {
                    origin: ORIGIN.to_owned(),
                    size: tree.size(),
                    root: tree.root(),
                    extensions: vec![
                        format!("time {}", start + index * 1_000 + 1),
                        "heartbeat 60".to_owned(),
                    ],
                };
                let note = signer.sign(&checkpoint.to_text()).unwrap();
                state = Some(State::of(&checkpoint, &note));
                objects.push((
                    checkpoint_key(&prefix, tree.size(), start + index * 1_000 + 1).to_string(),
                    note.into_bytes(),
                ));
            }
        }
        Seed {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            key: NoteVerifier::from_vkey(&vkey).unwrap(),
            objects,
            state: state.unwrap(),
            now_us: start + 10_000,
        }
    })
}

/// Reads the input as objects: `[op, a, b, len]` then `len` bytes of body, repeated.
fn objects(seed: &Seed, mut data: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    while let [op, a, b, len, rest @ ..] = data {
        let len = (*len as usize).min(rest.len());
        let (body, next) = rest.split_at(len);
        data = next;
        let (key, bytes) = &seed.objects[*a as usize % seed.objects.len()];
        let (key, bytes) = match op % 5 {
            // A real object as it is.
            0 => (key.clone(), bytes.clone()),
            // A real object with one byte replaced, or the body inserted at `b`.
            1 => {
                let mut bytes = bytes.clone();
                let at = *b as usize * bytes.len() / 256;
                match body.first() {
                    Some(&x) if len == 1 => bytes[at] = x,
                    _ => {
                        bytes.splice(at..at, body.iter().copied());
                    }
                }
                (key.clone(), bytes)
            }
            // The fuzzer's bytes as a segment, or as a checkpoint.
            2 => (segment_key(&Default::default(), u64::from(*b)).to_string(), body.to_vec()),
            3 => (
                checkpoint_key(&Default::default(), u64::from(*b), seed.now_us - 1).to_string(),
                body.to_vec(),
            ),
            // Under any key.
            _ => match std::str::from_utf8(body) {
                Ok(name) if !name.is_empty() => (format!("{name}{a}"), bytes.clone()),
                _ => continue,
            },
        };
        out.insert(key, bytes);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let seed = seed();
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let wanted = objects(seed, data);
    let store = Store::open("memory://", &BTreeMap::new()).unwrap();
    let report = seed.runtime.block_on(async {
        let mut stored = BTreeMap::new();
        for (key, bytes) in &wanted {
            // Keys that are not valid object paths cannot be in a store.
            let Ok(path) = object_store::path::Path::parse(key) else {
                continue;
            };
            if store.create(&path, bytes.clone()).await.is_ok() {
                stored.insert(path.to_string(), bytes.clone());
            }
        }
        let state = (flags & 1 == 1).then_some(&seed.state);
        (verify(&store, &seed.key, state, seed.now_us).await, stored)
    });
    let (report, stored) = report;
    if report.exit_code() == 0 {
        for (key, bytes) in &stored {
            assert!(
                seed.objects.iter().any(|(k, b)| k == key && b == bytes),
                "verified a store holding {key} ({} bytes) that the key holder never wrote: {:?}",
                bytes.len(),
                report.findings
            );
        }
    }
});
