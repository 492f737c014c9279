//! Drain accounting: once shutdown begins no call gets past this layer, and shutdown waits
//! for every call that did.

use rmcp::model::ServerResult;
use tower::Service;

use super::Call;
use super::layer::{CallFuture, Step, forward, hub_layer};
use crate::error::CallError;

hub_layer!(DrainLayer);

impl Step for DrainLayer {
    fn run<S>(&self, call: Call, next: S) -> CallFuture
    where
        S: Service<Call, Response = ServerResult, Error = CallError> + Send + 'static,
        S::Future: Send,
    {
        let hub = self.hub.clone();
        Box::pin(async move {
            if hub.stopping.is_cancelled() {
                return Err(CallError::ShuttingDown);
            }
            let _in_flight = hub.drain.enter();
            forward(next, call).await
        })
    }
}
