//! `mcp-warden policy replay`: every decided request of a verified audit log, decided again
//! under a candidate policy set, and each decision that would change reported. Beside the
//! traffic path: it reads records (audit) and asks an [`Engine`] (authz), nothing else.
//!
//! What a record does not hold stays unknown ([`crate::authz::Replayed`]): argument values
//! not disclosed, the principal's claims, the transport. Session history is rebuilt from
//! the log itself (the calls each session was allowed before, in order). A pseudonymised
//! principal is matched against the ids the policies name when the pseudonym key is given.

mod recall;
mod report;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::authz::{Engine, Recalled, Replayed};
use recall::{Principals, Sessions, arguments_of, operation_of};
pub use report::{Change, Example, Group, Report};

/// Which records to replay, and what helps to replay them exactly.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only records at or after this time (µs since the epoch); earlier ones still build
    /// their sessions' history.
    pub since_us: Option<u64>,
    /// Only this principal (its id, or its pseudonym in a pseudonymised log).
    pub principal: Option<String>,
    /// Only this exposed tool (or prompt, or resource URI).
    pub tool: Option<String>,
    /// The log's pseudonym key: pseudonyms of the principals the policies name are
    /// recognised.
    pub pseudonym_key: Option<Vec<u8>>,
    /// Issuer URL -> the issuer's `principal_prefix` (from the configuration).
    pub issuer_prefixes: Option<HashMap<String, String>>,
    /// The window of `context.history.recent_calls`.
    pub history_window_s: u64,
    /// `server.session_idle_timeout_s`: a session idle this long has ended, and its
    /// history with it (`None`: sessions never end).
    pub session_idle_s: Option<u64>,
}

/// Replays records one by one, in log order.
pub struct Replayer<'e> {
    engine: &'e Engine,
    options: Options,
    principals: Principals,
    sessions: Sessions,
    report: Report,
}

/// The reason a switched-off target gives (`switches`): such denials were never a policy's.
const SWITCHED_OFF: &str = " is switched off";

impl<'e> Replayer<'e> {
    pub fn new(engine: &'e Engine, options: Options) -> Replayer<'e> {
        let principals = Principals::new(engine, &options);
        let sessions = Sessions::new(options.history_window_s, options.session_idle_s);
        Replayer {
            engine,
            options,
            principals,
            sessions,
            report: Report::default(),
        }
    }

    /// Replays one record (a parsed log line).
    pub fn record(&mut self, record: &Value) {
        self.report.read += 1;
        let text = |pointer: &str| record.pointer(pointer).and_then(Value::as_str);
        let (Some(recorded), Some(action)) = (text("/decision/effect"), text("/action")) else {
            return self
                .report
                .skip("without a policy decision (start, stop, initialize, ping, ...)");
        };
        let resource = text("/resource").unwrap_or("");
        let time_us = record.get("time_us").and_then(Value::as_u64).unwrap_or(0);
        let session = text("/session");
        let before = session.map(|s| self.sessions.facts(s, time_us));
        // History is what the session was allowed before, as recorded.
        if action == "tools/call"
            && recorded == "allow"
            && let Some(s) = session
        {
            self.sessions
                .note(s, resource, self.engine.tool_groups(resource), time_us);
        }
        let wanted = self.options.since_us.is_none_or(|since| time_us >= since)
            && self.options.tool.as_deref().is_none_or(|t| t == resource)
            && self
                .options
                .principal
                .as_deref()
                .is_none_or(|p| text("/principal/id") == Some(p));
        if !wanted {
            return self.report.skip("outside the filters");
        }
        let reason = text("/decision/reason").unwrap_or("");
        if recorded == "deny" && reason.contains(SWITCHED_OFF) {
            return self.report.skip("denied by the kill switch, not a policy");
        }
        let Some(op) = operation_of(action, resource) else {
            return self.report.skip(&format!(
                "`{action}` is not decided on what its record holds"
            ));
        };
        let principal = match self.principals.of(record) {
            Ok(p) => p,
            Err(unknown) => {
                return self.report.undetermined(record, vec![unknown], Vec::new());
            }
        };
        let arguments = arguments_of(record);
        let replayed = self.engine.replay(&Recalled {
            principal: &principal,
            op,
            arguments: arguments.as_ref(),
            epoch_seconds: (time_us / 1_000_000) as i64,
            session,
            client: text("/detail/client"),
            transport: None,
            history: before.as_ref(),
            claims_known: false,
        });
        match replayed {
            Replayed::Decided(d) => {
                let was: Vec<String> = record
                    .pointer("/decision/policies")
                    .and_then(Value::as_array)
                    .map(|ids| {
                        ids.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let was_approved = record.pointer("/detail/approval").is_some();
                self.report
                    .decided(record, (recorded == "allow", was_approved), was, &d);
            }
            Replayed::Undetermined { unknowns, policies } => {
                self.report.undetermined(record, unknowns, policies);
            }
        }
    }

    /// The report, with each policy's place in the candidate set.
    pub fn finish(mut self) -> Report {
        let places: BTreeMap<String, String> = self
            .report
            .policies()
            .into_iter()
            .filter_map(|id| {
                let (file, line) = self.engine.policy_location(&id)?;
                Some((id, format!("{file}:{line}")))
            })
            .collect();
        self.report.places = places;
        self.report
    }
}
