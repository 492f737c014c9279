//! The hub: shared state of one running proxy — the backends, the current catalog, the
//! client sessions, and shutdown. Sessions, backend supervisors and the HTTP layer all hold
//! an `Arc<Hub>`; the catalog inside is an immutable snapshot swapped whole on change.
#![allow(deprecated)] // logging, roots and sampling (SEP-2577) are still relayed

pub(crate) mod audit;
mod authz;
mod backends;
pub mod reload;

pub use authz::{
    Started, attribute_decls, build_for_start, describe as describe_policy_errors, policy_sources,
    saved_tools, tenancy, tool_info, vet, vetted,
};

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use rmcp::{
    RoleServer,
    model::{
        LoggingLevel, ResourceUpdatedNotification, ResourceUpdatedNotificationParam,
        ServerNotification, SetLevelRequestParams,
    },
    service::Peer,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::sync::Locked;
use crate::{
    authn::Authenticate,
    backend::{Backend, Table},
    config::{AuthSettings, BackendSettings, Config, ServerSettings},
    mcp::catalog::{BackendLists, Catalog},
    stack::{Authority, Generation},
};

pub struct Hub {
    pub server: ServerSettings,
    pub auth: AuthSettings,
    /// The admin listener's settings (readiness reads them).
    pub admin: crate::config::AdminSettings,
    /// `[tracing]`: whose trace context requests continue.
    pub tracing: crate::config::TracingSettings,
    pub authn: Arc<dyn Authenticate>,
    /// What each backend listed, by backend id (absent while it is down). Locked while a
    /// catalog is built, so the table and the lists it is built from agree.
    lists: Mutex<HashMap<usize, BackendLists>>,
    /// What calls are routed and decided on, published whole.
    current: arc_swap::ArcSwap<Generation>,
    /// The next backend id (never reused).
    next_backend: AtomicUsize,
    /// `[limits]` as the proxy started (a new backend's governance is made from it).
    limits: crate::governance::LimitsSettings,
    /// The embedding application's own layers of the call stack.
    pub layers: crate::stack::Layers,
    /// Every backend supervisor started, for shutdown to wait on.
    supervisors: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub sessions: Sessions,
    /// Cancelled first when the proxy stops: no new calls are taken.
    pub stopping: CancellationToken,
    /// Cancelled once calls have drained: client streams (SSE, stdio) close.
    pub close_streams: CancellationToken,
    /// Cancelled last: supervisors close their backends.
    pub shutdown: CancellationToken,
    /// Set once the whole shutdown has run: later calls wait for the first one.
    pub stopped: tokio::sync::OnceCell<()>,
    /// Notifications for 2026-07-28 clients listening with `subscriptions/listen`.
    pub changes: broadcast::Sender<ServerNotification>,
    log_level: Mutex<Option<LoggingLevel>>,
    pub drain: Arc<crate::stack::Drain>,
    authz: authz::AuthzState,
    /// Integrity findings already recorded (tool, definition hash, reason): each is
    /// recorded once.
    integrity_recorded: Mutex<std::collections::BTreeSet<(String, String, String)>>,
    pub metrics: Arc<crate::telemetry::Metrics>,
    /// The audit log, when configured.
    pub audit: Option<Arc<crate::audit::Audit>>,
    /// Shared state of the governance layers.
    pub governance: Arc<crate::governance::Governance>,
    /// What an operator switched off at runtime.
    pub switches: Arc<crate::switches::Switches>,
    /// The kill switch and the metrics, as decisions need them.
    pub authority: Authority,
    /// The configuration in force and its reloads.
    generations: reload::Generations,
    /// The HTTP endpoint's sessions, once it is served (for the admin API).
    pub session_directory: std::sync::OnceLock<Arc<dyn SessionDirectory>>,
}

/// One client session, as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionInfo {
    pub id: String,
    /// The principal that opened it (`kind:id`).
    pub principal: String,
    /// Calls of the session running on the proxy's own path now.
    pub calls: usize,
}

/// The sessions of a transport that has many (the HTTP endpoint): listed and ended by the
/// admin API, which lives beside the traffic path and reaches them only through this.
pub trait SessionDirectory: Send + Sync {
    fn list(&self) -> futures::future::BoxFuture<'_, Vec<SessionInfo>>;
    /// Ends a session as a client's DELETE would (its calls cancelled); false when there
    /// was no such session.
    fn end<'a>(&'a self, id: &'a str) -> futures::future::BoxFuture<'a, bool>;
}

/// The sessions' history, in Redis too when `[limits] redis` names one.
fn history(config: &Config) -> crate::stack::history::History {
    use crate::stack::history::History;
    let (sessions, idle, window) = (
        config.server.max_sessions,
        config.server.session_idle_timeout,
        config.tools.history_window,
    );
    match config.limits.redis.as_deref() {
        Some(url) => History::shared(sessions, idle, window, url).unwrap_or_else(|e| {
            tracing::error!(error = %e, "Redis client for shared session history; kept per process");
            History::new(sessions, idle, window)
        }),
        None => History::new(sessions, idle, window),
    }
}

/// The requests for approval, shared through Redis when `[limits] redis` names one.
fn approvals(config: &Config) -> crate::approvals::Approvals {
    use crate::approvals::Approvals;
    let settings = config.authz.approvals;
    match config.limits.redis.as_deref() {
        Some(url) => Approvals::shared(settings, url).unwrap_or_else(|e| {
            tracing::error!(error = %e, "Redis client for shared approvals; kept per process");
            Approvals::new(settings)
        }),
        None => Approvals::new(settings),
    }
}

impl Hub {
    pub fn new(
        config: &Config,
        authn: Arc<dyn Authenticate>,
        audit: Option<Arc<crate::audit::Audit>>,
        switches: Arc<crate::switches::Switches>,
        layers: crate::stack::Layers,
    ) -> Arc<Self> {
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(crate::telemetry::Metrics::new(config.admin.tenant_metrics));
        let shown = audit
            .as_ref()
            .map(|a| a.entries().pseudonyms())
            .unwrap_or_default();
        let backends = config
            .backends
            .iter()
            .enumerate()
            .map(|(id, b)| new_backend(id, b, &config.limits, &shutdown))
            .collect();
        let table = Arc::new(Table::new(backends));
        let catalog = Catalog::of(table, &HashMap::new(), &config.server.separator);
        let approvals = Arc::new(approvals(config));
        if let Some(audit) = &audit {
            approvals.set_recorder(Arc::new(audit::ApprovalLog {
                audit: audit.clone(),
            }));
        }
        Arc::new(Self {
            server: config.server.clone(),
            auth: config.auth.clone(),
            admin: config.admin.clone(),
            tracing: config.tracing.clone(),
            authn,
            lists: Mutex::new(HashMap::new()),
            current: arc_swap::ArcSwap::from_pointee(Generation {
                catalog: Arc::new(catalog),
                engine: None,
            }),
            next_backend: AtomicUsize::new(config.backends.len()),
            limits: config.limits.clone(),
            supervisors: Mutex::new(Vec::new()),
            layers,
            sessions: Sessions::default(),
            stopping: CancellationToken::new(),
            close_streams: CancellationToken::new(),
            shutdown,
            stopped: tokio::sync::OnceCell::new(),
            changes: broadcast::channel(64).0,
            log_level: Mutex::new(None),
            drain: Arc::default(),
            authz: authz::AuthzState::new(config),
            integrity_recorded: Mutex::new(Default::default()),
            metrics: metrics.clone(),
            audit,
            governance: Arc::new(crate::governance::Governance::new(config)),
            authority: Authority {
                switches: switches.clone(),
                metrics: metrics.clone(),
                shown,
                history: Arc::new(history(config)),
                approvals,
            },
            switches,
            generations: reload::Generations::new(config),
            session_directory: std::sync::OnceLock::new(),
        })
    }

    /// The current authorization engine; `None` until the first build (everything denied).
    pub fn authz(&self) -> Option<Arc<crate::authz::Engine>> {
        self.current.load().engine.clone()
    }

    /// The generation calls are routed and decided on now: a call takes it once, at its
    /// start, and finishes on it.
    pub fn snapshot(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Builds the authorization engine from the policies and every known tool.
    /// Drops cached results: of one exposed tool, of one backend, or (both `None`) all.
    pub fn purge_cache(&self, tool: Option<&str>, backend: Option<&str>) -> Result<(), String> {
        let cache = &self.governance.cache;
        let table = self.backends();
        let backend = match backend {
            Some(name) => Some(
                table
                    .by_name(name)
                    .ok_or_else(|| format!("no backend `{name}` is configured"))?,
            ),
            None => None,
        };
        if let Some(tool) = tool {
            cache.invalidate_tool(tool);
        }
        if let Some(b) = backend {
            cache.invalidate_backend(b.id);
        }
        if tool.is_none() && backend.is_none() {
            for b in table.iter() {
                cache.invalidate_backend(b.id);
            }
        }
        Ok(())
    }

    /// The metrics as `/metrics` serves them, with what is read when scraped (backends up,
    /// sessions open, the audit log's backlog) brought up to date first.
    pub fn metrics_text(&self) -> String {
        let m = &self.metrics;
        for backend in self.backends().iter() {
            m.backend_up
                .get_or_create(&crate::telemetry::BackendLabels {
                    backend: backend.name().to_owned(),
                })
                .set(i64::from(backend.is_up()));
        }
        m.sessions.set(self.sessions.count() as i64);
        if let Some(audit) = &self.audit {
            let stats = audit.stats();
            m.audit_wal_records.set(stats.durable as i64);
            m.audit_pending_upload
                .set(stats.durable.saturating_sub(stats.stored) as i64);
            let counted = m.audit_upload_errors.get();
            m.audit_upload_errors
                .inc_by(stats.upload_errors.saturating_sub(counted));
            if let Some(at) = stats.checkpoint_at_us {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64);
                m.audit_checkpoint_age
                    .set(now.saturating_sub(at) as f64 / 1e6);
            }
        }
        m.encode()
    }

    /// What the call stack's layers share (each gets its part).
    pub fn stack_parts(&self) -> crate::stack::Parts {
        crate::stack::Parts {
            stopping: self.stopping.clone(),
            drain: self.drain.clone(),
            authority: self.authority.clone(),
            governance: self.governance.clone(),
            metrics: self.metrics.clone(),
            layers: self.layers.clone(),
        }
    }

    /// The backends in force (the table of the current catalog).
    pub fn backends(&self) -> Arc<Table> {
        self.catalog().backends().clone()
    }

    /// Keeps a supervisor's handle for shutdown (finished ones are let go).
    pub(crate) fn keep_supervisor(&self, handle: tokio::task::JoinHandle<()>) {
        let mut all = self.supervisors.locked();
        all.retain(|h| !h.is_finished());
        all.push(handle);
    }

    /// Every supervisor still to wait for (taken: shutdown waits once).
    pub(crate) fn take_supervisors(&self) -> Vec<tokio::task::JoinHandle<()>> {
        std::mem::take(&mut *self.supervisors.locked())
    }

    /// Drops what a backend that is not in the table listed.
    pub(crate) fn forget_lists(&self, id: usize) {
        let mut lists = self.lists.locked();
        if self.backends().get(id).is_none() {
            lists.remove(&id);
        }
    }

    /// A backend for `settings` under a new id, not yet in the table or started.
    pub fn new_backend(&self, settings: &BackendSettings) -> Arc<Backend> {
        let id = self.next_backend.fetch_add(1, Ordering::Relaxed);
        new_backend(id, settings, &self.limits, &self.shutdown)
    }

    /// Builds the engine as startup does ([`authz::build_for_start`]) over the saved
    /// catalog and every tool the backends listed.
    pub fn start_authz(&self) -> Result<(), Vec<crate::authz::PolicyError>> {
        self.authz.learn(&self.catalog());
        self.authz.start()?;
        let lists = self.lists.locked();
        self.publish(&lists, self.catalog());
        Ok(())
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.current.load().catalog.clone()
    }

    pub fn lists_of(&self, id: usize) -> Option<BackendLists> {
        self.lists.locked().get(&id).cloned()
    }

    /// Replaces what backend `id` offers (`None`: it is down), rebuilds the catalog and
    /// tells clients which lists changed. A backend not in the table (one a reload is
    /// starting) has its lists kept for when it joins.
    pub async fn set_lists(&self, id: usize, new: Option<BackendLists>) {
        // What a backend answered before it changed (or went away) is not its answer now.
        self.governance.cache.invalidate_backend(id);
        let (changed, rebuilt) = {
            let mut lists = self.lists.locked();
            let old = match new {
                Some(new) => lists.insert(id, new),
                None => lists.remove(&id),
            };
            let table = self.backends();
            if table.get(id).is_none() {
                return;
            }
            let (old, empty) = (old.unwrap_or_default(), BackendLists::default());
            let new = lists.get(&id).unwrap_or(&empty);
            let changed = [
                old.tools != new.tools,
                old.prompts != new.prompts,
                old.resources != new.resources || old.templates != new.templates,
            ];
            let (catalog, learned) = self.rebuild_catalog(&lists, table);
            // A backend's tools changed: regenerate the schema, re-validate, quarantine tools
            // whose new schema breaks a policy that names them. Before the first build
            // (startup) there is nothing to swap yet.
            if learned
                && self.authz.engine().is_some()
                && let Err(errors) = self.authz.rebuild(crate::authz::BuildMode::Quarantine)
            {
                tracing::error!(errors = %authz::describe(&errors), "policies no longer validate with the new tools; keeping the previous engine");
            }
            // The new catalog and the engine that knows its tools, together.
            self.publish(&lists, catalog);
            (changed, learned && self.authz.engine().is_some())
        };
        if rebuilt && let Err(e) = self.record_lifecycle(crate::audit::Kind::Policy).await {
            tracing::error!(error = %e, "the policy change could not be recorded");
        }
        if rebuilt {
            self.record_integrity().await;
        }
        let notifications = [
            (
                changed[0],
                ServerNotification::ToolListChangedNotification(Default::default()),
            ),
            (
                changed[1],
                ServerNotification::PromptListChangedNotification(Default::default()),
            ),
            (
                changed[2],
                ServerNotification::ResourceListChangedNotification(Default::default()),
            ),
        ];
        for (changed, notification) in notifications {
            if changed {
                let _ = self.changes.send(notification.clone());
                self.sessions.broadcast(notification).await;
            }
        }
    }

    /// Builds the catalog of `table` from `lists` (held locked by the caller); true when
    /// authorization learned of new or changed tools.
    fn rebuild_catalog(
        &self,
        lists: &HashMap<usize, BackendLists>,
        table: Arc<Table>,
    ) -> (Arc<Catalog>, bool) {
        let catalog = Catalog::of(table, lists, &self.server.separator);
        for c in &catalog.collisions {
            tracing::warn!(kind = c.kind, name = %c.exposed, backend = %c.backend, reason = c.reason, "name left out of the catalog");
        }
        let learned = self.authz.learn(&catalog);
        (Arc::new(catalog), learned)
    }

    /// Makes `catalog`, with the engine built last, the generation calls see. Under the
    /// lists lock (`_lists`): publications never interleave.
    fn publish(
        &self,
        _lists: &std::sync::MutexGuard<'_, HashMap<usize, BackendLists>>,
        catalog: Arc<Catalog>,
    ) {
        self.current.store(Arc::new(Generation {
            catalog,
            engine: self.authz.engine(),
        }));
    }

    /// The catalog `table` would have with what its backends listed so far.
    pub(crate) fn catalog_of(&self, table: Arc<Table>) -> Catalog {
        Catalog::of(table, &self.lists.locked(), &self.server.separator)
    }

    /// Puts a reload in force in one step: its engine (`pending`) and, when its backends
    /// changed, `table` with the catalog built from it; lists of backends that left are
    /// dropped.
    pub(crate) fn install(&self, pending: authz::Pending, table: Option<Arc<Table>>) {
        let mut lists = self.lists.locked();
        self.authz.commit(pending);
        let table = table.unwrap_or_else(|| self.backends());
        let pending: HashSet<usize> = lists.keys().copied().collect();
        for id in pending {
            // Lists of a backend not in the new table: one that left (a starting one is
            // in the table by now).
            if table.get(id).is_none() {
                lists.remove(&id);
            }
        }
        let (catalog, _) = self.rebuild_catalog(&lists, table);
        self.publish(&lists, catalog);
    }

    /// Tells every client that every list may have changed (the policies did).
    pub async fn announce_all_lists(&self) {
        for notification in [
            ServerNotification::ToolListChangedNotification(Default::default()),
            ServerNotification::PromptListChangedNotification(Default::default()),
            ServerNotification::ResourceListChangedNotification(Default::default()),
        ] {
            let _ = self.changes.send(notification.clone());
            self.sessions.broadcast(notification).await;
        }
    }

    /// A backend (re)connected: give it the logging level clients asked for.
    /// A backend (re)connected: give it the logging level clients asked for, and the
    /// resource subscriptions clients hold on it (a restarted backend knows none of them,
    /// and its subscribers would silently stop hearing of changes).
    pub async fn backend_up(&self, backend: &Backend) {
        let level = *self.log_level.locked();
        let Some(peer) = backend.peer() else { return };
        if let Some(level) = level {
            let _ = peer.set_level(SetLevelRequestParams::new(level)).await;
        }
        let catalog = self.catalog();
        let uris: Vec<String> = self
            .sessions
            .subscribed()
            .into_iter()
            .filter_map(|exposed| catalog.resolve_uri(&exposed))
            .filter(|target| target.backend == backend.id)
            .map(|target| target.name)
            .collect();
        for uri in uris {
            let params = rmcp::model::SubscribeRequestParams::new(uri.clone());
            if let Err(e) = peer.subscribe(params).await {
                tracing::warn!(backend = %backend.name(), %uri, error = %e, "could not subscribe again after the backend reconnected");
            }
        }
    }

    pub fn set_log_level(&self, level: LoggingLevel) {
        *self.log_level.locked() = Some(level);
    }

    /// A backend says a resource changed: tell the sessions subscribed to it.
    pub async fn resource_updated(&self, id: usize, params: ResourceUpdatedNotificationParam) {
        let catalog = self.catalog();
        let backend = catalog.backend_name(id);
        // A switched-off backend tells nobody anything.
        if self.switches.blocks("", Some(backend), None).is_some() {
            return;
        }
        let uri = catalog.expose_uri(id, &params.uri);
        let mut params = params;
        params.uri = uri.clone();
        let notification = ServerNotification::ResourceUpdatedNotification(
            ResourceUpdatedNotification::new(params),
        );
        let _ = self.changes.send(notification.clone());
        // Nor is a switched-off principal told anything.
        let hears = |p: &crate::authn::Principal| {
            self.switches.blocks(&p.id, Some(backend), None).is_none()
        };
        self.sessions
            .send_to_subscribers(&uri, notification, hears)
            .await;
    }
}

fn new_backend(
    id: usize,
    settings: &BackendSettings,
    limits: &crate::governance::LimitsSettings,
    shutdown: &CancellationToken,
) -> Arc<Backend> {
    let governance = Arc::new(crate::governance::BackendGovernance::new(limits, settings));
    Arc::new(Backend::new(
        id,
        settings.clone(),
        governance,
        shutdown.child_token(),
    ))
}

/// Client sessions that completed `initialize`, for notifications that concern all of them,
/// and their resource subscriptions.
#[derive(Default)]
pub struct Sessions {
    next: AtomicU64,
    peers: Mutex<HashMap<u64, Peer<RoleServer>>>,
    /// Exposed URI -> the sessions subscribed, with who subscribed.
    subscriptions: Mutex<HashMap<String, HashMap<u64, Arc<crate::authn::Principal>>>>,
}

impl Sessions {
    pub fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn register(&self, id: u64, peer: Peer<RoleServer>) {
        self.peers.locked().insert(id, peer);
    }

    pub fn remove(&self, id: u64) {
        self.peers.locked().remove(&id);
        self.subscriptions.locked().retain(|_, ids| {
            ids.remove(&id);
            !ids.is_empty()
        });
    }

    pub fn count(&self) -> usize {
        self.peers.locked().len()
    }

    /// Every exposed URI some session is subscribed to.
    pub fn subscribed(&self) -> Vec<String> {
        self.subscriptions.locked().keys().cloned().collect()
    }

    /// Records `principal`'s subscription in session `id`; true when it is the first for
    /// this URI.
    pub fn subscribe(&self, id: u64, uri: &str, principal: Arc<crate::authn::Principal>) -> bool {
        let mut subs = self.subscriptions.locked();
        let ids = subs.entry(uri.to_owned()).or_default();
        let first = ids.is_empty();
        ids.insert(id, principal);
        first
    }

    /// Drops a subscription; true when it was the last for this URI.
    pub fn unsubscribe(&self, id: u64, uri: &str) -> bool {
        let mut subs = self.subscriptions.locked();
        let Some(ids) = subs.get_mut(uri) else {
            return false;
        };
        let removed = ids.remove(&id).is_some();
        if ids.is_empty() {
            subs.remove(uri);
        }
        removed && !subs.contains_key(uri)
    }

    pub async fn broadcast(&self, notification: ServerNotification) {
        let peers: Vec<_> = self
            .peers
            .locked()
            .iter()
            .map(|(id, p)| (*id, p.clone()))
            .collect();
        self.send_all(peers, notification).await;
    }

    /// Sends `notification` to the sessions subscribed to `uri` whose subscriber `hears`.
    async fn send_to_subscribers(
        &self,
        uri: &str,
        notification: ServerNotification,
        hears: impl Fn(&crate::authn::Principal) -> bool,
    ) {
        let ids: Vec<u64> = self
            .subscriptions
            .locked()
            .get(uri)
            .map(|ids| {
                ids.iter()
                    .filter(|(_, principal)| hears(principal))
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default();
        let peers: Vec<_> = {
            let all = self.peers.locked();
            ids.iter()
                .filter_map(|id| all.get(id).map(|p| (*id, p.clone())))
                .collect()
        };
        self.send_all(peers, notification).await;
    }

    async fn send_all(
        &self,
        peers: Vec<(u64, Peer<RoleServer>)>,
        notification: ServerNotification,
    ) {
        for (id, peer) in peers {
            if peer.is_transport_closed()
                || peer.send_notification(notification.clone()).await.is_err()
            {
                self.remove(id);
            }
        }
    }
}
