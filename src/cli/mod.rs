//! Subcommands of the binary that are more than a line or two.

pub mod admin;
pub mod check;
mod explain;
pub mod logging;
#[cfg(feature = "otel")]
mod otel;
pub mod output;
mod pins;
pub mod policy;
mod replay;
pub mod source;
pub mod tools;
pub mod watch;
pub mod witness;
