//! `[tools]`: tool integrity — the lock file of reviewed tool definitions, what a finding
//! does (`pinning`), and the operator's own description rules. The loader reads the lock
//! file; validation (no I/O) parses and checks it.

use std::path::Path;

use serde::Deserialize;

use super::{ConfigError, file::PolicyFile, validate::Issues};
use crate::pinning::{Integrity, LockFile, Mode, Rule, Rules};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsSection {
    /// The lock file (`mcp-warden tools pin` writes it), relative to the config file.
    pub lock: Option<String>,
    /// `off`, `warn` (record and count findings) or `enforce` (hold the tool: hidden and
    /// denied); default `enforce` with a lock file, else `off`.
    pub pinning: Option<String>,
    /// Description rules of the operator's, beside the built-in ones.
    pub rules: Option<Vec<RuleSection>>,
    /// Tool groups: a name and the exposed tool names (globs) in it. Each is an action
    /// group `Mcp::Action::"group:<name>"`, and `context.history.groups` names those a
    /// session called.
    pub groups: Option<std::collections::BTreeMap<String, Vec<String>>>,
    /// What `context.history.recent_calls` counts: calls in this many seconds (default
    /// 3600).
    pub history_window_s: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSection {
    pub name: String,
    /// A regular expression (Rust `regex` syntax) over each text a model reads.
    pub pattern: String,
}

/// `[tools]` validated.
#[derive(Debug, Clone)]
pub struct ToolsSettings {
    pub integrity: Integrity,
    /// Where the lock file is (what `tools pin` rewrites).
    pub lock_file: Option<String>,
    /// `[tools.groups]`: name and the exposed names in it.
    pub groups: Vec<(String, globset::GlobSet)>,
    /// The window of `context.history.recent_calls`.
    pub history_window: std::time::Duration,
}

impl Default for ToolsSettings {
    fn default() -> Self {
        ToolsSettings {
            integrity: Integrity::default(),
            lock_file: None,
            groups: Vec::new(),
            history_window: std::time::Duration::from_secs(3600),
        }
    }
}

impl ToolsSettings {
    /// The groups `exposed` is in, in name order.
    pub fn groups_of(&self, exposed: &str) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, globs)| globs.is_match(exposed))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// Reads `tools.lock`, relative to the config file's directory.
pub(super) fn load(
    section: &ToolsSection,
    base: &Path,
    lock: &mut Option<PolicyFile>,
) -> Result<(), ConfigError> {
    if let Some(name) = &section.lock {
        let path = base.join(name);
        *lock = Some(PolicyFile {
            file: path.display().to_string(),
            text: super::read(&path, "tools.lock")?,
        });
    }
    Ok(())
}

pub(super) fn validate(
    section: Option<&ToolsSection>,
    lock: Option<&PolicyFile>,
    issues: &mut Issues,
) -> ToolsSettings {
    let Some(s) = section else {
        return ToolsSettings::default();
    };
    let lock_file = lock.map(|l| l.file.clone());
    let lock = lock.and_then(|l| match LockFile::parse(&l.text) {
        Ok(lock) => Some(lock),
        Err(e) => {
            issues.push("tools.lock", format!("`{}`: {e}", l.file));
            None
        }
    });
    let mode = match s.pinning.as_deref() {
        None if s.lock.is_some() => Mode::Enforce,
        None => Mode::Off,
        Some("off") => Mode::Off,
        Some("warn") => Mode::Warn,
        Some("enforce") => Mode::Enforce,
        Some(other) => {
            issues.push(
                "tools.pinning",
                format!("`{other}` is not one of `off`, `warn`, `enforce`"),
            );
            Mode::Off
        }
    };
    let mut own: Vec<Rule> = Vec::new();
    for (i, rule) in s.rules.iter().flatten().enumerate() {
        let at = format!("tools.rules[{i}]");
        if rule.name.is_empty() || Rules::default().names().contains(&rule.name) {
            issues.push(
                format!("{at}.name"),
                format!("`{}` must be a new, non-empty rule name", rule.name),
            );
        }
        match regex::Regex::new(&rule.pattern) {
            Ok(pattern) => own.push(Rule {
                name: rule.name.clone(),
                pattern,
            }),
            Err(e) => issues.push(format!("{at}.pattern"), e.to_string()),
        }
    }
    let mut groups = Vec::new();
    for (name, globs) in s.groups.iter().flatten() {
        let at = format!("tools.groups.{name}");
        if name.is_empty() || !name.chars().all(super::validate::name_char) {
            issues.push(
                at.clone(),
                "a group name is 1 or more characters from `A-Z a-z 0-9 _ - .`",
            );
        }
        if let Some(set) = super::validate::glob_set(globs, &at, issues) {
            groups.push((name.clone(), set));
        }
    }
    let history_window = match s.history_window_s {
        Some(0) => {
            issues.push("tools.history_window_s", "must be greater than 0");
            std::time::Duration::from_secs(3600)
        }
        Some(secs) => std::time::Duration::from_secs(secs),
        None => std::time::Duration::from_secs(3600),
    };
    ToolsSettings {
        integrity: Integrity {
            mode,
            lock,
            rules: Rules { own },
        },
        lock_file,
        groups,
        history_window,
    }
}
