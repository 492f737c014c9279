//! Concurrency limits: at most `limit` calls in flight (per backend, or per principal), at
//! most `queue` more waiting for a slot; beyond that a call is refused at once as busy
//! rather than piling up behind a slow backend.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::sync::Locked;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One limit and its wait queue.
#[derive(Debug)]
pub struct Gate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
}

/// The queue was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl Gate {
    pub fn new(limit: usize, queue: usize) -> Gate {
        Gate {
            permits: Arc::new(Semaphore::new(limit.max(1))),
            waiting: AtomicUsize::new(0),
            queue,
        }
    }

    /// A slot, waiting in the queue if there is room in it.
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, Busy> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        // Leaves the queue however the wait ends (a slot, or the caller gave up).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _waiting = Waiting(&self.waiting);
        self.permits.clone().acquire_owned().await.map_err(|_| Busy)
    }

    fn idle(&self, limit: usize) -> bool {
        self.permits.available_permits() == limit.max(1)
            && self.waiting.load(Ordering::Acquire) == 0
    }
}

/// One gate per key (per principal), created on first use and dropped when idle.
#[derive(Debug)]
pub struct Gates {
    limit: usize,
    queue: usize,
    by_key: Mutex<HashMap<String, Arc<Gate>>>,
}

/// Keys kept before idle gates are swept.
const SWEEP_ABOVE: usize = 1_024;

impl Gates {
    pub fn new(limit: usize, queue: usize) -> Gates {
        Gates {
            limit,
            queue,
            by_key: Mutex::new(HashMap::new()),
        }
    }

    pub fn gate(&self, key: &str) -> Arc<Gate> {
        let mut all = self.by_key.locked();
        if let Some(g) = all.get(key) {
            return g.clone();
        }
        if all.len() >= SWEEP_ABOVE {
            let limit = self.limit;
            all.retain(|_, g| Arc::strong_count(g) > 1 || !g.idle(limit));
        }
        let g = Arc::new(Gate::new(self.limit, self.queue));
        all.insert(key.to_owned(), g.clone());
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_is_busy_and_a_freed_slot_admits_the_next() {
        let gate = Arc::new(Gate::new(1, 1));
        let first = gate.enter().await.unwrap();
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter().await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        assert_eq!(
            gate.enter().await.unwrap_err(),
            Busy,
            "one in flight, one queued"
        );
        drop(first);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        let _again = gate.enter().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_gives_up_leaves_the_queue() {
        let gate = Arc::new(Gate::new(1, 1));
        let _held = gate.enter().await.unwrap();
        let gave_up =
            tokio::time::timeout(std::time::Duration::from_millis(10), gate.enter()).await;
        assert!(gave_up.is_err());
        // The queue slot is free again: the next waiter is queued, not refused.
        let next = tokio::time::timeout(std::time::Duration::from_millis(10), gate.enter()).await;
        assert!(
            next.is_err(),
            "queued (timed out waiting), not refused as busy"
        );
    }

    #[tokio::test]
    async fn principals_have_separate_gates() {
        let gates = Gates::new(1, 0);
        let _a = gates.gate("a").enter().await.unwrap();
        assert!(gates.gate("a").enter().await.is_err());
        assert!(gates.gate("b").enter().await.is_ok());
    }
}
