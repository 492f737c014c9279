//! The live sessions of the HTTP endpoint, by the id clients send in `Mcp-Session-Id`, for
//! the HTTP layer's own hot path (`http::hot`): the session's handler, the rmcp peer that
//! reaches the client outside a call, and what the hot path needs to answer on a call's
//! own response: its calls in flight (for `notifications/cancelled`) and the requests it
//! sent the client on a call's stream, waiting for their answers.
//!
//! A session enters the table when the client sends `notifications/initialized` and leaves
//! it when rmcp drops its handler (closed, expired, or the proxy stopped); the table holds
//! the handler weakly, so it never keeps a session alive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use rmcp::model::{ClientResult, RequestId};
use rmcp::{ErrorData as McpError, RoleServer, service::Peer};
use tokio_util::sync::CancellationToken;

use super::audited::{Audited, Shared};
use crate::backend::Answer;
use crate::sync::{Locked, RwLocked};

/// Every live session, by its transport id.
#[derive(Default)]
pub struct LiveSessions {
    map: RwLock<HashMap<Arc<str>, Arc<LiveSession>>>,
}

/// One live session.
pub struct LiveSession {
    handler: Weak<Shared>,
    pub peer: Peer<RoleServer>,
    /// The principal that opened the session.
    pub principal: Arc<crate::authn::Principal>,
    /// When the hot path last told rmcp's session worker the session is in use (ms on the
    /// table's clock); see [`LiveSession::due_for_touch`].
    touched: AtomicU64,
    calls: Mutex<HashMap<RequestId, CancellationToken>>,
    asks: Mutex<HashMap<String, Answer>>,
    next_ask: AtomicU64,
    /// The session's recent call streams, for resumption (`Last-Event-ID`).
    streams: Mutex<std::collections::VecDeque<(u64, Arc<StreamLog>)>>,
    next_stream: AtomicU64,
}

/// How many call streams a session keeps for resumption; the oldest answered one goes.
const KEPT_STREAMS: usize = 16;
/// How long an answered call's stream stays resumable.
const KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// The events of one call's stream, kept so that a client that lost the stream can pick
/// it up again from the last event it saw.
#[derive(Default)]
pub struct StreamLog {
    events: Mutex<Vec<bytes::Bytes>>,
    changed: tokio::sync::Notify,
    done: std::sync::atomic::AtomicBool,
    finished: std::sync::OnceLock<std::time::Instant>,
}

impl StreamLog {
    pub fn push(&self, event: bytes::Bytes) {
        self.events.locked().push(event);
        self.changed.notify_waiters();
    }

    /// The call is answered: no event follows.
    pub fn finish(&self) {
        let _ = self.finished.set(std::time::Instant::now());
        self.done.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    pub fn len(&self) -> usize {
        self.events.locked().len()
    }

    /// The event at `index`, waiting for it; `None` once the stream ended before it.
    pub async fn get(&self, index: usize) -> Option<bytes::Bytes> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(event) = self.events.locked().get(index) {
                return Some(event.clone());
            }
            if self.done.load(Ordering::Acquire) {
                return None;
            }
            changed.await;
        }
    }
}

impl LiveSessions {
    /// Adds a session whose handler is `handler` (held weakly).
    pub(crate) fn insert(
        &self,
        id: &str,
        handler: Weak<Shared>,
        peer: Peer<RoleServer>,
        principal: Arc<crate::authn::Principal>,
    ) {
        let session = Arc::new(LiveSession {
            handler,
            peer,
            principal,
            touched: AtomicU64::new(now_ms()),
            calls: Mutex::default(),
            asks: Mutex::default(),
            next_ask: AtomicU64::new(0),
            streams: Mutex::default(),
            next_stream: AtomicU64::new(0),
        });
        self.map.write_locked().insert(Arc::from(id), session);
    }

    pub(crate) fn remove(&self, id: &str) {
        self.map.write_locked().remove(id);
    }

    /// The live sessions whose client answers elicitations and whose principal holds one
    /// of `roles` and is not `caller`: who can be asked to approve a call.
    pub fn approvers(&self, roles: &[String], caller: &str) -> Vec<Arc<LiveSession>> {
        let map = self.map.read_locked();
        map.values()
            .filter(|s| s.handler.strong_count() > 0)
            .filter(|s| s.principal.id != caller)
            .filter(|s| s.principal.roles.iter().any(|r| roles.contains(r)))
            .filter(|s| {
                s.peer
                    .peer_info()
                    .is_some_and(|info| info.capabilities.elicitation.is_some())
            })
            .cloned()
            .collect()
    }

    /// The session with this id, while its handler lives.
    pub fn get(&self, id: &str) -> Option<Arc<LiveSession>> {
        let map = self.map.read_locked();
        map.get(id)
            .filter(|s| s.handler.strong_count() > 0)
            .cloned()
    }
}

impl LiveSession {
    /// The session's handler, for one request; `None` once rmcp dropped it.
    pub fn handler(&self) -> Option<Audited> {
        self.handler.upgrade().map(Audited::from_shared)
    }

    /// Whether rmcp's session worker should hear of this session's use now: its idle
    /// timer counts only what passes through it, and the hot path bypasses it. At most
    /// once per `every` ms, so the cost per call stays one atomic load.
    pub fn due_for_touch(&self, every: u64) -> bool {
        let now = now_ms();
        let last = self.touched.load(Ordering::Relaxed);
        now.saturating_sub(last) >= every
            && self
                .touched
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Registers a call in flight, cancelled by `notifications/cancelled` naming `id`;
    /// `None` when a call of the session with that id is in flight already (JSON-RPC ids
    /// of one session's requests in flight are unique: a second would make the first's
    /// cancellation, and its end, ambiguous).
    pub fn begin_call(&self, id: RequestId) -> Option<CancellationToken> {
        let mut calls = self.calls.locked();
        if calls.contains_key(&id) {
            return None;
        }
        let token = CancellationToken::new();
        calls.insert(id, token.clone());
        Some(token)
    }

    pub fn end_call(&self, id: &RequestId) {
        self.calls.locked().remove(id);
    }

    /// Calls running now.
    pub fn calls(&self) -> usize {
        self.calls.locked().len()
    }

    /// Cancels every call in flight (the session ended).
    pub fn cancel_all(&self) {
        for (_, token) in self.calls.locked().drain() {
            token.cancel();
        }
    }

    /// Cancels a call in flight; false when no such call is known here.
    pub fn cancel(&self, id: &RequestId) -> bool {
        match self.calls.locked().remove(id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Keeps `answer` for a request about to be sent on a call's stream; returns the id
    /// to send it with (its own space, apart from rmcp's numbers).
    pub fn ask(&self, answer: Answer) -> String {
        let id = format!(
            "warden-{}",
            self.next_ask.fetch_add(1, Ordering::Relaxed) + 1
        );
        self.asks.locked().insert(id.clone(), answer);
        id
    }

    /// Hands the client's answer to whoever asked; false when nothing waits for `id`.
    pub fn answer(&self, id: &str, answer: Result<ClientResult, McpError>) -> bool {
        match self.asks.locked().remove(id) {
            Some(waiting) => {
                let _ = waiting.send(answer);
                true
            }
            None => false,
        }
    }

    /// Forgets asks whose call ended: their askers learn the client will not answer.
    pub fn forget(&self, ids: &[String]) {
        let mut asks = self.asks.locked();
        for id in ids {
            asks.remove(id);
        }
    }
}

impl LiveSession {
    /// Opens a call stream's log; returns its number in this session.
    pub fn open_stream(&self) -> (u64, Arc<StreamLog>) {
        let number = self.next_stream.fetch_add(1, Ordering::Relaxed) + 1;
        let log = Arc::new(StreamLog::default());
        let mut streams = self.streams.locked();
        streams.retain(|(_, l)| l.finished.get().is_none_or(|at| at.elapsed() < KEPT_FOR));
        if streams.len() >= KEPT_STREAMS {
            let oldest_done = streams
                .iter()
                .position(|(_, l)| l.done.load(Ordering::Acquire))
                .unwrap_or(0);
            streams.remove(oldest_done);
        }
        streams.push_back((number, log.clone()));
        (number, log)
    }

    /// A call stream of this session still kept.
    pub fn stream(&self, number: u64) -> Option<Arc<StreamLog>> {
        self.streams
            .locked()
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, l)| l.clone())
    }
}

fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}
