//! Who owns each MCP session, and how many sessions a principal may hold. A session
//! belongs to the principal that opened it (another one presenting its id is told it does
//! not exist); sessions are bounded in total (`server.max_sessions`) and per principal
//! (`server.max_sessions_per_principal`), and expire after `server.session_idle_timeout_s`
//! without a request or an open stream (inside rmcp's session manager).
//!
//! Counting: the table holds the sessions handed out, and an `initialize` that passed the
//! check holds a reservation until the session manager opens its session and binds it
//! ([`PendingSession`]), so concurrent attempts cannot overshoot and a request abandoned
//! after its session was opened still leaves it counted.
//! Sessions that expired inside rmcp leave entries behind; they are swept when a limit
//! would refuse, so a limit never counts a dead session and a sweep costs nothing until
//! then.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::sessions::Sessions;
use crate::sync::Locked;

/// How many sessions there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub total: usize,
    pub per_principal: usize,
}

/// Why a new session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The principal holds its maximum.
    Principal(usize),
    /// The proxy holds its maximum.
    Total(usize),
}

#[derive(Default)]
struct Table {
    /// Session id -> key of the principal that opened it.
    owner: HashMap<String, String>,
    /// Principal key -> sessions held plus reservations.
    held: HashMap<String, usize>,
    /// Sessions held plus reservations, all principals.
    total: usize,
}

pub struct Owners {
    table: Mutex<Table>,
    sessions: Arc<Sessions>,
    limits: SessionLimits,
    /// When the table was last swept: at most one sweep a second, so a caller held at its
    /// limit cannot make every attempt scan every session.
    swept: Mutex<Option<std::time::Instant>>,
}

/// A place for one new session, held from the check until the session manager opens the
/// session. Dropped without [`Reservation::bind`] (no session was opened), it is given
/// back.
pub struct Reservation {
    owners: Arc<Owners>,
    key: String,
    bound: bool,
}

/// The reservation of an `initialize` request, in its extensions: the session manager
/// binds it to the id of the session it opens, before anything can abandon the request.
#[derive(Clone)]
pub struct PendingSession(Arc<Mutex<Option<Reservation>>>);

impl PendingSession {
    pub fn new(place: Reservation) -> PendingSession {
        PendingSession(Arc::new(Mutex::new(Some(place))))
    }

    /// The session `id` was opened for this request.
    pub fn bind(&self, id: &str) {
        let place = self.0.locked().take();
        if let Some(place) = place {
            place.bind(id);
        }
    }
}

impl Reservation {
    /// The session was opened: it now holds the place.
    pub fn bind(mut self, session: &str) {
        self.bound = true;
        let mut table = self.owners.table();
        if let Some(previous) = table.owner.insert(session.to_owned(), self.key.clone()) {
            // An id handed out twice (it never is): the place was already counted.
            release(&mut table, &previous);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.bound {
            release(&mut self.owners.table(), &self.key);
        }
    }
}

fn release(table: &mut Table, key: &str) {
    if let Some(n) = table.held.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            table.held.remove(key);
        }
    }
    table.total = table.total.saturating_sub(1);
}

impl Owners {
    pub fn new(sessions: Arc<Sessions>, limits: SessionLimits) -> Owners {
        Owners {
            table: Mutex::default(),
            sessions,
            limits,
            swept: Mutex::new(None),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.locked()
    }

    /// Where sessions travel between replicas, when they do.
    pub fn portable(&self) -> Option<&Arc<super::sessions::portable::Portable>> {
        self.sessions.portable.as_ref()
    }

    /// The key of the principal that opened `session`.
    pub fn owner(&self, session: &str) -> Option<String> {
        self.table().owner.get(session).cloned()
    }

    /// Every session handed out, with its owner's key.
    pub fn list(&self) -> Vec<(String, String)> {
        self.table()
            .owner
            .iter()
            .map(|(id, key)| (id.clone(), key.clone()))
            .collect()
    }

    /// The session ended (deleted, or found gone).
    pub fn forget(&self, session: &str) {
        let mut table = self.table();
        if let Some(key) = table.owner.remove(session) {
            release(&mut table, &key);
        }
    }

    /// Forgets `session` if the session manager no longer has it (a 404 can also come
    /// from a request rmcp served statelessly, in a session that is alive).
    pub async fn forget_if_gone(&self, session: &str) {
        if !self.sessions.alive(&[session.to_owned()]).await[0] {
            self.forget(session);
        }
    }

    /// A place for one more session of the principal `key`, or why not.
    pub async fn reserve(self: &Arc<Self>, key: &str) -> Result<Reservation, Full> {
        if self.over(key).is_some() {
            self.sweep().await;
        }
        let mut table = self.table();
        let held = table.held.get(key).copied().unwrap_or(0);
        if held >= self.limits.per_principal {
            return Err(Full::Principal(self.limits.per_principal));
        }
        if table.total >= self.limits.total {
            return Err(Full::Total(self.limits.total));
        }
        *table.held.entry(key.to_owned()).or_default() += 1;
        table.total += 1;
        Ok(Reservation {
            owners: self.clone(),
            key: key.to_owned(),
            bound: false,
        })
    }

    fn over(&self, key: &str) -> Option<Full> {
        let table = self.table();
        if table.held.get(key).copied().unwrap_or(0) >= self.limits.per_principal {
            Some(Full::Principal(self.limits.per_principal))
        } else if table.total >= self.limits.total {
            Some(Full::Total(self.limits.total))
        } else {
            None
        }
    }

    /// Forgets sessions that expired inside rmcp (at most once a second).
    async fn sweep(&self) {
        {
            let mut swept = self.swept.locked();
            let now = std::time::Instant::now();
            if swept.is_some_and(|at| now.duration_since(at) < std::time::Duration::from_secs(1)) {
                return;
            }
            *swept = Some(now);
        }
        let ids: Vec<String> = self.table().owner.keys().cloned().collect();
        let alive = self.sessions.alive(&ids).await;
        let mut table = self.table();
        for (id, alive) in ids.iter().zip(alive) {
            if !alive && let Some(key) = table.owner.remove(id) {
                release(&mut table, &key);
            }
        }
    }

    /// Sessions held now (reservations included).
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.table().total
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rmcp::transport::streamable_http_server::session::SessionManager;

    use super::*;

    fn owners(total: usize, per_principal: usize) -> (Arc<Sessions>, Arc<Owners>) {
        let sessions = Arc::new(Sessions::new(Duration::from_secs(60), None));
        let owners = Owners::new(
            sessions.clone(),
            SessionLimits {
                total,
                per_principal,
            },
        );
        (sessions, Arc::new(owners))
    }

    #[tokio::test]
    async fn sessions_are_bounded_per_principal_and_in_total_and_places_come_back() {
        let (sessions, o) = owners(3, 2);
        // Live sessions of the session manager (their transports kept open).
        let mut live = Vec::new();
        for _ in 0..4 {
            live.push(sessions.create_session().await.unwrap());
        }
        let id = |i: usize| live[i].0.to_string();
        o.reserve("a").await.unwrap().bind(&id(0));
        let held = o.reserve("a").await.unwrap();
        // A reservation counts while the initialize is in flight.
        assert_eq!(o.reserve("a").await.err(), Some(Full::Principal(2)));
        drop(held);
        o.reserve("a").await.unwrap().bind(&id(1));
        o.reserve("b").await.unwrap().bind(&id(2));
        assert_eq!(o.reserve("c").await.err(), Some(Full::Total(3)));
        assert_eq!(o.owner(&id(1)).as_deref(), Some("a"));
        o.forget(&id(1));
        assert_eq!(o.owner(&id(1)), None);
        o.reserve("c").await.unwrap().bind(&id(3));
        assert_eq!(o.count(), 3);
    }

    #[tokio::test]
    async fn sessions_that_expired_inside_rmcp_are_swept_when_a_limit_would_refuse() {
        // None of these ids is a live session of the session manager: all are swept.
        let (_, o) = owners(10, 1);
        o.reserve("a").await.unwrap().bind("gone");
        o.reserve("a").await.unwrap().bind("gone-too");
        assert_eq!(o.owner("gone"), None);
        assert_eq!(o.count(), 1);
    }
}
