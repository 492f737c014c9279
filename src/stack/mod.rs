//! The call stack: what every forwarded request passes through after the catalog resolved
//! its target. The order of the layers is written here and nowhere else:
//!
//! ```text
//! audit -> authz -> limits -> guards -> cache -> coalesce -> router -> backend
//! ```
//!
//! Today the stack holds drain accounting, authorization and the router; audit goes above
//! authorization and governance between it and the router, each with a comment saying why
//! it sits where it does.

pub mod audit;
pub mod authz;

use std::sync::Arc;

use rmcp::model::{ClientRequest, ServerResult};
use tokio_util::sync::CancellationToken;

pub use authz::Op;

use crate::{backend::Origin, error::CallError, hub::Hub};

/// One request on its way to a backend: the vocabulary every layer speaks.
pub struct Call {
    /// Index of the backend that serves the target.
    pub backend: usize,
    /// The request with names and URIs already turned into the backend's own.
    pub request: ClientRequest,
    /// What it does, in exposed names: the authorization question.
    pub op: Op,
    /// The client session and request it came from.
    pub origin: Origin,
    /// Cancelled when the client cancels the request.
    pub cancel: CancellationToken,
}

/// Runs `call` through the stack.
pub async fn dispatch(hub: &Arc<Hub>, call: Call) -> Result<ServerResult, CallError> {
    // Drain accounting outermost: shutdown waits for everything that got past this line.
    if hub.stopping.is_cancelled() {
        return Err(CallError::ShuttingDown);
    }
    let _in_flight = hub.drain.enter();
    // Authorization: nothing below runs without an Allow from Cedar.
    let facts = authz::facts(call.origin.transport(), &call.origin.session.to_string());
    authz::authorize(hub, &call.origin.principal, &call.op, &facts)?;
    // Router: the namespace was resolved by the catalog; send to that backend's connection.
    let backend = hub
        .backends
        .get(call.backend)
        .ok_or_else(|| CallError::Internal("unknown backend".to_owned()))?;
    backend
        .request(call.request, call.origin, call.cancel)
        .await
}
