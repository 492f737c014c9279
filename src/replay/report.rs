//! What a replay found: counts, the decisions that would change grouped by principal, tool
//! and deciding policies, the undetermined ones grouped by what they lack (with the
//! disclosure that would make them exact), and a few example records of each group.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::audit::show::{printable, rfc3339};
use crate::authz::Decision;

/// Examples kept per group.
const EXAMPLES: usize = 3;

/// The outcome of a replay.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Records read.
    pub read: u64,
    /// Records decided again.
    pub replayed: u64,
    /// Of those, decided the same way.
    pub unchanged: u64,
    /// Of those, decided the other way.
    pub changed: u64,
    /// Records the candidate policies could not decide on what they hold.
    pub undetermined: u64,
    /// Records not replayed, by why.
    pub skipped: BTreeMap<String, u64>,
    /// The changes, largest group first.
    pub changes: Vec<Group>,
    /// The undetermined records, largest group first.
    pub open: Vec<Group>,
    /// The place of each candidate policy the groups name (`file:line`).
    pub places: BTreeMap<String, String>,
    #[serde(skip)]
    index: HashMap<(bool, Key), usize>,
}

/// A group of records with one principal, tool and story.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub principal: String,
    pub tool: String,
    /// The change (`allow -> deny`), absent for an undetermined group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// The candidate's deciding policies (a change), or the policies whose outcome
    /// depends on the unknowns (undetermined).
    pub policies: Vec<String>,
    /// The policies the record names as deciding.
    pub recorded_policies: Vec<String>,
    /// What the record lacks (undetermined only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknowns: Vec<String>,
    /// The candidate's reason (a change).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub count: u64,
    pub examples: Vec<Example>,
}

/// A decision that would flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Change {
    pub from: &'static str,
    pub to: &'static str,
}

/// One record of a group.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub index: u64,
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    principal: String,
    tool: String,
    change: Option<Change>,
    policies: Vec<String>,
    recorded: Vec<String>,
    unknowns: Vec<String>,
}

fn effect(allowed: bool, approved: bool) -> &'static str {
    match (allowed, approved) {
        (true, true) => "allow once approved",
        (true, false) => "allow",
        (false, _) => "deny",
    }
}

impl Report {
    pub(super) fn skip(&mut self, why: &str) {
        *self.skipped.entry(why.to_owned()).or_default() += 1;
    }

    /// A record decided again: `was` is (allowed, after a person's approval).
    pub(super) fn decided(
        &mut self,
        record: &Value,
        was: (bool, bool),
        was_policies: Vec<String>,
        now: &Decision,
    ) {
        self.replayed += 1;
        let now_approved = now.allowed && !now.approval.is_empty();
        // An allow that now waits for a person (or no longer does) is a change too.
        if now.allowed == was.0 && (!now.allowed || now_approved == was.1) {
            self.unchanged += 1;
            return;
        }
        self.changed += 1;
        let key = Key {
            change: Some(Change {
                from: effect(was.0, was.1),
                to: effect(now.allowed, now_approved),
            }),
            policies: now.determining.clone(),
            recorded: was_policies,
            unknowns: Vec::new(),
            ..key_of(record)
        };
        let reason = if now_approved {
            format!(
                "{}, once a person with the role {} approves it",
                now.reason,
                now.approval.join(" or ")
            )
        } else {
            now.reason.clone()
        };
        self.add(true, key, record, &reason);
    }

    pub(super) fn undetermined(
        &mut self,
        record: &Value,
        unknowns: Vec<String>,
        mut policies: Vec<String>,
    ) {
        self.undetermined += 1;
        policies.sort();
        let key = Key {
            change: None,
            policies,
            recorded: Vec::new(),
            unknowns,
            ..key_of(record)
        };
        self.add(false, key, record, "");
    }

    fn add(&mut self, change: bool, key: Key, record: &Value, reason: &str) {
        let list = if change {
            &mut self.changes
        } else {
            &mut self.open
        };
        let at = *self.index.entry((change, key.clone())).or_insert_with(|| {
            list.push(Group {
                principal: key.principal,
                tool: key.tool,
                change: key.change,
                policies: key.policies,
                recorded_policies: key.recorded,
                unknowns: key.unknowns,
                reason: reason.to_owned(),
                count: 0,
                examples: Vec::new(),
            });
            list.len() - 1
        });
        let group = &mut list[at];
        group.count += 1;
        if group.examples.len() < EXAMPLES {
            group.examples.push(Example {
                index: record.get("index").and_then(Value::as_u64).unwrap_or(0),
                time: rfc3339(record.get("time_us").and_then(Value::as_u64).unwrap_or(0)),
                request_id: record
                    .get("request_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
    }

    /// Every policy the groups name.
    pub(super) fn policies(&mut self) -> BTreeSet<String> {
        for list in [&mut self.changes, &mut self.open] {
            list.sort_by_key(|g| std::cmp::Reverse(g.count));
        }
        self.changes
            .iter()
            .chain(&self.open)
            .flat_map(|g| g.policies.iter().cloned())
            .collect()
    }

    /// 0 nothing would change and everything was decided; 1 some decision would change;
    /// 2 nothing would change but some records could not be decided.
    pub fn exit_code(&self) -> u8 {
        if self.changed > 0 {
            1
        } else if self.undetermined > 0 {
            2
        } else {
            0
        }
    }

    /// What to disclose (`[audit.disclose]`, tool -> RFC 6901 paths) for the undetermined
    /// records' arguments to be known.
    pub fn disclosure_hints(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut hints: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for group in &self.open {
            for unknown in &group.unknowns {
                if let Some(path) = unknown.strip_prefix("arguments") {
                    let pointer = if path.is_empty() {
                        String::new()
                    } else {
                        path.split('.')
                            .skip(1)
                            .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
                            .collect()
                    };
                    hints.entry(group.tool.clone()).or_default().insert(pointer);
                }
            }
        }
        hints
    }

    /// `ids`, each with its place in the candidate set when `placed`.
    fn policy_list(&self, ids: &[String], placed: bool) -> String {
        ids.iter()
            .map(|id| match self.places.get(id).filter(|_| placed) {
                Some(at) => format!("`{}` ({at})", printable(id)),
                None => format!("`{}`", printable(id)),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn key_of(record: &Value) -> Key {
    let text = |p: &str| record.pointer(p).and_then(Value::as_str).unwrap_or("");
    Key {
        principal: text("/principal/id").to_owned(),
        tool: text("/resource").to_owned(),
        change: None,
        policies: Vec::new(),
        recorded: Vec::new(),
        unknowns: Vec::new(),
    }
}

fn examples(f: &mut fmt::Formatter<'_>, group: &Group) -> fmt::Result {
    for e in &group.examples {
        write!(f, "\n      e.g. record {} at {}", e.index, e.time)?;
        if let Some(id) = &e.request_id {
            write!(f, ", request {}", printable(id))?;
        }
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not_replayed: u64 = self.skipped.values().sum();
        write!(
            f,
            "replayed {} of {} records: {} unchanged, {} would change, {} undetermined; {} not replayed",
            self.replayed + self.undetermined,
            self.read,
            self.unchanged,
            self.changed,
            self.undetermined,
            not_replayed
        )?;
        for (why, n) in &self.skipped {
            write!(f, "\n  not replayed: {n} {why}")?;
        }
        if !self.changes.is_empty() {
            write!(f, "\n\nwould change ({}):", self.changed)?;
        }
        for g in &self.changes {
            let change = g
                .change
                .map_or(String::new(), |c| format!("{} -> {}", c.from, c.to));
            write!(
                f,
                "\n  {change}  {}×  principal `{}`  `{}`: {}",
                g.count,
                printable(&g.principal),
                printable(&g.tool),
                printable(&g.reason)
            )?;
            if !g.policies.is_empty() {
                write!(
                    f,
                    "\n      now decided by {}",
                    self.policy_list(&g.policies, true)
                )?;
            }
            if !g.recorded_policies.is_empty() {
                write!(
                    f,
                    "\n      was decided by {}",
                    self.policy_list(&g.recorded_policies, false)
                )?;
            }
            examples(f, g)?;
        }
        if !self.open.is_empty() {
            write!(
                f,
                "\n\nundetermined ({}): the records do not hold what these policies read",
                self.undetermined
            )?;
        }
        for g in &self.open {
            write!(
                f,
                "\n  {}×  principal `{}`  `{}`: depends on {}",
                g.count,
                printable(&g.principal),
                printable(&g.tool),
                g.unknowns.join(", ")
            )?;
            if !g.policies.is_empty() {
                write!(f, "\n      through {}", self.policy_list(&g.policies, true))?;
            }
            examples(f, g)?;
        }
        let hints = self.disclosure_hints();
        if !hints.is_empty() {
            write!(
                f,
                "\n\nto replay these arguments exactly, record them in clear ([audit.disclose]):"
            )?;
            for (tool, paths) in hints {
                let list: Vec<String> = paths.iter().map(|p| format!("{p:?}")).collect();
                write!(f, "\n  {tool:?} = [{}]", list.join(", "))?;
            }
        }
        Ok(())
    }
}
