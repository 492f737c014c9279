//! The tamper matrix: one log, tampered with in every way an attacker with write access to
//! the store could, on a local directory and on S3 (moto, Object-Lock bucket: overwrites
//! add versions and deletes add delete markers, so the current objects change) — each
//! detected by `mcp-warden audit verify` with the right finding and exit code, while the
//! untouched log verifies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_warden::audit::merkle::{CompactTree, leaf_hash};
use mcp_warden::audit::note::{Checkpoint, NoteSigner};
use mcp_warden::audit::record::{GENESIS_PREV, Record, hex};
use mcp_warden::audit::{Audit, AuditSettings, Durability, Entry, Kind};
use serde_json::Value;

use crate::audit::scratch;
use crate::common::*;
use crate::s3::Moto;

const ORIGIN: &str = "test.example/audit";

/// Object key (relative to the log's prefix) -> bytes.
type Objects = BTreeMap<String, Vec<u8>>;

/// Writes a clean log of 30 records (segments of 5) with the real writer; returns its
/// objects and the state directory (signing key and `.pub`).
async fn clean_log() -> (Objects, PathBuf) {
    let (state, store) = (scratch("tamper-state"), scratch("tamper-store"));
    let settings = AuditSettings {
        origin: ORIGIN.to_owned(),
        store: format!("file://{}", store.display()),
        store_options: BTreeMap::new(),
        state_dir: state.clone(),
        signing_key: None,
        replica: "r1".to_owned(),
        durability: Durability::BeforeResponse,
        group_commit: Duration::ZERO,
        segment_records: 5,
        // Sealed by size only (five records each), however slowly the test runs.
        seal_interval: Duration::from_secs(3_600),
        heartbeat: Duration::from_secs(60),
        pseudonym_key: None,
        disclose: BTreeMap::new(),
        object_lock: mcp_warden::audit::ObjectLock::Check,
        witnesses: Vec::new(),
    };
    let audit = Audit::open(&settings).await.unwrap();
    for n in 0..30 {
        let mut e = Entry::new(Kind::Request);
        e.action = Some("tools/call".to_owned());
        e.resource = Some(format!("tool{n}"));
        audit.append(e, None).await.unwrap();
        if n % 5 == 4 {
            // One segment per five records, whatever the timing.
            assert!(audit.flush(Duration::from_secs(10)).await);
        }
    }
    audit.close(Duration::from_secs(10)).await;
    let mut objects = Objects::new();
    for dir in ["segments", "checkpoints"] {
        for e in std::fs::read_dir(store.join(dir)).unwrap() {
            let path = e.unwrap().path();
            let key = format!("{dir}/{}", path.file_name().unwrap().to_str().unwrap());
            objects.insert(key, std::fs::read(&path).unwrap());
        }
    }
    (objects, state)
}

fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn segment(first: u64) -> String {
    format!("segments/{first:020}.jsonl")
}

fn edit_segment(o: &mut Objects, first: u64, f: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let mut l = lines(&o[&segment(first)]);
    f(&mut l);
    o.insert(segment(first), join(&l));
}

fn checkpoint_size(key: &str) -> u64 {
    key.trim_start_matches("checkpoints/")
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A signed checkpoint of `records` (all of them) made now.
fn checkpoint(
    signer: &NoteSigner,
    records: &[Vec<u8>],
    size: usize,
    time_us: u64,
) -> (String, Vec<u8>) {
    let mut tree = CompactTree::new();
    for r in &records[..size] {
        tree.append(leaf_hash(r));
    }
    let body = Checkpoint {
        origin: ORIGIN.to_owned(),
        size: size as u64,
        root: tree.root(),
        extensions: vec![format!("time {time_us}"), "heartbeat 60".to_owned()],
    }
    .to_text();
    (
        format!("checkpoints/{size:020}-{time_us:020}.note"),
        signer.sign(&body).unwrap().into_bytes(),
    )
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Every tampering: (name, tampered objects, extra verify arguments, expected exit code,
/// a finding kind that must be reported). `state` is the auditor's state saved from the
/// clean log.
fn matrix(
    clean: &Objects,
    key: &Path,
    state: &Path,
) -> Vec<(&'static str, Objects, Vec<String>, u8, &'static str)> {
    let with_state = vec!["--state".to_owned(), state.display().to_string()];
    let mut cases = Vec::new();

    let mut o = clean.clone();
    edit_segment(&mut o, 5, |l| {
        let at = l[1].windows(4).position(|w| w == b"tool").unwrap();
        l[1][at] = b'T';
    });
    cases.push(("modify a byte", o, vec![], 1, "chain"));

    let mut o = clean.clone();
    edit_segment(&mut o, 10, |l| {
        l.remove(2);
    });
    cases.push(("delete a record", o, vec![], 1, "index"));

    let mut o = clean.clone();
    edit_segment(&mut o, 10, |l| {
        let copy = l[1].clone();
        l.insert(2, copy);
    });
    cases.push(("insert a record", o, vec![], 1, "index"));

    let mut o = clean.clone();
    edit_segment(&mut o, 15, |l| l.swap(1, 2));
    cases.push(("swap two records", o, vec![], 1, "index"));

    let mut o = clean.clone();
    o.remove(&segment(10));
    cases.push(("delete a whole segment", o, vec![], 1, "gap"));

    // The tail: the last segment and every checkpoint that covers it.
    let mut tail = clean.clone();
    let last = *tail
        .keys()
        .filter_map(|k| k.strip_prefix("segments/"))
        .map(|k| k.trim_end_matches(".jsonl").parse::<u64>().unwrap())
        .collect::<Vec<_>>()
        .iter()
        .max()
        .unwrap();
    tail.remove(&segment(last));
    tail.retain(|k, _| !k.starts_with("checkpoints/") || checkpoint_size(k) <= last);
    cases.push((
        "delete the tail (saved state)",
        tail.clone(),
        with_state.clone(),
        1,
        "truncated",
    ));
    let later = (now_us() / 1_000_000 + 3_600).to_string();
    cases.push((
        "delete the tail (heartbeat)",
        tail,
        vec!["--at".to_owned(), later],
        2,
        "stale",
    ));

    // Rewritten and re-signed by someone without our key (same key name).
    let mut records: Vec<Vec<u8>> = Vec::new();
    for (k, v) in clean {
        if k.starts_with("segments/") {
            records.extend(lines(v));
        }
    }
    let mut prev = GENESIS_PREV.to_owned();
    let mut forged = Vec::new();
    for (i, line) in records.iter().enumerate() {
        let (_, mut r) = Record::parse_canonical(line).unwrap();
        if i == 12 {
            r.entry.resource = Some("innocent".to_owned());
        }
        r.prev = prev.clone();
        let bytes = r.canonical();
        prev = hex(&leaf_hash(&bytes));
        forged.push(bytes);
    }
    let (other, _, _) = NoteSigner::generate(ORIGIN).unwrap();
    let mut o: Objects = clean
        .iter()
        .filter(|(k, _)| !k.starts_with("checkpoints/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for first in (0..forged.len()).step_by(5) {
        o.insert(segment(first as u64), join(&forged[first..first + 5]));
    }
    let (k, v) = checkpoint(&other, &forged, forged.len(), now_us());
    o.insert(k, v);
    cases.push(("re-signed under another key", o, vec![], 1, "signature"));

    let mut o = clean.clone();
    o.insert("segments/notes.txt".to_owned(), b"hello".to_vec());
    cases.push(("inject an extra object", o, vec![], 1, "orphan"));

    // A fork: a second, validly signed checkpoint at an existing size with another root.
    let signer =
        NoteSigner::from_skey(&std::fs::read_to_string(key.with_extension("key")).unwrap())
            .unwrap();
    let mut o = clean.clone();
    let (k, v) = checkpoint(&signer, &forged, 15, now_us());
    o.insert(k, v);
    cases.push(("fork", o, vec![], 1, "fork"));
    cases
}

/// Runs `audit verify --json` and returns (exit code, finding kinds).
async fn verify(store_args: &[String], key: &Path, extra: &[String]) -> (u8, Vec<String>, Value) {
    let out = tokio::process::Command::new(warden_exe())
        .args(["audit", "verify", "--json", "--public-key"])
        .arg(key)
        .args(store_args)
        .args(extra)
        .output()
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let kinds = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect();
    (out.status.code().unwrap() as u8, kinds, report)
}

/// Where a case's objects live and how `verify` reaches them.
trait Target {
    async fn put(&self, case: usize, clean: &Objects, tampered: &Objects) -> Vec<String>;
}

struct Local;

impl Target for Local {
    async fn put(&self, _case: usize, _clean: &Objects, tampered: &Objects) -> Vec<String> {
        let dir = scratch("tamper-case");
        for (k, v) in tampered {
            let path = dir.join(k);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, v).unwrap();
        }
        vec!["--store".to_owned(), format!("file://{}", dir.display())]
    }
}

struct S3<'m> {
    moto: &'m Moto,
    bucket: &'static str,
}

impl S3<'_> {
    fn options(&self) -> BTreeMap<String, String> {
        [
            ("endpoint", self.moto.endpoint.as_str()),
            ("allow_http", "true"),
            ("region", "us-east-1"),
            ("access_key_id", "test"),
            ("secret_access_key", "test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Target for S3<'_> {
    /// Uploads the clean log, then tampers with it through the S3 API.
    async fn put(&self, case: usize, clean: &Objects, tampered: &Objects) -> Vec<String> {
        use object_store::ObjectStoreExt;
        let url = format!("s3://{}/case{case}", self.bucket);
        let store = mcp_warden::audit::Store::open(&url, &self.options()).unwrap();
        let key = |k: &str| object_store::path::Path::from(format!("case{case}/{k}"));
        for (k, v) in clean {
            store.inner.put(&key(k), v.clone().into()).await.unwrap();
        }
        for k in clean.keys().filter(|k| !tampered.contains_key(*k)) {
            store.inner.delete(&key(k)).await.unwrap();
        }
        for (k, v) in tampered {
            if clean.get(k) != Some(v) {
                store.inner.put(&key(k), v.clone().into()).await.unwrap();
            }
        }
        let mut args = vec!["--store".to_owned(), url];
        for (k, v) in self.options() {
            args.push("--store-option".to_owned());
            args.push(format!("{k}={v}"));
        }
        args
    }
}

async fn run_matrix(target: &impl Target) {
    let (clean, state_dir) = clean_log().await;
    let key = state_dir.join("signing.pub");
    let auditor = scratch("auditor").join("state.json");
    // The untouched log verifies, and the auditor keeps its state.
    let args = target.put(0, &clean, &clean).await;
    let (code, kinds, _) = verify(
        &args,
        &key,
        &["--state".to_owned(), auditor.display().to_string()],
    )
    .await;
    assert_eq!((code, kinds.as_slice()), (0, &[][..]), "the untouched log");
    assert!(auditor.exists(), "state saved after a clean verification");
    let (code, _, _) = verify(
        &args,
        &key,
        &["--state".to_owned(), auditor.display().to_string()],
    )
    .await;
    assert_eq!(code, 0, "verifies again against its own state");
    let saved = std::fs::read(&auditor).unwrap();
    for (n, (name, tampered, extra, want_code, want_kind)) in
        matrix(&clean, &key, &auditor).into_iter().enumerate()
    {
        let args = target.put(n + 1, &clean, &tampered).await;
        let (code, kinds, report) = verify(&args, &key, &extra).await;
        assert_eq!(code, want_code, "{name}: {report:#}");
        assert!(
            kinds.iter().any(|k| k == want_kind),
            "{name}: expected a `{want_kind}` finding: {report:#}"
        );
        assert_eq!(
            std::fs::read(&auditor).unwrap(),
            saved,
            "{name}: state untouched"
        );
    }
}

#[tokio::test]
async fn every_tampering_of_a_local_log_is_detected() {
    run_matrix(&Local).await;
}

#[tokio::test]
async fn every_tampering_of_a_log_on_s3_is_detected() {
    let bucket = "tamper";
    let Some(moto) = Moto::start(bucket).await else {
        return;
    };
    run_matrix(&S3 {
        moto: &moto,
        bucket,
    })
    .await;
}

/// The golden vectors in `audit/vectors/`: a clean log and each tampering of it, with the
/// verdict every verifier of audit/FORMAT.md must reach. `MCP_WARDEN_WRITE_VECTORS=1`
/// rewrites them from a fresh log.
fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("audit/vectors")
}

#[tokio::test]
async fn the_golden_vectors_verify_as_recorded() {
    let dir = vectors_dir();
    if std::env::var("MCP_WARDEN_WRITE_VECTORS").as_deref() == Ok("1") {
        write_vectors(&dir).await;
    }
    let key = dir.join("key.pub");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.json").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "vectors present: {}", cases.len());
    for case in cases {
        let expected: Value =
            serde_json::from_slice(&std::fs::read(case.join("expected.json")).unwrap()).unwrap();
        let mut args = vec![
            "--store".to_owned(),
            format!("file://{}", case.join("store").display()),
            "--at".to_owned(),
            expected["at"].as_u64().unwrap().to_string(),
        ];
        if case.join("state.json").exists() {
            // A copy: verification may update the state, the vector must not change.
            let copy = scratch("vector-state").join("state.json");
            std::fs::copy(case.join("state.json"), &copy).unwrap();
            args.extend(["--state".to_owned(), copy.display().to_string()]);
        }
        let (code, kinds, report) = verify(&args, &key, &[]).await;
        assert_eq!(
            u64::from(code),
            expected["exit_code"].as_u64().unwrap(),
            "{}: {report:#}",
            case.display()
        );
        if let Some(kind) = expected["finding"].as_str() {
            assert!(
                kinds.iter().any(|k| k == kind),
                "{}: {report:#}",
                case.display()
            );
        }
    }
}

async fn write_vectors(dir: &Path) {
    let (clean, state_dir) = clean_log().await;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join("key.pub");
    std::fs::copy(state_dir.join("signing.pub"), &key).unwrap();
    let newest = clean
        .keys()
        .filter(|k| k.starts_with("checkpoints/"))
        .filter_map(|k| {
            k.trim_end_matches(".note")
                .rsplit('-')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap();
    // Judged one second after the newest checkpoint: fresh, whenever the vectors run.
    let at = newest / 1_000_000 + 1;
    let write = |name: &str, objects: &Objects, code: u8, finding: Option<&str>, at: u64| {
        let case = dir.join(name);
        for (k, v) in objects {
            let path = case.join("store").join(k);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, v).unwrap();
        }
        let expected = serde_json::json!({"exit_code": code, "finding": finding, "at": at});
        std::fs::write(
            case.join("expected.json"),
            serde_json::to_vec_pretty(&expected).unwrap(),
        )
        .unwrap();
        case
    };
    let clean_case = write("00-clean", &clean, 0, None, at);
    // The auditor's state after verifying the clean log, for the truncation vector.
    let state = scratch("vector-state").join("state.json");
    let args = vec![
        "--store".to_owned(),
        format!("file://{}", clean_case.join("store").display()),
        "--at".to_owned(),
        at.to_string(),
        "--state".to_owned(),
        state.display().to_string(),
    ];
    assert_eq!(verify(&args, &key, &[]).await.0, 0);
    for (n, (name, objects, extra, code, finding)) in
        matrix(&clean, &state_dir.join("signing.pub"), &state)
            .into_iter()
            .enumerate()
    {
        let slug: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let when = extra.iter().position(|a| a == "--at").map_or(at, |i| {
            extra[i + 1].parse::<u64>().unwrap() - (now_us() / 1_000_000) + at
        });
        let case = write(
            &format!("{:02}-{slug}", n + 1),
            &objects,
            code,
            Some(finding),
            when,
        );
        if extra.iter().any(|a| a == "--state") {
            std::fs::copy(&state, case.join("state.json")).unwrap();
        }
    }
}
