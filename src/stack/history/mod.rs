//! What each session did, for policies that read `context.history`: the tools it was
//! allowed to call, their `[tools.groups]`, how many calls, and how many within the window.
//! Kept only while some policy reads it, per session, in memory, bounded: sessions expire
//! with the session idle timeout and at most the session limit are kept; a session keeps
//! at most [`MAX_TOOLS`] tool names (its groups, a configured few, are always complete)
//! and counts at most [`MAX_RECENT`] recent calls.
//!
//! With `[limits] redis` the history is kept in Redis too ([`shared`]), and read from there,
//! so a session's calls on every replica count; a replica that cannot reach Redis goes on
//! with what it saw itself (as the shared rate limits do) and says so in the log.

mod shared;

use std::{
    collections::{BTreeSet, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::authz::HistoryFacts;
use crate::sync::Locked;

/// Distinct tool names kept per session.
pub const MAX_TOOLS: usize = 256;
/// Call times kept per session for `recent_calls` (it saturates there).
pub const MAX_RECENT: usize = 10_000;

#[derive(Default)]
struct Session {
    tools: BTreeSet<String>,
    groups: BTreeSet<String>,
    calls: i64,
    recent: VecDeque<Instant>,
}

/// The sessions' histories.
pub struct History {
    sessions: moka::sync::Cache<String, Arc<Mutex<Session>>>,
    window: Duration,
    shared: Option<shared::SharedHistory>,
}

impl History {
    /// Histories of at most `sessions` sessions, each forgotten after `idle` without a
    /// call; `recent_calls` counts calls within `window`.
    pub fn new(sessions: usize, idle: Duration, window: Duration) -> History {
        History {
            sessions: moka::sync::Cache::builder()
                .max_capacity(sessions as u64)
                .time_to_idle(idle)
                .build(),
            window,
            shared: None,
        }
    }

    /// [`History::new`], kept in the Redis at `url` as well (connected lazily).
    pub fn shared(
        sessions: usize,
        idle: Duration,
        window: Duration,
        url: &str,
    ) -> Result<History, String> {
        Ok(History {
            shared: Some(shared::SharedHistory::new(url, window, idle)?),
            ..History::new(sessions, idle, window)
        })
    }

    /// Whether the history is kept in Redis (then read and written with the `_everywhere`
    /// functions, which wait for it).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// What `session` did so far on every replica (this one's alone if Redis cannot be
    /// reached).
    pub async fn facts_everywhere(&self, session: &str) -> HistoryFacts {
        match &self.shared {
            Some(shared) => match shared.facts(session).await {
                Ok(facts) => facts,
                Err(()) => self.facts(session),
            },
            None => self.facts(session),
        }
    }

    /// Notes an allowed call here and, with Redis, for every replica.
    pub async fn record_everywhere(&self, session: &str, tool: &str, groups: &[String]) {
        self.record(session, tool, groups);
        if let Some(shared) = &self.shared {
            // Unreachable: logged once by the store; this replica still counts it.
            let _ = shared.record(session, tool, groups).await;
        }
    }

    /// What `session` did so far (empty for a session with no call yet).
    pub fn facts(&self, session: &str) -> HistoryFacts {
        let Some(entry) = self.sessions.get(session) else {
            return HistoryFacts::default();
        };
        let mut s = entry.locked();
        let now = Instant::now();
        while s
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            s.recent.pop_front();
        }
        HistoryFacts {
            tools: s.tools.iter().cloned().collect(),
            groups: s.groups.iter().cloned().collect(),
            calls: s.calls,
            recent_calls: s.recent.len() as i64,
        }
    }

    /// Notes an allowed call of `tool` (in `groups`) by `session`.
    pub fn record(&self, session: &str, tool: &str, groups: &[String]) {
        let entry = self.sessions.get_with_by_ref(session, Arc::default);
        let mut s = entry.locked();
        if s.tools.len() < MAX_TOOLS || s.tools.contains(tool) {
            s.tools.insert(tool.to_owned());
        }
        for g in groups {
            if !s.groups.contains(g) {
                s.groups.insert(g.clone());
            }
        }
        s.calls = s.calls.saturating_add(1);
        if s.recent.len() == MAX_RECENT {
            s.recent.pop_front();
        }
        s.recent.push_back(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sessions_history_is_its_own_and_bounded() {
        let history = History::new(10, Duration::from_secs(60), Duration::from_secs(3600));
        assert_eq!(history.facts("a"), HistoryFacts::default());
        history.record("a", "crm__get", &["pii_read".to_owned()]);
        history.record("a", "crm__get", &["pii_read".to_owned()]);
        history.record("b", "mail__send", &[]);
        let a = history.facts("a");
        assert_eq!(a.tools, ["crm__get"]);
        assert_eq!(a.groups, ["pii_read"]);
        assert_eq!((a.calls, a.recent_calls), (2, 2));
        assert_eq!(history.facts("b").groups, Vec::<String>::new());
        for i in 0..MAX_TOOLS + 10 {
            history.record("c", &format!("t{i}"), &["g".to_owned()]);
        }
        let c = history.facts("c");
        assert_eq!(c.tools.len(), MAX_TOOLS);
        assert_eq!(c.groups, ["g"], "groups stay complete");
        assert_eq!(c.calls, (MAX_TOOLS + 10) as i64);
    }

    #[test]
    fn recent_calls_count_only_the_window() {
        let history = History::new(10, Duration::from_secs(60), Duration::from_millis(50));
        history.record("a", "t", &[]);
        std::thread::sleep(Duration::from_millis(80));
        history.record("a", "t", &[]);
        let a = history.facts("a");
        assert_eq!((a.calls, a.recent_calls), (2, 1));
    }
}
