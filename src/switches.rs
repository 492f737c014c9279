//! The kill switch: tools, backends and principals an operator switched off while the
//! proxy runs. Every authorization question consults it first (`stack::authz`), so a
//! switched-off tool is hidden and refused on the next call, a switched-off backend has
//! nothing listed or served, and a switched-off principal is refused everything. The set
//! is persisted (written whole, atomically, before it takes effect) so a restart keeps it,
//! and the calls running when something is switched off can be cancelled.
//!
//! With `[limits] redis` the set is shared by every replica (`shared`).
//!
//! It sits beside the call path and depends on nothing of it: the hub holds one, the admin
//! API changes it, the authorization gate reads it.

mod shared;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::sync::Locked;
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// What can be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// An exposed tool, by the name clients see.
    Tool,
    /// A backend, by its configured name: its tools, prompts, resources and the requests
    /// it sends to clients.
    Backend,
    /// A principal, by id: every request it makes.
    Principal,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Tool => "tool",
            Target::Backend => "backend",
            Target::Principal => "principal",
        }
    }
}

/// Who switched something off, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Off {
    /// The principal that did it (as the audit log records it).
    pub by: String,
    /// RFC 3339.
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Everything switched off now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switched {
    #[serde(default)]
    pub tools: BTreeMap<String, Off>,
    #[serde(default)]
    pub backends: BTreeMap<String, Off>,
    #[serde(default)]
    pub principals: BTreeMap<String, Off>,
}

impl Switched {
    fn of(&self, target: Target) -> &BTreeMap<String, Off> {
        match target {
            Target::Tool => &self.tools,
            Target::Backend => &self.backends,
            Target::Principal => &self.principals,
        }
    }

    fn of_mut(&mut self, target: Target) -> &mut BTreeMap<String, Off> {
        match target {
            Target::Tool => &mut self.tools,
            Target::Backend => &mut self.backends,
            Target::Principal => &mut self.principals,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty() && self.backends.is_empty() && self.principals.is_empty()
    }
}

/// Why the switch set could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("the kill switch file {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error(
        "the kill switch file {path} is not a switch set ({error}); fix or remove it: starting with everything switched back on is not an option"
    )]
    Format {
        path: String,
        error: serde_json::Error,
    },
    #[error("the kill switch is shared through Redis, which cannot be reached: {0}")]
    Shared(String),
}

/// A call that runs now, for cancelling what was just switched off.
struct Running {
    principal: String,
    backend: String,
    tool: Option<String>,
    cancel: CancellationToken,
}

/// The kill switch of one proxy.
pub struct Switches {
    state: ArcSwap<Switched>,
    file: Option<PathBuf>,
    /// Every replica's set, when shared.
    shared: Option<shared::Shared>,
    /// Whether Redis answered the last time (to log transitions, not every read).
    reachable: std::sync::atomic::AtomicBool,
    /// When shared: unread this long, the set fails closed.
    stale_after: Option<std::time::Duration>,
    /// The last time the shared set was read.
    read_at: Mutex<std::time::Instant>,
    /// Unread longer than `stale_after`: every call to a backend is refused.
    stale: std::sync::atomic::AtomicBool,
    /// Serialises changes: each one is written whole before it is published.
    change: tokio::sync::Mutex<()>,
    running: Mutex<HashMap<u64, Running>>,
    next: AtomicU64,
}

impl Switches {
    /// The set persisted in `file` (empty when the file does not exist yet); `None`: kept
    /// in memory only.
    pub fn load(file: Option<PathBuf>) -> Result<Switches, SwitchError> {
        Switches::load_shared(file, None)
    }

    /// [`Switches::load`], shared by every replica through the Redis at `redis`.
    pub fn load_shared(
        file: Option<PathBuf>,
        redis: Option<&str>,
    ) -> Result<Switches, SwitchError> {
        let state = match &file {
            Some(path) => read(path)?,
            None => Switched::default(),
        };
        let shared = redis
            .map(shared::Shared::new)
            .transpose()
            .map_err(SwitchError::Shared)?;
        Ok(Switches {
            state: ArcSwap::from_pointee(state),
            file,
            shared,
            reachable: std::sync::atomic::AtomicBool::new(true),
            stale_after: None,
            read_at: Mutex::new(std::time::Instant::now()),
            stale: std::sync::atomic::AtomicBool::new(false),
            change: tokio::sync::Mutex::new(()),
            running: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        })
    }

    /// When shared: how long the set may go unread before every call to a backend is
    /// refused (`None`: the last set read stays in force however long Redis is gone).
    pub fn fail_closed_after(mut self, after: Option<std::time::Duration>) -> Switches {
        self.stale_after = after.filter(|_| self.shared.is_some());
        self
    }

    /// Where the set is persisted.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Everything switched off now.
    pub fn current(&self) -> Arc<Switched> {
        self.state.load_full()
    }

    /// Whether nothing is switched off (every decision asks first: no reference taken).
    pub fn is_empty(&self) -> bool {
        self.state.load().is_empty()
    }

    /// Why a request of `principal` to `backend` (and its `tool`) is switched off, if it is.
    pub fn blocks(
        &self,
        principal: &str,
        backend: Option<&str>,
        tool: Option<&str>,
    ) -> Option<String> {
        if (backend.is_some() || tool.is_some()) && self.stale.load(Ordering::Relaxed) {
            return Some(format!(
                "the kill switch shared by the replicas has not been read for over {} s (Redis unreachable): calls are refused until it is (`limits.kill_switch_stale_s`)",
                self.stale_after.map_or(0, |d| d.as_secs())
            ));
        }
        let state = self.state.load();
        if state.is_empty() {
            return None;
        }
        let why = |target: Target, name: &str| {
            state.of(target).get(name).map(|off| {
                let reason = off
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                format!("{} `{name}` is switched off{reason}", target.as_str())
            })
        };
        why(Target::Principal, principal)
            .or_else(|| backend.and_then(|b| why(Target::Backend, b)))
            .or_else(|| tool.and_then(|t| why(Target::Tool, t)))
    }

    /// Switches `name` off (`Some`) or back on (`None`); persisted (and, when shared,
    /// written to Redis) before it takes effect. Returns what was there before (equal to
    /// `off` when nothing changed).
    pub async fn set(
        &self,
        target: Target,
        name: &str,
        off: Option<Off>,
    ) -> Result<Option<Off>, SwitchError> {
        self.swap_if(target, name, None, off).await
    }

    /// [`Switches::set`], only while `name`'s entry is still `expected` (`None`: any):
    /// undoing one's own change never undoes a change made since by someone else.
    pub async fn swap_if(
        &self,
        target: Target,
        name: &str,
        expected: Option<&Option<Off>>,
        off: Option<Off>,
    ) -> Result<Option<Off>, SwitchError> {
        let _one_at_a_time = self.change.lock().await;
        let mut next = Switched::clone(&self.state.load());
        let current = next.of(target).get(name).cloned();
        if expected.is_some_and(|e| *e != current) {
            return Ok(current);
        }
        let unchanged = match (&off, &current) {
            (None, None) => true,
            // Switching off what is off keeps who did it first.
            (Some(_), Some(_)) => expected.is_none(),
            _ => false,
        };
        if unchanged {
            return Ok(current);
        }
        if let Some(shared) = &self.shared {
            shared
                .put(target, name, off.as_ref())
                .await
                .map_err(SwitchError::Shared)?;
        }
        match off {
            Some(off) => next.of_mut(target).insert(name.to_owned(), off),
            None => next.of_mut(target).remove(name),
        };
        self.publish(next)?;
        Ok(current)
    }

    /// Persists `next` and puts it in force.
    fn publish(&self, next: Switched) -> Result<(), SwitchError> {
        if let Some(path) = &self.file {
            write(path, &next)?;
        }
        self.state.store(Arc::new(next));
        Ok(())
    }

    /// When shared: reads every replica's set twice a second and puts it in force, until
    /// `stop`. A Redis that holds no set yet is given this replica's.
    pub fn spawn_sync(self: &Arc<Self>, stop: CancellationToken) {
        if self.shared.is_none() {
            return;
        }
        let switches = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(shared::EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = every.tick() => switches.sync_once().await,
                }
            }
        });
    }

    /// One read of the shared set.
    pub async fn sync_once(&self) {
        let Some(shared) = &self.shared else { return };
        let _one_at_a_time = self.change.lock().await;
        let read = match shared.read().await {
            Ok(Some(set)) => Ok(Some(set)),
            Ok(None) => shared.seed(&self.current()).await.map(|()| None),
            Err(e) => Err(e),
        };
        let was = self.reachable.swap(read.is_ok(), Ordering::Relaxed);
        if let Some(after) = self.stale_after {
            let mut read_at = self.read_at.locked();
            if read.is_ok() {
                *read_at = std::time::Instant::now();
            }
            let stale = read_at.elapsed() > after;
            if self.stale.swap(stale, Ordering::Relaxed) != stale {
                if stale {
                    tracing::error!(
                        after_s = after.as_secs(),
                        "the shared kill switch has gone unread too long: refusing every call until Redis answers"
                    );
                } else {
                    tracing::info!("the shared kill switch is read again: calls are served");
                }
            }
        }
        match read {
            Ok(Some(set)) if set != *self.current() => {
                if let Err(e) = self.publish(set) {
                    tracing::error!(error = %e, "the shared kill switch set could not be kept locally");
                }
            }
            Ok(_) if !was => tracing::info!("the shared kill switch is reachable again"),
            Err(e) if was => {
                tracing::error!(error = %e, "the shared kill switch cannot be read from Redis: keeping the last set read")
            }
            _ => {}
        }
    }

    /// Registers a running call until the guard drops, so it can be cancelled.
    pub fn run(
        self: &Arc<Self>,
        principal: &str,
        backend: &str,
        tool: Option<&str>,
        cancel: CancellationToken,
    ) -> RunningGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.running.locked().insert(
            id,
            Running {
                principal: principal.to_owned(),
                backend: backend.to_owned(),
                tool: tool.map(str::to_owned),
                cancel,
            },
        );
        RunningGuard {
            switches: self.clone(),
            id,
        }
    }

    /// Cancels the running calls `target` `name` covers; how many.
    pub fn cancel(&self, target: Target, name: &str) -> usize {
        let running = self.running.locked();
        let mut cancelled = 0;
        for call in running.values() {
            let hit = match target {
                Target::Tool => call.tool.as_deref() == Some(name),
                Target::Backend => call.backend == name,
                Target::Principal => call.principal == name,
            };
            if hit && !call.cancel.is_cancelled() {
                call.cancel.cancel();
                cancelled += 1;
            }
        }
        cancelled
    }

    /// Calls running now, by backend name.
    pub fn running_by_backend(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for call in self.running.locked().values() {
            *counts.entry(call.backend.clone()).or_default() += 1;
        }
        counts
    }
}

/// Keeps a call in the running set.
pub struct RunningGuard {
    switches: Arc<Switches>,
    id: u64,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.switches.running.locked().remove(&self.id);
    }
}

fn read(path: &Path) -> Result<Switched, SwitchError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Switched::default()),
        Err(error) => {
            return Err(SwitchError::Io {
                path: path.display().to_string(),
                error,
            });
        }
    };
    serde_json::from_slice(&text).map_err(|error| SwitchError::Format {
        path: path.display().to_string(),
        error,
    })
}

fn write(path: &Path, state: &Switched) -> Result<(), SwitchError> {
    let mut text = serde_json::to_vec_pretty(state).map_err(|error| SwitchError::Format {
        path: path.display().to_string(),
        error,
    })?;
    text.push(b'\n');
    crate::files::replace(path, &text).map_err(|error| SwitchError::Io {
        path: path.display().to_string(),
        error,
    })
}

#[cfg(test)]
mod tests;
