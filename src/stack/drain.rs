//! Drain accounting: once shutdown begins no call gets past this layer, and shutdown waits
//! for every call that did.

use super::Call;
use super::layer::{CallFuture, Next, Step, forward, step_layer};
use crate::error::CallError;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

step_layer!(DrainLayer {
    stopping: CancellationToken,
    drain: Arc<Drain>,
});

impl Step for DrainLayer {
    fn run(&self, call: Call, next: Next) -> CallFuture {
        let (stopping, drain) = (self.stopping.clone(), self.drain.clone());
        Box::pin(async move {
            if stopping.is_cancelled() {
                return Err(CallError::ShuttingDown);
            }
            let _in_flight = drain.enter();
            forward(next, call).await
        })
    }
}

/// Counts calls in flight so shutdown can wait for them.
#[derive(Default)]
pub struct Drain {
    count: AtomicUsize,
    idle: Notify,
}

impl Drain {
    pub fn enter(self: &Arc<Self>) -> DrainGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        DrainGuard(self.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until no call is in flight, or `timeout`; true when idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.in_flight() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

pub struct DrainGuard(Arc<Drain>);

impl Drop for DrainGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
