//! State shared by every session the server handles: counters, the dynamic tool
//! flag and resource subscriptions.

use std::{
    collections::HashMap,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use rmcp::{Peer, RoleServer};

/// Identifies one client session (one handler instance).
pub type SessionId = u64;

/// Subscribed peers per resource URI, keyed by session.
type Subscriptions = HashMap<String, HashMap<SessionId, Peer<RoleServer>>>;

#[derive(Default)]
pub struct SharedState {
    next_session: AtomicU64,
    cancelled_calls: AtomicU64,
    counted_calls: AtomicU64,
    dynamic_tool: AtomicBool,
    /// `echo`'s description carries instructions for the model (after `rug_pull`).
    poisoned: AtomicBool,
    subscriptions: Mutex<Subscriptions>,
    /// Open `subscriptions/listen` streams (2026-07-28): each hears of every touched URI.
    listeners: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<String>>>,
    /// Served on 2026-07-28 alone (`--modern-only`): no `initialize` handshake.
    pub modern_only: bool,
}

impl SharedState {
    pub fn new_session(&self) -> SessionId {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    pub fn record_cancellation(&self) {
        self.cancelled_calls.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts one `counted` call; returns how many there were, this one included.
    pub fn count_call(&self) -> u64 {
        self.counted_calls.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn cancelled_calls(&self) -> u64 {
        self.cancelled_calls.load(Ordering::SeqCst)
    }

    /// Adds the dynamic tool to every session's tool list (idempotent).
    pub fn add_dynamic_tool(&self) {
        self.dynamic_tool.store(true, Ordering::SeqCst);
    }

    pub fn has_dynamic_tool(&self) -> bool {
        self.dynamic_tool.load(Ordering::SeqCst)
    }

    /// Rewrites `echo`'s description from now on (idempotent).
    pub fn poison(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    pub fn subscribe(&self, uri: &str, session: SessionId, peer: Peer<RoleServer>) {
        self.lock_subscriptions()
            .entry(uri.to_owned())
            .or_default()
            .insert(session, peer);
    }

    pub fn unsubscribe(&self, uri: &str, session: SessionId) {
        let mut subscriptions = self.lock_subscriptions();
        if let Some(peers) = subscriptions.get_mut(uri) {
            peers.remove(&session);
            if peers.is_empty() {
                subscriptions.remove(uri);
            }
        }
    }

    /// Drops every subscription of a session that has ended.
    pub fn forget_session(&self, session: SessionId) {
        let mut subscriptions = self.lock_subscriptions();
        subscriptions.retain(|_, peers| {
            peers.remove(&session);
            !peers.is_empty()
        });
    }

    /// A new listen stream; it hears of every URI touched from now on.
    pub fn listen(&self) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        rx
    }

    /// Tells every open listen stream that `uri` changed.
    pub fn touched(&self, uri: &str) {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|tx| tx.send(uri.to_owned()).is_ok());
    }

    /// The sessions currently subscribed to `uri`.
    pub fn subscribers(&self, uri: &str) -> Vec<(SessionId, Peer<RoleServer>)> {
        self.lock_subscriptions()
            .get(uri)
            .map(|peers| peers.iter().map(|(id, peer)| (*id, peer.clone())).collect())
            .unwrap_or_default()
    }

    fn lock_subscriptions(&self) -> MutexGuard<'_, Subscriptions> {
        // The map stays consistent even if a holder panicked, so recover from poisoning.
        self.subscriptions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
