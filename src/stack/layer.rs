//! The shape every layer of the call stack shares: a step that runs around the rest of
//! the stack. The stack is a chain of shared links: a call takes the next link by one
//! `Arc` clone, whatever lies below it (a chain of tower services would clone everything
//! below each layer for every call). `Around` keeps each layer down to its own logic.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rmcp::model::ServerResult;
use tower::{Service, ServiceExt};

use super::{Call, CallService};
use crate::error::CallError;

pub type CallFuture = Pin<Box<dyn Future<Output = Result<ServerResult, CallError>> + Send>>;

/// One link of the stack: takes a call by shared reference.
pub trait Link: Send + Sync + 'static {
    fn call(&self, call: Call) -> CallFuture;
}

/// The rest of the stack from some layer down.
pub type Next = Arc<dyn Link>;

/// What a layer does with a call, given the rest of the stack as `next`.
pub trait Step: Send + Sync + 'static {
    fn run(&self, call: Call, next: Next) -> CallFuture;
}

/// A [`Step`] in front of the link `next`.
pub struct Around<T> {
    step: T,
    next: Next,
}

impl<T: Step> Link for Around<T> {
    fn call(&self, call: Call) -> CallFuture {
        self.step.run(call, self.next.clone())
    }
}

/// Sends `call` down `next`.
pub fn forward(next: Next, call: Call) -> CallFuture {
    next.call(call)
}

/// The stack built outer layer first: each step is wrapped around what is added after it,
/// the innermost link last ([`Chain::end`]).
#[derive(Default)]
pub struct Chain {
    wraps: Vec<Box<dyn FnOnce(Next) -> Next>>,
}

impl Chain {
    /// `step` around the rest.
    pub fn then(mut self, step: impl Step) -> Self {
        self.wraps
            .push(Box::new(move |next| Arc::new(Around { step, next })));
        self
    }

    /// An application's tower layers around the rest, when there are any.
    pub fn then_tower(mut self, layer: Option<super::custom::CustomLayer>) -> Self {
        if let Some(layer) = layer {
            self.wraps.push(Box::new(move |next| {
                Arc::new(Tower(layer.apply(CallService::new(AsService(next)))))
            }));
        }
        self
    }

    /// The whole stack, ending in `innermost`.
    pub fn end(self, innermost: impl Link) -> Next {
        let innermost: Next = Arc::new(innermost);
        self.wraps
            .into_iter()
            .rev()
            .fold(innermost, |next, wrap| wrap(next))
    }
}

/// A link as a tower service, for an application's layers to wrap.
#[derive(Clone)]
pub struct AsService(pub Next);

impl Service<Call> for AsService {
    type Response = ServerResult;
    type Error = CallError;
    type Future = CallFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> CallFuture {
        self.0.call(call)
    }
}

/// A tower service (an application's layers over the rest) as a link: each call is made on
/// a clone, once that clone is ready.
struct Tower(CallService);

impl Link for Tower {
    fn call(&self, call: Call) -> CallFuture {
        Box::pin(self.0.clone().oneshot(call))
    }
}

/// A layer and the shared state its [`Step`] needs (each gets only what it uses): the
/// struct and its constructor.
macro_rules! step_layer {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            $($field: $ty,)*
        }

        impl $name {
            #[allow(clippy::new_without_default)]
            pub fn new($($field: $ty),*) -> Self {
                $name { $($field),* }
            }
        }
    };
}

pub(crate) use step_layer;
