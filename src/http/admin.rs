//! The admin API, `/admin/...` on the admin listener: what an operator reads and changes
//! while the proxy serves. Every request is authenticated like the data port's (bearer
//! token or JWT, per `[auth]`) and authorized as a Cedar action on the gateway
//! (`Mcp::Action::"admin_read"`, `admin_switch`, `admin_reset`, `admin_sessions`,
//! `admin_reload`, all in the `admin` group); every change is an audit record naming who
//! made it. Answers are JSON; errors are `{"error": "..."}` with the status that fits.
//!
//! ```text
//! GET  /admin/backends                          health, breakers, calls running, tools
//! GET  /admin/tools                             every exposed tool and its state
//! GET  /admin/switches                          what the kill switch holds
//! POST /admin/{tools|backends|principals}/{name}/disable[?cancel=true][&force=true]
//! POST /admin/{tools|backends|principals}/{name}/enable
//! POST /admin/backends/{name}/breaker/reset
//! POST /admin/cache/purge[?tool=..][&backend=..]
//! GET  /admin/sessions                          the HTTP endpoint's client sessions
//! DELETE /admin/sessions/{id}                   end one (its calls cancelled)
//! POST /admin/reload                            read the configuration again, apply it
//! GET  /admin/generation                        hashes in force, the last reload
//! GET  /admin/approvals                         calls waiting for a person (admin_approve)
//! POST /admin/approvals/{id}/approve|deny       answer one ({"reason": ".."} optional)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::authn::Principal;
use crate::authz::{AdminAction, Operation};
use crate::hub::Hub;
use crate::switches::{Off, Target};

/// The admin API's routes, to merge into the admin listener's router.
pub fn routes(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/admin/backends", get(backends))
        .route("/admin/tools", get(tools))
        .route("/admin/switches", get(switches))
        .route("/admin/{target}/{name}/disable", post(disable))
        .route("/admin/{target}/{name}/enable", post(enable))
        .route("/admin/backends/{name}/breaker/reset", post(reset_breaker))
        .route("/admin/cache/purge", post(purge))
        .route("/admin/sessions", get(sessions))
        .route("/admin/sessions/{id}", axum::routing::delete(end_session))
        .route("/admin/reload", post(reload))
        .route("/admin/generation", get(generation))
        .route("/admin/approvals", get(approvals))
        .route("/admin/approvals/{id}/{answer}", post(answer_approval))
        .layer(from_fn_with_state(hub.clone(), authenticate))
        .with_state(hub)
}

/// Who is asking, from where: set by [`authenticate`] for the handlers to authorize.
#[derive(Clone)]
struct Caller {
    principal: Arc<Principal>,
    client: String,
}

/// A refusal or failure as the API answers it.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type Answer = Result<Json<Value>, Failure>;

async fn authenticate(State(hub): State<Arc<Hub>>, mut request: Request, next: Next) -> Response {
    if let Some(why) = from_a_page(&request, hub.admin.allow_remote) {
        tracing::warn!("admin API: refused a request {why}");
        return Failure(StatusCode::FORBIDDEN, format!("refused: {why}")).into_response();
    }
    let authenticated = hub.authn.authenticate(request.headers()).await;
    match authenticated {
        Ok(principal) => {
            let client = super::client::peer_of(request.extensions())
                .map(|ip| ip.to_string())
                .unwrap_or_default();
            request.extensions_mut().insert(Caller {
                principal: Arc::new(principal),
                client,
            });
            next.run(request).await
        }
        Err(e) => {
            let mut response = Failure(StatusCode::UNAUTHORIZED, format!("not authenticated: {e}"))
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
}

/// Why a request looks like it comes from a web page rather than an operator's tool: it
/// carries an `Origin` (browsers send one with every cross-site write and every fetch), or
/// names a host that is not a loopback address (DNS rebinding: a page's own name resolving
/// to 127.0.0.1). Tools like `curl` and `mcp-warden admin` send neither. A listener the
/// operator put off loopback (`allow_remote`) is reached by other names: only `Origin`
/// counts there.
fn from_a_page(request: &Request, remote: bool) -> Option<&'static str> {
    if request.headers().contains_key(header::ORIGIN) {
        return Some("with an Origin header (the admin API takes no requests from web pages)");
    }
    if remote {
        return None;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then_some("for a host that is not a loopback address")
}

impl Caller {
    /// The policies' answer for `action`; a denial is 403 with its reason.
    fn may(&self, hub: &Hub, action: AdminAction) -> Result<(), Failure> {
        let facts = crate::stack::authz::facts(&self.client, "admin", "");
        // An admin change is recorded by its own `config` record.
        let unrecorded = crate::stack::audit::Notes::default();
        let decision = crate::stack::authz::decide(
            &hub.authority,
            &hub.snapshot(),
            &self.principal,
            Operation::Admin(action),
            &facts,
            &unrecorded,
        );
        match decision {
            Some(d) if d.allowed => Ok(()),
            Some(d) => Err(Failure(StatusCode::FORBIDDEN, d.reason)),
            None => Err(Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "authorization is not ready".into(),
            )),
        }
    }
}

async fn backends(State(hub): State<Arc<Hub>>, Extension(caller): Extension<Caller>) -> Answer {
    caller.may(&hub, AdminAction::Read)?;
    let catalog = hub.catalog();
    let running = hub.switches.running_by_backend();
    let switched = hub.switches.current();
    let list: Vec<Value> = catalog
        .backends()
        .iter()
        .map(|b| {
            let breakers: BTreeMap<String, &str> = b
                .governance
                .breakers
                .states()
                .into_iter()
                .map(|(key, state)| (key, state.as_str()))
                .collect();
            json!({
                "name": b.name(),
                "up": b.is_up(),
                "listed": hub.lists_of(b.id).is_some(),
                "tools": catalog.tools().filter(|e| e.backend == b.id).count(),
                "in_flight": running.get(b.name()).copied().unwrap_or(0),
                "breakers": breakers,
                "switched_off": switched.backends.contains_key(b.name()),
            })
        })
        .collect();
    Ok(Json(json!({ "backends": list })))
}

async fn tools(State(hub): State<Arc<Hub>>, Extension(caller): Extension<Caller>) -> Answer {
    caller.may(&hub, AdminAction::Read)?;
    let catalog = hub.catalog();
    let switched = hub.switches.current();
    let quarantined: BTreeMap<String, String> = hub
        .authz()
        .map(|e| e.quarantined().iter().cloned().collect())
        .unwrap_or_default();
    let list: Vec<Value> = catalog
        .tools()
        .map(|e| {
            let name = e.item.name.to_string();
            let backend = catalog.backend_name(e.backend);
            let (state, why) = if let Some(off) = switched.tools.get(&name) {
                ("switched_off", off.reason.clone())
            } else if let Some(off) = switched.backends.get(backend) {
                ("backend_switched_off", off.reason.clone())
            } else if let Some(why) = quarantined.get(&name) {
                ("quarantined", Some(why.clone()))
            } else {
                ("on", None)
            };
            json!({ "name": name, "backend": backend, "state": state, "why": why })
        })
        .collect();
    Ok(Json(json!({ "tools": list })))
}

async fn switches(State(hub): State<Arc<Hub>>, Extension(caller): Extension<Caller>) -> Answer {
    caller.may(&hub, AdminAction::Read)?;
    let current = hub.switches.current();
    Ok(Json(json!({
        "switched_off": &*current,
        "persisted_in": hub.switches.file().map(|p| p.display().to_string()),
    })))
}

#[derive(Deserialize, Default)]
struct SwitchQuery {
    #[serde(default)]
    cancel: bool,
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SwitchBody {
    reason: Option<String>,
}

fn target(text: &str) -> Result<Target, Failure> {
    match text {
        "tools" => Ok(Target::Tool),
        "backends" => Ok(Target::Backend),
        "principals" => Ok(Target::Principal),
        other => Err(Failure(
            StatusCode::NOT_FOUND,
            format!("`{other}`: switch `tools`, `backends` or `principals`"),
        )),
    }
}

async fn disable(
    State(hub): State<Arc<Hub>>,
    Extension(caller): Extension<Caller>,
    Path((kind, name)): Path<(String, String)>,
    Query(query): Query<SwitchQuery>,
    body: Option<Json<SwitchBody>>,
) -> Answer {
    caller.may(&hub, AdminAction::Switch)?;
    let target = target(&kind)?;
    known(&hub, target, &name, query.force)?;
    let reason = body.and_then(|Json(b)| b.reason);
    let off = Off {
        by: caller.principal.id.clone(),
        at: crate::audit::show::rfc3339(now_us()),
        reason: reason.clone(),
    };
    if target == Target::Principal && name == caller.principal.id {
        return Err(Failure(
            StatusCode::CONFLICT,
            "switching off your own principal would lock you out of the admin API".into(),
        ));
    }
    let previous = hub
        .switches
        .set(target, &name, Some(off.clone()))
        .await
        .map_err(switch_failed)?;
    let changed = previous.is_none();
    let cancelled = if query.cancel {
        hub.switches.cancel(target, &name)
    } else {
        0
    };
    let mut detail = BTreeMap::from([("cancelled".to_owned(), cancelled.to_string())]);
    if let Some(reason) = reason {
        detail.insert("reason".to_owned(), reason);
    }
    // Cancelling calls is an act of its own, recorded even when the switch was off already.
    if changed || cancelled > 0 {
        let resource = format!("{}:{name}", target.as_str());
        if let Err(e) = hub
            .record_admin(&caller.principal, "switch_off", &resource, detail)
            .await
        {
            if !changed {
                return Err(Failure(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{cancelled} call(s) cancelled but not recorded ({e})"),
                ));
            }
            // A change nobody can account for does not stand (unless someone changed it
            // since: theirs is left alone).
            let undone = hub
                .switches
                .swap_if(target, &name, Some(&Some(off)), None)
                .await;
            return Err(unrecorded("switched off", e, undone.is_ok()));
        }
    }
    if changed {
        tracing::warn!(target = target.as_str(), %name, by = %hub.authority.shown.id(&caller.principal.id), cancelled, "switched off");
        hub.announce_all_lists().await;
    }
    Ok(Json(json!({
        "target": target, "name": name, "switched_off": true, "changed": changed,
        "cancelled": cancelled,
    })))
}

async fn enable(
    State(hub): State<Arc<Hub>>,
    Extension(caller): Extension<Caller>,
    Path((kind, name)): Path<(String, String)>,
) -> Answer {
    caller.may(&hub, AdminAction::Switch)?;
    let target = target(&kind)?;
    let previous = hub
        .switches
        .set(target, &name, None)
        .await
        .map_err(switch_failed)?;
    let changed = previous.is_some();
    if changed {
        let resource = format!("{}:{name}", target.as_str());
        if let Err(e) = hub
            .record_admin(&caller.principal, "switch_on", &resource, BTreeMap::new())
            .await
        {
            let undone = hub
                .switches
                .swap_if(target, &name, Some(&None), previous)
                .await;
            return Err(unrecorded("switched back on", e, undone.is_ok()));
        }
        tracing::warn!(target = target.as_str(), %name, by = %hub.authority.shown.id(&caller.principal.id), "switched back on");
        hub.announce_all_lists().await;
    }
    Ok(Json(json!({
        "target": target, "name": name, "switched_off": false, "changed": changed,
    })))
}

/// A change the kill switch could not make (nothing changed).
fn switch_failed(e: crate::switches::SwitchError) -> Failure {
    let status = match e {
        crate::switches::SwitchError::Shared(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Failure(status, format!("nothing changed: {e}"))
}

/// The answer when a change could not be recorded: it was undone, or (said loudly) it could
/// not even be undone.
fn unrecorded(what: &str, e: crate::audit::AuditError, undone: bool) -> Failure {
    if undone {
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not {what}: the change could not be recorded ({e}), so it was undone"),
        )
    } else {
        tracing::error!(error = %e, "an admin change could be neither recorded nor undone");
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "{what} but NOT recorded ({e}), and it could not be undone: check the switch file"
            ),
        )
    }
}

/// A tool or backend must be one the proxy knows (a typo would switch nothing off); a
/// tool not listed now (its backend is down) takes `force`. Principals cannot be known.
fn known(hub: &Hub, target: Target, name: &str, force: bool) -> Result<(), Failure> {
    let known = match target {
        Target::Tool => force || hub.catalog().tool(name).is_some(),
        Target::Backend => hub.backends().by_name(name).is_some(),
        Target::Principal => true,
    };
    if known {
        return Ok(());
    }
    Err(Failure(
        StatusCode::NOT_FOUND,
        match target {
            Target::Tool => format!(
                "no tool `{name}` is listed now (exposed names, as clients see them); `force=true` switches it off anyway"
            ),
            _ => format!("no backend `{name}` is configured"),
        },
    ))
}

async fn reset_breaker(
    State(hub): State<Arc<Hub>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Answer {
    caller.may(&hub, AdminAction::Reset)?;
    let backends = hub.backends();
    let Some(governance) = backends.by_name(&name).map(|b| &b.governance) else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no backend `{name}` is configured"),
        ));
    };
    let reopened = governance.breakers.reset();
    let detail = BTreeMap::from([("were_open".to_owned(), reopened.to_string())]);
    hub.record_admin(
        &caller.principal,
        "breaker_reset",
        &format!("backend:{name}"),
        detail,
    )
    .await
    .map_err(|e| Failure(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(json!({ "backend": name, "were_open": reopened })))
}

#[derive(Deserialize, Default)]
struct PurgeQuery {
    tool: Option<String>,
    backend: Option<String>,
}

async fn purge(
    State(hub): State<Arc<Hub>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<PurgeQuery>,
) -> Answer {
    caller.may(&hub, AdminAction::Reset)?;
    hub.purge_cache(query.tool.as_deref(), query.backend.as_deref())
        .map_err(|e| Failure(StatusCode::NOT_FOUND, e))?;
    let what = match (&query.tool, &query.backend) {
        (Some(tool), _) => format!("tool:{tool}"),
        (None, Some(backend)) => format!("backend:{backend}"),
        (None, None) => "all".to_owned(),
    };
    hub.record_admin(&caller.principal, "cache_purge", &what, BTreeMap::new())
        .await
        .map_err(|e| Failure(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(json!({ "purged": what })))
}

async fn sessions(State(hub): State<Arc<Hub>>, Extension(caller): Extension<Caller>) -> Answer {
    caller.may(&hub, AdminAction::Read)?;
    let list = match hub.session_directory.get() {
        Some(directory) => directory.list().await,
        None => Vec::new(),
    };
    Ok(Json(json!({ "sessions": list })))
}

async fn end_session(
    State(hub): State<Arc<Hub>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Answer {
    caller.may(&hub, AdminAction::Sessions)?;
    let ended = match hub.session_directory.get() {
        Some(directory) => directory.end(&id).await,
        None => false,
    };
    if !ended {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no session `{id}` is open"),
        ));
    }
    hub.record_admin(
        &caller.principal,
        "session_end",
        &format!("session:{id}"),
        BTreeMap::new(),
    )
    .await
    .map_err(|e| Failure(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    tracing::warn!(session = %id, by = %hub.authority.shown.id(&caller.principal.id), "session ended by an operator");
    Ok(Json(json!({ "ended": id })))
}

/// The calls waiting for a person, with their arguments: for approvers (`admin_approve`),
/// not for every reader of the proxy's state.
async fn approvals(State(hub): State<Arc<Hub>>, Extension(caller): Extension<Caller>) -> Answer {
    caller.may(&hub, AdminAction::Approve)?;
    let list = hub.authority.approvals.list().await;
    Ok(Json(json!({ "approvals": list })))
}

#[derive(Deserialize, Default)]
struct Reason {
    reason: Option<String>,
}

async fn answer_approval(
    State(hub): State<Arc<Hub>>,
    Extension(caller): Extension<Caller>,
    Path((id, answer)): Path<(String, String)>,
    body: Option<Json<Reason>>,
) -> Answer {
    let approve = match answer.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                "answer with `approve` or `deny`".into(),
            ));
        }
    };
    caller.may(&hub, AdminAction::Approve)?;
    let reason = body.and_then(|Json(b)| b.reason);
    use crate::approvals::Refusal;
    match hub
        .authority
        .approvals
        .answer(&id, &caller.principal, approve, reason)
        .await
    {
        Ok(view) => Ok(Json(json!({ "approval": view }))),
        Err(e @ Refusal::NotFound(_)) => Err(Failure(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ (Refusal::OwnCall | Refusal::NotApprover { .. })) => {
            Err(Failure(StatusCode::FORBIDDEN, e.to_string()))
        }
        Err(e @ (Refusal::Unrecorded(_) | Refusal::Unreachable(_))) => {
            Err(Failure(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
        }
    }
}

async fn reload(State(hub): State<Arc<Hub>>, Extension(caller): Extension<Caller>) -> Answer {
    caller.may(&hub, AdminAction::Reload)?;
    let report = hub.reload(&format!("admin:{}", caller.principal.id)).await;
    let status = match report.outcome {
        crate::hub::reload::Outcome::Refused => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    let body = serde_json::to_value(&report).unwrap_or_default();
    if status.is_success() {
        Ok(Json(body))
    } else {
        Err(Failure(
            status,
            format!(
                "reload refused, still serving generation {}: {}",
                report.generation,
                report.error.unwrap_or_default()
            ),
        ))
    }
}

async fn generation(State(hub): State<Arc<Hub>>, Extension(caller): Extension<Caller>) -> Answer {
    caller.may(&hub, AdminAction::Read)?;
    Ok(Json(
        serde_json::to_value(hub.generation()).unwrap_or_default(),
    ))
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
