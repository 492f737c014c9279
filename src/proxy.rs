//! The library entry point: build a proxy from a [`Config`], serve it (HTTP or stdio) or
//! merge its router into another axum app, and shut it down in order:
//! stop taking calls -> drain the calls in flight -> close client streams -> stop backends.

use std::{sync::Arc, time::Duration};

use rmcp::ServiceExt;
use tokio::net::TcpListener;

use crate::{
    audit::{Audit, Kind},
    authn::{Authenticate, Authenticator},
    config::Config,
    error::Error,
    hub::Hub,
    hub::describe_policy_errors,
    mcp::Audited,
};

const RESPONSE_FLUSH: Duration = Duration::from_millis(200);
/// Connections the admin listener takes at once (scrapers and probes, not clients).
const ADMIN_CONNECTIONS: usize = 32;
/// How long shutdown waits for the audit store to take the last segments.
const AUDIT_CLOSE: Duration = Duration::from_secs(10);

/// A running proxy: backends connected (or retrying), ready to serve clients.
pub struct Proxy {
    hub: Arc<Hub>,
}

/// Controls a proxy from outside: shutdown, readiness, the exposed tool names.
#[derive(Clone)]
pub struct ProxyHandle {
    hub: Arc<Hub>,
}

/// Builds a [`Proxy`] with what an embedding application brings of its own.
pub struct ProxyBuilder {
    config: Config,
    authenticate: Option<Arc<dyn Authenticate>>,
    layers: crate::stack::Layers,
}

impl ProxyBuilder {
    /// A proxy of `config`, as [`Proxy::from_config`] builds it unless told otherwise.
    pub fn new(config: Config) -> ProxyBuilder {
        ProxyBuilder {
            config,
            authenticate: None,
            layers: Default::default(),
        }
    }

    /// Authenticates callers (the data port and the admin API) with the application's own
    /// scheme instead of `[auth]`'s tokens and issuers (the section must still validate).
    pub fn authenticate_with(mut self, authenticate: impl Authenticate) -> ProxyBuilder {
        self.authenticate = Some(Arc::new(authenticate));
        self
    }

    /// Adds the application's own tower layer over the call stack at `at` (several at one
    /// point: the first added is outermost). It sees each [`crate::stack::Call`] (tool,
    /// arguments, principal, backend) and may answer it, refuse it with a
    /// [`crate::CallError`], or pass it on; what it returns is audited like any answer.
    pub fn layer<L>(mut self, at: crate::stack::StackPoint, layer: L) -> ProxyBuilder
    where
        L: tower::Layer<crate::stack::CallService> + Send + Sync + 'static,
        L::Service: tower::Service<
                crate::stack::Call,
                Response = rmcp::model::ServerResult,
                Error = crate::CallError,
            > + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<crate::stack::Call>>::Future: Send + 'static,
    {
        self.layers
            .push(at, tower::util::BoxCloneSyncServiceLayer::new(layer));
        self
    }

    /// Starts the proxy: see [`Proxy::from_config`].
    pub async fn build(self) -> Result<Proxy, Error> {
        Proxy::start(self.config, self.authenticate, self.layers).await
    }
}

impl Proxy {
    /// A builder, for what an embedding application brings of its own.
    pub fn builder(config: Config) -> ProxyBuilder {
        ProxyBuilder::new(config)
    }

    /// Starts every backend and waits for each one's first connection attempt (each bounded
    /// by its `connect_timeout`). A backend marked `optional = false` that cannot start is
    /// an error; an optional one is retried in the background.
    pub async fn from_config(config: Config) -> Result<Self, Error> {
        Proxy::start(config, None, Default::default()).await
    }

    async fn start(
        config: Config,
        authenticate: Option<Arc<dyn Authenticate>>,
        layers: crate::stack::Layers,
    ) -> Result<Self, Error> {
        // The log opens first: if it cannot (a second writer, an unreadable WAL), nothing
        // starts, and everything after this line has somewhere to be recorded.
        let audit = match &config.audit {
            Some(settings) => {
                let audit = Audit::open(settings).await?;
                tracing::info!(store = %settings.store, state_dir = %settings.state_dir.display(), "recording every request in the audit log");
                Some(audit)
            }
            None => {
                tracing::warn!("no [audit] section: requests are not recorded");
                None
            }
        };
        let switches_file = config.admin.switches_file(config.audit.as_ref());
        if switches_file.is_none() {
            tracing::info!(
                "no audit log and no `[admin] switches` file: kill switch changes last until the proxy stops"
            );
        }
        let switches = Arc::new(
            crate::switches::Switches::load_shared(switches_file, config.limits.redis.as_deref())?
                .fail_closed_after(config.limits.kill_switch_stale),
        );
        if !switches.current().is_empty() {
            let s = switches.current();
            tracing::warn!(tools = ?s.tools.keys().collect::<Vec<_>>(), backends = ?s.backends.keys().collect::<Vec<_>>(), principals = ?s.principals.keys().collect::<Vec<_>>(), "switched off (kill switch)");
        }
        let (authn, refresh): (Arc<dyn Authenticate>, _) = match authenticate {
            Some(own) => (own, None),
            None => {
                let built = Authenticator::new(&config.auth).await;
                (built.clone(), Some(built))
            }
        };
        let hub = Hub::new(&config, authn, audit, switches.clone(), layers);
        switches.spawn_sync(hub.shutdown.clone());
        if let Some(authenticator) = refresh {
            authenticator.spawn_refresh(hub.shutdown.clone());
        }
        let backends: Vec<_> = hub.backends().iter().cloned().collect();
        let first = hub.start_supervised(&backends).await;
        let proxy = Proxy { hub };
        if let Err((name, reason)) = first {
            proxy.handle().shutdown().await;
            return Err(Error::BackendStart { name, reason });
        }
        // Strict at start; when a tool a policy names is missing (a backend down and not in
        // the saved catalog) the engine still starts with that tool quarantined.
        if let Err(errors) = proxy.hub.start_authz() {
            proxy.handle().shutdown().await;
            return Err(Error::Policy(describe_policy_errors(&errors)));
        }
        proxy.hub.record_lifecycle(Kind::Start).await?;
        proxy.hub.record_integrity().await;
        Ok(proxy)
    }

    /// The running proxy's shared state (for tests below HTTP).
    #[cfg(test)]
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            hub: self.hub.clone(),
        }
    }

    /// The MCP endpoint (at the configured path), its protected-resource metadata and
    /// `/healthz`, to merge into a host application's router. Serve it with connect info
    /// (`into_make_service_with_connect_info::<SocketAddr>`) so policies and records see
    /// the client's address, and set `auth.resource`: without it the resource is named
    /// after `server.bind`. The router carries authentication (with its failure limit)
    /// and the body deadline; the connection bounds of `[server]` (count, head size and
    /// read time, write time) belong to the listener, which [`Proxy::serve`] provides and
    /// a host application's server must provide itself.
    pub fn into_router(self) -> axum::Router {
        crate::http::router(self.hub.clone(), self.hub.server.bind)
    }

    /// [`Proxy::into_router`] without `/healthz`: only the MCP endpoint (at `server.path`)
    /// and its protected-resource metadata, for an application that serves its own health
    /// routes (merging routes an app already has would panic in axum).
    pub fn into_mcp_router(self) -> axum::Router {
        crate::http::mcp_router(self.hub.clone(), self.hub.server.bind)
    }

    /// `/metrics`, `/readyz` and `/healthz`: what the admin listener serves. Keep it off
    /// any address callers can reach.
    pub fn admin_router(&self) -> axum::Router {
        crate::http::admin_router(self.hub.clone())
    }

    /// Serves the MCP endpoint on `listener` until [`ProxyHandle::shutdown`] (or a signal
    /// handled by the caller) stops it. No admin listener: see [`Proxy::serve_with_admin`].
    pub async fn serve(self, listener: TcpListener) -> Result<(), Error> {
        self.serve_with_admin(listener, None).await
    }

    /// Serves the MCP endpoint on `listener` and, when given, `/metrics`, `/readyz` and
    /// `/healthz` on `admin`, both with the connection bounds of `[server]`. The admin
    /// listener keeps answering during shutdown (`/readyz` then says not ready) and stops
    /// with the proxy.
    pub async fn serve_with_admin(
        self,
        listener: TcpListener,
        admin: Option<TcpListener>,
    ) -> Result<(), Error> {
        let hub = self.hub.clone();
        let limits = hub.server.connections;
        if let Some(admin) = admin {
            let router = self.admin_router();
            let admin_limits = crate::config::ConnectionLimits {
                max_connections: ADMIN_CONNECTIONS.min(limits.max_connections),
                ..limits
            };
            let stop = hub.shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) =
                    crate::http::serve::serve(admin, router, admin_limits, None, stop, None).await
                {
                    tracing::error!(error = %e, "the admin listener stopped");
                }
            });
        }
        let listening = listener.local_addr()?;
        let router = crate::http::router(hub.clone(), listening);
        // HTTPS when `[server.tls]` says so; its certificate is watched until shutdown.
        let tls = match &hub.server.tls {
            Some(settings) => Some(
                crate::http::tls::start(settings, hub.shutdown.clone())
                    .map_err(|e| Error::Io(std::io::Error::other(e)))?,
            ),
            None => None,
        };
        crate::http::serve::serve(
            listener,
            router,
            limits,
            Some(hub.metrics.clone()),
            hub.close_streams.clone(),
            tls,
        )
        .await?;
        Ok(())
    }

    /// Serves one client over stdin/stdout (a desktop client starting the proxy as a
    /// command) until the client goes away or the proxy is shut down.
    pub async fn serve_stdio(self) -> Result<(), Error> {
        let session = Audited::new(self.hub.clone());
        let running = session
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        let stop = running.cancellation_token();
        let closed = self.hub.close_streams.clone();
        tokio::select! {
            _ = running.waiting() => {}
            _ = closed.cancelled() => stop.cancel(),
        }
        Ok(())
    }
}

impl ProxyHandle {
    /// Stops taking calls, waits up to the drain timeout for calls in flight, closes
    /// client streams, then stops the backends (children are killed if they linger).
    /// Runs once: a second call (a signal, then the server returning) waits for the first
    /// to finish, and writes no second stop record.
    pub async fn shutdown(&self) {
        self.hub.stopped.get_or_init(|| self.shut_down()).await;
    }

    async fn shut_down(&self) {
        let hub = &self.hub;
        hub.stopping.cancel();
        if !hub.drain.wait_idle(hub.server.drain_timeout).await {
            tracing::warn!(
                in_flight = hub.drain.in_flight(),
                "drain timeout; closing anyway"
            );
        }
        // A call counts as done when its result leaves the stack; give the last results a
        // moment to be written to their streams before the streams close.
        tokio::time::sleep(RESPONSE_FLUSH).await;
        hub.close_streams.cancel();
        if let Err(e) = hub.record_lifecycle(Kind::Stop).await {
            tracing::error!(error = %e, "the stop record could not be written");
        }
        if let Some(audit) = &hub.audit {
            audit.close(AUDIT_CLOSE).await;
        }
        hub.shutdown.cancel();
        for supervisor in hub.take_supervisors() {
            let _ = tokio::time::timeout(Duration::from_secs(5), supervisor).await;
        }
    }

    /// Where [`ProxyHandle::reload`] reads the configuration again (the binary sets the file
    /// it was started with; an embedding application sets its own).
    pub fn set_config_source(
        &self,
        source: impl Fn() -> Result<Config, String> + Send + Sync + 'static,
    ) {
        self.hub.set_config_source(std::sync::Arc::new(source));
    }

    /// Reads the configuration again from its source and swaps in what can change while
    /// serving (policies, the saved catalog); a configuration that does not validate
    /// changes nothing. `trigger` says who asked, for the log and the audit record.
    pub async fn reload(&self, trigger: &str) -> crate::hub::reload::ReloadReport {
        self.hub.reload(trigger).await
    }

    /// [`ProxyHandle::reload`] with a configuration the caller built.
    pub async fn reload_with(&self, config: Config) -> crate::hub::reload::ReloadReport {
        self.hub.reload_with(Ok(config), "library").await
    }

    /// Adds a backend while serving ([`crate::config::BackendSettings::from_toml`], or
    /// [`crate::config::BackendSettings::in_process`] for a server in this application):
    /// started as a reload starts one, its tools callable when this returns (a required
    /// backend that cannot start changes nothing). A later reload from the configuration
    /// source replaces the whole set with the source's.
    pub async fn add_backend(
        &self,
        backend: crate::config::BackendSettings,
    ) -> crate::hub::reload::ReloadReport {
        self.hub.add_backend(backend, "library").await
    }

    /// Removes backend `name` while serving: it leaves the catalog at once, finishes the
    /// calls already on it and stops.
    pub async fn remove_backend(&self, name: &str) -> crate::hub::reload::ReloadReport {
        self.hub.remove_backend(name, "library").await
    }

    /// The generation in force: policy and schema hashes, when loaded, the last reload.
    pub fn generation(&self) -> crate::hub::reload::GenerationInfo {
        self.hub.generation()
    }

    /// Drops cached results: of one exposed tool, of one backend, or (both `None`) all.
    pub fn invalidate_cache(&self, tool: Option<&str>, backend: Option<&str>) {
        if let Err(e) = self.hub.purge_cache(tool, backend) {
            tracing::warn!("cache not purged: {e}");
        }
    }

    /// Every circuit breaker's state: (backend, tenant or `""`, `closed`/`open`/`half_open`).
    pub fn breaker_states(&self) -> Vec<(String, String, &'static str)> {
        self.hub
            .backends()
            .iter()
            .flat_map(|b| {
                b.governance
                    .breakers
                    .states()
                    .into_iter()
                    .map(|(tenant, s)| (b.name().to_owned(), tenant, s.as_str()))
            })
            .collect()
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.hub.stopping.is_cancelled()
    }

    /// Names of the backends currently connected and listed.
    pub fn backends_up(&self) -> Vec<String> {
        self.hub
            .backends()
            .iter()
            .filter(|b| b.is_up() && self.hub.lists_of(b.id).is_some())
            .map(|b| b.name().to_owned())
            .collect()
    }

    /// Tools the engine quarantined (hidden and denied), with why.
    pub fn quarantined(&self) -> Vec<(String, String)> {
        self.hub
            .authz()
            .map(|e| e.quarantined().to_vec())
            .unwrap_or_default()
    }

    /// Settings that name nothing their backend lists (`hide`/`expose` globs, aliases), as
    /// `backend: message`, for the backends that have listed.
    pub fn unmatched_settings(&self) -> Vec<String> {
        self.hub
            .backends()
            .iter()
            .filter_map(|b| Some((b, self.hub.lists_of(b.id)?)))
            .flat_map(|(b, lists)| {
                crate::backend::unmatched(&b.settings, &lists)
                    .into_iter()
                    .map(move |m| format!("backend `{}`: {m}", b.name()))
            })
            .collect()
    }

    /// What authorization knows of every exposed tool now (for `policy validate --live`).
    pub fn tool_infos(&self) -> Vec<crate::authz::ToolInfo> {
        let catalog = self.hub.catalog();
        catalog
            .tools()
            .filter_map(|e| {
                let settings = &catalog.backend(e.backend)?.settings;
                let mut info = crate::hub::tool_info(&e.item, &settings.name);
                crate::hub::vet(&mut info, settings, &e.original);
                Some(info)
            })
            .collect()
    }

    /// The exposed tools as a saved catalog (`tools.json`, read by
    /// [`crate::authz::parse_catalog`]): each MCP tool object as clients see it (exposed
    /// name, description, schemas, vetted annotations) with its backend, sorted by name.
    pub fn catalog_json(&self) -> Result<String, serde_json::Error> {
        let catalog = self.hub.catalog();
        let mut tools = catalog
            .tools()
            .map(|e| {
                let mut tool = serde_json::to_value(&e.item)?;
                tool["backend"] = catalog.backend_name(e.backend).into();
                // A tenant's backend stays one when the policies are checked offline.
                if let Some(backend) = catalog.backend(e.backend)
                    && !backend.settings.tenants.is_empty()
                {
                    tool["tenants"] = backend.settings.tenants.clone().into();
                }
                Ok((e.item.name.to_string(), tool))
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        tools.sort_by(|a, b| a.0.cmp(&b.0));
        let tools: Vec<_> = tools.into_iter().map(|(_, tool)| tool).collect();
        let mut text = serde_json::to_string_pretty(&tools)?;
        text.push('\n');
        Ok(text)
    }

    /// Every exposed tool as its backend serves it (`tools pin`, `tools diff`).
    pub fn tool_definitions(&self) -> Vec<crate::pinning::Definition> {
        let catalog = self.hub.catalog();
        let mut defs: Vec<_> = catalog
            .tools()
            .map(|e| {
                crate::pinning::Definition::of(
                    &e.item,
                    catalog.backend_name(e.backend),
                    &e.original,
                )
            })
            .collect();
        defs.sort_by(|a, b| a.exposed.cmp(&b.exposed));
        defs
    }

    /// The exposed tool names, as `tools/list` shows them now.
    pub fn tool_names(&self) -> Vec<String> {
        self.hub
            .catalog()
            .tools()
            .map(|e| e.item.name.to_string())
            .collect()
    }
}
