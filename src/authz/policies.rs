//! Policy files to policies: parse each `.cedar` file, give every policy its stable id (its
//! `@id("...")`, else `<file stem>:<index>`) and its place in the file, read `@mode` and
//! `@approval`, and turn Cedar's diagnostics (byte spans) into `file:line:column` errors a
//! policy author can follow.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use cedar_policy::{Policy, PolicyId, PolicySet};
use miette::Diagnostic;

use super::types::{PolicyError, PolicySource};

/// Whether a policy takes part in decisions or is only observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Mode {
    Enforce,
    Shadow,
}

/// A parsed policy with its id and origin.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub id: String,
    /// Index of its file in the sources.
    pub source: usize,
    /// Byte offset of the policy's first character in its file.
    pub offset: usize,
    pub policy: Policy,
    pub mode: Mode,
    /// `@approval("<role>")`: a permit that allows only once a person with the role
    /// approves the call.
    pub approval: Option<String>,
}

/// Parses every file; all problems of all files are reported together.
pub(crate) fn load(sources: &[PolicySource]) -> Result<Vec<Loaded>, Vec<PolicyError>> {
    let mut errors = Vec::new();
    let mut loaded: Vec<Loaded> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, source) in sources.iter().enumerate() {
        let set = match PolicySet::from_str(&source.text) {
            Ok(set) => set,
            Err(parse) => {
                errors.extend(parse.iter().map(|e| diagnostic_error(source, e)));
                continue;
            }
        };
        if let Some(template) = set.templates().next() {
            errors.push(at(
                source,
                offset_of(&source.text, &template.to_cedar(), 0),
                "templates are not supported: write the policy with concrete entities".to_owned(),
            ));
            continue;
        }
        let stem = Path::new(&source.file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| source.file.clone());
        // `policies()` has no defined order: Cedar's default ids (`policy<N>`) give it back.
        let mut policies: Vec<(usize, &Policy)> = set
            .policies()
            .map(|p| {
                let n = p
                    .id()
                    .to_string()
                    .trim_start_matches("policy")
                    .parse()
                    .unwrap_or(usize::MAX);
                (n, p)
            })
            .collect();
        policies.sort_by_key(|(n, _)| *n);
        let mut cursor = 0;
        for (n, policy) in policies {
            let text = policy.to_cedar().unwrap_or_default();
            let offset = offset_of(&source.text, &text, cursor);
            cursor = offset + text.len();
            let id = match policy.annotation("id") {
                Some(id) if id.trim().is_empty() => {
                    errors.push(at(source, offset, "`@id` must not be empty".to_owned()));
                    continue;
                }
                Some(id) => id.to_owned(),
                None => format!("{stem}:{n}"),
            };
            let mode = match policy.annotation("mode") {
                None | Some("enforce") => Mode::Enforce,
                Some("shadow") => Mode::Shadow,
                Some(other) => {
                    errors.push(at(
                        source,
                        offset,
                        format!("unknown `@mode` `{other}`: expected `enforce` or `shadow`"),
                    ));
                    continue;
                }
            };
            let approval = match policy.annotation("approval") {
                None => None,
                Some(role) if role.trim().is_empty() => {
                    errors.push(at(
                        source,
                        offset,
                        "`@approval` must name the approvers' role".to_owned(),
                    ));
                    continue;
                }
                Some(_) if policy.effect() == cedar_policy::Effect::Forbid => {
                    errors.push(at(
                        source,
                        offset,
                        "`@approval` applies to a permit (a forbid needs no one's approval)"
                            .to_owned(),
                    ));
                    continue;
                }
                Some(role) => Some(role.to_owned()),
            };
            if let Some(&first) = seen.get(&id) {
                let other = &loaded[first];
                let (line, _) = line_column(&sources[other.source].text, other.offset);
                errors.push(at(
                    source,
                    offset,
                    format!(
                        "duplicate policy id `{id}`: already used at {}:{line}",
                        sources[other.source].file
                    ),
                ));
                continue;
            }
            seen.insert(id.clone(), loaded.len());
            let policy = policy.new_id(PolicyId::new(&id));
            loaded.push(Loaded {
                id,
                source: index,
                offset,
                policy,
                mode,
                approval,
            });
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors)
    }
}

/// Where a policy's text starts in its file (searching from `from`, policies are in order).
fn offset_of(file: &str, policy: &str, from: usize) -> usize {
    if policy.is_empty() {
        return from;
    }
    file.get(from..)
        .and_then(|rest| rest.find(policy))
        .map(|i| i + from)
        .or_else(|| file.find(policy))
        .unwrap_or(from)
}

/// A located error from a Cedar diagnostic: its first labelled span, its labels and help.
pub(crate) fn diagnostic_error(source: &PolicySource, diag: &dyn Diagnostic) -> PolicyError {
    let mut message = lower_first(&diag.to_string());
    let mut offset = None;
    if let Some(labels) = diag.labels() {
        for label in labels {
            offset.get_or_insert(label.offset());
            if let Some(text) = label.label() {
                message.push_str(": ");
                message.push_str(text);
            }
        }
    }
    if let Some(help) = diag.help() {
        message.push_str("; ");
        message.push_str(&lower_first(&help.to_string()));
    }
    match offset {
        Some(offset) => at(source, offset, message),
        None => PolicyError {
            file: source.file.clone(),
            line: 0,
            column: 0,
            message,
        },
    }
}

/// An error at a byte offset of a file.
pub(crate) fn at(source: &PolicySource, offset: usize, message: String) -> PolicyError {
    let (line, column) = line_column(&source.text, offset);
    PolicyError {
        file: source.file.clone(),
        line,
        column,
        message: lower_first(&message),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_uppercase() && !chars.clone().next().is_some_and(char::is_uppercase) => {
            c.to_lowercase().chain(chars).collect()
        }
        _ => s.to_owned(),
    }
}

#[cfg(test)]
mod tests;
