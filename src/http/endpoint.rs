//! The MCP endpoint as one service: its steps, outermost first, and the one place that
//! orders them ([`Next::run`]). Each step is an async function of the request and the
//! rest of the chain, as an axum middleware would be; chained here instead of as
//! `from_fn` layers, which clone and box every layer beneath them on each request.
//!
//! 1. `auth::require_auth` — authentication runs first: an unauthenticated request is
//!    refused on its head, before its body is read; session ownership.
//! 2. `body::read_body` — the whole body under one deadline and size limit.
//! 3. `auth::limit_sessions` — an `initialize` takes a session place or is refused.
//! 4. `hot::serve` — a live session's calls, lists and pings, served by the proxy.
//! 5. rmcp's streamable-HTTP service — everything else.

use std::{convert::Infallible, sync::Arc};

use axum::{body::Body, extract::Request, response::Response};
use futures::future::BoxFuture;
use rmcp::transport::streamable_http_server::StreamableHttpService;

use super::{auth::AuthState, body::BodyLimits, hot::Hot, sessions::Sessions};
use crate::mcp::Audited;

/// What the steps need.
pub struct Endpoint {
    pub auth: Arc<AuthState>,
    pub body: Arc<BodyLimits>,
    pub hot: Arc<Hot>,
    pub mcp: StreamableHttpService<Audited, Sessions>,
}

#[derive(Clone, Copy)]
enum Step {
    Authenticate,
    ReadBody,
    LimitSessions,
    Hot,
    Rmcp,
}

/// The rest of the chain, from one step on; `run` hands it a request.
pub struct Next {
    endpoint: Arc<Endpoint>,
    step: Step,
}

impl Next {
    pub fn run(self, request: Request) -> BoxFuture<'static, Response> {
        let e = self.endpoint;
        let next = |step| Next {
            endpoint: e.clone(),
            step,
        };
        match self.step {
            Step::Authenticate => Box::pin(super::auth::require_auth(
                e.auth.clone(),
                request,
                next(Step::ReadBody),
            )),
            Step::ReadBody => Box::pin(super::body::read_body(
                e.body.clone(),
                request,
                next(Step::LimitSessions),
            )),
            Step::LimitSessions => {
                super::auth::limit_sessions(e.auth.clone(), request, next(Step::Hot))
            }
            Step::Hot => Box::pin(super::hot::serve(e.hot.clone(), request, next(Step::Rmcp))),
            Step::Rmcp => Box::pin(async move { e.mcp.handle(request).await.map(Body::new) }),
        }
    }
}

/// The endpoint as a service for the router.
pub fn service(
    endpoint: Endpoint,
) -> impl tower::Service<Request, Response = Response, Error = Infallible, Future = impl Send + 'static>
+ Clone
+ Send
+ Sync
+ 'static {
    let endpoint = Arc::new(endpoint);
    tower::service_fn(move |request: Request| {
        let first = Next {
            endpoint: endpoint.clone(),
            step: Step::Authenticate,
        };
        async move { Ok::<_, Infallible>(first.run(request).await) }
    })
}
