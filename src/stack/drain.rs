//! Drain accounting: once shutdown begins no call gets past this layer, and shutdown waits
//! for every call that did.

use std::sync::Arc;

use rmcp::model::ServerResult;
use tower::{Layer, Service};

use super::Call;
use super::layer::{Around, CallFuture, Step, forward};
use crate::{error::CallError, hub::Hub};

#[derive(Clone)]
pub struct DrainLayer {
    hub: Arc<Hub>,
}

impl DrainLayer {
    pub fn new(hub: Arc<Hub>) -> Self {
        DrainLayer { hub }
    }
}

impl<S> Layer<S> for DrainLayer {
    type Service = Around<DrainLayer, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Around::new(self.clone(), inner)
    }
}

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
