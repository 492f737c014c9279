//! The call stack: what every forwarded request passes through after the catalog resolved
//! its target — a chain of shared links over our own [`Call`], built in [`build`], the ONE
//! place that orders the layers:
//!
//! ```text
//! (audit, around the whole request in mcp::Audited) -> drain -> authz -> limits
//!     -> guards -> cache -> coalesce -> retry -> breaker -> concurrency -> timeout
//!     -> router
//! ```
//!
//! Each layer's shared state (a drain counter, later rate-limit buckets, breakers, the
//! cache) lives behind an `Arc` the layer was given, so every stack built — one per
//! session — shares it.

pub mod audit;
pub mod authz;
mod backend;
mod custom;
mod drain;
mod guards;
pub mod history;
mod layer;
mod limits;
mod retry;
mod router;
mod share;

use std::sync::Arc;

use rmcp::model::{ClientRequest, ServerResult};
use tokio_util::sync::CancellationToken;
use tower::util::BoxCloneSyncService;

pub use authz::{Authority, Op};
pub use custom::{CallLayer, Layers, StackPoint};
pub use drain::Drain;

use crate::{
    backend::{Backend, Origin},
    error::CallError,
    governance::Governance,
    mcp::catalog::Catalog,
    telemetry::Metrics,
};

/// What calls are routed and decided on: the catalog (with the table of backends it was
/// built from) and the authorization engine that knows its tools, published together by
/// the hub. A call takes one at its start and finishes on it.
pub struct Generation {
    pub catalog: Arc<Catalog>,
    /// `None` until the first build: everything is denied.
    pub engine: Option<Arc<crate::authz::Engine>>,
}

/// What the layers share with every clone of the stack, each layer given only its part.
pub struct Parts {
    /// Cancelled when shutdown begins: no call gets past the drain layer.
    pub stopping: CancellationToken,
    pub drain: Arc<Drain>,
    pub authority: Authority,
    pub governance: Arc<Governance>,
    pub metrics: Arc<Metrics>,
    /// The embedding application's own layers.
    pub layers: Layers,
}

/// One request on its way to a backend: the vocabulary every layer speaks. Boxed: each
/// layer moves it on, and its parts are most of a kilobyte.
pub struct Call(Box<CallData>);

impl Call {
    pub fn new(data: CallData) -> Call {
        Call(Box::new(data))
    }

    pub fn into_data(self) -> CallData {
        *self.0
    }
}

impl std::ops::Deref for Call {
    type Target = CallData;
    fn deref(&self) -> &CallData {
        &self.0
    }
}

impl std::ops::DerefMut for Call {
    fn deref_mut(&mut self) -> &mut CallData {
        &mut self.0
    }
}

/// What a [`Call`] holds.
pub struct CallData {
    /// The backend that serves the target, as the call's catalog snapshot resolved it: the
    /// call finishes on it even if a reload removes it meanwhile.
    pub backend: Arc<Backend>,
    /// The generation the call started on (its catalog resolved `backend`; its engine
    /// decides the call).
    pub generation: Arc<Generation>,
    /// The request with names and URIs already turned into the backend's own. A
    /// `tools/call`'s arguments are not in it but in `op` ([`Call::arguments`]) until the
    /// router sends it.
    pub request: ClientRequest,
    /// What it does, in exposed names: the authorization question.
    pub op: Op,
    /// The client session and request it came from.
    pub origin: Origin,
    /// Cancelled when the client cancels the request.
    pub cancel: CancellationToken,
    /// The cache and coalescing key, once a layer needed it.
    pub share_key: std::sync::OnceLock<[u8; 32]>,
}

/// The whole stack as one cloneable tower service: what an application's layers wrap.
pub type CallService = BoxCloneSyncService<Call, ServerResult, CallError>;

pub use layer::{Link, Next};

/// Builds the stack, outer layer first. A call goes down it with `Link::call`.
pub fn build(parts: &Parts) -> Next {
    layer::Chain::default()
        // Drain accounting outermost: shutdown stops taking calls here and waits for
        // everything that got past this line.
        .then(drain::DrainLayer::new(
            parts.stopping.clone(),
            parts.drain.clone(),
        ))
        // Authorization: nothing below runs without an Allow from Cedar; a denied call
        // costs nothing downstream (no rate-limit token, no cache lookup, no backend).
        .then(authz::AuthzLayer::new(parts.authority.clone()))
        // The application's own layers (library mode): only permitted calls reach them.
        .then_tower(parts.layers.after_authorization.layer())
        // Rate limits: after authorization (a denied call spends no token), before guards
        // and the cache (a cached answer still counts: quotas meter callers).
        .then(limits::LimitsLayer::new(
            parts.governance.clone(),
            parts.metrics.clone(),
        ))
        // Guards: arguments checked before anything below sees them, results before they
        // leave; before the cache, so a stored result was guarded and a blocked call
        // never reaches it.
        .then(guards::GuardsLayer::new(
            parts.governance.clone(),
            parts.metrics.clone(),
        ))
        // Cache, then coalescing: a hit costs no backend call and no slot; identical
        // concurrent misses share one call. Both key on the caller's scope.
        .then(share::CacheLayer::new(
            parts.governance.clone(),
            parts.metrics.clone(),
        ))
        .then(share::CoalesceLayer::new(
            parts.governance.clone(),
            parts.metrics.clone(),
        ))
        // Retries of idempotent tools' failed calls, above the breaker so every attempt
        // is admitted and counted by it.
        .then(retry::RetryLayer)
        // Per backend: breaker (a failing backend is answered at once, and sees the
        // timeouts below as failures) -> concurrency (bounded queue, then busy) -> timeout
        // (per tool; dropping the call cancels it at the backend).
        .then(backend::BreakerLayer::new(parts.metrics.clone()))
        .then(backend::ConcurrencyLayer::new(
            parts.governance.clone(),
            parts.metrics.clone(),
        ))
        .then(backend::TimeoutLayer::new())
        // The application's own layers closest to the backend, once per attempt.
        .then_tower(parts.layers.before_backend.layer())
        // Router: the catalog resolved the backend when the call began; send it there.
        .end(router::Router {
            metrics: parts.metrics.clone(),
        })
}
