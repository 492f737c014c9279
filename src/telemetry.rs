//! Metrics, served at `/metrics` in the Prometheus text format. Labels name operations,
//! decisions and policy ids (the operator's own names) — never principals, tokens or
//! argument values.

use std::sync::Mutex;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `call_tool`, `read_resource`, ...
    pub operation: String,
    /// `allow` or `deny`.
    pub decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShadowLabels {
    pub policy: String,
    /// `permit` or `forbid`.
    pub effect: String,
    /// Whether enforcing the shadow policy would change the decision.
    pub would_change: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit` or `miss`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BreakerLabels {
    pub backend: String,
    /// The tenant of a per-tenant breaker (`""`: the backend's own).
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectionLabels {
    /// Which bound: see [`Rejection`].
    pub reason: &'static str,
}

/// A client refused at the HTTP layer for going over a bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// `server.max_connections` reached: 503 and closed.
    ConnectionLimit,
    /// No complete request head within `server.header_read_timeout_ms`: closed.
    HeaderTimeout,
    /// A request head over `server.max_header_bytes`: 431.
    HeaderTooLarge,
    /// No complete body within `server.body_read_timeout_ms`: 408.
    BodyTimeout,
    /// A body over `server.max_body_bytes`: 413.
    BodyTooLarge,
    /// A response write waited over `server.write_timeout_ms` for the client to read:
    /// closed.
    WriteTimeout,
    /// Authentication failures from one client address over `auth.failures_per_minute`:
    /// 429, counted here instead of recorded one by one.
    AuthFailureLimit,
    /// A new session over `server.max_sessions_per_principal`: 429.
    SessionsPerPrincipal,
    /// A new session over `server.max_sessions`: 503.
    SessionsTotal,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::ConnectionLimit => "connection_limit",
            Rejection::HeaderTimeout => "header_timeout",
            Rejection::HeaderTooLarge => "header_too_large",
            Rejection::BodyTimeout => "body_timeout",
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::WriteTimeout => "write_timeout",
            Rejection::AuthFailureLimit => "auth_failure_limit",
            Rejection::SessionsPerPrincipal => "sessions_per_principal",
            Rejection::SessionsTotal => "sessions_total",
        }
    }
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub decisions: Family<DecisionLabels, Counter>,
    pub shadow: Family<ShadowLabels, Counter>,
    pub auth_failures: Counter,
    /// Requests refused because the audit log could not take their record (fail closed).
    pub audit_refusals: Counter,
    /// Response cache lookups by outcome.
    pub cache: Family<CacheLabels, Counter>,
    /// Calls that joined an identical call in flight instead of calling the backend.
    pub coalesced: Counter,
    /// Circuit breaker state: 0 closed, 1 half open, 2 open.
    pub breakers: Family<BreakerLabels, Gauge>,
    /// Clients refused for going over a bound, by bound.
    pub rejections: Family<RejectionLabels, Counter>,
    /// Client connections open now (data listener).
    pub connections: Gauge,
    /// Reloads by outcome (`applied`, `unchanged`, `refused`).
    pub reloads: Family<ReloadLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        let shadow = Family::<ShadowLabels, Counter>::default();
        let auth_failures = Counter::default();
        let audit_refusals = Counter::default();
        let cache = Family::<CacheLabels, Counter>::default();
        let coalesced = Counter::default();
        let breakers = Family::<BreakerLabels, Gauge>::default();
        let rejections = Family::<RejectionLabels, Counter>::default();
        let connections = Gauge::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "mcp_warden_reloads",
            "Configuration reloads by outcome: applied, unchanged or refused (the running configuration kept)",
            reloads.clone(),
        );
        registry.register(
            "mcp_warden_http_rejections",
            "Clients refused at the HTTP layer for going over a bound, by bound",
            rejections.clone(),
        );
        registry.register(
            "mcp_warden_http_connections",
            "Client connections open on the MCP listener",
            connections.clone(),
        );
        registry.register(
            "mcp_warden_breaker_state",
            "Circuit breaker state per backend (and tenant): 0 closed, 1 half open, 2 open",
            breakers.clone(),
        );
        registry.register(
            "mcp_warden_cache_lookups",
            "Response cache lookups by outcome",
            cache.clone(),
        );
        registry.register(
            "mcp_warden_coalesced_calls",
            "Calls that shared an identical call in flight",
            coalesced.clone(),
        );
        registry.register(
            "mcp_warden_authz_decisions",
            "Authorization decisions by operation",
            decisions.clone(),
        );
        registry.register(
            "mcp_warden_authz_shadow",
            "Shadow policies that determined their would-be decision",
            shadow.clone(),
        );
        registry.register(
            "mcp_warden_authn_failures",
            "Requests refused by authentication",
            auth_failures.clone(),
        );
        registry.register(
            "mcp_warden_audit_refusals",
            "Requests refused because the audit log could not record them",
            audit_refusals.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            decisions,
            shadow,
            auth_failures,
            audit_refusals,
            cache,
            coalesced,
            breakers,
            rejections,
            connections,
            reloads,
        }
    }
}

impl Metrics {
    /// Counts a client refused for going over `bound`.
    pub fn reject(&self, bound: Rejection) {
        self.rejections
            .get_or_create(&RejectionLabels {
                reason: bound.as_str(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}
