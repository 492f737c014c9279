//! The limits layer: rate limits, checked after authorization (a denied call spends no
//! token) and before guards and the cache (a cached answer still counts against a quota:
//! quotas meter callers, not backend load).

use super::layer::{CallFuture, Next, Step, forward, step_layer};
use super::{Call, Op};
use crate::error::CallError;
use crate::governance::rate::Subject;

step_layer!(LimitsLayer {
    governance: std::sync::Arc<crate::governance::Governance>,
    metrics: std::sync::Arc<crate::telemetry::Metrics>,
});

impl Step for LimitsLayer {
    fn run(&self, call: Call, next: Next) -> CallFuture {
        // Most proxies configure no rate rule: then this layer costs one branch.
        if !self.governance.has_rate_limits() {
            return forward(next, call);
        }
        let governance = self.governance.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let backend = call.backend.name();
            let subject = Subject {
                principal: &call.origin.principal,
                backend,
                tool: match &call.op {
                    Op::CallTool { tool, .. } => Some(tool.as_str()),
                    _ => None,
                },
            };
            if let Err(limited) = governance.check_rate(&subject).await {
                tracing::info!(rule = %limited.rule, backend = %call.backend.name(), "rate limited");
                metrics
                    .rate_limited
                    .get_or_create(&crate::telemetry::RuleLabels {
                        rule: limited.rule.clone(),
                    })
                    .inc();
                return Err(CallError::RateLimited {
                    rule: limited.rule,
                    retry_after_ms: limited.retry_after.as_millis().max(1) as u64,
                });
            }
            forward(next, call).await
        })
    }
}
