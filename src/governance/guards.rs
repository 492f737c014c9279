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
//!   built-in rules of [`rules`] (those on by default, and those named in `enabled_rules`,
//!   unless `builtin_rules = false`; less `disabled_rules`), then the operator's `deny`
//!   rules. A refusal says how to allow what it refused for that tool.
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
//! [guards.tools."search__query"]  # free text: no SQL, shell or `..` expected in it
//! enabled_rules = ["sql_*", "shell_*", "path_traversal"]
//!
//! [guards.tools."db__query"]      # its arguments are SQL: no built-in rules here
//! builtin_rules = false
//!
//! [guards.tools."shell__run"]
//! disabled_rules = ["shell_chained_command", "shell_pipe_to_shell"]
//! max_argument_bytes = 4096
//! ```

mod build;
mod paths;
pub mod rules;
#[cfg(test)]
mod tests;
mod walk;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use regex::Regex;
use regex_automata::meta::Regex as Screen;
use serde::Deserialize;
use serde_json::{Map, Value};

use walk::{Root, Walk, exceeds};

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
    /// Built-in rules that are off by default to switch on, by id or `prefix*`
    /// (`["sql_*", "shell_*", "path_traversal"]`); for a tool, added to the global ones.
    #[serde(default)]
    pub enabled_rules: Vec<String>,
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
/// own regexes, tried in order only after a hit, say which. (Asking the set which
/// patterns match would have to run every matching pattern to the end of the text,
/// several times slower on a long string that trips many rules.)
#[derive(Debug)]
struct DenySet {
    set: Screen,
    rules: Vec<Arc<DenySource>>,
}

/// One tool's redactions: the set skips strings nothing matches in one pass; the others go
/// through each redaction in order.
#[derive(Debug)]
struct RedactSet {
    set: Screen,
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
        build::Builder::default().build(global, per_tool)
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
                    && let Some(rule) = deny_match(&g.deny, key)
                {
                    return Err(Blocked {
                        rule: rule.id.clone(),
                        path: walk.parent_pointer(),
                        reason: format!("{}, in an object key", rule.reason),
                    });
                }
                if let Value::String(s) = node.value
                    && let Some(rule) = deny_match(&g.deny, s)
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
        redact_strings(&g.redact, result, &mut redactions);
        Ok(redactions)
    }

    /// Applies the tool's redactions to every string in `value`, without a size limit: for
    /// what is not a result, such as a backend's error.
    pub fn redact(&self, tool: &str, value: &mut Value) -> Redactions {
        let mut redactions = Redactions::default();
        redact_strings(&self.for_tool(tool).redact, value, &mut redactions);
        redactions
    }

    /// Screens the argument values a call's audit record is to hold in clear
    /// (`[audit] disclose`): a value in which a deny rule finds anything (in a string or an
    /// object key) is withheld whole, and the tool's redactions apply to the strings of the
    /// rest. Returns the withheld paths with the rule that matched. It runs whatever stopped
    /// the call: a call that authorization refused never reached the guards layer, and its
    /// secret must not reach the signed record either.
    pub fn screen_disclosed(
        &self,
        tool: &str,
        disclosed: &mut BTreeMap<String, Value>,
    ) -> (Vec<(String, String)>, Redactions) {
        let g = self.for_tool(tool);
        let mut withheld = Vec::new();
        if !g.deny.is_empty() {
            disclosed.retain(|path, value| match deny_hit(&g.deny, value) {
                Some(rule) => {
                    withheld.push((path.clone(), rule.id.clone()));
                    false
                }
                None => true,
            });
        }
        let mut redactions = Redactions::default();
        for value in disclosed.values_mut() {
            redact_strings(&g.redact, value, &mut redactions);
        }
        (withheld, redactions)
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
/// The first deny rule that matches any string or object key in `value`.
fn deny_hit<'g>(sets: &'g [Arc<DenySet>], value: &Value) -> Option<&'g DenySource> {
    if let Value::String(s) = value {
        return deny_match(sets, s);
    }
    let mut walk = Walk::new(Root::of(value));
    while let Some(node) = walk.next() {
        let hit = node
            .key
            .and_then(|key| deny_match(sets, key))
            .or(match node.value {
                Value::String(s) => deny_match(sets, s),
                _ => None,
            });
        if hit.is_some() {
            return hit;
        }
    }
    None
}

/// Applies `sets` to every string in `value` (object keys are left as they are).
fn redact_strings(sets: &[Arc<RedactSet>], value: &mut Value, redactions: &mut Redactions) {
    if sets.is_empty() {
        return;
    }
    let mut stack: Vec<&mut Value> = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) => {
                for set in sets {
                    set.apply(s, redactions);
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(members) => stack.extend(members.values_mut()),
            _ => {}
        }
    }
}

/// The first deny rule that matches `text` as written, or as the path it spells another way
/// (`/etc//shadow`, `/etc/./shadow`, `/etc/%73hadow`: see [`paths`]).
fn deny_match<'g>(sets: &'g [Arc<DenySet>], text: &str) -> Option<&'g DenySource> {
    first_match(sets, text)
        .or_else(|| paths::normalized(text).and_then(|path| first_match(sets, &path)))
}

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
                let i = self.set.find(text)?.pattern();
                self.rules.get(i.as_usize())
            })
            .map(|rule| &**rule)
    }
}

impl RedactSet {
    fn apply(&self, s: &mut String, redactions: &mut Redactions) {
        if !self.set.is_match(s.as_str()) {
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

/// One deny rule.
#[derive(Debug)]
struct DenySource {
    id: String,
    reason: String,
    regex: Regex,
}
