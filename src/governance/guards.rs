//! Argument and result guards: size limits, content deny rules and result redaction, per
//! tool, applied after authorization and rate limits, before the cache and the backend.
//!
//! Why a guard layer at all when Cedar already decided: Cedar sees typed arguments and
//! decides *who may call what*; it is not the place to recognise a path traversal, an SQL
//! injection or an AWS key inside a free-text argument, nor to keep a backend's answer from
//! carrying card numbers back to the client. These checks are content checks, the same for
//! every principal, configured by the operator per tool:
//!
//! - **Argument limits**: the size of the arguments as compact JSON (`max_argument_bytes`) and
//!   their nesting depth (`max_argument_depth`; the arguments object itself is depth 1).
//! - **Deny rules**: every string value and every object key of the arguments is matched
//!   against the tool's rules, compiled into [`RegexSet`]s (one pass per string and set): the
//!   built-in rules of [`rules`] (on unless `builtin_rules = false`, less `disabled_rules`),
//!   then the operator's `deny` rules.
//! - **Result limits and redaction**: the result's size as compact JSON (`max_result_bytes`),
//!   then every string in it has the configured patterns (`redact`, and the built-in ones
//!   named in `redact_builtin`) replaced by `[redacted:<id>]`.
//!
//! A blocked call is a [`Blocked`]: the rule id, the RFC 6901 path of the offending value and
//! a reason taken from the rule's description. It never carries the text that matched, so an
//! error or audit record about a leaked secret does not leak it again. When the match is in an
//! object key, the path is that of the enclosing object (the key itself may be the secret);
//! keys on a reported path have all passed the deny rules.
//!
//! Everything is compiled once, at config load ([`Guards::build`]); a bad pattern or an unknown
//! rule id is a config error with its path. The `regex` crate searches in time linear in the
//! text (no backtracking), the size of compiled patterns is capped, and the text scanned per
//! call is at most the argument size (checked first), so no argument can make a check slow.
//!
//! As the operator writes it (per-tool sections are keyed by the tool's exposed name):
//!
//! ```toml
//! [guards]
//! max_argument_bytes = 65536
//! max_argument_depth = 32
//! max_result_bytes = 1048576
//! redact_builtin = ["card_number", "email"]
//!
//! [[guards.deny]]
//! id = "internal_host"
//! pattern = '(?i)(?-u:\b)internal\.corp\.example(?-u:\b)'
//! description = "an internal host name"
//!
//! [guards.tools."db__query"]      # its arguments are SQL: no built-in rules here
//! builtin_rules = false
//!
//! [guards.tools."shell__run"]
//! disabled_rules = ["shell_chained_command", "shell_pipe_to_shell"]
//! max_argument_bytes = 4096
//! ```

pub mod rules;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Rule id of a call whose arguments exceed `max_argument_bytes`.
pub const MAX_ARGUMENT_BYTES: &str = "max_argument_bytes";
/// Rule id of a call whose arguments nest deeper than `max_argument_depth`.
pub const MAX_ARGUMENT_DEPTH: &str = "max_argument_depth";
/// Rule id of a result larger than `max_result_bytes`.
pub const MAX_RESULT_BYTES: &str = "max_result_bytes";

/// Compiled size cap of one operator pattern (the `regex` default is 10 MiB): enough for any
/// sensible rule, small enough that a typo such as `\w{10000}` is a config error.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// Compiled size cap of one tool's whole rule set.
const SET_SIZE_LIMIT: usize = 16 << 20;

/// The guard settings, as written for all tools (`[guards]`) or for one tool
/// (`[guards.tools."<tool>"]`). For a tool, set limits replace the global ones, rule lists
/// add to the global ones, and `disabled_rules` removes rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    /// Largest arguments object allowed, in bytes of compact JSON (no limit when unset).
    pub max_argument_bytes: Option<usize>,
    /// Deepest nesting allowed; the arguments object itself is depth 1 (no limit when unset).
    pub max_argument_depth: Option<usize>,
    /// Whether the built-in deny rules apply (default: yes).
    pub builtin_rules: Option<bool>,
    /// Built-in rule ids (or, for a tool, ids of global `deny` rules) to switch off.
    #[serde(default)]
    pub disabled_rules: Vec<String>,
    /// The operator's own deny rules. Prefer `(?-u:\b)` to `\b` in them: a Unicode word
    /// boundary cannot run in the lazy DFA on non-ASCII text, so the operator rules' set then
    /// falls back to a slower (still linear) engine for that text.
    #[serde(default)]
    pub deny: Vec<RuleConfig>,
    /// Largest result allowed, in bytes of compact JSON (no limit when unset).
    pub max_result_bytes: Option<usize>,
    /// The operator's own redactions, applied to every string of a result.
    #[serde(default)]
    pub redact: Vec<RuleConfig>,
    /// Built-in redactions to apply, by id (e.g. `["card_number", "email"]`).
    #[serde(default)]
    pub redact_builtin: Vec<String>,
}

/// One operator rule: a deny rule or a redaction.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Names the rule in errors, audit records and `[redacted:<id>]` markers: letters, digits,
    /// `_`, `.` and `-`, at most 64.
    pub id: String,
    /// A regular expression in the syntax of the `regex` crate.
    pub pattern: String,
    /// What the rule recognises; the reason given when it blocks a call.
    pub description: Option<String>,
}

/// A call or result stopped by a guard. Names the rule and where, never the matched text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("blocked by guard rule `{rule}` at {}: {reason}", display_path(.path))]
pub struct Blocked {
    /// The rule id: a built-in or operator rule, or one of [`MAX_ARGUMENT_BYTES`],
    /// [`MAX_ARGUMENT_DEPTH`], [`MAX_RESULT_BYTES`].
    pub rule: String,
    /// RFC 6901 JSON pointer of the offending value within the arguments (or result); `""`
    /// for the whole document.
    pub path: String,
    /// Why, in words (the rule's description, or the limit).
    pub reason: String,
}

fn display_path(path: &str) -> Cow<'_, str> {
    if path.is_empty() {
        Cow::Borrowed("the top level")
    } else {
        Cow::Owned(format!("`{path}`"))
    }
}

/// What redaction replaced in one result: the number of replacements by rule id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redactions {
    pub by_rule: BTreeMap<String, usize>,
}

impl Redactions {
    /// Replacements made, all rules together.
    pub fn total(&self) -> usize {
        self.by_rule.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_rule.is_empty()
    }
}

/// The compiled guards of every tool.
#[derive(Debug)]
pub struct Guards {
    /// Tools without settings of their own.
    default: Arc<ToolGuards>,
    tools: HashMap<String, Arc<ToolGuards>>,
}

#[derive(Debug)]
struct ToolGuards {
    max_argument_bytes: Option<usize>,
    max_argument_depth: Option<usize>,
    max_result_bytes: Option<usize>,
    /// Deny rules in report order: the built-ins, then the operator's. Two sets rather than
    /// one, so that an operator pattern the lazy DFA cannot run on some text (a Unicode `\b`
    /// on non-ASCII text) slows only its own set, never the built-ins'.
    deny: Vec<Arc<DenySet>>,
    /// Redactions in the order they apply, grouped the same way.
    redact: Vec<Arc<RedactSet>>,
}

/// One tool's deny rules: the set answers "does anything match" in one pass; the rules'
/// own regexes, tried in order only after a hit, say which. (`RegexSet::matches` would say
/// too, but it has to run every matching pattern to the end of the text, several times
/// slower on a long string that trips many rules.)
#[derive(Debug)]
struct DenySet {
    set: RegexSet,
    rules: Vec<Arc<DenySource>>,
}

/// One tool's redactions: the set skips strings nothing matches in one pass; the others go
/// through each redaction in order.
#[derive(Debug)]
struct RedactSet {
    set: RegexSet,
    redactors: Vec<Arc<Redactor>>,
}

#[derive(Debug)]
struct Redactor {
    id: String,
    regex: Regex,
    validate: Option<fn(&str) -> bool>,
    replacement: String,
}

impl Guards {
    /// Compiles the global settings and each tool's overrides (keyed by the tool's exposed
    /// name). Every problem is reported, as `(config path, message)`.
    pub fn build(
        global: &GuardConfig,
        per_tool: &BTreeMap<String, GuardConfig>,
    ) -> Result<Guards, Vec<(String, String)>> {
        Builder::default().build(global, per_tool)
    }

    /// Checks a call's arguments: their size first; then one walk in document order checks
    /// each object key, each string value and each container's depth, and the first problem
    /// met blocks. A key is checked before its value is entered, so every key on a reported
    /// path has passed the deny rules.
    pub fn check_arguments(
        &self,
        tool: &str,
        arguments: &Map<String, Value>,
    ) -> Result<(), Blocked> {
        let g = self.for_tool(tool);
        if let Some(limit) = g.max_argument_bytes
            && exceeds(Root::Object(arguments), limit)
        {
            return Err(Blocked {
                rule: MAX_ARGUMENT_BYTES.to_owned(),
                path: String::new(),
                reason: format!("the arguments are larger than {limit} bytes"),
            });
        }
        if g.max_argument_depth.is_none() && g.deny.is_empty() {
            return Ok(());
        }
        let mut walk = Walk::new(Root::Object(arguments));
        while let Some(node) = walk.next() {
            if !g.deny.is_empty() {
                if let Some(key) = node.key
                    && let Some(rule) = first_match(&g.deny, key)
                {
                    return Err(Blocked {
                        rule: rule.id.clone(),
                        path: walk.parent_pointer(),
                        reason: format!("{}, in an object key", rule.reason),
                    });
                }
                if let Value::String(s) = node.value
                    && let Some(rule) = first_match(&g.deny, s)
                {
                    return Err(Blocked {
                        rule: rule.id.clone(),
                        path: walk.pointer(),
                        reason: rule.reason.clone(),
                    });
                }
            }
            if let Some(limit) = g.max_argument_depth
                && matches!(node.value, Value::Object(_) | Value::Array(_))
                && node.depth + 1 > limit
            {
                return Err(Blocked {
                    rule: MAX_ARGUMENT_DEPTH.to_owned(),
                    path: walk.pointer(),
                    reason: format!("the arguments nest deeper than {limit} levels"),
                });
            }
        }
        Ok(())
    }

    /// Checks a result's size, then redacts every string in it (object keys are left as they
    /// are: they are the field names the tool's output schema promises).
    pub fn check_result(&self, tool: &str, result: &mut Value) -> Result<Redactions, Blocked> {
        let g = self.for_tool(tool);
        if let Some(limit) = g.max_result_bytes
            && exceeds(Root::of(result), limit)
        {
            return Err(Blocked {
                rule: MAX_RESULT_BYTES.to_owned(),
                path: String::new(),
                reason: format!("the result is larger than {limit} bytes"),
            });
        }
        let mut redactions = Redactions::default();
        if !g.redact.is_empty() {
            let mut stack: Vec<&mut Value> = vec![result];
            while let Some(value) = stack.pop() {
                match value {
                    Value::String(s) => {
                        for set in &g.redact {
                            set.apply(s, &mut redactions);
                        }
                    }
                    Value::Array(items) => stack.extend(items.iter_mut()),
                    Value::Object(members) => stack.extend(members.values_mut()),
                    _ => {}
                }
            }
        }
        Ok(redactions)
    }

    /// Whether results of this tool need [`check_result`](Self::check_result) at all (a size
    /// limit or a redaction applies), so a caller can skip handling the result as JSON.
    pub fn guards_results(&self, tool: &str) -> bool {
        let g = self.for_tool(tool);
        g.max_result_bytes.is_some() || !g.redact.is_empty()
    }

    /// The deny rule ids that apply to a tool, in the order they are reported.
    pub fn deny_rule_ids(&self, tool: &str) -> Vec<&str> {
        self.for_tool(tool)
            .deny
            .iter()
            .flat_map(|set| set.rules.iter().map(|rule| rule.id.as_str()))
            .collect()
    }

    /// The redaction ids that apply to a tool's results, in the order they are applied.
    pub fn redaction_ids(&self, tool: &str) -> Vec<&str> {
        self.for_tool(tool)
            .redact
            .iter()
            .flat_map(|set| set.redactors.iter().map(|r| r.id.as_str()))
            .collect()
    }

    fn for_tool(&self, tool: &str) -> &ToolGuards {
        self.tools.get(tool).unwrap_or(&self.default)
    }
}

/// The first rule (in report order) that matches `text`. The common case, no match, is one
/// pass of each set's DFA.
fn first_match<'g>(sets: &'g [Arc<DenySet>], text: &str) -> Option<&'g DenySource> {
    sets.iter().find_map(|set| set.first_match(text))
}

impl DenySet {
    fn first_match(&self, text: &str) -> Option<&DenySource> {
        if !self.set.is_match(text) {
            return None;
        }
        let first = self.rules.iter().find(|rule| rule.regex.is_match(text));
        first
            .or_else(|| {
                let i = self.set.matches(text).iter().next()?;
                self.rules.get(i)
            })
            .map(|rule| &**rule)
    }
}

impl RedactSet {
    fn apply(&self, s: &mut String, redactions: &mut Redactions) {
        if !self.set.is_match(s) {
            return;
        }
        for r in &self.redactors {
            if let Some((text, count)) = r.redact(s) {
                *s = text;
                *redactions.by_rule.entry(r.id.clone()).or_default() += count;
            }
        }
    }
}

impl Redactor {
    /// The text with every (valid) match replaced, and how many; `None` when nothing was.
    ///
    /// A candidate that fails validation is not skipped whole: the search resumes one
    /// character after its start, so a card number right after a longer run of digits
    /// (`1234 4111 1111 1111 1111`) is still found. Candidates are short (the validated
    /// patterns are bounded), so this stays linear in the text.
    fn redact(&self, s: &str) -> Option<(String, usize)> {
        let mut out = String::new();
        let mut count = 0;
        let mut copied = 0;
        let mut at = 0;
        while at <= s.len() {
            let Some(m) = self.regex.find_at(s, at) else {
                break;
            };
            if !m.is_empty() && self.validate.is_none_or(|valid| valid(m.as_str())) {
                out.push_str(&s[copied..m.start()]);
                out.push_str(&self.replacement);
                copied = m.end();
                at = m.end();
                count += 1;
            } else {
                // Past the candidate's first character (on a char boundary).
                at = m.start() + s[m.start()..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if count == 0 {
            return None;
        }
        out.push_str(&s[copied..]);
        Some((out, count))
    }
}

// ---- building ------------------------------------------------------------------------------

/// One deny rule.
#[derive(Debug)]
struct DenySource {
    id: String,
    reason: String,
    regex: Regex,
}

#[derive(Default)]
struct Builder {
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
    fn build(
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
        let builtin: Vec<usize> = if builtins_on {
            (0..rules::DENY.len())
                .filter(|&i| !disabled.contains(rules::DENY[i].id))
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

fn compile_set<'p>(patterns: impl IntoIterator<Item = &'p str>) -> Result<RegexSet, regex::Error> {
    RegexSetBuilder::new(patterns)
        .size_limit(SET_SIZE_LIMIT)
        .build()
}

// ---- walking JSON without recursion ----------------------------------------------------------

/// The document a walk starts from.
#[derive(Clone, Copy)]
enum Root<'a> {
    Object(&'a Map<String, Value>),
    Array(&'a [Value]),
    Scalar(&'a Value),
}

impl<'a> Root<'a> {
    fn of(value: &'a Value) -> Root<'a> {
        match value {
            Value::Object(m) => Root::Object(m),
            Value::Array(a) => Root::Array(a),
            other => Root::Scalar(other),
        }
    }
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

enum Frame<'a> {
    Object(serde_json::map::Iter<'a>),
    Array(std::iter::Enumerate<std::slice::Iter<'a, Value>>),
}

/// One value met by a [`Walk`].
struct Node<'a> {
    /// Its key, when it is an object member.
    key: Option<&'a str>,
    value: &'a Value,
    /// Containers enclosing it, the root included.
    depth: usize,
}

/// Depth-first, document-order walk over every value below a root container, on an explicit
/// stack (a deeply nested document cannot overflow the thread's stack). After `next`
/// returns a node, `pointer` is that node's path.
struct Walk<'a> {
    stack: Vec<Frame<'a>>,
    path: Vec<Seg<'a>>,
    /// The node last returned: descended into (or its path segment dropped) on the next call.
    last: Option<&'a Value>,
}

impl<'a> Walk<'a> {
    fn new(root: Root<'a>) -> Walk<'a> {
        let stack = match root {
            Root::Object(m) => vec![Frame::Object(m.iter())],
            Root::Array(a) => vec![Frame::Array(a.iter().enumerate())],
            Root::Scalar(_) => Vec::new(),
        };
        Walk {
            stack,
            path: Vec::new(),
            last: None,
        }
    }

    fn next(&mut self) -> Option<Node<'a>> {
        match self.last.take() {
            Some(Value::Object(m)) => self.stack.push(Frame::Object(m.iter())),
            Some(Value::Array(a)) => self.stack.push(Frame::Array(a.iter().enumerate())),
            Some(_) => {
                self.path.pop();
            }
            None => {}
        }
        loop {
            let next = match self.stack.last_mut()? {
                Frame::Object(members) => members.next().map(|(k, v)| (Seg::Key(k.as_str()), v)),
                Frame::Array(items) => items.next().map(|(i, v)| (Seg::Index(i), v)),
            };
            match next {
                Some((seg, value)) => {
                    self.path.push(seg);
                    self.last = Some(value);
                    return Some(Node {
                        key: match seg {
                            Seg::Key(k) => Some(k),
                            Seg::Index(_) => None,
                        },
                        value,
                        depth: self.stack.len(),
                    });
                }
                None => {
                    self.stack.pop();
                    if !self.stack.is_empty() {
                        self.path.pop();
                    }
                }
            }
        }
    }

    /// RFC 6901 pointer of the node last returned.
    fn pointer(&self) -> String {
        pointer(&self.path)
    }

    /// RFC 6901 pointer of the container holding the node last returned.
    fn parent_pointer(&self) -> String {
        pointer(&self.path[..self.path.len().saturating_sub(1)])
    }
}

fn pointer(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        out.push('/');
        match seg {
            Seg::Key(k) => {
                for c in k.chars() {
                    match c {
                        '~' => out.push_str("~0"),
                        '/' => out.push_str("~1"),
                        c => out.push(c),
                    }
                }
            }
            Seg::Index(i) => {
                let _ = write!(out, "{i}");
            }
        }
    }
    out
}

/// Whether the document, serialized as compact JSON (as `serde_json::to_vec` writes it), is
/// longer than `limit` bytes. Stops as soon as it is.
fn exceeds(root: Root<'_>, limit: usize) -> bool {
    let mut size = match root {
        Root::Object(m) => container_len(m.len(), true),
        Root::Array(a) => container_len(a.len(), false),
        Root::Scalar(v) => scalar_len(v),
    };
    let mut walk = Walk::new(root);
    while size <= limit {
        let Some(node) = walk.next() else {
            return false;
        };
        size += node.key.map_or(0, string_len);
        size += match node.value {
            Value::Object(m) => container_len(m.len(), true),
            Value::Array(a) => container_len(a.len(), false),
            scalar => scalar_len(scalar),
        };
    }
    true
}

/// Brackets and separators of a container with `n` members (`:` after each key of an object).
fn container_len(n: usize, object: bool) -> usize {
    2 + n.saturating_sub(1) + if object { n } else { 0 }
}

fn scalar_len(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => {
            let mut counter = Counter(0);
            let _ = write!(counter, "{n}");
            counter.0
        }
        Value::String(s) => string_len(s),
        Value::Array(_) | Value::Object(_) => 0,
    }
}

/// A JSON string literal's length: quotes, and escapes as serde_json writes them.
fn string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

struct Counter(usize);

impl std::fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}
