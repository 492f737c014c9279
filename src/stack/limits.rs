//! The limits layer: rate limits, checked after authorization (a denied call spends no
//! token) and before guards and the cache (a cached answer still counts against a quota:
//! quotas meter callers, not backend load).

use std::sync::Arc;

use rmcp::model::ServerResult;
use tower::{Layer, Service};

use super::layer::{Around, CallFuture, Step, forward};
use super::{Call, Op};
use crate::governance::rate::Subject;
use crate::{error::CallError, hub::Hub};

#[derive(Clone)]
pub struct LimitsLayer {
    hub: Arc<Hub>,
}

impl LimitsLayer {
    pub fn new(hub: Arc<Hub>) -> Self {
        LimitsLayer { hub }
    }
}

impl<S> Layer<S> for LimitsLayer {
    type Service = Around<LimitsLayer, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Around::new(self.clone(), inner)
    }
}

impl Step for LimitsLayer {
    fn run<S>(&self, call: Call, next: S) -> CallFuture
    where
        S: Service<Call, Response = ServerResult, Error = CallError> + Send + 'static,
        S::Future: Send,
    {
        let backend = self
            .hub
            .backends
            .get(call.backend)
            .map(|b| b.name().to_owned())
            .unwrap_or_default();
        let tool = match &call.op {
            Op::CallTool { tool, .. } => Some(tool.as_str()),
            _ => None,
        };
        if !self.hub.governance.has_rate_limits() {
            return Box::pin(forward(next, call));
        }
        let tool = tool.map(str::to_owned);
        let governance = self.hub.governance.clone();
        Box::pin(async move {
            let subject = Subject {
                principal: &call.origin.principal,
                backend: &backend,
                tool: tool.as_deref(),
            };
            if let Err(limited) = governance.check_rate(&subject).await {
                tracing::info!(rule = %limited.rule, principal = %call.origin.principal.id, "rate limited");
                return Err(CallError::RateLimited {
                    rule: limited.rule,
                    retry_after_ms: limited.retry_after.as_millis().max(1) as u64,
                });
            }
            forward(next, call).await
        })
    }
}
