//! The errors of a call on its way through the proxy, and the ONE place that turns them
//! into what the client sees. Messages name what the client sent and what went wrong, never
//! internals (paths, addresses, stack traces); "hidden" and "unknown" read the same.

use rmcp::{ErrorData as McpError, model::ErrorCode};
use serde_json::json;

/// JSON-RPC error code of a policy denial (implementation-defined server error range).
pub const FORBIDDEN: ErrorCode = ErrorCode(-32003);

/// JSON-RPC error code of a call refused by a rate limit (`data.retryAfterMs` says when
/// to retry).
pub const RATE_LIMITED: ErrorCode = ErrorCode(-32029);

/// JSON-RPC error code of a call (or result) stopped by a guard rule.
pub const BLOCKED: ErrorCode = ErrorCode(-32030);

/// Why a call did not get a result from its backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    #[error("unknown prompt `{0}`")]
    UnknownPrompt(String),
    /// The hint names no backend: a hidden resource reads exactly like an unknown one.
    #[error(
        "unknown resource `{0}` (a namespaced backend's resources are read as `<namespace>+<uri>`, as resources/list shows them)"
    )]
    UnknownResource(String),
    #[error("invalid cursor")]
    BadCursor,
    /// Denied by policy; the reason is safe to show (it names the tool and the rule's
    /// subject, never hidden tools).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Arguments that do not fit the tool's declared types (never sent on).
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    #[error("backend `{0}` is unavailable")]
    Unavailable(String),
    /// The backend could not answer this call, for a reason that is safe to show (its
    /// answer broke the protocol or a bound, or the call could not be sent as it must be).
    #[error("backend `{backend}` is unavailable: {reason}")]
    UnavailableBecause { backend: String, reason: String },
    #[error("backend `{backend}` did not answer within {ms} ms")]
    Timeout { backend: String, ms: u64 },
    /// The backend (or this caller) has too many calls in flight and the queue is full.
    #[error("backend `{0}` is busy: too many calls in flight, try again shortly")]
    Busy(String),
    /// The backend's circuit breaker is open after repeated failures.
    #[error("backend `{backend}` is failing: circuit open, retry after {retry_after_ms} ms")]
    CircuitOpen {
        backend: String,
        retry_after_ms: u64,
    },
    /// A backend run as one child per session has all its children in use.
    #[error(
        "backend `{backend}` runs one process per client session and all {max} are in use (`max_children`); try again when a session ends"
    )]
    NoChildLeft { backend: String, max: usize },
    #[error("backend `{0}` closed the connection during the call")]
    Closed(String),
    #[error("request cancelled")]
    Cancelled,
    #[error("the proxy is shutting down")]
    ShuttingDown,
    /// The backend's own JSON-RPC error, relayed as it is.
    #[error("{}", .0.message)]
    Backend(McpError),
    #[error("{0}")]
    Internal(String),
    /// Stopped by a guard: names the rule and where, never the matched text.
    #[error("{0}")]
    Blocked(String),
    /// Refused by a rate limit; retry after the given time.
    #[error("rate limited by `{rule}`: retry after {retry_after_ms} ms")]
    RateLimited { rule: String, retry_after_ms: u64 },
    /// The audit log cannot take the request's record: refused (fail closed).
    #[error("{0}")]
    Audit(String),
}

impl CallError {
    /// How a request that ended with this error is counted in the metrics (the
    /// `outcome` label).
    pub fn outcome(&self) -> &'static str {
        match self {
            CallError::Forbidden(_)
            | CallError::UnknownTool(_)
            | CallError::InvalidArguments(_) => "denied",
            CallError::RateLimited { .. } => "rate_limited",
            CallError::Blocked(_) => "blocked",
            CallError::Busy(_) | CallError::NoChildLeft { .. } => "busy",
            CallError::CircuitOpen { .. } => "circuit_open",
            CallError::Timeout { .. } => "timeout",
            CallError::Unavailable(_)
            | CallError::UnavailableBecause { .. }
            | CallError::Closed(_)
            | CallError::ShuttingDown => "unavailable",
            CallError::Cancelled => "cancelled",
            _ => "error",
        }
    }

    /// The JSON-RPC error the client receives.
    pub fn to_mcp(&self) -> McpError {
        let message = self.to_string();
        match self {
            CallError::UnknownTool(_) | CallError::UnknownPrompt(_) | CallError::BadCursor => {
                McpError::new(ErrorCode::INVALID_PARAMS, message, None)
            }
            CallError::Forbidden(_) => McpError::new(FORBIDDEN, message, None),
            CallError::InvalidArguments(_) => {
                McpError::new(ErrorCode::INVALID_PARAMS, message, None)
            }
            CallError::Blocked(_) => McpError::new(BLOCKED, message, None),
            CallError::UnknownResource(uri) => McpError::new(
                ErrorCode::RESOURCE_NOT_FOUND,
                message,
                Some(json!({ "uri": uri })),
            ),
            CallError::CircuitOpen {
                backend,
                retry_after_ms,
            } => McpError::new(
                ErrorCode::INTERNAL_ERROR,
                message,
                Some(json!({ "backend": backend, "retryAfterMs": retry_after_ms })),
            ),
            CallError::NoChildLeft { backend, max } => McpError::new(
                ErrorCode::INTERNAL_ERROR,
                message,
                Some(json!({ "backend": backend, "maxChildren": max })),
            ),
            CallError::Unavailable(backend)
            | CallError::UnavailableBecause { backend, .. }
            | CallError::Closed(backend)
            | CallError::Busy(backend)
            | CallError::Timeout { backend, .. } => McpError::new(
                ErrorCode::INTERNAL_ERROR,
                message,
                Some(json!({ "backend": backend })),
            ),
            CallError::Cancelled
            | CallError::ShuttingDown
            | CallError::Internal(_)
            | CallError::Audit(_) => McpError::new(ErrorCode::INTERNAL_ERROR, message, None),
            CallError::RateLimited {
                rule,
                retry_after_ms,
            } => McpError::new(
                RATE_LIMITED,
                message,
                Some(json!({ "rule": rule, "retryAfterMs": retry_after_ms })),
            ),
            CallError::Backend(error) => error.clone(),
        }
    }

    /// Maps a failure of a request sent to backend `backend`.
    pub fn from_service(backend: &str, error: rmcp::ServiceError) -> Self {
        use rmcp::ServiceError;
        match error {
            ServiceError::McpError(e) => CallError::Backend(e),
            ServiceError::Timeout { timeout } => CallError::Timeout {
                backend: backend.to_owned(),
                ms: timeout.as_millis() as u64,
            },
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                CallError::Closed(backend.to_owned())
            }
            ServiceError::Cancelled { .. } => CallError::Cancelled,
            other => {
                tracing::warn!(backend, error = %other, "backend request failed");
                CallError::Internal(format!("backend `{backend}` failed"))
            }
        }
    }
}

impl CallError {
    /// Whether this says something about the backend's health (for circuit breakers):
    /// `Some(false)` a failure, `Some(true)` a sound answer (including the backend's own
    /// refusals of bad requests), `None` when it says nothing (cancelled, refused before
    /// reaching the backend).
    pub fn backend_health(&self) -> Option<bool> {
        match self {
            CallError::Timeout { .. }
            | CallError::Closed(_)
            | CallError::Unavailable(_)
            | CallError::UnavailableBecause { .. }
            | CallError::Internal(_) => Some(false),
            CallError::Backend(e) => Some(e.code != ErrorCode::INTERNAL_ERROR),
            _ => None,
        }
    }
}

impl From<CallError> for McpError {
    fn from(e: CallError) -> Self {
        e.to_mcp()
    }
}

/// Errors from building or running the proxy (library API).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("backend `{name}` could not start: {reason}")]
    BackendStart { name: String, reason: String },
    #[error("invalid policies:\n{0}")]
    Policy(String),
    #[error("cannot listen on `{addr}`: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("{0}")]
    Switches(#[from] crate::switches::SwitchError),
}
