//! Request coalescing: identical concurrent calls (same tool, canonical arguments and
//! authorization scope — see [`super::cache::key`]) share one backend call. Only tools the
//! operator marks (`coalesce`, or cacheable) are coalesced: two identical writes are two
//! intended actions. The shared call runs in its own task, so one caller going away does
//! not cancel it for the others.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::Shared;
use rmcp::model::ServerResult;

use crate::error::CallError;

type Outcome = Result<ServerResult, CallError>;
type SharedCall = Shared<Pin<Box<dyn Future<Output = Outcome> + Send>>>;

#[derive(Default)]
pub struct Coalescer {
    in_flight: Arc<Mutex<HashMap<[u8; 32], SharedCall>>>,
}

impl Coalescer {
    /// Joins the call in flight under `key`, or starts `call` as it. Returns the outcome
    /// and whether this caller joined another's call.
    pub async fn run<F>(&self, key: [u8; 32], call: F) -> (Outcome, bool)
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let (shared, joined) = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match in_flight.get(&key) {
                Some(s) => (s.clone(), true),
                None => {
                    // The task leaves the map when it is done, whoever is still waiting.
                    let map = self.in_flight.clone();
                    let task = tokio::spawn(async move {
                        let outcome = call.await;
                        map.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                        outcome
                    });
                    let fut: Pin<Box<dyn Future<Output = Outcome> + Send>> = Box::pin(async move {
                        task.await.unwrap_or_else(|_| {
                            Err(CallError::Internal("the shared call failed".to_owned()))
                        })
                    });
                    let s = fut.shared();
                    in_flight.insert(key, s.clone());
                    (s, false)
                }
            }
        };
        (shared.await, joined)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use rmcp::model::{CallToolResult, ContentBlock};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn identical_concurrent_calls_share_one_and_later_calls_run_again() {
        let c = Arc::new(Coalescer::default());
        let calls = Arc::new(AtomicU32::new(0));
        let run = |c: Arc<Coalescer>, calls: Arc<AtomicU32>| async move {
            c.run([7; 32], async move {
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
        let slow = || async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Ok(ServerResult::empty(()))
        };
        let first = tokio::spawn({
            let c = c.clone();
            async move { c.run([1; 32], slow()).await }
        });
        tokio::task::yield_now().await;
        let second = tokio::spawn({
            let c = c.clone();
            async move { c.run([1; 32], slow()).await }
        });
        tokio::task::yield_now().await;
        first.abort();
        let (outcome, joined) = second.await.unwrap();
        assert!(joined && outcome.is_ok());
    }
}
