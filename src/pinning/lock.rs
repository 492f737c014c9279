//! The lock file: each pinned tool's definition as reviewed, with the hash of each part, by
//! backend and by the backend's own name for it. JSON with sorted keys and one member per
//! line, so that a change to one tool is a small, readable diff next to the policies.
//!
//! ```json
//! { "version": 1,
//!   "backends": { "github": { "create_issue": {
//!       "title": null, "description": "…", "input_schema": {…}, "output_schema": null,
//!       "annotations": {…},
//!       "sha256": { "definition": "…", "description": "…", … },
//!       "accept": ["url-with-query"] } } } }
//! ```
//!
//! `accept` lists the description rules a reviewer accepted for that tool. A pin whose
//! recorded hashes do not match its own parts is refused: the file was edited by hand
//! without being re-pinned.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Definition, PARTS, hashes};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    pub version: u32,
    /// Backend name -> the backend's tool name -> its pin.
    pub backends: BTreeMap<String, BTreeMap<String, Pin>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pub title: Value,
    pub description: Value,
    pub input_schema: Value,
    pub output_schema: Value,
    pub annotations: Value,
    /// Part name (and `definition`) -> SHA-256 hex over the part's RFC 8785 form.
    pub sha256: BTreeMap<String, String>,
    /// Description rules accepted for this tool by its reviewer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept: Vec<String>,
}

/// A lock file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("not a tool lock file: {0}")]
    Parse(String),
    #[error("version {0} is not supported (this build reads version {VERSION})")]
    Version(u32),
    #[error(
        "`{backend}/{tool}`: its sha256.{part} does not match its {part} (edited without `mcp-warden tools pin`?)"
    )]
    Inconsistent {
        backend: String,
        tool: String,
        part: String,
    },
}

impl Pin {
    /// The pin of `def` as served now, keeping the rules accepted in `accept`.
    pub fn of(def: &Definition, accept: Vec<String>) -> Pin {
        let part = |name: &str| def.parts[name].clone();
        Pin {
            title: part("title"),
            description: part("description"),
            input_schema: part("input_schema"),
            output_schema: part("output_schema"),
            annotations: part("annotations"),
            sha256: def.hashes().clone(),
            accept,
        }
    }

    fn parts(&self) -> BTreeMap<&'static str, Value> {
        BTreeMap::from([
            ("title", self.title.clone()),
            ("description", self.description.clone()),
            ("input_schema", self.input_schema.clone()),
            ("output_schema", self.output_schema.clone()),
            ("annotations", self.annotations.clone()),
        ])
    }

    /// Records the hashes of the parts as they are now (after an edit by hand).
    pub fn rehash(&mut self) {
        self.sha256 = hashes(&self.parts());
    }

    /// The recorded hash of `part` (`""` when missing).
    pub fn hash(&self, part: &str) -> &str {
        self.sha256.get(part).map_or("", String::as_str)
    }

    /// The parts whose hash differs from `now` (a definition's [`Definition::hashes`]).
    pub fn changed(&self, now: &BTreeMap<String, String>) -> Vec<String> {
        PARTS
            .iter()
            .filter(|p| now.get(**p).map(String::as_str) != Some(self.hash(p)))
            .map(|p| (*p).to_owned())
            .collect()
    }
}

impl LockFile {
    /// Reads a lock file, checking that every pin's hashes are those of its parts.
    pub fn parse(text: &str) -> Result<LockFile, LockError> {
        let lock: LockFile =
            serde_json::from_str(text).map_err(|e| LockError::Parse(e.to_string()))?;
        if lock.version != VERSION {
            return Err(LockError::Version(lock.version));
        }
        for (backend, tools) in &lock.backends {
            for (tool, pin) in tools {
                let expected = hashes(&pin.parts());
                for (part, hash) in &expected {
                    if pin.hash(part) != hash {
                        return Err(LockError::Inconsistent {
                            backend: backend.clone(),
                            tool: tool.clone(),
                            part: part.clone(),
                        });
                    }
                }
            }
        }
        Ok(lock)
    }

    /// A lock file pinning `tools` as served now; what `previous` accepted for a tool that
    /// is unchanged stays accepted.
    pub fn of(tools: &[&Definition], previous: Option<&LockFile>) -> LockFile {
        let mut backends: BTreeMap<String, BTreeMap<String, Pin>> = BTreeMap::new();
        for def in tools {
            let accept = previous
                .and_then(|p| p.pin(&def.backend, &def.name))
                .map(|p| p.accept.clone())
                .unwrap_or_default();
            backends
                .entry(def.backend.clone())
                .or_default()
                .insert(def.name.clone(), Pin::of(def, accept));
        }
        LockFile {
            version: VERSION,
            backends,
        }
    }

    /// The pin of `backend`'s tool `name`.
    pub fn pin(&self, backend: &str, name: &str) -> Option<&Pin> {
        self.backends.get(backend)?.get(name)
    }

    /// The file's text: sorted keys, two-space indent, a final newline.
    pub fn to_text(&self) -> String {
        let value = sorted(serde_json::to_value(self).unwrap_or(Value::Null));
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// `value` with every object's keys in order (the build's `serde_json` keeps insertion
/// order).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(String, Value)> = map.into_iter().collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(members.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}
