//! The innermost service: sends the call to the backend the catalog chose, over that
//! backend's shared connection.

use std::task::{Context, Poll};

use rmcp::model::ServerResult;
use tower::Service;

use super::Call;
use super::layer::CallFuture;
use crate::error::CallError;

/// Sends each call to the backend it carries.
#[derive(Clone)]
pub struct Router;

impl Service<Call> for Router {
    type Response = ServerResult;
    type Error = CallError;
    type Future = CallFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> CallFuture {
        Box::pin(async move {
            let call = call.into_data();
            let backend = call.backend;
            backend
                .request(call.request, call.origin, call.cancel)
                .await
        })
    }
}
