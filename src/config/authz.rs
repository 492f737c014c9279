//! `[authz]`: where the Cedar policies come from. The loader reads the files; validation
//! (here, no I/O) checks there is something to decide with. Deny by default means a proxy
//! without policies would refuse everything, so that is a configuration error, not a mode.

use std::path::Path;

use super::{
    ConfigError,
    file::{AuthzSection, FileConfig, PolicyFile},
    validate::Issues,
};

/// The policy sources of a configuration.
#[derive(Debug, Clone, Default)]
pub struct AuthzSettings {
    /// Every policy file, the inline policy last (as `config:authz.policy`).
    pub policies: Vec<PolicyFile>,
    /// A saved tool catalog (JSON text) to validate against without live backends.
    pub catalog: Option<PolicyFile>,
    /// Calls that wait for a person's approval (`@approval`).
    pub approvals: ApprovalSettings,
}

/// How calls that need a person's approval wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalSettings {
    /// How long the call is held waiting (zero: answered at once, to be called again).
    pub wait: std::time::Duration,
    /// How long a request stays open, and an approval usable by the same call.
    pub expire: std::time::Duration,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            wait: std::time::Duration::from_secs(30),
            expire: std::time::Duration::from_secs(900),
        }
    }
}

/// The longest an approval may stay open: a week.
const MAX_EXPIRE_S: u64 = 7 * 24 * 3600;

fn approvals(section: &AuthzSection, issues: &mut Issues) -> ApprovalSettings {
    let default = ApprovalSettings::default();
    let expire = section
        .approval_expire_s
        .unwrap_or(default.expire.as_secs());
    let wait = section.approval_wait_s.unwrap_or(default.wait.as_secs());
    if expire == 0 || expire > MAX_EXPIRE_S {
        issues.push(
            "authz.approval_expire_s",
            format!("must be between 1 and {MAX_EXPIRE_S} (a week)"),
        );
    }
    if wait > expire {
        issues.push(
            "authz.approval_wait_s",
            "must not be longer than `approval_expire_s` (the request would expire while the call waits)",
        );
    }
    ApprovalSettings {
        wait: std::time::Duration::from_secs(wait.min(expire)),
        expire: std::time::Duration::from_secs(expire.clamp(1, MAX_EXPIRE_S)),
    }
}

/// The policy set that allows everything: the embedded default and `--mcp-json` (a laptop
/// on loopback).
pub const ALLOW_ALL: &str = "@id(\"laptop-allow-all\")\npermit(principal, action, resource);\n";

pub(super) fn authz(file: &FileConfig, issues: &mut Issues) -> AuthzSettings {
    let Some(section) = &file.authz else {
        issues.push(
            "authz",
            "required: set `policies` (a directory of .cedar files) or `policy`",
        );
        return AuthzSettings::default();
    };
    let mut policies = file.policy_files.clone();
    if let Some(text) = &section.policy {
        policies.push(PolicyFile {
            file: "config:authz.policy".to_owned(),
            text: text.clone(),
        });
    }
    if section.policies.is_some() && file.policy_files.is_empty() {
        issues.push("authz.policies", "no `.cedar` files found");
    }
    if policies.is_empty() {
        issues.push("authz", "no policies: nothing would be allowed");
    }
    let catalog = file.policy_files_catalog.clone();
    AuthzSettings {
        policies,
        catalog,
        approvals: approvals(section, issues),
    }
}

/// Reads `authz.policies` (every `.cedar` file, in name order) and `authz.tools`, relative
/// to the config file's directory.
pub(super) fn load(
    section: &AuthzSection,
    base: &Path,
    file: &mut FileConfig,
) -> Result<(), ConfigError> {
    if let Some(dir) = &section.policies {
        let dir = base.join(dir);
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            ConfigError::one(
                "authz.policies",
                format!("cannot read `{}`: {e}", dir.display()),
            )
        })?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
            .collect();
        paths.sort();
        for path in paths {
            let text = super::read(&path, "authz.policies")?;
            file.policy_files.push(PolicyFile {
                file: path.display().to_string(),
                text,
            });
        }
    }
    if let Some(tools) = &section.tools {
        let path = base.join(tools);
        let text = super::read(&path, "authz.tools")?;
        file.policy_files_catalog = Some(PolicyFile {
            file: path.display().to_string(),
            text,
        });
    }
    Ok(())
}
