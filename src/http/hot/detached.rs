//! A call polled where it is awaited, finished on a task of its own if that stops: the
//! hot path answers most calls from the connection's own task (no spawn, no hand-off
//! between tasks), yet a client that goes away does not cancel a call half way through
//! its audit record.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

type Boxed = Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;

/// A call's future: its answer as bytes.
pub struct Detached(Option<Boxed>);

impl Detached {
    pub fn new(call: impl Future<Output = Vec<u8>> + Send + 'static) -> Self {
        Detached(Some(Box::pin(call)))
    }
}

impl Future for Detached {
    type Output = Vec<u8>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<u8>> {
        let Some(call) = self.0.as_mut() else {
            // Polled again after its answer: there is none.
            return Poll::Ready(Vec::new());
        };
        let answer = std::task::ready!(call.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(answer)
    }
}

impl Drop for Detached {
    /// Dropped unfinished (the client went away): the call goes on by itself, its answer
    /// dropped once its record is written. Outside a runtime (the process is ending) it
    /// is dropped with everything else.
    fn drop(&mut self) {
        if let Some(call) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(call);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    #[tokio::test]
    async fn answers_in_place() {
        let answer = Detached::new(async { b"done".to_vec() }).await;
        assert_eq!(answer, b"done");
    }

    #[tokio::test]
    async fn a_call_dropped_half_way_finishes_on_its_own() {
        let finished = Arc::new(AtomicBool::new(false));
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let flag = finished.clone();
        let mut call = Detached::new(async move {
            let _ = wait.await;
            flag.store(true, Ordering::SeqCst);
            Vec::new()
        });
        // Polled once (pending), then dropped as a client's request would be.
        assert!(futures::poll!(&mut call).is_pending());
        drop(call);
        go.send(()).unwrap();
        for _ in 0..100 {
            if finished.load(Ordering::SeqCst) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the dropped call did not finish");
    }
}
