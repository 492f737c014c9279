//! Integration tests: the proxy in front of real MCP servers, talked to by real clients.

mod common;

mod admin;
mod approvals;
mod audit;
mod audit_cli;
mod audit_hardening;
mod audit_tamper;
mod audit_toolkit;
mod authn;
mod authz;
mod bad_input;
mod check;
mod cli;
mod conformance;
mod connections;
mod federation;
mod governance;
mod guards_coverage;
mod history;
mod hostile_backend;
mod hot_path;
mod http_limits;
mod inputs;
mod library;
mod lifecycle;
mod logs;
#[cfg(feature = "otel")]
mod otel;
mod peers;
mod per_session;
mod pinning;
mod policy_cli;
mod relay;
mod reload;
mod replay;
mod replicas;
mod revisions;
mod s3;
mod sessions;
mod tenants;
mod tls;
