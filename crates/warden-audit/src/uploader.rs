//! The uploader: moves sealed WAL files to the object store in order — the segment with a
//! create-only put, then its signed checkpoint, then `tree.json`, then the WAL file becomes
//! the spare the next seal writes over. While the store is unreachable it retries with backoff and the WAL keeps
//! everything; when nothing new was sealed for a heartbeat interval it writes a checkpoint
//! anyway, so an idle log still shows it is alive. A segment key that holds other bytes
//! means a second writer: the log stops and the proxy refuses traffic.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use super::Health;
use super::merkle::Hash;
use super::note::{Checkpoint, NoteSigner};
use super::store::{Store, StoreError, checkpoint_key, segment_key};
use super::wal::{self, Sealed};

pub(crate) struct Uploader {
    pub store: Store,
    pub signer: NoteSigner,
    pub origin: String,
    pub dir: PathBuf,
    pub heartbeat: Duration,
    pub health: Arc<Health>,
    /// The newest checkpoint written: (size, root).
    pub head: (u64, Hash),
    /// Records the store holds, published for `flush` and the metrics.
    pub stored: watch::Sender<u64>,
    /// The state directory stays this process's while uploads may still touch it.
    pub _owner: super::owner::Ownership,
    /// Where segments and checkpoints go to be cosigned, with witnesses configured.
    pub cosigner: Option<mpsc::UnboundedSender<super::cosign::Msg>>,
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Uploader {
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Sealed>, backlog: Vec<Sealed>) {
        let mut queue: VecDeque<Sealed> = backlog.into();
        let mut backoff = MIN_BACKOFF;
        let mut last_checkpoint = tokio::time::Instant::now();
        let mut open = true;
        let dir = self.dir.clone();
        // Off the writer's thread: a spare for the first seal.
        let prepared = tokio::task::spawn_blocking(move || wal::prepare_spare(&dir)).await;
        if let Err(e) = prepared.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
            tracing::debug!(error = %e, "could not write a spare write-ahead log file ahead");
        }
        // Startup (and every restart) writes a checkpoint of what the store already holds,
        // unless a segment is about to bring a newer one.
        if queue.is_empty() && self.checkpoint().await.is_ok() {
            last_checkpoint = tokio::time::Instant::now();
        }
        loop {
            while let Some(sealed) = queue.front() {
                match self.upload(sealed).await {
                    Ok(()) => {
                        queue.pop_front();
                        backoff = MIN_BACKOFF;
                        last_checkpoint = tokio::time::Instant::now();
                        self.health.store_ok.store(true, Ordering::Release);
                    }
                    Err(StoreError::Conflict { key }) => {
                        tracing::error!(%key, "another writer is using this audit log: refusing traffic");
                        self.health.conflict.store(true, Ordering::Release);
                        return;
                    }
                    Err(e) => {
                        self.health.upload_errors.fetch_add(1, Ordering::AcqRel);
                        if self.health.store_ok.swap(false, Ordering::AcqRel) {
                            tracing::warn!(error = %e, "the audit store is unreachable; the write-ahead log keeps every record until it is back");
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        while let Ok(more) = rx.try_recv() {
                            queue.push_back(more);
                        }
                    }
                }
            }
            if !open {
                return;
            }
            let next_heartbeat = last_checkpoint + self.heartbeat;
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(sealed) => queue.push_back(sealed),
                    None => open = false,
                },
                () = tokio::time::sleep_until(next_heartbeat) => {
                    match self.checkpoint().await {
                        Ok(()) => last_checkpoint = tokio::time::Instant::now(),
                        Err(e) => {
                            self.health.upload_errors.fetch_add(1, Ordering::AcqRel);
                            tracing::warn!(error = %e, "heartbeat checkpoint failed");
                            last_checkpoint = tokio::time::Instant::now() - self.heartbeat + backoff;
                        }
                    }
                }
            }
        }
    }

    async fn upload(&mut self, sealed: &Sealed) -> Result<(), StoreError> {
        let (path, len) = (sealed.path.clone(), sealed.len);
        let bytes = tokio::task::spawn_blocking(move || wal::read_records(&path, len))
            .await
            .map_err(|e| StoreError::Local(e.to_string()))?
            .map_err(|e| StoreError::Local(format!("{}: {e}", sealed.path.display())))?;
        let key = segment_key(&self.store.prefix, sealed.first);
        let leaves = self
            .cosigner
            .as_ref()
            .map(|_| super::cosign::leaves_of(&bytes));
        self.store.create(&key, bytes).await?;
        self.head = (sealed.end, sealed.root);
        if let (Some(cosigner), Some(leaves), Ok(after)) =
            (&self.cosigner, leaves, sealed.after.tree())
        {
            let _ = cosigner.send(super::cosign::Msg::Sealed { after, leaves });
        }
        self.checkpoint().await?;
        let dir = self.dir.clone();
        let after = sealed.after.clone();
        let path = sealed.path.clone();
        let room = wal::headroom(sealed.len);
        // tree.json first, then the WAL file is recycled: a crash in between leaves a file
        // recovery recognises as uploaded.
        tokio::task::spawn_blocking(move || {
            after.save(&dir)?;
            wal::recycle(&dir, &path, room)
        })
        .await
        .map_err(|e| StoreError::Local(e.to_string()))?
        .map_err(|e| StoreError::Local(format!("tree.json: {e}")))?;
        let _ = self.stored.send(sealed.end);
        Ok(())
    }

    /// Signs and writes a checkpoint of the newest uploaded state.
    async fn checkpoint(&self) -> Result<(), StoreError> {
        let time_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let (size, root) = self.head;
        let body = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
            extensions: vec![
                format!("time {time_us}"),
                format!("heartbeat {}", self.heartbeat.as_secs().max(1)),
            ],
        }
        .to_text();
        let note = self
            .signer
            .sign(&body)
            .map_err(|e| StoreError::Local(format!("signing a checkpoint: {e}")))?;
        let key = checkpoint_key(&self.store.prefix, size, time_us);
        self.store.create(&key, note.clone().into_bytes()).await?;
        self.health
            .checkpoint_at_us
            .store(time_us, Ordering::Release);
        if let (Some(cosigner), Ok(checkpoint)) = (&self.cosigner, Checkpoint::parse(&body)) {
            let _ = cosigner.send(super::cosign::Msg::Checkpoint { note, checkpoint });
        }
        Ok(())
    }
}
