//! The backends in force, as one immutable table: what a catalog snapshot is built from and
//! what a call resolves its backend in. Each backend has an id that is never reused: one a
//! reload changed comes back under a new id, so nothing keyed by the old one (its lists,
//! its cached results, calls in flight on it) is mistaken for the new one's.
//!
//! A backend a reload removed (or replaced) leaves the table at once but stops only once
//! the calls that resolved it have finished ([`Admission`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::Notify;

use super::Backend;
use crate::sync::Locked;

/// The backends in force, in configuration order.
#[derive(Default)]
pub struct Table {
    order: Vec<Arc<Backend>>,
    /// Backend id -> position in `order`.
    by_id: HashMap<usize, usize>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.order.iter().map(|b| (b.id, b.name())))
            .finish()
    }
}

impl Table {
    pub fn new(order: Vec<Arc<Backend>>) -> Table {
        let by_id = order.iter().enumerate().map(|(i, b)| (b.id, i)).collect();
        Table { order, by_id }
    }

    /// Backends of `settings` under ids `0..`, with default governance, never started:
    /// for what needs a catalog of a configuration without running it.
    pub fn detached(settings: &[crate::config::BackendSettings]) -> Table {
        let limits = crate::governance::LimitsSettings::default();
        Table::new(
            settings
                .iter()
                .enumerate()
                .map(|(id, b)| {
                    let governance =
                        Arc::new(crate::governance::BackendGovernance::new(&limits, b));
                    Arc::new(Backend::new(id, b.clone(), governance, Default::default()))
                })
                .collect(),
        )
    }

    pub fn get(&self, id: usize) -> Option<&Arc<Backend>> {
        self.by_id.get(&id).map(|&i| &self.order[i])
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<Backend>> {
        self.order.iter().find(|b| b.name() == name)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Arc<Backend>> {
        self.order.iter()
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Calls admitted to one backend: counted while they run, refused once the backend is
/// closed (it left the table and its last call finished).
#[derive(Default)]
pub struct Admission {
    state: Mutex<(usize, bool)>,
    idle: Notify,
}

/// One admitted call; dropping it lets the backend close.
pub struct Admitted(Arc<Admission>);

impl Admission {
    /// Admits a call, unless the backend is closed.
    pub fn enter(self: &Arc<Self>) -> Option<Admitted> {
        let mut state = self.state.locked();
        if state.1 {
            return None;
        }
        state.0 += 1;
        Some(Admitted(self.clone()))
    }

    pub fn running(&self) -> usize {
        self.state.locked().0
    }

    /// Closes once no call runs, waiting at least `grace` (a call that resolved the backend
    /// just before it left the table is admitted in that time) and at most `limit`; the
    /// number of calls still running when it closed.
    pub async fn close(&self, grace: Duration, limit: Duration) -> usize {
        tokio::time::sleep(grace).await;
        let idle = async {
            loop {
                let notified = self.idle.notified();
                {
                    let mut state = self.state.locked();
                    if state.0 == 0 {
                        state.1 = true;
                        return;
                    }
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit.saturating_sub(grace), idle).await;
        let mut state = self.state.locked();
        state.1 = true;
        state.0
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut state = self.0.state.locked();
        state.0 -= 1;
        if state.0 == 0 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_closing_backend_waits_for_its_calls_and_then_admits_none() {
        let admission = Arc::new(Admission::default());
        let call = admission.enter().expect("open");
        let closing = {
            let admission = admission.clone();
            tokio::spawn(async move {
                admission
                    .close(Duration::from_millis(100), Duration::from_secs(10))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Still running: a call admitted during the grace period is still welcome.
        let late = admission.enter().expect("not closed while a call runs");
        drop(call);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!closing.is_finished());
        drop(late);
        assert_eq!(closing.await.unwrap(), 0);
        assert!(admission.enter().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_never_ends_does_not_hold_the_backend_past_its_limit() {
        let admission = Arc::new(Admission::default());
        let _stuck = admission.enter().expect("open");
        let running = admission
            .close(Duration::from_millis(100), Duration::from_secs(2))
            .await;
        assert_eq!(running, 1);
        assert!(admission.enter().is_none());
    }
}
