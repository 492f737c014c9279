//! A record read back into what a decision needs: the operation, the principal, the
//! arguments as far as they were disclosed, and the session's history before it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::LazyLock;

use serde_json::{Map, Value};

use super::Options;
use crate::audit::show::PSEUDONYM_PREFIX;
use crate::audit::{MAX_LEAVES, pseudonym};
use crate::authn::{Principal, PrincipalKind};
use crate::authz::{Engine, HistoryFacts, Operation, Recorded, RecordedArguments};
use crate::stack::history::{MAX_RECENT, MAX_TOOLS};

static NO_ARGUMENTS: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);

/// The operation a record's `action` and `resource` name, for the methods whose record
/// holds all the decision asks (a tool call's arguments come separately); `None` for the
/// others (prompts and resources are recorded by their exposed names, without the backend
/// the decision is asked about).
pub fn operation_of<'r>(action: &str, resource: &'r str) -> Option<Operation<'r>> {
    Some(match action {
        "tools/call" => Operation::CallTool {
            tool: resource,
            arguments: &NO_ARGUMENTS,
        },
        "tools/list" => Operation::ListTools,
        "prompts/list" => Operation::ListPrompts,
        "resources/list" | "resources/templates/list" => Operation::ListResources,
        "logging/setLevel" => Operation::SetLogLevel,
        _ => return None,
    })
}

/// What the record's commitments and disclosures tell of the call's arguments: every
/// committed leaf is present, the disclosed ones with their values.
pub fn arguments_of(record: &Value) -> Option<RecordedArguments> {
    let Some(field) = record.get("arguments") else {
        // A call without arguments records none.
        return Some(RecordedArguments::Members(BTreeMap::new()));
    };
    let commitments = field.get("commitments").and_then(Value::as_object)?;
    // Past the limit, leaves go uncommitted: which members were present is unknown.
    if commitments.len() > MAX_LEAVES {
        return Some(RecordedArguments::Unknown);
    }
    let mut root = Recorded::Members(BTreeMap::new());
    for path in commitments.keys().filter(|p| !p.is_empty()) {
        insert(&mut root, &tokens(path), Recorded::Hidden);
    }
    if let Some(disclosed) = field.get("disclosed").and_then(Value::as_object) {
        for (path, value) in disclosed {
            insert(&mut root, &tokens(path), Recorded::Known(value.clone()));
        }
    }
    Some(match root {
        Recorded::Members(members) => RecordedArguments::Members(members),
        Recorded::Known(Value::Object(all)) => RecordedArguments::Members(
            all.into_iter()
                .map(|(k, v)| (k, Recorded::Known(v)))
                .collect(),
        ),
        _ => RecordedArguments::Unknown,
    })
}

/// The unescaped reference tokens of an RFC 6901 pointer.
fn tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Puts `leaf` at `path` under `node`; a known value is never opened up again.
fn insert(node: &mut Recorded, path: &[String], leaf: Recorded) {
    let Some((first, rest)) = path.split_first() else {
        if !matches!(node, Recorded::Known(_)) {
            *node = leaf;
        }
        return;
    };
    if matches!(node, Recorded::Hidden) {
        *node = Recorded::Members(BTreeMap::new());
    }
    if let Recorded::Members(members) = node {
        let child = members
            .entry(first.clone())
            .or_insert(Recorded::Members(BTreeMap::new()));
        insert(child, rest, leaf);
    }
}

/// Principals as recorded, made into what policies see.
pub struct Principals {
    /// Pseudonym -> id, for the principal ids the policies name (with the key).
    named: HashMap<String, String>,
    /// Whether the policies name any principal by id.
    names_principals: bool,
    has_key: bool,
    /// Whether the policies name an issuer (`Mcp::Issuer::"…"`).
    names_issuers: bool,
    issuer_prefixes: Option<HashMap<String, String>>,
}

impl Principals {
    pub fn new(engine: &Engine, options: &Options) -> Principals {
        let ids = engine.principal_literals();
        let named = match &options.pseudonym_key {
            Some(key) => ids
                .iter()
                .map(|id| (pseudonym(key, id), id.clone()))
                .collect(),
            None => HashMap::new(),
        };
        Principals {
            named,
            names_principals: !ids.is_empty(),
            has_key: options.pseudonym_key.is_some(),
            names_issuers: engine.names_issuers(),
            issuer_prefixes: options.issuer_prefixes.clone(),
        }
    }

    /// The recorded principal, or the unknown that keeps it from being known.
    pub fn of(&self, record: &Value) -> Result<Principal, String> {
        let p = record
            .get("principal")
            .ok_or_else(|| "the principal (not recorded)".to_owned())?;
        let text = |name: &str| p.get(name).and_then(Value::as_str);
        let recorded_id = text("id").unwrap_or_default();
        let id = if recorded_id.starts_with(PSEUDONYM_PREFIX) {
            match self.named.get(recorded_id) {
                Some(id) => id.clone(),
                None if self.names_principals && !self.has_key => {
                    return Err(
                        "the principal's id (pseudonymised; give --pseudonym-key)".to_owned()
                    );
                }
                // Not one the policies name: no policy can tell it from its pseudonym.
                None => recorded_id.to_owned(),
            }
        } else {
            recorded_id.to_owned()
        };
        let kind = match text("kind").map(str::to_ascii_lowercase).as_deref() {
            Some("user") => PrincipalKind::User,
            Some("agent") => PrincipalKind::Agent,
            Some("service") => PrincipalKind::Service,
            other => return Err(format!("the principal's kind ({other:?})")),
        };
        let issuer = text("issuer").map(str::to_owned);
        let namespace = match (&issuer, &self.issuer_prefixes) {
            (None, _) => None,
            (Some(url), Some(prefixes)) => prefixes.get(url).cloned(),
            (Some(_), None) if self.names_issuers => {
                return Err(
                    "the principal's issuer namespace (give --config, whose [auth] names it)"
                        .to_owned(),
                );
            }
            (Some(_), None) => None,
        };
        let roles = p
            .get("roles")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Principal {
            id,
            kind,
            roles,
            tenant: text("tenant").map(str::to_owned),
            issuer,
            namespace,
            attributes: BTreeMap::new(),
        })
    }
}

/// Each session's history as the log tells it, bounded as the proxy bounds it: a session
/// idle for the idle timeout has ended, its history with it, so only the sessions of the
/// last idle timeout are kept however long the log.
pub struct Sessions {
    sessions: HashMap<String, Session>,
    window_us: u64,
    /// `None`: sessions never end (a log read without its configuration's timeout).
    idle_us: Option<u64>,
    /// Notes since the last sweep of ended sessions.
    since_sweep: usize,
}

/// Ended sessions are swept after this many calls.
const SWEEP_EVERY: usize = 4096;

#[derive(Default)]
struct Session {
    tools: BTreeSet<String>,
    groups: BTreeSet<String>,
    calls: i64,
    recent: VecDeque<u64>,
    last_us: u64,
}

impl Sessions {
    pub fn new(window_s: u64, idle_s: Option<u64>) -> Sessions {
        Sessions {
            sessions: HashMap::new(),
            window_us: window_s.saturating_mul(1_000_000),
            idle_us: idle_s.map(|s| s.saturating_mul(1_000_000)),
            since_sweep: 0,
        }
    }

    /// Whether a session last active at `last_us` had ended by `now_us`.
    fn ended(&self, last_us: u64, now_us: u64) -> bool {
        self.idle_us
            .is_some_and(|idle| now_us.saturating_sub(last_us) > idle)
    }

    /// Sessions kept (for tests and bounds).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// What `session` did before `now_us`.
    pub fn facts(&self, session: &str, now_us: u64) -> HistoryFacts {
        let Some(s) = self
            .sessions
            .get(session)
            .filter(|s| !self.ended(s.last_us, now_us))
        else {
            return HistoryFacts::default();
        };
        let since = now_us.saturating_sub(self.window_us);
        HistoryFacts {
            tools: s.tools.iter().cloned().collect(),
            groups: s.groups.iter().cloned().collect(),
            calls: s.calls,
            recent_calls: s.recent.iter().filter(|&&t| t >= since).count() as i64,
        }
    }

    /// An allowed call of `tool` by `session` at `at_us`.
    pub fn note(&mut self, session: &str, tool: &str, groups: &[String], at_us: u64) {
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY && self.idle_us.is_some() {
            self.since_sweep = 0;
            let idle = self.idle_us.unwrap_or(u64::MAX);
            self.sessions
                .retain(|_, s| at_us.saturating_sub(s.last_us) <= idle);
        }
        if let Some(s) = self.sessions.get(session)
            && self.ended(s.last_us, at_us)
        {
            // The same id after the session ended: a history of its own.
            self.sessions.remove(session);
        }
        let s = self.sessions.entry(session.to_owned()).or_default();
        s.last_us = s.last_us.max(at_us);
        if s.tools.len() < MAX_TOOLS || s.tools.contains(tool) {
            s.tools.insert(tool.to_owned());
        }
        s.groups.extend(groups.iter().cloned());
        s.calls = s.calls.saturating_add(1);
        let since = at_us.saturating_sub(self.window_us);
        while s.recent.front().is_some_and(|&t| t < since) || s.recent.len() >= MAX_RECENT {
            s.recent.pop_front();
        }
        s.recent.push_back(at_us);
    }
}
