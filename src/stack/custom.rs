//! An embedding application's own layers in the call stack, at named points
//! ([`StackPoint`]): after authorization (only permitted calls reach them), or innermost,
//! right before the backend. `stack::build` puts them there; without any, the point costs
//! nothing but a branch.

use rmcp::model::{JsonObject, ServerResult};
use tower::Layer;
use tower::util::BoxCloneSyncServiceLayer;

use super::{Call, CallService, Op};
use crate::{authn::Principal, error::CallError};

/// Where an application's layer sits in the call stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackPoint {
    /// After authorization, before rate limits, guards and the cache: every call it sees
    /// was permitted, and what it refuses spends no rate-limit token.
    AfterAuthorization,
    /// Innermost, after breaker, concurrency and timeout: right before the backend, once
    /// per attempt (a retried call passes again).
    BeforeBackend,
}

/// A layer over the call stack, boxed.
pub type CallLayer = BoxCloneSyncServiceLayer<CallService, Call, ServerResult, CallError>;

/// An application's layers, by point.
#[derive(Clone, Default)]
pub struct Layers {
    pub after_authorization: Custom,
    pub before_backend: Custom,
}

impl Layers {
    pub fn push(&mut self, at: StackPoint, layer: CallLayer) {
        match at {
            StackPoint::AfterAuthorization => self.after_authorization.push(layer),
            StackPoint::BeforeBackend => self.before_backend.push(layer),
        }
    }
}

/// The layers at one point, the first added outermost.
#[derive(Clone, Default)]
pub struct Custom(Vec<CallLayer>);

impl Custom {
    pub fn push(&mut self, layer: CallLayer) {
        self.0.push(layer);
    }

    /// `None` when there is nothing to insert.
    pub fn layer(&self) -> Option<CustomLayer> {
        (!self.0.is_empty()).then(|| CustomLayer(self.0.clone()))
    }
}

/// Applies the layers of one point over the (boxed) rest of the stack.
#[derive(Clone)]
pub struct CustomLayer(Vec<CallLayer>);

impl CustomLayer {
    /// The layers over `inner`, the first added outermost.
    pub fn apply(&self, inner: CallService) -> CallService {
        self.0
            .iter()
            .rev()
            .fold(inner, |inner, layer| layer.layer(inner))
    }
}

/// What an application's layer may read of a call.
impl Call {
    /// The exposed tool name of a `tools/call`.
    pub fn tool(&self) -> Option<&str> {
        match &self.op {
            Op::CallTool { tool, .. } => Some(tool),
            _ => None,
        }
    }

    /// The arguments of a `tools/call`.
    pub fn arguments(&self) -> Option<&JsonObject> {
        match &self.op {
            Op::CallTool { arguments, .. } => Some(arguments),
            _ => None,
        }
    }

    /// Who is calling.
    pub fn principal(&self) -> &Principal {
        &self.origin.principal
    }

    /// The backend that serves the call.
    pub fn backend_name(&self) -> &str {
        self.backend.name()
    }
}
