//! The shape every layer of the call stack shares: a service that wraps the next one and
//! runs an async step around it. `Around` keeps each layer down to its own logic.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use rmcp::model::ServerResult;
use tower::{Service, ServiceExt};

use super::Call;
use crate::error::CallError;

pub type CallFuture = Pin<Box<dyn Future<Output = Result<ServerResult, CallError>> + Send>>;

/// What a layer does with a call, given the rest of the stack as `next`.
pub trait Step: Clone + Send + Sync + 'static {
    fn run<S>(&self, call: Call, next: S) -> CallFuture
    where
        S: Service<Call, Response = ServerResult, Error = CallError> + Send + 'static,
        S::Future: Send;
}

/// A [`Step`] in front of the service `inner`.
#[derive(Clone)]
pub struct Around<T, S> {
    step: T,
    inner: S,
}

impl<T, S> Around<T, S> {
    pub fn new(step: T, inner: S) -> Self {
        Around { step, inner }
    }
}

impl<T, S> Service<Call> for Around<T, S>
where
    T: Step,
    S: Service<Call, Response = ServerResult, Error = CallError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = ServerResult;
    type Error = CallError;
    type Future = CallFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        // Readiness of the rest of the stack is awaited per call (on a clone), inside the
        // step, so a layer can refuse a call before waiting for anything below it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> CallFuture {
        // The clone that was ready is the one called: the standard tower pattern.
        let next = self.inner.clone();
        let next = std::mem::replace(&mut self.inner, next);
        self.step.run(call, ReadyThen(next))
    }
}

/// The rest of the stack, made ready before each call.
pub struct ReadyThen<S>(S);

impl<S> Service<Call> for ReadyThen<S>
where
    S: Service<Call, Response = ServerResult, Error = CallError> + Send + 'static,
    S::Future: Send,
{
    type Response = ServerResult;
    type Error = CallError;
    type Future = CallFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> CallFuture {
        Box::pin(self.0.call(call))
    }
}

/// Calls `next` once it is ready.
pub async fn forward<S>(next: S, call: Call) -> Result<ServerResult, CallError>
where
    S: Service<Call, Response = ServerResult, Error = CallError> + Send + 'static,
    S::Future: Send,
{
    next.oneshot(call).await
}

/// A layer and the shared state its [`Step`] needs (each gets only what it uses): the
/// struct, its constructor and its `tower::Layer` impl (which wraps the next service in
/// [`Around`]).
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

        impl<S> tower::Layer<S> for $name {
            type Service = super::layer::Around<$name, S>;

            fn layer(&self, inner: S) -> Self::Service {
                super::layer::Around::new(self.clone(), inner)
            }
        }
    };
}

pub(crate) use step_layer;
