//! Group commit. Every record goes into one queue; the writer thread takes the whole queue
//! as one batch and commits it with one fdatasync ([`Sequencer::commit`]). Records queued
//! during an fsync wait for the next batch, so concurrent requests share an fsync: the
//! thread leads, the requests follow. With `before-response` the fsync itself is the
//! batching window — a lone record waits one fsync, never a timer. With `async` nobody
//! waits, so the writer also gathers records for up to the group-commit window
//! (`group_commit_us`, ≤ 2 ms) before it commits: fewer fsyncs, each for more records, and
//! the writer thread is woken once per window rather than once per record.
//!
//! Requests do not lead their own batches. Measured end to end (`benches/e2e.rs`), a request
//! committing on its own worker — inline or in `block_in_place` — added as much or more
//! latency than the hand-off to this thread, and blocking a runtime worker on a disk that
//! stalls would stall every task queued behind it.
//!
//! The queue's lock is only held to push or take; the sequencer's state is only touched by
//! this thread.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::AuditError;
use super::sequencer::{Msg, Sequencer};

pub(crate) struct Writer {
    queue: Mutex<Queue>,
    /// Wakes the writer thread.
    wake: Condvar,
    /// How long a queued record may wait for others before its batch is committed.
    window: Duration,
}

struct Queue {
    items: Vec<Msg>,
    /// When the queued batch is to be committed; `None` when the queue is empty.
    due: Option<Instant>,
    /// The writer thread is committing a batch (it looks at the queue again when done).
    busy: bool,
    closed: bool,
}

/// Takes `m` whether or not a panic poisoned it: the crate's one way to lock.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Writer {
    /// A writer whose records wait up to `window` for others (zero: none).
    pub fn new(window: Duration) -> Writer {
        Writer {
            queue: Mutex::new(Queue {
                items: Vec::new(),
                due: None,
                busy: false,
                closed: false,
            }),
            wake: Condvar::new(),
            window,
        }
    }

    /// Queues `msg`. A seal request is due at once, a record within the window. The writer
    /// thread is woken only when the batch's due time moves earlier and it is not busy
    /// committing (it looks at the queue again when done).
    pub fn submit(&self, msg: Msg) -> Result<(), AuditError> {
        let mut q = lock(&self.queue);
        if q.closed {
            return Err(AuditError::Closed);
        }
        let now = Instant::now();
        let due = match msg {
            Msg::Seal(_) => now,
            Msg::Append(_) => now + self.window,
        };
        q.items.push(msg);
        let earlier = q.due.is_none_or(|d| due < d);
        if earlier {
            q.due = Some(due);
        }
        let wake = earlier && !q.busy;
        drop(q);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The writer thread: commits whatever waits, seals on time (an empty batch checks the
    /// seal interval), and after [`Writer::close`] commits what is left, seals and returns.
    pub fn run(&self, mut sequencer: Sequencer) {
        // Should this thread ever end early (a panic), nothing queued may wait forever:
        // the queue closes and drops what it holds, which answers every waiter `Closed`.
        struct Closing<'w>(&'w Writer);
        impl Drop for Closing<'_> {
            fn drop(&mut self) {
                let mut q = lock(&self.0.queue);
                q.closed = true;
                q.items.clear();
            }
        }
        let _closing = Closing(self);
        let mut q = lock(&self.queue);
        loop {
            let now = Instant::now();
            let deadline = match q.due {
                Some(due) => due.min(sequencer.seal_deadline()),
                None => sequencer.seal_deadline(),
            };
            if q.closed || now >= deadline {
                q.busy = true;
                q.due = None;
                let batch = std::mem::take(&mut q.items);
                drop(q);
                sequencer.commit(batch);
                q = lock(&self.queue);
                q.busy = false;
                if q.closed && q.items.is_empty() {
                    drop(q);
                    sequencer.finish();
                    return;
                }
                continue;
            }
            q = self
                .wake
                .wait_timeout(q, deadline.saturating_duration_since(now))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Refuses new messages and wakes the writer thread to drain and seal.
    pub fn close(&self) {
        lock(&self.queue).closed = true;
        self.wake.notify_one();
    }
}
