//! Calls that wait for a person. A permit marked `@approval("<role>")` allows a tool call
//! only once someone with that role approves this exact call: this caller, this tool,
//! these arguments (their SHA-256 over the canonical JSON). The call is held while it
//! waits (`[authz] approval_wait_s`); if no one answered by then the caller is told to call
//! again with the same arguments, and the approval, once given, is used by that call —
//! once. A request stays open for `approval_expire_s`.
//!
//! Who may approve: a principal with one of the roles the permits name, allowed the
//! `admin_approve` action by the policies, and never the caller itself. Approvers answer
//! through the admin API (`mcp-warden admin approvals`) or, when their client supports
//! it, an MCP elicitation the proxy sends to their open session ([`Asker`]).
//!
//! Every step is an audit record written before it takes effect ([`Recorder`]): the
//! request, the approval or refusal (who, when), its expiry; the call's own record then
//! names the approval it used. A step that cannot be recorded does not happen.
//!
//! With `[limits] redis`, requests are shared by every replica ([`shared`]): an approver
//! answers on any replica, the held call learns it wherever it waits, and a caller calling
//! again on another replica uses the approval — once, whichever replica it reaches.
//! Elicitations go to the approvers' sessions on the replica that opened the request.
//!
//! Where it sits: beside the traffic path, like the kill switch. The authorization layer
//! asks it; the admin API and the MCP sessions answer it; the hub records for it.

mod shared;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::authn::Principal;
use crate::config::ApprovalSettings;
use crate::sync::Locked;

/// A call asking to be approved.
pub struct Request {
    pub caller: Arc<Principal>,
    pub tool: String,
    pub arguments: Arc<Map<String, Value>>,
    /// Any one of these roles may approve.
    pub roles: Vec<String>,
    /// The caller's session (as records name it).
    pub session: String,
}

/// An approval a call used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    /// The approver's principal id.
    pub by: String,
    pub at_us: u64,
}

/// Why a call goes on without its approval.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("approval `{id}` was refused by `{by}`{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Refused {
        id: String,
        by: String,
        reason: Option<String>,
    },
    #[error(
        "this call needs the approval of a person with the role {}: request `{id}` is waiting for one; call again with the same arguments once it is approved (it expires at {expires})",
        roles.join(" or ")
    )]
    Waiting {
        id: String,
        roles: Vec<String>,
        expires: String,
    },
    #[error("the request for approval could not be recorded, so it was not made: {0}")]
    Unrecorded(String),
}

/// Why an approver's answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no open request for approval `{0}` (it expired, was answered, or never existed)")]
    NotFound(String),
    #[error("a caller cannot approve its own call")]
    OwnCall,
    #[error("approving `{id}` needs one of the roles {}", roles.join(", "))]
    NotApprover { id: String, roles: Vec<String> },
    #[error("the answer could not be recorded, so it was not taken: {0}")]
    Unrecorded(String),
    #[error("the requests of other replicas cannot be reached, so the answer was not taken: {0}")]
    Unreachable(String),
}

/// What an answered request means for the call (`None` while it is open).
fn outcome(view: View, reason: Option<String>) -> Option<Result<Grant, Denied>> {
    match view.status {
        Status::Approved { by, at_us } => Some(Ok(Grant {
            id: view.id,
            by,
            at_us,
        })),
        Status::Refused { by, .. } => Some(Err(Denied::Refused {
            id: view.id,
            by,
            reason,
        })),
        Status::Open => None,
    }
}

/// Whether `approver` may answer the request `view`.
fn check(view: &View, approver: &Principal) -> Result<(), Refusal> {
    if approver.id == view.caller {
        return Err(Refusal::OwnCall);
    }
    if !approver.roles.iter().any(|r| view.roles.contains(r)) {
        return Err(Refusal::NotApprover {
            id: view.id.clone(),
            roles: view.roles.clone(),
        });
    }
    Ok(())
}

/// One request, as approvers and the admin API see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    pub id: String,
    /// The caller's principal id.
    pub caller: String,
    pub tool: String,
    /// The call's arguments, in clear (the approver decides on them; the audit log holds
    /// their hash).
    pub arguments: Value,
    /// SHA-256 of the arguments' canonical JSON (RFC 8785), hex.
    pub arguments_sha256: String,
    pub roles: Vec<String>,
    pub session: String,
    pub requested_us: u64,
    pub expires_us: u64,
    pub status: Status,
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Status {
    Open,
    Approved { by: String, at_us: u64 },
    Refused { by: String, at_us: u64 },
}

/// One step, for the audit log.
pub struct Event<'a> {
    /// `requested`, `approved`, `refused` or `expired`.
    pub step: &'static str,
    pub view: &'a View,
    /// Who took the step (the approver); the caller for `requested`, nobody for `expired`.
    pub by: Option<&'a Principal>,
    pub reason: Option<&'a str>,
}

/// Writes each step to the audit log before it takes effect.
pub trait Recorder: Send + Sync {
    fn record<'a>(&'a self, event: Event<'a>) -> BoxFuture<'a, Result<(), String>>;
}

/// Tells approvers that a request is waiting (an elicitation on their sessions).
pub trait Asker: Send + Sync {
    /// Starts asking; returns at once.
    fn ask(&self, view: View);
}

struct Entry {
    view: View,
    expires: Instant,
    /// Where waiting calls learn the answer.
    status: watch::Sender<Status>,
    /// A call is waiting on it now (a second identical call opens a request of its own).
    waited: bool,
    /// Shared through Redis: once no call waits on it here, other replicas' calls may use
    /// it, so this replica finds it through Redis too (its entry here is kept to record
    /// its expiry).
    published: bool,
    /// An answer is being recorded: no other answer is taken meanwhile.
    answering: bool,
    reason: Option<String>,
}

/// The open requests.
pub struct Approvals {
    settings: ApprovalSettings,
    open: Mutex<HashMap<String, Entry>>,
    recorder: OnceLock<Arc<dyn Recorder>>,
    asker: OnceLock<Arc<dyn Asker>>,
    /// Every replica's requests, when Redis is configured.
    shared: Option<shared::SharedApprovals>,
}

/// How often a call held on one replica looks for an answer given on another.
const SHARED_POLL: Duration = Duration::from_millis(200);

/// Now, in µs since the epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// SHA-256 of the arguments' canonical JSON, hex: what an approval is bound to.
pub fn arguments_hash(arguments: &Map<String, Value>) -> String {
    let canonical = crate::audit::jcs::to_vec(&Value::Object(arguments.clone()));
    crate::audit::record::hex(&Sha256::digest(canonical))
}

fn new_id() -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    format!("ap-{}", crate::audit::record::hex(&bytes))
}

impl Approvals {
    pub fn new(settings: ApprovalSettings) -> Approvals {
        Approvals {
            settings,
            open: Mutex::default(),
            recorder: OnceLock::new(),
            asker: OnceLock::new(),
            shared: None,
        }
    }

    /// Shares the requests with every replica through the Redis at `url`.
    pub fn shared(settings: ApprovalSettings, url: &str) -> Result<Approvals, String> {
        Ok(Approvals {
            shared: Some(shared::SharedApprovals::new(url)?),
            ..Approvals::new(settings)
        })
    }

    /// A call held here, whose request another replica may answer: the answer as Redis
    /// shows it, once it is there (never, without Redis).
    async fn answered_elsewhere(&self, id: &str) -> (Status, Option<String>) {
        let Some(shared) = &self.shared else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(SHARED_POLL).await;
            if let Ok(Some(stored)) = shared.fetch(id).await
                && stored.view.status != Status::Open
                && !stored.answering
            {
                return (stored.view.status, stored.reason);
            }
        }
    }

    /// An answered request used: true unless another replica used it first. Without Redis,
    /// or when Redis cannot be asked, the local answer stands (no other replica can have
    /// found it then either).
    async fn use_once(&self, view: &View) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        match shared.take(view).await {
            Ok(taken) => taken.is_some() || matches!(shared.fetch(&view.id).await, Ok(None)),
            Err(e) => {
                tracing::warn!(approval = %view.id, error = %e, "Redis cannot be asked; the approval is used on this replica's word");
                true
            }
        }
    }

    /// The answered request of this exact call that another replica opened: waits (at
    /// most the hold) for an open one to be answered, then uses it.
    async fn answered_elsewhere_for(
        &self,
        request: &Request,
        hash: &str,
        cancel: &CancellationToken,
    ) -> Option<Result<Grant, Denied>> {
        let shared = self.shared.as_ref()?;
        let id = shared
            .find(&request.caller.id, &request.tool, hash)
            .await
            .ok()
            .flatten()?;
        // A request a call waits on here is not joined: this call opens its own.
        if self.lock().get(&id).is_some_and(|e| e.waited) {
            return None;
        }
        let deadline = tokio::time::Instant::now() + self.settings.wait;
        let stored = loop {
            let stored = shared.fetch(&id).await.ok().flatten()?;
            if stored.view.expires_us <= now_us() {
                return None;
            }
            if stored.view.status != Status::Open && !stored.answering {
                break stored;
            }
            if tokio::time::Instant::now() >= deadline || cancel.is_cancelled() {
                return Some(Err(self.waiting(
                    &id,
                    &request.roles,
                    stored.view.expires_us,
                )));
            }
            tokio::select! {
                () = tokio::time::sleep(SHARED_POLL) => {}
                () = cancel.cancelled() => {}
            }
        };
        if !matches!(shared.take(&stored.view).await, Ok(Some(_))) {
            return None;
        }
        outcome(stored.view, stored.reason)
    }

    /// Where steps are recorded (without one, nothing is: a proxy with no audit log).
    pub fn set_recorder(&self, recorder: Arc<dyn Recorder>) {
        let _ = self.recorder.set(recorder);
    }

    /// Who tells approvers (without one, only the admin API does).
    pub fn set_asker(&self, asker: Arc<dyn Asker>) {
        let _ = self.asker.set(asker);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.open.locked()
    }

    async fn record(&self, event: Event<'_>) -> Result<(), String> {
        match self.recorder.get() {
            Some(r) => r.record(event).await,
            None => Ok(()),
        }
    }

    /// Removes the requests that expired, recording each.
    async fn sweep(&self) {
        let now = Instant::now();
        let expired: Vec<(View, bool)> = {
            let mut open = self.lock();
            let ids: Vec<String> = open
                .iter()
                .filter(|(_, e)| e.expires <= now && !e.answering)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| open.remove(id).map(|e| (e.view, e.published)))
                .collect()
        };
        for (view, published) in &expired {
            if *published && let Some(shared) = &self.shared {
                match shared.forget(view).await {
                    // Used on another replica before it expired.
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(e) => {
                        tracing::warn!(approval = %view.id, error = %e, "Redis cannot be asked; the request is recorded as expired");
                    }
                }
            }
            let event = Event {
                step: "expired",
                view,
                by: None,
                reason: None,
            };
            if let Err(e) = self.record(event).await {
                tracing::error!(approval = %view.id, error = %e, "an approval's expiry could not be recorded");
            }
        }
    }

    /// The open requests (and the approved ones not used yet), oldest first.
    pub async fn list(&self) -> Vec<View> {
        self.sweep().await;
        let mut views: Vec<View> = self.lock().values().map(|e| e.view.clone()).collect();
        if let Some(shared) = &self.shared {
            match shared.list().await {
                Ok(all) => {
                    // Redis holds every published request as it stands now (answered or
                    // used on other replicas): only those it never had come from here.
                    let open = self.lock();
                    views.retain(|v| open.get(&v.id).is_some_and(|e| !e.published));
                    drop(open);
                    views.extend(all);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Redis cannot be asked: only this replica's requests for approval are listed");
                }
            }
        }
        views.sort_by(|a, b| (a.requested_us, &a.id).cmp(&(b.requested_us, &b.id)));
        views
    }

    /// One request, if open.
    pub fn get(&self, id: &str) -> Option<View> {
        self.lock().get(id).map(|e| e.view.clone())
    }

    /// Waits for this exact call to be approved: uses an approval given to an earlier
    /// identical call, joins its open request, or opens one. Held at most `approval_wait_s`
    /// (or until `cancel`).
    pub async fn obtain(
        &self,
        request: Request,
        cancel: &CancellationToken,
    ) -> Result<Grant, Denied> {
        self.sweep().await;
        let hash = arguments_hash(&request.arguments);
        let status = {
            let mut open = self.lock();
            let same = open.iter().find(|(_, e)| {
                e.view.caller == request.caller.id
                    && e.view.tool == request.tool
                    && e.view.arguments_sha256 == hash
                    && !e.waited
                    && !e.published
                    && !e.answering
            });
            let same = same.map(|(id, _)| id.clone());
            match same.and_then(|id| open.remove_entry(&id)) {
                Some((_, entry)) if entry.view.status != Status::Open => Err(entry),
                Some((id, mut entry)) => {
                    entry.waited = true;
                    let watching = entry.status.subscribe();
                    open.insert(id.clone(), entry);
                    Ok(Some((id, watching)))
                }
                None => Ok(None),
            }
        };
        let mut status = match status {
            Ok(status) => status,
            // Answered before this call came: used by it.
            Err(entry) => {
                let id = entry.view.id.clone();
                return self
                    .settled(entry.view, entry.reason)
                    .await
                    .unwrap_or_else(|| Err(self.waiting(&id, &request.roles, now_us())));
            }
        };
        if status.is_none()
            && let Some(outcome) = self.answered_elsewhere_for(&request, &hash, cancel).await
        {
            return outcome;
        }
        if status.is_none() {
            let requested_us = now_us();
            let view = View {
                id: new_id(),
                caller: request.caller.id.clone(),
                tool: request.tool.clone(),
                arguments: Value::Object((*request.arguments).clone()),
                arguments_sha256: hash,
                roles: request.roles.clone(),
                session: request.session.clone(),
                requested_us,
                expires_us: requested_us + self.settings.expire.as_micros() as u64,
                status: Status::Open,
            };
            // Recorded before any approver can see it.
            let event = Event {
                step: "requested",
                view: &view,
                by: Some(&request.caller),
                reason: None,
            };
            self.record(event).await.map_err(Denied::Unrecorded)?;
            let published = match &self.shared {
                Some(shared) => match shared.publish(&view, self.settings.expire).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(approval = %view.id, error = %e, "a request for approval is not shared: only this replica can answer it");
                        false
                    }
                },
                None => false,
            };
            let (tx, rx) = watch::channel(Status::Open);
            self.lock().insert(
                view.id.clone(),
                Entry {
                    view: view.clone(),
                    expires: Instant::now() + self.settings.expire,
                    status: tx,
                    waited: true,
                    published,
                    answering: false,
                    reason: None,
                },
            );
            if let Some(asker) = self.asker.get() {
                asker.ask(view.clone());
            }
            status = Some((view.id, rx));
        }
        let (id, mut rx) = status.expect("set above");
        let answered = async {
            loop {
                if *rx.borrow_and_update() != Status::Open {
                    return;
                }
                if rx.changed().await.is_err() {
                    // The request expired away while the call waited.
                    return std::future::pending().await;
                }
            }
        };
        tokio::select! {
            () = answered => {}
            (status, reason) = self.answered_elsewhere(&id) => {
                if let Some(entry) = self.lock().get_mut(&id) {
                    entry.view.status = status.clone();
                    entry.reason = reason;
                    entry.status.send_replace(status);
                }
            }
            () = tokio::time::sleep(self.settings.wait) => {}
            () = cancel.cancelled() => {}
        }
        let entry = {
            let mut open = self.lock();
            let Some(entry) = open.get_mut(&id) else {
                return Err(self.waiting(&id, &request.roles, now_us()));
            };
            entry.waited = false;
            if entry.view.status == Status::Open {
                let expires_us = entry.view.expires_us;
                return Err(self.waiting(&id, &request.roles, expires_us));
            }
            match open.remove(&id) {
                Some(entry) => entry,
                None => return Err(self.waiting(&id, &request.roles, now_us())),
            }
        };
        self.settled(entry.view, entry.reason)
            .await
            .unwrap_or_else(|| Err(self.waiting(&id, &request.roles, now_us())))
    }

    /// An answered request, used by this call (`None`: another replica used it first).
    async fn settled(&self, view: View, reason: Option<String>) -> Option<Result<Grant, Denied>> {
        if !self.use_once(&view).await {
            return None;
        }
        outcome(view, reason)
    }

    fn waiting(&self, id: &str, roles: &[String], expires_us: u64) -> Denied {
        Denied::Waiting {
            id: id.to_owned(),
            roles: roles.to_vec(),
            expires: crate::audit::show::rfc3339(expires_us),
        }
    }

    /// An approver's answer. The approver must hold one of the request's roles and not be
    /// its caller; that the policies allow it `admin_approve` is the caller's to check.
    /// The answer is recorded, then takes effect — on every replica with Redis.
    pub async fn answer(
        &self,
        id: &str,
        approver: &Principal,
        approve: bool,
        reason: Option<String>,
    ) -> Result<View, Refusal> {
        self.sweep().await;
        // Claimed in this replica's table (when it holds the request)...
        let local = {
            let mut open = self.lock();
            match open.get_mut(id) {
                Some(e) if e.view.status == Status::Open && !e.answering => {
                    check(&e.view, approver)?;
                    e.answering = true;
                    Some(e.view.clone())
                }
                Some(_) => return Err(Refusal::NotFound(id.to_owned())),
                None => None,
            }
        };
        // ...and where every replica sees it.
        let claimed = match self.claim_shared(id, local.is_some()).await {
            Ok(claimed) => claimed,
            Err(refusal) => {
                self.release(id);
                return Err(refusal);
            }
        };
        let mut view = match (local, claimed) {
            (Some(view), _) => view,
            (None, Some(view)) => {
                if let Err(refusal) = check(&view, approver) {
                    self.release_shared(id).await;
                    return Err(refusal);
                }
                view
            }
            (None, None) => return Err(Refusal::NotFound(id.to_owned())),
        };
        let at_us = now_us();
        view.status = if approve {
            Status::Approved {
                by: approver.id.clone(),
                at_us,
            }
        } else {
            Status::Refused {
                by: approver.id.clone(),
                at_us,
            }
        };
        let event = Event {
            step: if approve { "approved" } else { "refused" },
            view: &view,
            by: Some(approver),
            reason: reason.as_deref(),
        };
        if let Err(e) = self.record(event).await {
            self.release(id);
            self.release_shared(id).await;
            return Err(Refusal::Unrecorded(e));
        }
        if let Some(shared) = &self.shared
            && let Err(e) = shared
                .settle(id, Some((&view.status, reason.as_deref())))
                .await
        {
            tracing::warn!(approval = %id, error = %e, "an answer is recorded but not shared: only this replica knows it");
        }
        if let Some(entry) = self.lock().get_mut(id) {
            entry.answering = false;
            entry.view.status = view.status.clone();
            entry.reason = reason;
            // Still usable until it expires: an approval given after the call stopped
            // waiting is used by the caller's next identical call.
            entry.status.send_replace(view.status.clone());
        }
        Ok(view)
    }

    /// Claims a request in Redis: its view when claimed there, `None` when only this
    /// replica holds it (`held_here`) and Redis never had it or cannot be asked.
    async fn claim_shared(&self, id: &str, held_here: bool) -> Result<Option<View>, Refusal> {
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        match shared.claim(id).await {
            Ok(Some(stored)) if stored.view.expires_us > now_us() => Ok(Some(stored.view)),
            Ok(Some(_)) => {
                let _ = shared.settle(id, None).await;
                Err(Refusal::NotFound(id.to_owned()))
            }
            // Being answered or answered on another replica, or unknown there.
            Ok(None) => match shared.fetch(id).await {
                Ok(None) if held_here => Ok(None),
                _ => Err(Refusal::NotFound(id.to_owned())),
            },
            Err(_) if held_here => Ok(None),
            Err(e) => Err(Refusal::Unreachable(e)),
        }
    }

    fn release(&self, id: &str) {
        if let Some(entry) = self.lock().get_mut(id) {
            entry.answering = false;
        }
    }

    async fn release_shared(&self, id: &str) {
        if let Some(shared) = &self.shared {
            let _ = shared.settle(id, None).await;
        }
    }

    /// The hold a call waits at most.
    pub fn wait(&self) -> Duration {
        self.settings.wait
    }
}
