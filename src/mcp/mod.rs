//! The MCP server side: one handler per client session (streamable HTTP or stdio), and the
//! catalog that maps exposed names to backends.

pub mod approvers;
mod audited;
pub mod catalog;
mod inputs;
pub mod live;
mod server;
#[cfg(test)]
mod tests;

pub use audited::Audited;
pub use server::ProxySession;
