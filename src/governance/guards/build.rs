//! Compiling guard settings: the built-in rules, the global settings and each tool's
//! overrides, resolved into per-tool rule sets (shared by tools whose lists are the same),
//! with every problem reported at once with its config path.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use regex_automata::meta;

use super::{
    DenySet, DenySource, GuardConfig, Guards, MAX_ARGUMENT_BYTES, MAX_ARGUMENT_DEPTH,
    MAX_RESULT_BYTES, PATTERN_SIZE_LIMIT, RedactSet, Redactor, RuleConfig, SET_SIZE_LIMIT,
    ToolGuards, rules,
};

#[derive(Default)]
pub(super) struct Builder {
    issues: Vec<(String, String)>,
    /// Every deny rule any tool uses: built-ins first, then global, then per-tool ones.
    deny: Vec<Arc<DenySource>>,
    /// Every redaction any tool uses, compiled once.
    redact: Vec<Arc<Redactor>>,
    /// Compiled sets, shared by the tools whose rule lists are the same.
    deny_sets: HashMap<Vec<usize>, Arc<DenySet>>,
    redact_sets: HashMap<Vec<usize>, Arc<RedactSet>>,
}

/// Global rules, resolved to indices into the builder's tables.
struct GlobalRules {
    /// Global `deny` rules: index into `Builder::deny`, by id.
    deny: Vec<(String, usize)>,
    /// Built-in redactions switched on globally.
    redact_builtin: BTreeSet<usize>,
    /// Global `redact` rules.
    redact: Vec<usize>,
}

impl Builder {
    pub(super) fn build(
        mut self,
        global: &GuardConfig,
        per_tool: &BTreeMap<String, GuardConfig>,
    ) -> Result<Guards, Vec<(String, String)>> {
        for rule in rules::DENY {
            self.deny.push(Arc::new(DenySource {
                id: rule.id.to_owned(),
                reason: rule.description.to_owned(),
                regex: compile(rule.pattern, PATTERN_SIZE_LIMIT).expect("built-in rule compiles"),
            }));
        }
        for r in rules::REDACT {
            self.redact.push(Arc::new(Redactor {
                id: r.id.to_owned(),
                regex: compile(r.pattern, PATTERN_SIZE_LIMIT).expect("built-in redaction compiles"),
                validate: r.validate,
                replacement: format!("[redacted:{}]", r.id),
            }));
        }

        self.check_limits(None, global);
        let global_deny = self.operator_deny(None, &global.deny, &[]);
        let global_redact_builtin = self.builtin_redactions(None, &global.redact_builtin);
        let global_redact = self.operator_redact(None, &global.redact, &[]);
        let globals = GlobalRules {
            deny: global_deny,
            redact_builtin: global_redact_builtin,
            redact: global_redact,
        };
        self.check_disabled(None, &global.disabled_rules, &[]);
        self.check_enabled(None, &global.enabled_rules);
        let default = self.tool(None, global, &GuardConfig::default(), &globals);

        let mut tools = HashMap::new();
        for (name, config) in per_tool {
            self.check_limits(Some(name), config);
            let tool = self.tool(Some(name), global, config, &globals);
            tools.insert(name.clone(), tool);
        }
        if self.issues.is_empty() {
            Ok(Guards { default, tools })
        } else {
            Err(self.issues)
        }
    }

    fn tool(
        &mut self,
        name: Option<&str>,
        global: &GuardConfig,
        config: &GuardConfig,
        globals: &GlobalRules,
    ) -> Arc<ToolGuards> {
        // Deny rules: built-ins (unless off), global, the tool's own; less the disabled ones.
        // (For the defaults, `config` is empty and everything comes from `global`.)
        let global_ids: Vec<&str> = globals.deny.iter().map(|(id, _)| id.as_str()).collect();
        let own = self.operator_deny(name, &config.deny, &global_ids);
        self.check_disabled(name, &config.disabled_rules, &global_ids);
        let disabled: BTreeSet<&str> = global
            .disabled_rules
            .iter()
            .chain(&config.disabled_rules)
            .map(String::as_str)
            .collect();
        let builtins_on = config
            .builtin_rules
            .or(global.builtin_rules)
            .unwrap_or(true);
        self.check_enabled(name, &config.enabled_rules);
        let enabled: BTreeSet<&str> = global
            .enabled_rules
            .iter()
            .chain(&config.enabled_rules)
            .flat_map(|entry| rules::matching(entry).map(|r| r.id))
            .collect();
        let builtin: Vec<usize> = if builtins_on {
            (0..rules::DENY.len())
                .filter(|&i| {
                    let id = rules::DENY[i].id;
                    (rules::on_by_default(id) || enabled.contains(id)) && !disabled.contains(id)
                })
                .collect()
        } else {
            Vec::new()
        };
        let operator: Vec<usize> = globals
            .deny
            .iter()
            .filter(|(id, _)| !disabled.contains(id.as_str()))
            .chain(&own)
            .map(|(_, i)| *i)
            .collect();
        let deny = [builtin, operator]
            .into_iter()
            .filter_map(|indices| self.deny_set(name, indices))
            .collect();

        // Redactions: built-ins switched on globally or for the tool, then global, then own.
        let mut builtin = globals.redact_builtin.clone();
        builtin.extend(self.builtin_redactions(name, &config.redact_builtin));
        let global_redact_ids: Vec<String> = globals
            .redact
            .iter()
            .map(|&i| self.redact[i].id.clone())
            .collect();
        let own_redact = self.operator_redact(name, &config.redact, &global_redact_ids);
        let operator: Vec<usize> = globals.redact.iter().copied().chain(own_redact).collect();
        let redact = [builtin.into_iter().collect(), operator]
            .into_iter()
            .filter_map(|indices| self.redact_set(name, indices))
            .collect();

        Arc::new(ToolGuards {
            max_argument_bytes: config.max_argument_bytes.or(global.max_argument_bytes),
            max_argument_depth: config.max_argument_depth.or(global.max_argument_depth),
            max_result_bytes: config.max_result_bytes.or(global.max_result_bytes),
            deny,
            redact,
        })
    }

    fn check_limits(&mut self, tool: Option<&str>, config: &GuardConfig) {
        for (field, value, min) in [
            ("max_argument_bytes", config.max_argument_bytes, 2),
            ("max_argument_depth", config.max_argument_depth, 1),
            ("max_result_bytes", config.max_result_bytes, 2),
        ] {
            if value.is_some_and(|v| v < min) {
                self.issue(tool, field, format!("must be at least {min}"));
            }
        }
    }

    /// Validates and registers operator deny rules; returns `(id, index)` of the good ones.
    fn operator_deny(
        &mut self,
        tool: Option<&str>,
        rules_: &[RuleConfig],
        taken: &[&str],
    ) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for (i, rule) in rules_.iter().enumerate() {
            let field = format!("deny[{i}]");
            let mut ok = self.check_id(tool, &field, &rule.id);
            if rules::deny_rule(&rule.id).is_some() {
                self.issue(
                    tool,
                    &format!("{field}.id"),
                    format!("`{}` is the id of a built-in rule", rule.id),
                );
                ok = false;
            } else if taken.contains(&rule.id.as_str()) || out.iter().any(|(id, _)| *id == rule.id)
            {
                self.issue(
                    tool,
                    &format!("{field}.id"),
                    format!("`{}` is used by another deny rule", rule.id),
                );
                ok = false;
            }
            let regex = self.check_pattern(tool, &field, &rule.pattern);
            if let (true, Some(regex)) = (ok, regex) {
                let reason = rule
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("matches the deny rule `{}`", rule.id));
                self.deny.push(Arc::new(DenySource {
                    id: rule.id.clone(),
                    reason,
                    regex,
                }));
                out.push((rule.id.clone(), self.deny.len() - 1));
            }
        }
        out
    }

    /// Validates and registers operator redactions; returns their indices.
    fn operator_redact(
        &mut self,
        tool: Option<&str>,
        rules_: &[RuleConfig],
        taken: &[String],
    ) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for (i, rule) in rules_.iter().enumerate() {
            let field = format!("redact[{i}]");
            let mut ok = self.check_id(tool, &field, &rule.id);
            let used = rules::redaction(&rule.id).is_some()
                || taken.contains(&rule.id)
                || out.iter().any(|&j| self.redact[j].id == rule.id);
            if used {
                self.issue(
                    tool,
                    &format!("{field}.id"),
                    format!("`{}` is used by another redaction", rule.id),
                );
                ok = false;
            }
            let regex = self.check_pattern(tool, &field, &rule.pattern);
            if let (true, Some(regex)) = (ok, regex) {
                self.redact.push(Arc::new(Redactor {
                    id: rule.id.clone(),
                    regex,
                    validate: None,
                    replacement: format!("[redacted:{}]", rule.id),
                }));
                out.push(self.redact.len() - 1);
            }
        }
        out
    }

    /// Resolves `redact_builtin` ids to indices into the redaction table.
    fn builtin_redactions(&mut self, tool: Option<&str>, ids: &[String]) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        for (i, id) in ids.iter().enumerate() {
            match rules::REDACT.iter().position(|r| r.id == id) {
                Some(index) => {
                    out.insert(index);
                }
                None => self.issue(
                    tool,
                    &format!("redact_builtin[{i}]"),
                    format!(
                        "unknown built-in redaction `{id}` (known: {})",
                        rules::REDACT
                            .iter()
                            .map(|r| r.id)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
        out
    }

    /// Every `enabled_rules` entry names at least one built-in rule.
    fn check_enabled(&mut self, tool: Option<&str>, entries: &[String]) {
        for (i, entry) in entries.iter().enumerate() {
            if rules::matching(entry).next().is_none() {
                self.issue(
                    tool,
                    &format!("enabled_rules[{i}]"),
                    format!("`{entry}` names no built-in rule (an id, or a prefix ending in `*`)"),
                );
            }
        }
    }

    /// `disabled_rules` may name built-in rules and, for a tool, global deny rules.
    fn check_disabled(&mut self, tool: Option<&str>, ids: &[String], global_ids: &[&str]) {
        for (i, id) in ids.iter().enumerate() {
            if rules::deny_rule(id).is_none() && !global_ids.contains(&id.as_str()) {
                let known = if tool.is_some() {
                    "a built-in rule or a global deny rule"
                } else {
                    "a built-in rule"
                };
                self.issue(
                    tool,
                    &format!("disabled_rules[{i}]"),
                    format!("`{id}` is not {known}"),
                );
            }
        }
    }

    fn check_id(&mut self, tool: Option<&str>, field: &str, id: &str) -> bool {
        let well_formed = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !well_formed {
            self.issue(
                tool,
                &format!("{field}.id"),
                "must be 1 to 64 letters, digits, `_`, `.` or `-`".to_owned(),
            );
            return false;
        }
        if [MAX_ARGUMENT_BYTES, MAX_ARGUMENT_DEPTH, MAX_RESULT_BYTES].contains(&id) {
            self.issue(
                tool,
                &format!("{field}.id"),
                format!("`{id}` is reserved for the size limits"),
            );
            return false;
        }
        true
    }

    fn check_pattern(&mut self, tool: Option<&str>, field: &str, pattern: &str) -> Option<Regex> {
        match compile(pattern, PATTERN_SIZE_LIMIT) {
            Ok(regex) if regex.is_match("") => {
                self.issue(
                    tool,
                    &format!("{field}.pattern"),
                    "matches the empty string, so it would match every value".to_owned(),
                );
                None
            }
            Ok(regex) => Some(regex),
            Err(e) => {
                self.issue(
                    tool,
                    &format!("{field}.pattern"),
                    format!("invalid regular expression: {e}"),
                );
                None
            }
        }
    }

    fn deny_set(&mut self, tool: Option<&str>, indices: Vec<usize>) -> Option<Arc<DenySet>> {
        if indices.is_empty() {
            return None;
        }
        if let Some(set) = self.deny_sets.get(&indices) {
            return Some(set.clone());
        }
        let patterns = indices.iter().map(|&i| self.deny[i].regex.as_str());
        let set = match compile_set(patterns) {
            Ok(set) => Some(Arc::new(DenySet {
                set,
                rules: indices.iter().map(|&i| self.deny[i].clone()).collect(),
            })),
            Err(e) => {
                self.issue(
                    tool,
                    "deny",
                    format!("the deny rules together are too large: {e}"),
                );
                None
            }
        };
        if let Some(set) = &set {
            self.deny_sets.insert(indices, set.clone());
        }
        set
    }

    fn redact_set(&mut self, tool: Option<&str>, indices: Vec<usize>) -> Option<Arc<RedactSet>> {
        if indices.is_empty() {
            return None;
        }
        if let Some(set) = self.redact_sets.get(&indices) {
            return Some(set.clone());
        }
        let patterns = indices.iter().map(|&i| self.redact[i].regex.as_str());
        let set = match compile_set(patterns) {
            Ok(set) => Some(Arc::new(RedactSet {
                set,
                redactors: indices.iter().map(|&i| self.redact[i].clone()).collect(),
            })),
            Err(e) => {
                self.issue(
                    tool,
                    "redact",
                    format!("the redactions together are too large: {e}"),
                );
                None
            }
        };
        if let Some(set) = &set {
            self.redact_sets.insert(indices, set.clone());
        }
        set
    }

    fn issue(&mut self, tool: Option<&str>, field: &str, message: String) {
        self.issues.push((config_path(tool, field), message));
    }
}

/// Where a setting sits in the config file: `guards.<field>` or
/// `guards.tools.<tool>.<field>` (the tool name quoted unless it is a bare TOML key).
fn config_path(tool: Option<&str>, field: &str) -> String {
    match tool {
        None => format!("guards.{field}"),
        Some(tool)
            if !tool.is_empty()
                && tool
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            format!("guards.tools.{tool}.{field}")
        }
        Some(tool) => format!(
            "guards.tools.{}.{field}",
            serde_json::to_string(tool).unwrap_or_default()
        ),
    }
}

fn compile(pattern: &str, size_limit: usize) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern).size_limit(size_limit).build()
}

/// Patterns as one screen (see `DenySet`): the lazy DFA over all of them, with no
/// literal prefilter (see the note on `regex-automata` in Cargo.toml).
fn compile_set<'p>(patterns: impl IntoIterator<Item = &'p str>) -> Result<super::Screen, String> {
    let patterns: Vec<&str> = patterns.into_iter().collect();
    meta::Regex::builder()
        .configure(
            meta::Config::new()
                .auto_prefilter(false)
                .nfa_size_limit(Some(SET_SIZE_LIMIT)),
        )
        .build_many(&patterns)
        .map_err(|e| e.to_string())
}
