//! Leader/follower group commit. Every record goes into one queue. Whoever finds no leader
//! takes the whole queue as one batch and commits it with one fdatasync ([`Sequencer::commit`]);
//! records queued meanwhile wait for the next batch, so concurrent requests share an fsync.
//!
//! Two kinds of leader:
//!
//! - A `before-response` request queues its record, yields once (so that requests made
//!   ready together with it queue beside it), and if nobody leads by then, leads the batch
//!   on its own thread (`block_in_place`): a lone request waits one fsync and no thread
//!   hand-off. It leads one batch only: whatever queued during its fsync goes to the
//!   background leader, so no request waits on records that came after it.
//! - The background thread leads everything else: `async` records, the queue left behind by
//!   a request leader, seal requests, and the seal interval when the log is idle.
//!
//! The sequencer's state has its own lock, held by the leader for the whole batch; the
//! queue's lock is only held to push or take.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::AuditError;
use super::sequencer::{Msg, Sequencer};

pub(crate) struct Writer {
    queue: Mutex<Queue>,
    /// Wakes the background leader.
    wake: Condvar,
    sequencer: Mutex<Sequencer>,
    seal_interval: Duration,
}

struct Queue {
    items: Vec<Msg>,
    /// A batch is being committed.
    leading: bool,
    closed: bool,
    /// When the background leader next checks the seal interval.
    deadline: Instant,
}

/// Who commits a message that finds no leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lead {
    /// The caller, after [`Writer::try_lead`]: nobody is woken.
    Caller,
    /// The background thread, woken now.
    Background,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Writer {
    pub fn new(sequencer: Sequencer) -> Writer {
        Writer {
            queue: Mutex::new(Queue {
                items: Vec::new(),
                leading: false,
                closed: false,
                deadline: sequencer.seal_deadline(),
            }),
            wake: Condvar::new(),
            seal_interval: sequencer.seal_interval,
            sequencer: Mutex::new(sequencer),
        }
    }

    /// Queues `msg`; with [`Lead::Background`], wakes the background leader unless a
    /// batch is being committed (its leader hands over what queued meanwhile).
    pub fn submit(&self, msg: Msg, lead: Lead) -> Result<(), AuditError> {
        let mut q = lock(&self.queue);
        if q.closed {
            return Err(AuditError::Closed);
        }
        q.items.push(msg);
        let wake = lead == Lead::Background && !q.leading;
        drop(q);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Becomes the leader if nobody leads and something waits. True means the caller must
    /// call [`Writer::lead_once`] right away (no `.await` in between, or the queue stalls).
    pub fn try_lead(&self) -> bool {
        let mut q = lock(&self.queue);
        let lead = !q.leading && !q.items.is_empty();
        q.leading |= lead;
        lead
    }

    /// Wakes the background leader if records wait and nobody leads: for a caller that
    /// queued a record and went away before it could lead.
    pub fn nudge(&self) {
        let q = lock(&self.queue);
        let wake = !q.leading && !q.items.is_empty();
        drop(q);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Commits one batch on the calling thread (blocking for its fsync), then leaves
    /// whatever queued meanwhile to the background leader.
    pub fn lead_once(&self) {
        let batch = std::mem::take(&mut lock(&self.queue).items);
        let deadline = {
            let mut sequencer = lock(&self.sequencer);
            sequencer.commit(batch);
            sequencer.seal_deadline()
        };
        let mut q = lock(&self.queue);
        q.leading = false;
        q.deadline = deadline;
        let more = !q.items.is_empty() || q.closed;
        drop(q);
        if more {
            self.wake.notify_one();
        }
    }

    /// The background leader: commits what waits while nobody leads, checks the seal
    /// interval, and after [`Writer::close`] commits what is left, seals and returns.
    pub fn run(&self) {
        let mut q = lock(&self.queue);
        loop {
            let now = Instant::now();
            if !q.leading && (!q.items.is_empty() || q.closed || now >= q.deadline) {
                q.leading = true;
                let batch = std::mem::take(&mut q.items);
                drop(q);
                let deadline = {
                    let mut sequencer = lock(&self.sequencer);
                    sequencer.commit(batch);
                    sequencer.seal_deadline()
                };
                q = lock(&self.queue);
                q.leading = false;
                q.deadline = deadline;
                if q.closed && q.items.is_empty() {
                    drop(q);
                    lock(&self.sequencer).finish();
                    return;
                }
                continue;
            }
            // While a caller leads, it hands over when it is done (and moves the deadline).
            let wait = if q.leading {
                self.seal_interval
            } else {
                q.deadline.saturating_duration_since(now)
            };
            q = self
                .wake
                .wait_timeout(q, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Refuses new messages and wakes the background leader to drain and seal.
    pub fn close(&self) {
        lock(&self.queue).closed = true;
        self.wake.notify_one();
    }
}
