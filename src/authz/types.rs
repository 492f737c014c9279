//! The vocabulary authorization speaks with the rest of the proxy: what goes in (policy files,
//! the tool catalog, declared claim attributes, request facts, the operation) and what comes
//! out (a decision with its reasons). Kept free of Cedar types so callers never depend on them.

use std::fmt;

/// One `.cedar` file: its path (used in error locations and default policy ids) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    pub file: String,
    pub text: String,
}

/// One exposed tool as the catalog knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    /// The name clients see (and the generated Cedar action's id).
    pub exposed: String,
    /// The backend that serves it.
    pub backend: String,
    /// The tool's JSON Schema `inputSchema`.
    pub input_schema: serde_json::Map<String, serde_json::Value>,
    pub hints: Hints,
    /// Refuse arguments the schema does not declare, at every level, even where it allows
    /// `additionalProperties` (the operator's `refuse_undeclared_arguments`).
    pub refuse_undeclared: bool,
    /// The tool as its backend serves it (for its integrity); `None` for a tool known
    /// only from a saved catalog.
    pub definition: Option<std::sync::Arc<crate::pinning::Definition>>,
    /// The `[tools.groups]` it is in (action groups `"group:<name>"`).
    pub groups: Vec<String>,
    /// The tenants its backend belongs to (`Mcp::Backend` in `Mcp::Tenant`); empty: shared.
    pub tenants: Vec<String>,
    /// Why the tool is held out of service whatever the policies say (its definition
    /// changed since it was pinned, ...): quarantined with this reason.
    pub held: Option<String>,
}

/// The tool's MCP annotations (possibly overridden by operator config: a backend may lie).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints {
    pub read_only: Option<bool>,
    pub destructive: Option<bool>,
    pub idempotent: Option<bool>,
    pub open_world: Option<bool>,
}

impl Hints {
    /// The hints with the MCP specification's defaults applied to the missing ones.
    pub fn resolved(&self) -> ResolvedHints {
        ResolvedHints {
            read_only: self.read_only.unwrap_or(false),
            destructive: self.destructive.unwrap_or(true),
            idempotent: self.idempotent.unwrap_or(false),
            open_world: self.open_world.unwrap_or(true),
        }
    }
}

/// Hints as the `Mcp::Tool` entity carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedHints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

/// The Cedar type of a declared principal claim attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrType {
    String,
    Long,
    Bool,
    StringSet,
}

impl AttrType {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            AttrType::String => "a string",
            AttrType::Long => "an integer",
            AttrType::Bool => "a boolean",
            AttrType::StringSet => "a set of strings",
        }
    }
}

/// A principal attribute the operator declared (mapped from a token claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeDecl {
    pub name: String,
    pub ty: AttrType,
}

/// Facts about the request that policies may use (`context.request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    /// Seconds since the Unix epoch.
    pub epoch_seconds: i64,
    /// Hour of the day, UTC (0-23).
    pub hour: i64,
    /// Day of the week, UTC; 0 = Sunday.
    pub weekday: i64,
    pub client_addr: String,
    pub transport: String,
    pub session: String,
    /// What the session did before (`context.history`); empty when not looked up.
    pub history: HistoryFacts,
}

/// `context.history`: what the calling session did before this call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFacts {
    pub tools: Vec<String>,
    pub groups: Vec<String>,
    pub calls: i64,
    pub recent_calls: i64,
}

/// The MCP operation being authorized.
#[derive(Debug, Clone, Copy)]
pub enum Operation<'a> {
    CallTool {
        tool: &'a str,
        arguments: &'a serde_json::Map<String, serde_json::Value>,
    },
    ListTools,
    ListPrompts,
    ListResources,
    ReadResource {
        backend: &'a str,
        uri: &'a str,
    },
    Subscribe {
        backend: &'a str,
        uri: &'a str,
    },
    GetPrompt {
        backend: &'a str,
        prompt: &'a str,
    },
    Complete {
        backend: &'a str,
    },
    CreateMessage {
        backend: &'a str,
    },
    Elicit {
        backend: &'a str,
    },
    ListRoots {
        backend: &'a str,
    },
    SetLogLevel,
    /// An admin API request (`[admin] bind`).
    Admin(AdminAction),
}

/// What an admin API request does: each is an action `admin_<name>` in the `admin` group,
/// on the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    /// Read the proxy's state: backends, tools, switches, sessions, the generation.
    Read,
    /// Switch a tool, backend or principal off or on (the kill switch).
    Switch,
    /// Reset a circuit breaker, purge the cache.
    Reset,
    /// End a client session.
    Sessions,
    /// Reload the configuration and policies.
    Reload,
    /// Approve or refuse a call waiting for a person (`@approval`).
    Approve,
}

impl AdminAction {
    pub const ALL: [AdminAction; 6] = [
        AdminAction::Read,
        AdminAction::Switch,
        AdminAction::Reset,
        AdminAction::Sessions,
        AdminAction::Reload,
        AdminAction::Approve,
    ];

    /// The Cedar action id.
    pub fn action(self) -> &'static str {
        match self {
            AdminAction::Read => "admin_read",
            AdminAction::Switch => "admin_switch",
            AdminAction::Reset => "admin_reset",
            AdminAction::Sessions => "admin_sessions",
            AdminAction::Reload => "admin_reload",
            AdminAction::Approve => "admin_approve",
        }
    }
}

/// The effect of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Permit,
    Forbid,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Permit => "permit",
            Effect::Forbid => "forbid",
        })
    }
}

/// The answer to one authorization question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The policies that decided: the satisfied permits of an allow, the satisfied forbids of
    /// a deny, the failing policies of a deny caused by an evaluation error; empty for the
    /// default deny and for denials before evaluation (unknown tool, argument of a wrong type).
    pub determining: Vec<String>,
    /// Evaluation errors (each one denies). Cedar's messages may quote argument values.
    pub errors: Vec<String>,
    /// Satisfied shadow policies (they never change `allowed`).
    pub shadow: Vec<ShadowOutcome>,
    /// Evaluation errors of shadow policies.
    pub shadow_errors: Vec<String>,
    /// A clear explanation that quotes no argument values.
    pub reason: String,
    /// Denied before any policy was evaluated because the arguments do not fit the tool's
    /// declared types: the caller's mistake, told as such (never a policy's answer).
    pub invalid_arguments: bool,
    /// Allowed only once a person with one of these roles approves this exact call: every
    /// permit that allowed it carries `@approval("<role>")`. Empty: no approval needed.
    pub approval: Vec<String>,
}

impl Decision {
    pub(crate) fn deny(reason: impl Into<String>) -> Decision {
        Decision {
            allowed: false,
            determining: Vec::new(),
            errors: Vec::new(),
            shadow: Vec::new(),
            shadow_errors: Vec::new(),
            reason: reason.into(),
            invalid_arguments: false,
            approval: Vec::new(),
        }
    }

    /// A denial of arguments that do not fit the tool's declared types.
    pub(crate) fn invalid_arguments(reason: impl Into<String>) -> Decision {
        Decision {
            invalid_arguments: true,
            ..Decision::deny(reason)
        }
    }

    /// A denial whose cause may quote request values: the cause goes to `errors` (the audit
    /// record), not to the reason.
    pub(crate) fn deny_with(reason: &str, cause: impl fmt::Display) -> Decision {
        let mut d = Decision::deny(reason);
        d.errors.push(format!("{reason}: {cause}"));
        d
    }
}

/// What a shadow policy would have done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowOutcome {
    pub policy: String,
    pub effect: Effect,
    /// Whether enforcing all shadow policies too would change this decision.
    pub would_change: bool,
}

/// A problem with the policies (or the catalog they are checked against), located in a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", place(file, *line, *column))]
pub struct PolicyError {
    pub file: String,
    /// 1-based; 0 when the problem has no place in a file.
    pub line: usize,
    /// 1-based, in characters; 0 when the problem has no place in a file.
    pub column: usize,
    pub message: String,
}

/// `file:line:column: ` where known.
fn place(file: &str, line: usize, column: usize) -> String {
    match (file.is_empty(), line) {
        (true, _) => String::new(),
        (false, 0) => format!("{file}: "),
        (false, _) => format!("{file}:{line}:{column}: "),
    }
}

/// How to treat a policy that no longer validates because of one tool's (new) schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMode {
    /// Any error fails the build (startup, `check`, policy edits).
    Strict,
    /// Quarantine the tool instead (a backend changed its tools under running policies).
    Quarantine,
}
