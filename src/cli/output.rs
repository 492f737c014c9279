//! The binary's own lines on stdout and stderr: the audit crate's (its commands and the
//! proxy's print the same way; see `warden_audit::cli::output`).

pub use warden_audit::cli::output::{error_line, line};
