//! Tool integrity, beside authorization and depending on nothing of the traffic path: what
//! each backend's tools were when an operator reviewed them ([`lock`], written by
//! `mcp-warden tools pin`), what they are now, what their descriptions say to the model
//! ([`scan`]) and which names two backends make look alike ([`names`]).
//!
//! The hub asks [`Integrity::examine`] about every tool it knows before it builds the
//! authorization engine; with `pinning = "enforce"` a tool with a finding is held:
//! hidden and denied (the engine's quarantine), with the finding as its reason.

pub mod lock;
pub mod names;
pub mod scan;

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use lock::{LockError, LockFile, Pin};
pub use scan::{Mentions, Rule, Rules};

/// What an operator reviews of a tool: the parts a client (and its model) sees.
pub const PARTS: [&str; 5] = [
    "title",
    "description",
    "input_schema",
    "output_schema",
    "annotations",
];

/// A tool as a backend serves it, under its own (original) name.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub backend: String,
    /// The backend's name for it.
    pub name: String,
    /// The name clients see.
    pub exposed: String,
    /// [`PARTS`] by name; an absent part is `null`.
    pub parts: BTreeMap<&'static str, Value>,
    /// The hash of each part and of the whole, computed once: a tool is examined at every
    /// engine build while its definition stays the same.
    hashes: BTreeMap<String, String>,
}

impl Definition {
    /// `tool` (as the catalog exposes it, under `exposed`) of `backend`, whose own name is
    /// `name`.
    pub fn of(tool: &rmcp::model::Tool, backend: &str, name: &str) -> Definition {
        let json = serde_json::to_value(tool).unwrap_or(Value::Null);
        let field = |key: &str| json.get(key).cloned().unwrap_or(Value::Null);
        let parts = BTreeMap::from([
            ("title", field("title")),
            ("description", field("description")),
            ("input_schema", field("inputSchema")),
            ("output_schema", field("outputSchema")),
            ("annotations", field("annotations")),
        ]);
        Definition::new(backend, name, &tool.name, parts)
    }

    /// A definition of these parts.
    pub fn new(
        backend: &str,
        name: &str,
        exposed: &str,
        parts: BTreeMap<&'static str, Value>,
    ) -> Definition {
        Definition {
            backend: backend.to_owned(),
            name: name.to_owned(),
            exposed: exposed.to_owned(),
            hashes: hashes(&parts),
            parts,
        }
    }

    /// The SHA-256 of each part and of the whole (`definition`), hex, over RFC 8785 JSON.
    pub fn hashes(&self) -> &BTreeMap<String, String> {
        &self.hashes
    }

    /// Every text of the tool a model reads: its title, its description, and the
    /// `title`/`description` of each property in its schemas.
    pub fn texts(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        for part in ["title", "description"] {
            if let Some(text) = self.parts[part].as_str() {
                out.push((part.to_owned(), text));
            }
        }
        for part in ["input_schema", "output_schema"] {
            schema_texts(&self.parts[part], part.to_owned(), &mut out);
        }
        out
    }
}

fn schema_texts<'v>(value: &'v Value, path: String, out: &mut Vec<(String, &'v str)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("description" | "title", Value::String(text)) => {
                        out.push((format!("{path}.{key}"), text));
                    }
                    _ => schema_texts(v, format!("{path}.{key}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                schema_texts(item, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// SHA-256, hex, of the RFC 8785 form of `value`.
fn digest(value: &Value) -> String {
    hex::encode(Sha256::digest(crate::audit::jcs::to_vec(value)))
}

/// The hash of each part and of the whole object of parts (`definition`).
pub(crate) fn hashes(parts: &BTreeMap<&'static str, Value>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = parts
        .iter()
        .map(|(k, v)| ((*k).to_owned(), digest(v)))
        .collect();
    let whole: Map<String, Value> = parts
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    out.insert("definition".to_owned(), digest(&Value::Object(whole)));
    out
}

/// How findings are acted on (`[tools] pinning`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Nothing is checked.
    #[default]
    Off,
    /// Findings are logged, recorded and counted; nothing is held.
    Warn,
    /// A tool with a finding is held: hidden and denied.
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Warn => "warn",
            Mode::Enforce => "enforce",
        }
    }
}

/// What is wrong with a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Its definition differs from its pin in these parts.
    Changed {
        parts: Vec<String>,
        /// The pinned and the served `definition` hashes.
        pinned: String,
        now: String,
    },
    /// The lock file has no pin for it.
    Unpinned,
    /// A rule matched one of its texts (the rule, where, what matched).
    Suspicious {
        rule: String,
        place: String,
        matched: String,
    },
}

impl Finding {
    /// Short name: `changed`, `unpinned`, `suspicious`.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Changed { .. } => "changed",
            Finding::Unpinned => "unpinned",
            Finding::Suspicious { .. } => "suspicious",
        }
    }

    /// What a person reads (a quarantine's reason, a log line, `tools diff`).
    pub fn describe(&self) -> String {
        match self {
            Finding::Changed { parts, .. } => format!(
                "its definition changed since it was pinned ({}); re-pin it once reviewed",
                parts.join(", ")
            ),
            Finding::Unpinned => "it is not pinned in the lock file".to_owned(),
            Finding::Suspicious {
                rule,
                place,
                matched,
            } => format!("rule `{rule}` matched its {place}: {matched:?}"),
        }
    }
}

/// A tool's findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Examined {
    pub backend: String,
    pub name: String,
    pub exposed: String,
    /// The served definition's hash.
    pub definition: String,
    pub findings: Vec<Finding>,
}

impl Examined {
    /// The reason it is held (every finding, joined).
    pub fn reason(&self) -> String {
        self.findings
            .iter()
            .map(Finding::describe)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// `[tools]`: the mode, the lock file and the description rules.
#[derive(Debug, Clone, Default)]
pub struct Integrity {
    pub mode: Mode,
    pub lock: Option<LockFile>,
    pub rules: Rules,
}

impl Integrity {
    /// Every tool of `tools` with a finding. `separator` joins backend and tool names (a
    /// description naming another backend's tool is a finding).
    pub fn examine(&self, tools: &[&Definition], separator: &str) -> Vec<Examined> {
        if self.mode == Mode::Off {
            return Vec::new();
        }
        let mentions = Mentions::new(
            tools
                .iter()
                .map(|t| (t.exposed.as_str(), t.backend.as_str())),
            separator,
        );
        let mut out = Vec::new();
        for def in tools {
            let hashes = def.hashes();
            let mut findings = Vec::new();
            let pin = self
                .lock
                .as_ref()
                .and_then(|l| l.pin(&def.backend, &def.name));
            match (&self.lock, pin) {
                (Some(_), None) => findings.push(Finding::Unpinned),
                (_, Some(pin)) => {
                    let parts = pin.changed(hashes);
                    if !parts.is_empty() {
                        findings.push(Finding::Changed {
                            parts,
                            pinned: pin.hash("definition").to_owned(),
                            now: hashes["definition"].clone(),
                        });
                    }
                }
                (None, None) => {}
            }
            let accepted = pin.map(|p| p.accept.as_slice()).unwrap_or_default();
            for hit in self.rules.scan(def, &mentions) {
                if !accepted.contains(&hit.rule) {
                    findings.push(Finding::Suspicious {
                        rule: hit.rule,
                        place: hit.place,
                        matched: hit.matched,
                    });
                }
            }
            if !findings.is_empty() {
                out.push(Examined {
                    backend: def.backend.clone(),
                    name: def.name.clone(),
                    exposed: def.exposed.clone(),
                    definition: hashes["definition"].clone(),
                    findings,
                });
            }
        }
        out
    }
}
