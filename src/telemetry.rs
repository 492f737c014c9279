//! Metrics, served at `/metrics` in the Prometheus text format. Labels name operations,
//! decisions and policy ids (the operator's own names) — never principals, tokens or
//! argument values.

use std::sync::Mutex;

use crate::sync::Locked;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// The histograms' buckets (a `fn` pointer, so families of them can be named).
pub type Latencies<L> = Family<L, Histogram, fn() -> Histogram>;

/// What `/metrics` serves: OpenMetrics text, which is what the encoder writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

/// A forwarded request of a tenant's principal (`[admin] tenant_metrics`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// The caller's tenant (`""`: none).
    pub tenant: String,
    /// As in [`RequestLabels`].
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    /// Forwarded requests by tenant, when the operator asked for them.
    pub tenant_requests: Option<Family<TenantLabels, Counter>>,
    /// Every family's name, as registered (for the documentation's checks).
    families: Vec<&'static str>,
    pub requests: Family<RequestLabels, Counter>,
    /// The whole forwarded request, through the call stack.
    pub request_seconds: Latencies<OperationLabels>,
    /// The backend alone (what the proxy adds is the difference).
    pub backend_seconds: Latencies<BackendLabels>,
    pub decisions: Family<DecisionLabels, Counter>,
    /// Decisions by the policy that determined them.
    pub policy_decisions: Family<PolicyLabels, Counter>,
    pub shadow: Family<ShadowLabels, Counter>,
    pub auth_failures: Family<ReasonLabels, Counter>,
    pub guard_blocks: Family<RuleLabels, Counter>,
    pub rate_limited: Family<RuleLabels, Counter>,
    /// Calls refused for a full concurrency queue, by backend.
    pub busy: Family<BackendLabels, Counter>,
    pub breaker_transitions: Family<TransitionLabels, Counter>,
    pub backend_up: Family<BackendLabels, Gauge>,
    pub backend_restarts: Family<BackendLabels, Counter>,
    pub backend_connect_seconds: Latencies<BackendLabels>,
    /// Client sessions open (set when scraped).
    pub sessions: Gauge,
    /// Audit records durable in the local write-ahead log (set when scraped).
    pub audit_wal_records: Gauge,
    /// Audit records not yet in the object store (set when scraped).
    pub audit_pending_upload: Gauge,
    /// Seconds since the last signed checkpoint reached the store (set when scraped).
    pub audit_checkpoint_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub audit_upload_errors: Counter,
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
    /// Tools with an integrity finding now, by kind.
    pub tool_integrity: Family<KindLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `changed`, `unpinned`, `suspicious`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub outcome: &'static str,
}

/// A forwarded request: what it was, where it went, how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `tools/call`, `resources/read`, `prompts/get`, `completion/complete`, ...
    pub operation: &'static str,
    pub backend: String,
    /// The exposed tool name of a `tools/call` (the operator's catalog), else `""`.
    pub tool: String,
    /// `ok`, `tool_error`, `denied`, `rate_limited`, `blocked`, `busy`, `circuit_open`,
    /// `timeout`, `unavailable`, `cancelled`, `error`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// The policy's `@id` (or Cedar's `policyN`).
    pub policy: String,
    /// `allow` or `deny`: the decision it determined.
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// The guard rule or rate rule (the operator's names).
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub backend: String,
    /// `closed`, `half_open` or `open`: the state entered.
    pub to: &'static str,
}

/// Latency buckets from 100 µs to about 26 s (doubling).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// Registers `metric` as `name`, remembering the name.
fn register(
    registry: &mut Registry,
    families: &mut Vec<&'static str>,
    name: &'static str,
    help: &str,
    metric: impl prometheus_client::registry::Metric,
) {
    families.push(name);
    registry.register(name, help, metric);
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(false)
    }
}

impl Metrics {
    /// Every family; `tenants`: also requests by tenant (a tenant's name is then visible to
    /// whoever reads `/metrics`, so only on request).
    pub fn new(tenants: bool) -> Metrics {
        let mut registry = Registry::default();
        let mut families = Vec::new();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Latencies::new_with_constructor(latency_histogram as fn() -> _);
        let backend_seconds = Latencies::new_with_constructor(latency_histogram as fn() -> _);
        let decisions = Family::<DecisionLabels, Counter>::default();
        let policy_decisions = Family::<PolicyLabels, Counter>::default();
        let shadow = Family::<ShadowLabels, Counter>::default();
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        let guard_blocks = Family::<RuleLabels, Counter>::default();
        let rate_limited = Family::<RuleLabels, Counter>::default();
        let busy = Family::<BackendLabels, Counter>::default();
        let breaker_transitions = Family::<TransitionLabels, Counter>::default();
        let backend_up = Family::<BackendLabels, Gauge>::default();
        let backend_restarts = Family::<BackendLabels, Counter>::default();
        let backend_connect_seconds =
            Latencies::new_with_constructor(latency_histogram as fn() -> _);
        let sessions = Gauge::default();
        let audit_wal_records = Gauge::default();
        let audit_pending_upload = Gauge::default();
        let audit_checkpoint_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let audit_upload_errors = Counter::default();
        register(
            &mut registry,
            &mut families,
            "mcp_warden_requests",
            "Forwarded requests by operation, backend, tool and outcome",
            requests.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_request_duration_seconds",
            "Time of a forwarded request through the whole call stack",
            request_seconds.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_backend_duration_seconds",
            "Time the backend took to answer (the proxy's own time is the difference)",
            backend_seconds.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_authz_policy_decisions",
            "Decisions by the policy that determined them",
            policy_decisions.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_guard_blocks",
            "Requests blocked by a content guard, by rule",
            guard_blocks.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_rate_limited",
            "Calls refused by a rate rule",
            rate_limited.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_busy",
            "Calls refused because a backend's concurrency queue was full",
            busy.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_breaker_transitions",
            "Circuit breaker state changes, by the state entered",
            breaker_transitions.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_backend_up",
            "Whether the backend is connected (1) or not (0)",
            backend_up.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_backend_restarts",
            "Backend connections that ended and were started again",
            backend_restarts.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_backend_connect_duration_seconds",
            "Time to connect to a backend and complete its handshake",
            backend_connect_seconds.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_sessions",
            "Client sessions open",
            sessions.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_audit_wal_records",
            "Audit records durable in the local write-ahead log",
            audit_wal_records.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_audit_pending_upload",
            "Audit records not yet in the object store",
            audit_pending_upload.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_audit_checkpoint_age_seconds",
            "Seconds since the last signed checkpoint reached the object store",
            audit_checkpoint_age.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_audit_upload_errors",
            "Failed attempts to write to the audit store",
            audit_upload_errors.clone(),
        );
        let audit_refusals = Counter::default();
        let cache = Family::<CacheLabels, Counter>::default();
        let coalesced = Counter::default();
        let breakers = Family::<BreakerLabels, Gauge>::default();
        let rejections = Family::<RejectionLabels, Counter>::default();
        let connections = Gauge::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        let tool_integrity = Family::<KindLabels, Gauge>::default();
        register(
            &mut registry,
            &mut families,
            "mcp_warden_tool_integrity_findings",
            "Tools with an integrity finding now, by kind: changed since pinned, unpinned, suspicious description (held when pinning is enforced)",
            tool_integrity.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_reloads",
            "Configuration reloads by outcome: applied, unchanged or refused (the running configuration kept)",
            reloads.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_http_rejections",
            "Clients refused at the HTTP layer for going over a bound, by bound",
            rejections.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_http_connections",
            "Client connections open on the MCP listener",
            connections.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_breaker_state",
            "Circuit breaker state per backend (and tenant): 0 closed, 1 half open, 2 open",
            breakers.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_cache_lookups",
            "Response cache lookups by outcome",
            cache.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_coalesced_calls",
            "Calls that shared an identical call in flight",
            coalesced.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_authz_decisions",
            "Authorization decisions by operation",
            decisions.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_authz_shadow",
            "Shadow policies that determined their would-be decision",
            shadow.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_authn_failures",
            "Requests refused by authentication, by reason (missing, invalid)",
            auth_failures.clone(),
        );
        register(
            &mut registry,
            &mut families,
            "mcp_warden_audit_refusals",
            "Requests refused because the audit log could not record them",
            audit_refusals.clone(),
        );
        let tenant_requests = tenants.then(|| {
            let family = Family::<TenantLabels, Counter>::default();
            register(
                &mut registry,
                &mut families,
                "mcp_warden_tenant_requests",
                "Forwarded requests by the caller's tenant and outcome (`[admin] tenant_metrics`)",
                family.clone(),
            );
            family
        });
        Metrics {
            registry: Mutex::new(registry),
            tenant_requests,
            families,
            requests,
            request_seconds,
            backend_seconds,
            decisions,
            policy_decisions,
            shadow,
            auth_failures,
            guard_blocks,
            rate_limited,
            busy,
            breaker_transitions,
            backend_up,
            backend_restarts,
            backend_connect_seconds,
            sessions,
            audit_wal_records,
            audit_pending_upload,
            audit_checkpoint_age,
            audit_upload_errors,
            audit_refusals,
            cache,
            coalesced,
            breakers,
            rejections,
            connections,
            reloads,
            tool_integrity,
        }
    }
}

impl Metrics {
    /// Counts a forwarded request and how long it took.
    pub fn request(
        &self,
        operation: &'static str,
        backend: &str,
        tool: String,
        outcome: &'static str,
        took: std::time::Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                operation,
                backend: backend.to_owned(),
                tool,
                outcome,
            })
            .inc();
        self.request_seconds
            .get_or_create(&OperationLabels {
                operation,
                backend: backend.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts something refused or changed for `backend` in `family`.
    pub fn backend_event(&self, family: &Family<BackendLabels, Counter>, backend: &str) {
        family
            .get_or_create(&BackendLabels {
                backend: backend.to_owned(),
            })
            .inc();
    }

    /// Counts a client refused for going over `bound`.
    pub fn reject(&self, bound: Rejection) {
        self.rejections
            .get_or_create(&RejectionLabels {
                reason: bound.as_str(),
            })
            .inc();
    }

    /// Every family's name (a counter is exposed with `_total`).
    pub fn families(&self) -> &[&'static str] {
        &self.families
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.locked();
        if encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `mcp_warden_…` names in `text`, without the suffixes the exposition adds.
    fn families_in(text: &str) -> Vec<String> {
        let mut names: Vec<String> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|t| t.starts_with("mcp_warden_"))
            .map(|t| {
                ["_total", "_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| t.strip_suffix(s))
                    .unwrap_or(t)
                    .to_owned()
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn read(path: &str) -> String {
        std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn the_example_alerts_use_real_metrics_and_the_readme_documents_every_one() {
        assert!(
            !Metrics::default()
                .families()
                .contains(&"mcp_warden_tenant_requests"),
            "tenants are a label only on request"
        );
        let metrics = Metrics::new(true);
        let registered = metrics.families();
        let used = families_in(&read("deploy/prometheus/alerts.yml"));
        assert!(used.len() >= 10, "{used:?}");
        for family in &used {
            assert!(
                registered.contains(&family.as_str()),
                "the alerts use `{family}`, which is not a metric"
            );
        }
        let readme = read("README.md");
        for family in registered {
            assert!(
                readme.contains(&format!("| `{family}` |")),
                "`{family}` has no row in the README's metrics table"
            );
        }
        let documented = families_in(&readme);
        for family in documented {
            assert!(
                registered.contains(&family.as_str()),
                "the README names `{family}`, which is not a metric"
            );
        }
    }
}
