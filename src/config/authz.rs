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
    AuthzSettings { policies, catalog }
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
