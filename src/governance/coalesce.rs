//! Request coalescing: identical concurrent calls (same tool, canonical arguments and
//! authorization scope — see [`super::cache::key`]) share one backend call. Only tools the
//! operator marks (`coalesce`, or cacheable) are coalesced: two identical writes are two
//! intended actions. The shared call runs in its own task, so one caller going away does
//! not cancel it for the others.
//!
//! Each caller stays cancellable: cancelled (the client's `notifications/cancelled`, a kill
//! switch's `--cancel`) or gone, it stops waiting at once. When the last caller has stopped
//! waiting, the shared call is cancelled too (the backend hears of it) and leaves the map,
//! so a later identical call never joins a cancelled one.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::Shared;
use rmcp::model::ServerResult;
use tokio_util::sync::CancellationToken;

use crate::error::CallError;
use crate::sync::Locked;

type Outcome = Result<ServerResult, CallError>;
type SharedCall = Shared<Pin<Box<dyn Future<Output = Outcome> + Send>>>;
type InFlight = Arc<Mutex<HashMap<[u8; 32], Entry>>>;

/// A shared call: its outcome, how many callers wait for it, and its own cancellation.
#[derive(Clone)]
struct Entry {
    call: SharedCall,
    /// Changed only under the map's lock.
    waiters: Arc<AtomicUsize>,
    cancel: CancellationToken,
}

#[derive(Default)]
pub struct Coalescer {
    in_flight: InFlight,
}

/// One caller waiting; when the last one stops, the shared call is cancelled and forgotten.
struct Waiting {
    map: InFlight,
    key: [u8; 32],
    entry: Entry,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut map = self.map.locked();
        if self.entry.waiters.fetch_sub(1, Ordering::SeqCst) == 1 {
            // A finished call's token is no longer read: cancelling it is harmless.
            self.entry.cancel.cancel();
            if map
                .get(&self.key)
                .is_some_and(|e| Arc::ptr_eq(&e.waiters, &self.entry.waiters))
            {
                map.remove(&self.key);
            }
        }
    }
}

impl Coalescer {
    /// Joins the call in flight under `key`, or starts the call `make` builds (handed the
    /// shared call's own cancellation) as it. Returns the outcome and whether this caller
    /// joined another's call; `caller` cancelled, this caller stops waiting
    /// ([`CallError::Cancelled`]).
    pub async fn run<F>(
        &self,
        key: [u8; 32],
        caller: &CancellationToken,
        make: impl FnOnce(CancellationToken) -> F,
    ) -> (Outcome, bool)
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let (waiting, joined) = {
            let mut in_flight = self.in_flight.locked();
            let (entry, joined) = match in_flight.get(&key) {
                Some(e) => (e.clone(), true),
                None => {
                    let cancel = CancellationToken::new();
                    let call = make(cancel.clone());
                    let waiters = Arc::new(AtomicUsize::new(0));
                    // The task leaves the map when it is done, whoever is still waiting.
                    let (map, mine) = (self.in_flight.clone(), waiters.clone());
                    let task = tokio::spawn(async move {
                        let outcome = call.await;
                        let mut map = map.locked();
                        if map
                            .get(&key)
                            .is_some_and(|e| Arc::ptr_eq(&e.waiters, &mine))
                        {
                            map.remove(&key);
                        }
                        outcome
                    });
                    let fut: Pin<Box<dyn Future<Output = Outcome> + Send>> = Box::pin(async move {
                        task.await.unwrap_or_else(|_| {
                            Err(CallError::Internal("the shared call failed".to_owned()))
                        })
                    });
                    let entry = Entry {
                        call: fut.shared(),
                        waiters,
                        cancel,
                    };
                    in_flight.insert(key, entry.clone());
                    (entry, false)
                }
            };
            entry.waiters.fetch_add(1, Ordering::SeqCst);
            let waiting = Waiting {
                map: self.in_flight.clone(),
                key,
                entry,
            };
            (waiting, joined)
        };
        let call = waiting.entry.call.clone();
        let outcome = tokio::select! {
            outcome = call => outcome,
            () = caller.cancelled() => Err(CallError::Cancelled),
        };
        drop(waiting);
        (outcome, joined)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use rmcp::model::{CallToolResult, ContentBlock};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn identical_concurrent_calls_share_one_and_later_calls_run_again() {
        let c = Arc::new(Coalescer::default());
        let calls = Arc::new(AtomicU32::new(0));
        let run = |c: Arc<Coalescer>, calls: Arc<AtomicU32>| async move {
            let caller = CancellationToken::new();
            c.run([7; 32], &caller, |_| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Ok(ServerResult::CallToolResult(CallToolResult::success(vec![
                    ContentBlock::text("x"),
                ])))
            })
            .await
        };
        let handles: Vec<_> = (0..50)
            .map(|_| tokio::spawn(run(c.clone(), calls.clone())))
            .collect();
        let mut joined = 0;
        for h in handles {
            let (outcome, j) = h.await.unwrap();
            assert!(outcome.is_ok());
            joined += usize::from(j);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(joined, 49);
        let (_, j) = run(c.clone(), calls.clone()).await;
        assert!(!j);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "a call after the shared one ran anew"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_caller_leaving_does_not_cancel_the_others() {
        let c = Arc::new(Coalescer::default());
        let slow = |_| async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Ok(ServerResult::empty(()))
        };
        let first = tokio::spawn({
            let c = c.clone();
            async move { c.run([1; 32], &CancellationToken::new(), slow).await }
        });
        tokio::task::yield_now().await;
        let second = tokio::spawn({
            let c = c.clone();
            async move { c.run([1; 32], &CancellationToken::new(), slow).await }
        });
        tokio::task::yield_now().await;
        first.abort();
        let (outcome, joined) = second.await.unwrap();
        assert!(joined && outcome.is_ok());
    }

    /// A shared call that stops when told to, as a backend call does.
    fn cancellable(
        started: Arc<AtomicU32>,
        stopped: Arc<AtomicU32>,
    ) -> impl FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = Outcome> + Send>> {
        move |token| {
            Box::pin(async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {
                        Ok(ServerResult::empty(()))
                    }
                    () = token.cancelled() => {
                        stopped.fetch_add(1, Ordering::SeqCst);
                        Err(CallError::Cancelled)
                    }
                }
            })
        }
    }

    /// A cancelled caller stops waiting at once and the others still get the result; when
    /// every caller is cancelled the shared call is cancelled too, and an identical call
    /// after that runs anew instead of joining the cancelled one.
    #[tokio::test(start_paused = true)]
    async fn each_caller_can_cancel_and_the_last_one_cancels_the_shared_call() {
        let c = Arc::new(Coalescer::default());
        let (started, stopped) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let (a, b) = (CancellationToken::new(), CancellationToken::new());
        let caller = |token: CancellationToken| {
            let (c, started, stopped) = (c.clone(), started.clone(), stopped.clone());
            tokio::spawn(async move { c.run([3; 32], &token, cancellable(started, stopped)).await })
        };
        let first = caller(a.clone());
        tokio::task::yield_now().await;
        let second = caller(b.clone());
        tokio::task::yield_now().await;
        a.cancel();
        let (outcome, joined) = first.await.unwrap();
        assert!(matches!(outcome, Err(CallError::Cancelled)) && !joined);
        let (outcome, joined) = second.await.unwrap();
        assert!(
            outcome.is_ok() && joined,
            "the other caller still gets the result"
        );
        assert_eq!(stopped.load(Ordering::SeqCst), 0);

        let (x, y) = (CancellationToken::new(), CancellationToken::new());
        let third = caller(x.clone());
        tokio::task::yield_now().await;
        let fourth = caller(y.clone());
        tokio::task::yield_now().await;
        x.cancel();
        y.cancel();
        assert!(matches!(third.await.unwrap().0, Err(CallError::Cancelled)));
        assert!(matches!(fourth.await.unwrap().0, Err(CallError::Cancelled)));
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        assert_eq!(
            stopped.load(Ordering::SeqCst),
            1,
            "the backend call was cancelled"
        );
        let (outcome, joined) = caller(CancellationToken::new()).await.unwrap();
        assert!(outcome.is_ok() && !joined, "a later call runs anew");
        assert_eq!(started.load(Ordering::SeqCst), 3);
    }
}
