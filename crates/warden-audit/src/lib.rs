//! The tamper-evident audit log of mcp-warden: one record per request (and per start, stop
//! and policy change), chained and folded into an RFC 6962 Merkle tree, sealed into
//! segments on write-once object storage with signed checkpoints. `audit/FORMAT.md` is the
//! byte-level contract; this crate is the writer, [`verify`] the auditor's side, and (with
//! the `cli` feature) the auditor's commands, which the `warden-audit` binary runs on
//! their own. It depends on nothing of the proxy: records hold plain data.
//!
//! The write path, in order:
//!
//! ```text
//! Audit::append -> queue -> writer thread (number, chain, WAL + one fsync per batch) -> caller
//!               -> seal (≤ seal_interval or segment_records) -> uploader task
//!                  (segment put, create-only -> signed checkpoint -> tree.json
//!                   -> the WAL file becomes the spare the next seal writes over)
//! ```
//!
//! `durability = "before-response"` makes the caller wait for the fsync of its batch;
//! `"async"` returns once the record is queued and makes it durable within one fsync.

/// `println!` that ends quietly when the reader went away (see `cli::output`).
#[cfg(feature = "cli")]
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::output::line(format_args!($($t)*)) };
}

/// `eprintln!` that never panics (see `cli::output`).
#[cfg(feature = "cli")]
macro_rules! err {
    ($($t:tt)*) => { $crate::cli::output::error_line(format_args!($($t)*)) };
}

#[cfg(feature = "cli")]
pub mod cli;
mod commit;
pub mod consistency;
pub mod cosign;
pub mod entry;
pub mod files;
pub mod follow;
pub mod jcs;
pub mod lock;
pub mod merkle;
pub mod note;
mod owner;
pub mod proof;
mod rebuild;
pub mod record;
mod sequencer;
pub mod show;
pub mod siem;
pub mod store;
#[cfg(test)]
pub(crate) mod testlog;
mod uploader;
pub mod verify;
mod wal;
pub mod witness;
mod writer;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

pub use commit::{MAX_LEAVES, commitment, lookup};
pub use entry::{EntryBuilder, Pseudonyms, pseudonym, read_pseudonym_key};
pub use note::{NoteSigner, NoteVerifier};
pub use record::{Entry, Kind, Record};
pub use store::Store;

use sequencer::{Msg, Pending, Sequencer};
use uploader::Uploader;
use writer::Writer;

/// When a response may leave relative to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Only after the record is durable in the WAL (the default).
    BeforeResponse,
    /// At once; the record is durable within the group-commit window and one fsync.
    Async,
}

/// The validated `[audit]` section.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    pub origin: String,
    pub store: String,
    pub store_options: BTreeMap<String, String>,
    /// WAL, `tree.json`, openings and (by default) the signing key.
    pub state_dir: PathBuf,
    /// A C2SP signer key file; `None` generates `signing.key` in the state directory.
    pub signing_key: Option<PathBuf>,
    pub replica: String,
    pub durability: Durability,
    /// `async` only: how long a record may wait for others before their one fsync.
    pub group_commit: Duration,
    pub segment_records: u64,
    pub seal_interval: Duration,
    pub heartbeat: Duration,
    /// A key file: principal ids are recorded as keyed hashes.
    pub pseudonym_key: Option<PathBuf>,
    /// Argument paths recorded in clear, by exposed tool name (`*`: every tool).
    pub disclose: BTreeMap<String, Vec<String>>,
    /// What to do about an S3 bucket without Object Lock.
    pub object_lock: ObjectLock,
    /// Witnesses asked to cosign each checkpoint (none: not witnessed).
    pub witnesses: Vec<cosign::WitnessSettings>,
}

/// The startup check of an S3 bucket's Object Lock configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectLock {
    /// Refuse to start unless Object Lock is on with compliance-mode default retention.
    Require,
    /// Warn when it is not.
    Check,
    Off,
}

/// Shared state of the writer, read on every request.
#[derive(Debug)]
pub(crate) struct Health {
    pub wal_ok: AtomicBool,
    pub store_ok: AtomicBool,
    pub conflict: AtomicBool,
    /// Records durable in the WAL.
    pub durable: AtomicU64,
    /// Failed writes to the store (segments and checkpoints).
    pub upload_errors: AtomicU64,
    /// When the last checkpoint reached the store (Unix µs; 0: none yet).
    pub checkpoint_at_us: AtomicU64,
}

impl Health {
    /// A log that works, with `durable` records in its WAL.
    pub fn new(durable: u64) -> Health {
        Health {
            wal_ok: AtomicBool::new(true),
            store_ok: AtomicBool::new(true),
            conflict: AtomicBool::new(false),
            durable: AtomicU64::new(durable),
            upload_errors: AtomicU64::new(0),
            checkpoint_at_us: AtomicU64::new(0),
        }
    }
}

/// The log's state, for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct AuditStats {
    /// Records durable in the local write-ahead log.
    pub durable: u64,
    /// Records the object store holds.
    pub stored: u64,
    pub upload_errors: u64,
    /// When the last checkpoint reached the store (Unix µs), if one did.
    pub checkpoint_at_us: Option<u64>,
}

/// Why a record could not be written, or the log cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("the audit log cannot be written; requests are refused until it can")]
    WalFailed,
    #[error("another writer is using the audit log; requests are refused")]
    SecondWriter,
    #[error("the audit log is closed")]
    Closed,
    #[error("audit log: {0}")]
    Open(String),
}

/// The writer's handle.
pub struct Audit {
    writer: Arc<Writer>,
    health: Arc<Health>,
    durability: Durability,
    stored: watch::Receiver<u64>,
    /// The writer thread.
    background: Mutex<Option<std::thread::JoinHandle<()>>>,
    uploader: Mutex<Option<tokio::task::JoinHandle<()>>>,
    entries: EntryBuilder,
    origin: String,
    replica: String,
    vkey: String,
}

impl Drop for Audit {
    /// A log dropped without [`Audit::close`] still commits and seals what it holds (its
    /// writer thread finishes on its own).
    fn drop(&mut self) {
        self.writer.close();
    }
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("origin", &self.origin)
            .finish()
    }
}

impl Audit {
    /// Opens the log: loads or creates the signing key, finds where the log continues
    /// (`tree.json`, else the store), replays the WAL, and starts the sequencer and the
    /// uploader. Must run inside a tokio runtime.
    pub async fn open(settings: &AuditSettings) -> Result<Arc<Audit>, AuditError> {
        let dir = settings.state_dir.clone();
        for sub in ["wal", "openings"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| AuditError::Open(format!("{}: {e}", dir.join(sub).display())))?;
        }
        // Before anything in the directory is read: a second process is refused here.
        let owner = owner::Ownership::take(&dir).map_err(AuditError::Open)?;
        let signer = load_signer(settings, &dir)?;
        let store = Store::open(&settings.store, &settings.store_options)
            .map_err(|e| AuditError::Open(e.to_string()))?;
        check_lock(&store, settings.object_lock).await?;
        let state = match wal::TreeState::load(&dir).map_err(AuditError::Open)? {
            Some(state) => state,
            None => rebuild::from_store(&store, &settings.origin)
                .await
                .map_err(AuditError::Open)?,
        };
        let stored_size = state.size;
        let head = (state.size, state.tree().map_err(AuditError::Open)?.root());
        let recovered = wal::recover(&dir, &state).map_err(AuditError::Open)?;
        if recovered.replayed > 0 {
            tracing::info!(
                records = recovered.replayed,
                "replayed the audit write-ahead log"
            );
        }
        match rebuild::newest_checkpoint_size(&store).await {
            Ok(Some(size)) if size > recovered.tree.size() => {
                return Err(AuditError::Open(format!(
                    "the audit store holds a checkpoint of {size} records but this replica knows \
                     only {}: another writer is using this log (or {} is stale)",
                    recovered.tree.size(),
                    dir.display()
                )));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not list the audit store at startup; continuing on the write-ahead log")
            }
        }
        let health = Arc::new(Health::new(recovered.tree.size()));
        let active = wal::ActiveWal::create(&dir, recovered.tree.size(), wal::PREALLOCATE)
            .map_err(|e| AuditError::Open(format!("{}: {e}", dir.display())))?;
        let (uploads_tx, uploads_rx) = mpsc::unbounded_channel();
        let (stored_tx, stored_rx) = watch::channel(stored_size);
        let vkey = signer.vkey();
        let store_for_witnesses = store.clone();
        let uploader = Uploader {
            store,
            signer,
            origin: settings.origin.clone(),
            dir: dir.clone(),
            heartbeat: settings.heartbeat,
            health: health.clone(),
            head,
            stored: stored_tx,
            _owner: owner.clone(),
            cosigner: cosign::spawn(store_for_witnesses, &settings.witnesses),
        };
        let uploader = tokio::spawn(uploader.run(uploads_rx, recovered.sealed));
        let sequencer = Sequencer {
            dir: dir.clone(),
            tree: recovered.tree,
            prev: recovered.prev,
            last_time_us: recovered.last_time_us,
            wal: active,
            segment_records: settings.segment_records.max(1),
            seal_interval: settings.seal_interval,
            uploads: uploads_tx,
            health: health.clone(),
            openings_file: None,
            opened: std::time::Instant::now(),
            buffer: Vec::with_capacity(64 * 1024),
            openings: Vec::new(),
            _owner: owner,
        };
        let window = match settings.durability {
            Durability::Async => settings.group_commit,
            Durability::BeforeResponse => Duration::ZERO,
        };
        let writer = Arc::new(Writer::new(window));
        let thread_writer = writer.clone();
        let thread = std::thread::Builder::new()
            .name("audit-writer".to_owned())
            .spawn(move || thread_writer.run(sequencer))
            .map_err(|e| AuditError::Open(e.to_string()))?;
        Ok(Arc::new(Audit {
            writer,
            health,
            durability: settings.durability,
            stored: stored_rx,
            background: Mutex::new(Some(thread)),
            uploader: Mutex::new(Some(uploader)),
            entries: EntryBuilder::new(settings)?,
            origin: settings.origin.clone(),
            replica: settings.replica.clone(),
            vkey,
        }))
    }

    /// Whether requests may be served: fails closed when the WAL cannot be written or
    /// another writer was detected.
    pub fn ready(&self) -> Result<(), AuditError> {
        if self.health.conflict.load(Ordering::Acquire) {
            Err(AuditError::SecondWriter)
        } else if !self.health.wal_ok.load(Ordering::Acquire) {
            Err(AuditError::WalFailed)
        } else {
            Ok(())
        }
    }

    /// Whether the store accepted the last upload attempt.
    pub fn store_reachable(&self) -> bool {
        self.health.store_ok.load(Ordering::Acquire)
    }

    /// Builds entries the way this log's settings say (pseudonyms, commitments).
    pub fn entries(&self) -> &EntryBuilder {
        &self.entries
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier key of the checkpoints (C2SP note verifier text).
    pub fn verifier_key(&self) -> &str {
        &self.vkey
    }

    /// Appends `entry`; with `BeforeResponse` durability, returns once it is durable.
    /// `openings` are the argument salts and values to keep beside the log.
    pub async fn append(
        &self,
        entry: Entry,
        openings: Option<entry::Openings>,
    ) -> Result<u64, AuditError> {
        self.ready()?;
        let openings =
            openings.map(|(salts, arguments)| sequencer::opening_tail(&salts, &arguments));
        let (done, answer) = match self.durability {
            Durability::BeforeResponse => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            Durability::Async => (None, None),
        };
        // Built here, on the request's task: the writer thread only places it.
        let record = record::Template::new(&self.origin, &self.replica, &entry);
        drop(entry);
        self.writer.submit(Msg::Append(Box::new(Pending {
            record,
            openings,
            done,
        })))?;
        match answer {
            Some(rx) => rx.await.map_err(|_| AuditError::Closed)?,
            None => Ok(u64::MAX),
        }
    }

    /// Seals what is in the WAL and waits (up to `timeout`) until the store holds every
    /// record appended so far. False when the store did not catch up in time.
    /// Where the log stands: written locally, stored, failing.
    pub fn stats(&self) -> AuditStats {
        let at = self.health.checkpoint_at_us.load(Ordering::Acquire);
        AuditStats {
            durable: self.health.durable.load(Ordering::Acquire),
            stored: *self.stored.borrow(),
            upload_errors: self.health.upload_errors.load(Ordering::Acquire),
            checkpoint_at_us: (at > 0).then_some(at),
        }
    }

    pub async fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.writer.submit(Msg::Seal(tx)).is_err() || rx.await.is_err() {
            return false;
        }
        let target = self.health.durable.load(Ordering::Acquire);
        let mut stored = self.stored.clone();
        tokio::time::timeout(timeout, stored.wait_for(|&s| s >= target))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops the writer (committing and sealing what is left) and gives the uploader up
    /// to `timeout` to drain; whatever it could not upload stays in the WAL for the next
    /// start.
    pub async fn close(&self, timeout: Duration) {
        self.writer.close();
        let thread = writer::lock(&self.background).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let uploader = writer::lock(&self.uploader).take();
        if let Some(mut uploader) = uploader
            && tokio::time::timeout(timeout, &mut uploader).await.is_err()
        {
            tracing::warn!(
                "the audit store did not take every segment before shutdown; they stay in the write-ahead log"
            );
            uploader.abort();
        }
    }
}

/// Checks the bucket's Object Lock configuration as `mode` asks.
async fn check_lock(store: &Store, mode: ObjectLock) -> Result<(), AuditError> {
    let Some(bucket) = &store.bucket else {
        return Ok(());
    };
    if mode == ObjectLock::Off {
        return Ok(());
    }
    let problem = match lock::status(bucket).await {
        Ok(status) if status.is_compliant() => return Ok(()),
        Ok(status) if status.enabled => format!(
            "bucket `{}` has Object Lock on but no default retention in COMPLIANCE mode ({})",
            bucket.bucket,
            status.mode.as_deref().unwrap_or("none")
        ),
        Ok(_) => format!("bucket `{}` does not have Object Lock on", bucket.bucket),
        Err(e) => format!(
            "could not read the Object Lock configuration of bucket `{}`: {e}",
            bucket.bucket
        ),
    };
    if mode == ObjectLock::Require {
        return Err(AuditError::Open(format!(
            "{problem}; `object_lock = \"require\"` refuses to write the audit log there"
        )));
    }
    tracing::warn!("{problem}: audit segments there are not write-once");
    Ok(())
}

/// The signing key: the configured file, or `signing.key` in the state directory (created
/// with its `.pub` beside it on first start).
fn load_signer(settings: &AuditSettings, dir: &Path) -> Result<NoteSigner, AuditError> {
    let path = settings
        .signing_key
        .clone()
        .unwrap_or_else(|| dir.join("signing.key"));
    match std::fs::read_to_string(&path) {
        Ok(text) => NoteSigner::from_skey(&text)
            .map_err(|e| AuditError::Open(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && settings.signing_key.is_none() => {
            let (signer, skey, vkey) = NoteSigner::generate(&settings.origin)
                .map_err(|e| AuditError::Open(format!("generating a signing key: {e}")))?;
            write_private(&path, &skey)
                .map_err(|e| AuditError::Open(format!("{}: {e}", path.display())))?;
            let public = path.with_extension("pub");
            std::fs::write(&public, format!("{vkey}\n"))
                .map_err(|e| AuditError::Open(format!("{}: {e}", public.display())))?;
            tracing::info!(public_key = %public.display(), "generated an audit signing key");
            Ok(signer)
        }
        Err(e) => Err(AuditError::Open(format!("{}: {e}", path.display()))),
    }
}

/// Writes a secret readable by its owner only.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}
