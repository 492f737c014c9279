//! Authorization: every MCP request becomes a Cedar question — principal (the caller, in its
//! roles and tenant), action (the MCP operation; one generated action per exposed tool),
//! resource (the tool, resource, prompt or backend) and context (typed arguments and request
//! facts) — decided deny-by-default against the policy files, validated strictly at load
//! against a schema generated from the tool catalog.
//!
//! Where it sits: the `authz` layer of the call stack asks [`Engine::decide`] before anything
//! reaches a backend, and list operations filter tools with [`Engine::tool_visible`]. An
//! [`Engine`] is immutable; reloads build a new one ([`BuildMode::Quarantine`] when a backend
//! changed its tools) and swap it in.
//!
//! Policies name everything in the `Mcp` namespace: `Mcp::Action::"call_tool"`,
//! `Mcp::Action::"trading__execute_trade"`, `Mcp::Role::"trader"`, `Mcp::Backend::"github"`.

mod argtype;
mod arguments;
mod build;
mod catalog;
mod decide;
mod engine;
mod entities;
mod format;
mod memo;
mod placeholders;
mod policies;
mod replay;
mod schema;
mod slice;
mod spec;
mod synthetic;
mod tables;
mod time;
mod types;
mod validate;

pub use catalog::{CatalogError, parse_catalog};
pub use engine::{Engine, Tenancy};
pub use format::format_policies;
pub use placeholders::placeholder_tools;
pub use replay::{Recalled, Recorded, RecordedArguments, Replayed};
pub use spec::{ACTIONS, OperationSpec};
#[doc(hidden)]
pub use synthetic::{
    synthetic_attributes, synthetic_catalog, synthetic_policies, synthetic_tool,
    synthetic_tool_count,
};
pub use tables::{CaseOutcome, Coverage, TableFile, TableReport, run_tables};
pub use time::{TimeError, facts_at, parse_rfc3339};
pub use types::{
    AdminAction, AttrType, AttributeDecl, BuildMode, Decision, Effect, Hints, HistoryFacts,
    Operation, PolicyError, PolicySource, RequestFacts, ResolvedHints, ShadowOutcome, ToolInfo,
};

#[cfg(test)]
mod examples_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod testkit;
