//! The innermost service: sends the call to the backend the catalog chose, over that
//! backend's shared connection.

use std::sync::Arc;
use std::task::{Context, Poll};

use rmcp::model::ServerResult;
use tower::Service;

use super::Call;
use super::layer::CallFuture;
use crate::{error::CallError, hub::Hub};

#[derive(Clone)]
pub struct Router {
    hub: Arc<Hub>,
}

impl Router {
    pub fn new(hub: Arc<Hub>) -> Self {
        Router { hub }
    }
}

impl Service<Call> for Router {
    type Response = ServerResult;
    type Error = CallError;
    type Future = CallFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> CallFuture {
        let hub = self.hub.clone();
        Box::pin(async move {
            let backend = hub
                .backends
                .get(call.backend)
                .cloned()
                .ok_or_else(|| CallError::Internal("unknown backend".to_owned()))?;
            let call = call.into_data();
            backend
                .request(call.request, call.origin, call.cancel)
                .await
        })
    }
}
