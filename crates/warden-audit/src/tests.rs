//! The writer against a real directory store: sealing and uploading, the chain across a
//! restart, a second writer, failing closed, and WAL files written over once uploaded.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::merkle::{CompactTree, leaf_hash};
use super::note::{Checkpoint, NoteVerifier, open};
use super::record::{GENESIS_PREV, Record, hex};
use super::{Audit, AuditError, AuditSettings, Durability, Entry, Kind};

/// A fresh directory under the system's temporary directory, removed when dropped.
pub(crate) fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!(
        "mcp-warden-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// A test's directory: a path while it lives, gone once dropped.
pub(crate) struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn settings(state: &std::path::Path, store: &std::path::Path) -> AuditSettings {
    AuditSettings {
        origin: "test.example/audit".to_owned(),
        store: format!("file://{}", store.display()),
        store_options: BTreeMap::new(),
        state_dir: state.to_owned(),
        signing_key: None,
        replica: "r1".to_owned(),
        durability: Durability::BeforeResponse,
        group_commit: Duration::from_millis(1),
        segment_records: 4,
        seal_interval: Duration::from_millis(50),
        heartbeat: Duration::from_secs(60),
        pseudonym_key: None,
        disclose: BTreeMap::new(),
        object_lock: super::ObjectLock::Check,
        witnesses: Vec::new(),
    }
}

fn request(n: u64) -> Entry {
    let mut e = Entry::new(Kind::Request);
    e.action = Some("tools/call".to_owned());
    e.resource = Some(format!("tool{n}"));
    e
}

/// Every record in the store, in order, with the newest checkpoint's body.
fn read_store(store: &std::path::Path, key: &str) -> (Vec<Record>, Vec<Vec<u8>>, Checkpoint) {
    let mut segments: Vec<_> = std::fs::read_dir(store.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    let mut records = Vec::new();
    let mut lines = Vec::new();
    for s in segments {
        let meta = std::fs::metadata(&s).unwrap();
        assert!(meta.permissions().readonly(), "{} is writable", s.display());
        for line in std::fs::read(&s).unwrap().split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            records.push(Record::parse_canonical(line).unwrap().1);
            lines.push(line.to_vec());
        }
    }
    let mut checkpoints: Vec<_> = std::fs::read_dir(store.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    checkpoints.sort();
    let newest = std::fs::read_to_string(checkpoints.last().unwrap()).unwrap();
    let verifier = NoteVerifier::from_vkey(key).unwrap();
    let body = open(&newest, &verifier).unwrap();
    (records, lines, Checkpoint::parse(&body).unwrap())
}

fn assert_chained(records: &[Record], lines: &[Vec<u8>], checkpoint: &Checkpoint) {
    let mut prev = GENESIS_PREV.to_owned();
    let mut tree = CompactTree::new();
    for (i, (r, line)) in records.iter().zip(lines).enumerate() {
        assert_eq!(r.index, i as u64);
        assert_eq!(r.prev, prev, "record {i}");
        let leaf = leaf_hash(line);
        prev = hex(&leaf);
        tree.append(leaf);
    }
    assert_eq!(checkpoint.size, records.len() as u64);
    assert_eq!(checkpoint.root, tree.root());
}

#[tokio::test]
async fn records_are_sealed_uploaded_and_chained() {
    let (state, store) = (scratch("state"), scratch("store"));
    let audit = Audit::open(&settings(&state, &store)).await.unwrap();
    for n in 0..10 {
        let index = audit.append(request(n), None).await.unwrap();
        assert_eq!(index, n);
    }
    assert!(audit.flush(Duration::from_secs(10)).await);
    let (records, lines, checkpoint) = read_store(&store, audit.verifier_key());
    assert_eq!(records.len(), 10);
    assert_chained(&records, &lines, &checkpoint);
    // Segments hold at most `segment_records` records.
    let count = std::fs::read_dir(store.join("segments")).unwrap().count();
    assert!(count >= 3, "{count} segments");
    // Nothing left to upload: the WAL directory holds only the open file and the spare.
    let mut wal: Vec<_> = std::fs::read_dir(state.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    wal.sort();
    assert_eq!(wal, ["00000000000000000010.wal", "spare"]);
    audit.close(Duration::from_secs(5)).await;
}

/// Waits (up to 5 s) for the spare WAL file the uploader writes ahead at startup, off the
/// writer's thread; returns its path.
async fn spare_written(state: &std::path::Path) -> PathBuf {
    let spare = super::wal::spare_path(state);
    for _ in 0..500 {
        if spare.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    spare
}

/// An uploaded WAL file is written over by a later one (no metadata to sync per batch),
/// and a segment holds only its records, not the older bytes after them.
#[tokio::test]
async fn uploaded_wal_files_are_written_over_and_segments_hold_only_records() {
    let (state, store) = (scratch("state"), scratch("store"));
    let audit = Audit::open(&settings(&state, &store)).await.unwrap();
    let file = |first: u64| super::wal::wal_path(&state, first);
    // The file opened at startup was written ahead with zeros, and so is a spare for the
    // first seal (by the uploader, off the writer's thread: waited for here).
    assert_eq!(
        std::fs::metadata(file(0)).unwrap().len(),
        super::wal::PREALLOCATE
    );
    let spare = spare_written(&state).await;
    assert_eq!(
        std::fs::metadata(&spare).unwrap().len(),
        super::wal::PREALLOCATE
    );
    for n in 0..8 {
        audit.append(request(n), None).await.unwrap();
        if n % 4 == 3 {
            // Segments of 4: sealed now; flush waits for the upload (and the recycling).
            assert!(audit.flush(Duration::from_secs(10)).await);
        }
        if n == 3 {
            // The first seal started the next file on the spare written ahead.
            let next = std::fs::read(file(4)).unwrap();
            assert_eq!(next.len() as u64, super::wal::PREALLOCATE);
            assert!(next.iter().all(|&b| b == 0));
        }
    }
    // The startup file, uploaded, became the spare, and record 8 is written over it.
    audit.append(request(8), None).await.unwrap();
    let reused = std::fs::read(file(8)).unwrap();
    assert_eq!(reused.len() as u64, super::wal::PREALLOCATE);
    let first_line = &reused[..reused.iter().position(|&b| b == b'\n').unwrap()];
    assert_eq!(Record::parse_canonical(first_line).unwrap().1.index, 8);
    assert!(audit.flush(Duration::from_secs(10)).await);
    let (records, lines, checkpoint) = read_store(&store, audit.verifier_key());
    assert_eq!(records.len(), 9);
    assert_chained(&records, &lines, &checkpoint);
    audit.close(Duration::from_secs(5)).await;
}

/// Concurrent requests on a multi-threaded runtime share fsyncs: each append returns only
/// once its record is durable, every index is given once, and the chain holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_durable_when_answered() {
    let (state, store) = (scratch("state"), scratch("store"));
    let mut s = settings(&state, &store);
    s.segment_records = 64;
    let audit = Audit::open(&s).await.unwrap();
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let audit = audit.clone();
            tokio::spawn(async move {
                let mut indices = Vec::new();
                for n in 0..100 {
                    let index = audit.append(request(t * 100 + n), None).await.unwrap();
                    let durable = audit.health.durable.load(Ordering::Acquire);
                    assert!(
                        durable > index,
                        "record {index} returned before it was durable"
                    );
                    indices.push(index);
                }
                indices
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (0..800).collect::<Vec<u64>>());
    assert!(audit.flush(Duration::from_secs(10)).await);
    let (records, lines, checkpoint) = read_store(&store, audit.verifier_key());
    assert_eq!(records.len(), 800);
    assert_chained(&records, &lines, &checkpoint);
    audit.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_restart_continues_the_chain() {
    let (state, store) = (scratch("state"), scratch("store"));
    for round in 0..2 {
        let audit = Audit::open(&settings(&state, &store)).await.unwrap();
        for n in 0..5 {
            let index = audit.append(request(n), None).await.unwrap();
            assert_eq!(index, round * 5 + n);
        }
        audit.close(Duration::from_secs(5)).await;
    }
    let key = std::fs::read_to_string(state.join("signing.pub")).unwrap();
    let (records, lines, checkpoint) = read_store(&store, key.trim());
    assert_eq!(records.len(), 10);
    assert_chained(&records, &lines, &checkpoint);
}

#[tokio::test]
async fn a_lost_state_directory_continues_from_the_store() {
    let store = scratch("store");
    let first = scratch("state");
    let audit = Audit::open(&settings(&first, &store)).await.unwrap();
    for n in 0..3 {
        audit.append(request(n), None).await.unwrap();
    }
    audit.close(Duration::from_secs(5)).await;
    let second = scratch("state");
    let mut s = settings(&second, &store);
    s.signing_key = Some(first.join("signing.key"));
    let audit = Audit::open(&s).await.unwrap();
    assert_eq!(audit.append(request(3), None).await.unwrap(), 3);
    audit.close(Duration::from_secs(5)).await;
    let key = std::fs::read_to_string(first.join("signing.pub")).unwrap();
    let (records, lines, checkpoint) = read_store(&store, key.trim());
    assert_chained(&records, &lines, &checkpoint);
}

#[tokio::test]
async fn a_second_writer_is_detected_and_traffic_refused() {
    let store = scratch("store");
    let (a_dir, b_dir) = (scratch("state"), scratch("state"));
    let a = Audit::open(&settings(&a_dir, &store)).await.unwrap();
    let mut sb = settings(&b_dir, &store);
    sb.signing_key = Some(a_dir.join("signing.key"));
    let b = Audit::open(&sb).await.unwrap();
    a.append(request(1), None).await.unwrap();
    assert!(a.flush(Duration::from_secs(10)).await);
    b.append(request(2), None).await.unwrap();
    assert!(!b.flush(Duration::from_secs(2)).await);
    assert!(matches!(b.ready(), Err(AuditError::SecondWriter)));
    assert!(matches!(
        b.append(request(3), None).await,
        Err(AuditError::SecondWriter)
    ));
    a.close(Duration::from_secs(5)).await;
    b.close(Duration::from_secs(1)).await;
}

/// A create-only put that finds the key taken: the same bytes are a retry after a crash
/// (success, the object untouched), other bytes a second writer; on a local directory and
/// in memory alike.
#[tokio::test]
async fn a_create_finding_its_own_bytes_succeeds_and_other_bytes_conflict() {
    use object_store::ObjectStoreExt;
    let dir = scratch("store");
    let file_url = url::Url::from_directory_path(&*dir).unwrap().to_string();
    for url in [file_url.as_str(), "memory://"] {
        let store = super::store::Store::open(url, &BTreeMap::new()).unwrap();
        let key = object_store::path::Path::from("log/seg/000000000000");
        let segment = vec![7u8; 3 * 1024 * 1024];
        store.create(&key, segment.clone()).await.unwrap();
        store.create(&key, segment.clone()).await.unwrap();
        let mut other = segment.clone();
        other[1024 * 1024] = 8;
        let conflict = store.create(&key, other).await;
        assert!(
            matches!(conflict, Err(super::store::StoreError::Conflict { .. })),
            "{url}: {conflict:?}"
        );
        let kept = store.inner.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(kept.as_ref(), segment.as_slice(), "{url}");
    }
}

/// A WAL file removed or replaced behind the proxy's back (once, another process sharing
/// the state directory did): the record written into it is not acknowledged, and the log
/// refuses traffic instead of serving unrecorded.
#[tokio::test]
async fn a_wal_file_removed_or_replaced_behind_the_writer_fails_closed() {
    for replaced in [false, true] {
        let (state, store) = (scratch("state"), scratch("store"));
        let mut s = settings(&state, &store);
        s.seal_interval = Duration::from_secs(3600);
        let audit = Audit::open(&s).await.unwrap();
        audit.append(request(0), None).await.unwrap();
        let wal = super::wal::wal_path(&state, 0);
        if replaced {
            let other = state.join("wal").join("other");
            std::fs::copy(&wal, &other).unwrap();
            std::fs::rename(&other, &wal).unwrap();
        } else {
            std::fs::remove_file(&wal).unwrap();
        }
        assert!(
            matches!(
                audit.append(request(1), None).await,
                Err(AuditError::WalFailed)
            ),
            "replaced: {replaced}"
        );
        assert!(matches!(audit.ready(), Err(AuditError::WalFailed)));
        audit.close(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn an_unwritable_wal_fails_closed() {
    let (state, store) = (scratch("state"), scratch("store"));
    let audit: Arc<Audit> = Audit::open(&settings(&state, &store)).await.unwrap();
    audit.append(request(0), None).await.unwrap();
    // The next WAL file cannot be created: sealing fails and the log refuses records. (The
    // spare written at startup first: a file created while the directory is removed
    // would keep it from being removed.)
    spare_written(&state).await;
    std::fs::remove_dir_all(state.join("wal")).unwrap();
    let _ = audit.append(request(1), None).await;
    let _ = audit.flush(Duration::from_millis(200)).await;
    assert!(matches!(audit.ready(), Err(AuditError::WalFailed)));
    assert!(matches!(
        audit.append(request(2), None).await,
        Err(AuditError::WalFailed)
    ));
    audit.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn async_durability_returns_before_the_fsync_and_still_records() {
    let (state, store) = (scratch("state"), scratch("store"));
    let mut s = settings(&state, &store);
    s.durability = Durability::Async;
    let audit = Audit::open(&s).await.unwrap();
    for n in 0..20 {
        audit.append(request(n), None).await.unwrap();
    }
    assert!(audit.flush(Duration::from_secs(10)).await);
    let (records, lines, checkpoint) = read_store(&store, audit.verifier_key());
    assert_eq!(records.len(), 20);
    assert_chained(&records, &lines, &checkpoint);
    audit.close(Duration::from_secs(5)).await;
}

/// `async` records become durable within the group-commit window (plus the fsync), not at
/// the next seal: here the seal is an hour away.
#[tokio::test]
async fn async_records_are_durable_within_the_group_commit_window() {
    let (state, store) = (scratch("state"), scratch("store"));
    let mut s = settings(&state, &store);
    s.durability = Durability::Async;
    s.group_commit = Duration::from_millis(2);
    s.seal_interval = Duration::from_secs(3_600);
    s.segment_records = 1_000;
    let audit = Audit::open(&s).await.unwrap();
    for n in 0..20 {
        audit.append(request(n), None).await.unwrap();
    }
    let waited = std::time::Instant::now();
    while audit.health.durable.load(Ordering::Acquire) < 20 {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "async records were not made durable"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let lines = std::fs::read(super::wal::wal_path(&state, 0)).unwrap();
    assert_eq!(lines.iter().filter(|&&b| b == b'\n').count(), 20);
    audit.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_idle_log_still_writes_heartbeat_checkpoints() {
    let (state, store) = (scratch("state"), scratch("store"));
    let mut s = settings(&state, &store);
    s.heartbeat = Duration::from_secs(1);
    let audit = Audit::open(&s).await.unwrap();
    audit.append(request(0), None).await.unwrap();
    assert!(audit.flush(Duration::from_secs(5)).await);
    let count = || {
        std::fs::read_dir(store.join("checkpoints"))
            .unwrap()
            .count()
    };
    let before = count();
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    assert!(count() >= before + 2, "{before} -> {}", count());
    let (_, _, newest) = read_store(&store, audit.verifier_key());
    assert_eq!(newest.size, 1, "heartbeats commit to the same records");
    assert!(newest.extensions.iter().any(|e| e == "heartbeat 1"));
    audit.close(Duration::from_secs(5)).await;
}
