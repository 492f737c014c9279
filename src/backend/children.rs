//! A stdio backend run as one child per client session (`per_session = true`). Over one
//! shared pipe nothing says which client a server request (sampling, elicitation, roots)
//! is for, so the relay refuses it whenever several sessions have calls in flight; a
//! session's own child has only that session's calls, and every request it sends has one
//! answer.
//!
//! The backend's shared child stays: it gives the catalog (lists, `list_changed`),
//! subscriptions and the log level, and serves clients on 2026-07-28 (a session per
//! request; they answer input requests themselves). A session's calls go to its own child,
//! started on its first call, stopped when the session ends or after `child_idle_timeout_s`
//! unused; at most `max_children` run, and a session beyond that gets a clear error.
//!
//! Where this sits: inside [`super::Backend::request`], below the call stack; the
//! governance state (limits, breaker) stays the backend's, shared by its children.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use tokio::sync::OnceCell;

use super::{Backend, connect::Connection, relay::Relay};
use crate::sync::Locked;
use crate::{config::PerSession, error::CallError};

/// The children of one backend, by client session.
pub(super) struct Children {
    limits: PerSession,
    by_session: Mutex<HashMap<u64, Arc<Slot>>>,
}

/// One session's place: its child once started.
#[derive(Default)]
struct Slot {
    child: OnceCell<Child>,
    last_used: Mutex<Option<Instant>>,
}

/// A started child, kept while a call uses it (even if its session ends meanwhile).
pub(super) struct SessionChild(Arc<Slot>);

impl SessionChild {
    pub fn backend(&self) -> &Backend {
        &self
            .0
            .child
            .get()
            .expect("a SessionChild is made once started")
            .backend
    }
}

struct Child {
    backend: Backend,
    /// Holding the connection keeps the process; dropping it stops it.
    _connection: Connection,
}

impl Children {
    pub fn new(limits: PerSession) -> Self {
        Self {
            limits,
            by_session: Default::default(),
        }
    }

    /// `session`'s child, started if need be with `relay` (the shared connection's, given
    /// the child's own calls in flight).
    pub async fn of(
        &self,
        parent: &Backend,
        session: u64,
        relay: Relay,
    ) -> Result<SessionChild, CallError> {
        let slot = self.slot(parent, session)?;
        let started = slot
            .child
            .get_or_try_init(|| start(parent, relay))
            .await
            .inspect_err(|_| {
                self.lock().remove(&session);
            })?;
        *slot.last_used.locked() = Some(Instant::now());
        if !started.backend.is_up() {
            // The process ended: the next call starts another.
            self.lock().remove(&session);
            return Err(CallError::Unavailable(parent.name().to_owned()));
        }
        Ok(SessionChild(slot))
    }

    /// Every child stops.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// `session` ended: its child stops.
    pub fn session_ended(&self, session: u64) {
        self.lock().remove(&session);
    }

    /// The session's slot, made if it has none: children idle too long are stopped first,
    /// and a new one is refused when `max_children` are running.
    fn slot(&self, parent: &Backend, session: u64) -> Result<Arc<Slot>, CallError> {
        let mut map = self.lock();
        if let Some(slot) = map.get(&session) {
            return Ok(slot.clone());
        }
        let idle = self.limits.idle_timeout;
        map.retain(|_, slot| {
            slot.last_used
                .locked()
                .is_none_or(|used| used.elapsed() < idle)
        });
        if map.len() >= self.limits.max_children {
            return Err(CallError::NoChildLeft {
                backend: parent.name().to_owned(),
                max: self.limits.max_children,
            });
        }
        let slot = Arc::new(Slot::default());
        map.insert(session, slot.clone());
        Ok(slot)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        self.by_session.locked()
    }
}

async fn start(parent: &Backend, mut relay: Relay) -> Result<Child, CallError> {
    // The child is a backend of its own, with one connection (no children of its own).
    let mut settings = parent.settings.clone();
    settings.per_session = None;
    let backend = Backend::new(
        parent.id,
        settings,
        parent.governance.clone(),
        parent.stop.child_token(),
    );
    relay.inflight = backend.inflight.clone();
    let hub = relay.hub.upgrade();
    let (connection, direct) = super::connect::connect(
        &parent.settings,
        relay.clone(),
        parent.settings.protocol,
    )
    .await
    .map_err(|reason| {
        tracing::warn!(backend = %parent.name(), %reason, "a session's child could not start");
        CallError::Unavailable(parent.name().to_owned())
    })?;
    if !super::speaks_2026(connection.peer()) {
        backend.set_direct(direct.map(|d| (d, relay)));
    }
    backend.set_peer(Some(connection.peer().clone()));
    if let Some(hub) = hub {
        hub.backend_up(&backend).await;
    }
    Ok(Child {
        backend,
        _connection: connection,
    })
}
