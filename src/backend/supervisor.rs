//! Keeps one backend connected: connect, read its lists, serve until the connection ends,
//! then mark it down (its items drop out of the catalog, clients get `list_changed`) and
//! reconnect with exponential backoff. A backend that stays up for a while earns a fresh
//! backoff. Nothing here can take the proxy down: every failure is logged and retried.

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot};

use super::{Backend, ListKind, connect::connect, relay::Relay};
use crate::{config::BackendSettings, hub::Hub, mcp::catalog::BackendLists};

const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long an `auto` backend on 2026-07-28 has to accept the handshake as well.
const LEGACY_PROBE: Duration = Duration::from_secs(5);

/// Starts the supervisor of `backend`; `first` learns how the first attempt went.
pub(crate) fn spawn_supervisor(
    hub: &Arc<Hub>,
    backend: Arc<Backend>,
    first: oneshot::Sender<Result<(), String>>,
) -> tokio::task::JoinHandle<()> {
    let hub = Arc::downgrade(hub);
    tokio::spawn(async move {
        let mut first = Some(first);
        let mut backoff = BACKOFF_START;
        loop {
            let shutdown = backend.stop.clone();
            if shutdown.is_cancelled() || hub.strong_count() == 0 {
                return;
            }
            let (refresh_tx, mut refresh_rx) = mpsc::unbounded_channel();
            let listen_tx = refresh_tx.clone();
            let relay = Relay {
                id: backend.id,
                name: backend.name().to_owned(),
                inflight: backend.inflight.clone(),
                hub: hub.clone(),
                refresh: refresh_tx,
            };
            let direct_relay = relay.clone();
            let connecting = tokio::time::Instant::now();
            let connected = tokio::select! {
                c = connect_both(&backend, relay) => c,
                _ = shutdown.cancelled() => return,
            };
            let started = tokio::time::Instant::now();
            match connected {
                Ok(((connection, endpoint), second)) => {
                    if let Some(hub) = hub.upgrade() {
                        hub.metrics
                            .backend_connect_seconds
                            .get_or_create(&crate::telemetry::BackendLabels {
                                backend: backend.name().to_owned(),
                            })
                            .observe(connecting.elapsed().as_secs_f64());
                    }
                    let first_peer = connection.peer().clone();
                    let listener = listen_for_changes(&backend, &first_peer, listen_tx);
                    // With a second connection on the handshake, that one is the backend's
                    // main connection (lists, subscriptions, older clients' calls) and the
                    // first serves clients on 2026-07-28.
                    let (peer, endpoint, modern) = match &second {
                        Some((legacy, legacy_endpoint)) => (
                            legacy.peer().clone(),
                            legacy_endpoint.clone(),
                            Some(first_peer),
                        ),
                        None => (first_peer, endpoint, None),
                    };
                    for p in std::iter::once(&peer).chain(&modern) {
                        // The proxy keeps its own catalog; a client-side cache in rmcp
                        // would only serve stale lists.
                        p.set_response_cache_config(rmcp::service::ClientCacheConfig::disabled())
                            .await;
                    }
                    let lists = read_lists(&backend, &peer).await;
                    warn_unmatched(&backend, &lists);
                    // Calls go directly to an HTTP backend on the handshake revisions; on
                    // 2026-07-28 (input rounds, per-request metadata) through rmcp's client.
                    let handshake = !super::speaks_2026(&peer);
                    backend.set_direct(
                        endpoint
                            .filter(|_| handshake)
                            .map(|e| (e, direct_relay.clone())),
                    );
                    backend.set_modern(modern);
                    backend.set_relay(Some(direct_relay.clone()));
                    // Connected first, then listed: a listed tool is always callable.
                    backend.set_peer(Some(peer.clone()));
                    if let Some(hub) = hub.upgrade() {
                        hub.set_lists(backend.id, Some(lists)).await;
                        hub.backend_up(&backend).await;
                    }
                    tracing::info!(backend = %backend.name(), "backend connected");
                    if let Some(tx) = first.take() {
                        let _ = tx.send(Ok(()));
                    }
                    let stop = connection.cancellation_token();
                    let mut waiting = Box::pin(connection.waiting());
                    let (mut second_stop, mut second_waiting) = match second {
                        Some((legacy, _)) => (
                            Some(legacy.cancellation_token()),
                            Some(Box::pin(legacy.waiting())),
                        ),
                        None => (None, None),
                    };
                    let second_ended = async {
                        match &mut second_waiting {
                            Some(w) => w.await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::pin!(second_ended);
                    let reason = loop {
                        tokio::select! {
                            quit = &mut waiting => break format!("{quit:?}"),
                            quit = &mut second_ended => break format!("handshake connection: {quit:?}"),
                            Some(kind) = refresh_rx.recv() => {
                                if let Some(hub) = hub.upgrade() {
                                    let mut lists = hub.lists_of(backend.id).unwrap_or_default();
                                    load(&backend, &peer, kind, &mut lists).await;
                                    hub.set_lists(backend.id, Some(lists)).await;
                                }
                            }
                            _ = shutdown.cancelled() => {
                                if let Some(l) = &listener { l.abort(); }
                                stop.cancel();
                                let second = second_stop.take();
                                let had_second = second.is_some();
                                if let Some(s) = second { s.cancel(); }
                                let _ = waiting.await;
                                // Only a second connection ends; without one this would
                                // wait forever (and shutdown for its timeout).
                                if had_second {
                                    let _ = (&mut second_ended).await;
                                }
                                backend.set_peer(None);
                                backend.set_modern(None);
                                backend.set_relay(None);
                                backend.set_direct(None);
                                return;
                            }
                        }
                    };
                    if let Some(l) = &listener {
                        l.abort();
                    }
                    // Both connections go, and come back, together.
                    stop.cancel();
                    if let Some(s) = second_stop {
                        s.cancel();
                    }
                    backend.set_peer(None);
                    backend.set_modern(None);
                    backend.set_relay(None);
                    backend.set_direct(None);
                    if let Some(hub) = hub.upgrade() {
                        hub.set_lists(backend.id, None).await;
                        hub.metrics
                            .backend_event(&hub.metrics.backend_restarts, backend.name());
                    }
                    if started.elapsed() > STABLE_AFTER {
                        backoff = BACKOFF_START;
                    }
                    tracing::warn!(backend = %backend.name(), %reason, retry_in_ms = backoff.as_millis() as u64, "backend connection ended; its tools are hidden until it is back");
                }
                Err(reason) => {
                    tracing::warn!(backend = %backend.name(), %reason, retry_in_ms = backoff.as_millis() as u64, "backend could not connect");
                    if let Some(tx) = first.take() {
                        let _ = tx.send(Err(reason));
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    })
}

/// Connects; with `protocol = "auto"`, an HTTP backend that answers on 2026-07-28 is also
/// offered the handshake (2025-11-25) on a second connection, for clients on the older
/// revisions: through it they get what their revision has and 2026-07-28 removed (server
/// requests mid-call, resource subscriptions, logging). A backend that refuses the
/// handshake is served on 2026-07-28 alone, older clients bridged (`mcp::inputs`). A stdio
/// backend gets no second connection: a second child would be a second server, with state
/// of its own.
async fn connect_both(
    backend: &Backend,
    relay: Relay,
) -> Result<(ConnectionAndEndpoint, Option<ConnectionAndEndpoint>), String> {
    let settings = &backend.settings;
    let first = connect(settings, relay.clone(), settings.protocol).await?;
    let http = matches!(settings.transport, crate::config::Transport::Http { .. });
    if !http || !super::speaks_2026(first.0.peer()) {
        return Ok((first, None));
    }
    // A backend that ignores `initialize` altogether must not hold the first connection up
    // for the whole connect timeout: it is served on 2026-07-28 alone.
    let limit = settings.connect_timeout.min(LEGACY_PROBE);
    let second = tokio::time::timeout(
        limit,
        connect(settings, relay, crate::config::BackendProtocol::Initialize),
    )
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "no answer to initialize within {} s",
            limit.as_secs()
        ))
    });
    match second {
        Ok(second) if !super::speaks_2026(second.0.peer()) => Ok((first, Some(second))),
        Ok(_) => Ok((first, None)),
        Err(reason) => {
            tracing::info!(backend = %backend.name(), %reason, "backend serves 2026-07-28 only; clients on older revisions are bridged");
            Ok((first, None))
        }
    }
}

type ConnectionAndEndpoint = (
    super::connect::Connection,
    Option<super::connect::DirectPath>,
);

/// On 2026-07-28 a backend announces list changes only on a `subscriptions/listen` stream:
/// open one and feed what it says to the supervisor, like `list_changed` on older revisions.
fn listen_for_changes(
    backend: &Backend,
    peer: &rmcp::Peer<rmcp::RoleClient>,
    refresh: mpsc::UnboundedSender<ListKind>,
) -> Option<tokio::task::JoinHandle<()>> {
    use rmcp::model::{ServerNotification, SubscriptionFilter};
    let info = peer.peer_info()?;
    if info.protocol_version.as_str() < rmcp::model::ProtocolVersion::V_2026_07_28.as_str() {
        return None;
    }
    let (peer, name) = (peer.clone(), backend.name().to_owned());
    Some(tokio::spawn(async move {
        let filter = SubscriptionFilter::builder()
            .tools_list_changed()
            .prompts_list_changed()
            .resources_list_changed()
            .build();
        let mut subscription = match peer.listen(filter).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(backend = %name, error = %e, "backend refused subscriptions/listen; its list changes will not be seen");
                return;
            }
        };
        while let Ok(Some(notification)) = subscription.next().await {
            let kind = match notification {
                ServerNotification::ToolListChangedNotification(_) => ListKind::Tools,
                ServerNotification::PromptListChangedNotification(_) => ListKind::Prompts,
                ServerNotification::ResourceListChangedNotification(_) => ListKind::Resources,
                _ => continue,
            };
            if refresh.send(kind).is_err() {
                return;
            }
        }
    }))
}

/// Settings that name nothing the backend has: said once it has listed what it has (a
/// `hide` that matches no tool hides nothing, an alias of a missing tool exposes nothing).
fn warn_unmatched(backend: &Backend, lists: &BackendLists) {
    for message in unmatched(&backend.settings, lists) {
        tracing::warn!(backend = %backend.name(), "{message}");
    }
}

/// The backend's `hide`/`expose` globs and aliases that name nothing it lists (a typo such
/// as `get_env` for `get-env` leaves the tool exposed): warned about once it has listed,
/// errors for `mcp-warden check --live`.
pub(crate) fn unmatched(settings: &BackendSettings, lists: &BackendLists) -> Vec<String> {
    let names = lists
        .tools
        .iter()
        .map(|t| t.name.as_ref())
        .chain(lists.prompts.iter().map(|p| p.name.as_str()));
    let mut out: Vec<String> = settings
        .filter
        .unmatched(names)
        .into_iter()
        .map(|(field, glob)| {
            format!("`{field}` glob `{glob}` matches none of the backend's tools or prompts")
        })
        .collect();
    for from in settings.aliases.keys() {
        if !lists.tools.iter().any(|t| t.name == from.as_str()) {
            out.push(format!("alias of `{from}`: the backend has no such tool"));
        }
    }
    out
}

/// Everything the backend offers, per the capabilities it declared. A list that fails to
/// load is logged and treated as empty rather than taking the backend down.
async fn read_lists(backend: &Backend, peer: &rmcp::Peer<rmcp::RoleClient>) -> BackendLists {
    let mut lists = BackendLists::default();
    for kind in [ListKind::Tools, ListKind::Prompts, ListKind::Resources] {
        load(backend, peer, kind, &mut lists).await;
    }
    lists
}

async fn load(
    backend: &Backend,
    peer: &rmcp::Peer<rmcp::RoleClient>,
    kind: ListKind,
    lists: &mut BackendLists,
) {
    let caps = peer
        .peer_info()
        .map(|i| i.capabilities.clone())
        .unwrap_or_default();
    let result = match kind {
        ListKind::Tools if caps.tools.is_some() => {
            peer.list_all_tools().await.map(|t| lists.tools = t)
        }
        ListKind::Prompts if caps.prompts.is_some() => {
            peer.list_all_prompts().await.map(|p| lists.prompts = p)
        }
        ListKind::Resources if caps.resources.is_some() => match peer.list_all_resources().await {
            Ok(r) => {
                lists.resources = r;
                peer.list_all_resource_templates()
                    .await
                    .map(|t| lists.templates = t)
            }
            Err(e) => Err(e),
        },
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(backend = %backend.name(), ?kind, error = %e, "cannot read list from backend");
    }
}
