//! Replacing a small file so that a crash leaves the old content or the new: one
//! implementation, the audit crate's (the auditor's saved state is one such file), used for
//! the kill switch's set and exported catalogs too.

pub use warden_audit::files::replace;
