//! Backends while serving: started with their first attempt awaited (at startup and by a
//! reload), and the backends part of a reload: which backends stay (same connection, same breaker and
//! limiter state), which start (added, or changed: a changed backend is a new one under a
//! new id, started before the old one leaves, so its tools never go missing), and which
//! leave (removed, or replaced), each draining its calls before it stops.

use std::{sync::Arc, time::Duration};

use tokio::sync::oneshot;

use crate::{
    backend::{Backend, Table, spawn_supervisor},
    config::BackendSettings,
    hub::Hub,
};

/// How long a leaving backend keeps admitting calls that resolved it just before it left.
const LEAVE_GRACE: Duration = Duration::from_millis(500);

/// What a reload does to the backends.
#[derive(Default)]
pub(crate) struct Plan {
    /// In the new configuration's order: a backend that stays, or settings to start.
    pub order: Vec<Slot>,
    /// Backends that leave the table: removed, or replaced by a changed one.
    pub leaving: Vec<Arc<Backend>>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

pub(crate) enum Slot {
    Stays(Arc<Backend>),
    Starts(Box<BackendSettings>),
}

impl Plan {
    /// Compares the backends in force with the new configuration's, by name; settings are
    /// compared as they print (plain data, `Debug` over every field).
    pub fn new(table: &Table, new: &[BackendSettings]) -> Plan {
        let mut plan = Plan::default();
        for settings in new {
            match table.by_name(&settings.name) {
                Some(old) if format!("{:?}", old.settings) == format!("{settings:?}") => {
                    plan.order.push(Slot::Stays(old.clone()));
                }
                Some(old) => {
                    plan.changed.push(settings.name.clone());
                    plan.leaving.push(old.clone());
                    plan.order.push(Slot::Starts(Box::new(settings.clone())));
                }
                None => {
                    plan.added.push(settings.name.clone());
                    plan.order.push(Slot::Starts(Box::new(settings.clone())));
                }
            }
        }
        for old in table.iter() {
            if !new.iter().any(|s| s.name == old.name()) {
                plan.removed.push(old.name().to_owned());
                plan.leaving.push(old.clone());
            }
        }
        plan
    }

    /// Whether the backends change at all (order included: it decides which unprefixed
    /// backend serves a URI).
    pub fn changes(&self, table: &Table) -> bool {
        !self.leaving.is_empty()
            || self.order.len() != table.len()
            || self
                .order
                .iter()
                .zip(table.iter())
                .any(|(slot, b)| !matches!(slot, Slot::Stays(s) if Arc::ptr_eq(s, b)))
    }

    /// What changed, for the report and the audit record.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (what, names) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ] {
            lines.extend(names.iter().map(|n| format!("backend `{n}` {what}")));
        }
        lines
    }
}

impl Hub {
    /// Starts the backends `plan` adds, off the table: each one's first attempt is awaited
    /// (bounded by its `connect_timeout`); the table it would be in comes back. A required
    /// (`optional = false`) backend that cannot start stops every one started here, and
    /// the reason comes back instead.
    pub(crate) async fn start_planned(self: &Arc<Self>, plan: &Plan) -> Result<Table, String> {
        let mut order = Vec::new();
        let mut started = Vec::new();
        for slot in &plan.order {
            match slot {
                Slot::Stays(backend) => order.push(backend.clone()),
                Slot::Starts(settings) => {
                    let backend = self.new_backend(settings);
                    started.push(backend.clone());
                    order.push(backend);
                }
            }
        }
        if let Err((name, reason)) = self.start_supervised(&started).await {
            self.stop_unused(&started);
            return Err(format!("backend `{name}` could not start: {reason}"));
        }
        Ok(Table::new(order))
    }

    /// Starts the supervisors of `backends` and waits for each one's first attempt (each
    /// bounded by its `connect_timeout`); the first required (`optional = false`) backend
    /// that could not start, with why. Optional ones keep retrying in the background.
    pub(crate) async fn start_supervised(
        self: &Arc<Self>,
        backends: &[Arc<Backend>],
    ) -> Result<(), (String, String)> {
        let mut firsts = Vec::new();
        for backend in backends {
            let (tx, rx) = oneshot::channel();
            self.keep_supervisor(spawn_supervisor(self, backend.clone(), tx));
            firsts.push((backend, rx));
        }
        for (backend, rx) in firsts {
            let first = rx
                .await
                .unwrap_or_else(|_| Err("its supervisor stopped".to_owned()));
            if let Err(reason) = first
                && !backend.settings.optional
            {
                return Err((backend.name().to_owned(), reason));
            }
        }
        Ok(())
    }

    /// Stops backends started for a reload that did not stand.
    pub(crate) fn stop_unused(&self, started: &[Arc<Backend>]) {
        for backend in started {
            backend.retire();
            self.forget_lists(backend.id);
        }
    }

    /// Backends that left the table: each keeps serving the calls that resolved it (at
    /// most the drain timeout), then stops; its cached results go.
    pub(crate) fn retire(self: &Arc<Self>, leaving: Vec<Arc<Backend>>) {
        let limit = self.server.drain_timeout;
        for backend in leaving {
            self.governance.cache.invalidate_backend(backend.id);
            let hub = Arc::downgrade(self);
            tokio::spawn(async move {
                let running = backend
                    .calls
                    .close(LEAVE_GRACE, limit.max(LEAVE_GRACE))
                    .await;
                if running > 0 {
                    tracing::warn!(backend = %backend.name(), running, "backend left the configuration; calls still running are cut off");
                }
                backend.retire();
                if let Some(hub) = hub.upgrade() {
                    hub.forget_lists(backend.id);
                }
                tracing::info!(backend = %backend.name(), "backend stopped (no longer configured)");
            });
        }
    }
}
