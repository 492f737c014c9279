//! Every MCP request a session handles, wrapped in its audit record (the audit layer of
//! the call stack, see `stack::audit`): the log is checked first (fail closed), the
//! request is handled by [`ProxySession`], then recorded with its decision and outcome —
//! and only then answered. `Audited` is the handler rmcp serves; each request method
//! delegates to the session through [`Audited::run`], notifications pass straight through.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rmcp::model::*;
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use sha2::{Digest, Sha256};

use super::ProxySession;
use super::live::LiveSessions;
use crate::audit::entry::Openings;
use crate::audit::record::{OutcomeField, hex};
use crate::audit::{Entry, Kind, ProxyFields, jcs};
use crate::authn::Principal;
use crate::error::{BLOCKED, CallError, FORBIDDEN, RATE_LIMITED};
use crate::hub::Hub;
use crate::stack::audit::Notes;

/// A session whose requests are audited (a plain session when the proxy has no log). A
/// handle: rmcp holds one, and the HTTP hot path gets another for each request it serves
/// itself (through [`LiveSessions`]).
#[derive(Clone)]
pub struct Audited {
    shared: Arc<Shared>,
}

/// A request's record as far as it is known before the request runs.
struct Before {
    entry: Entry,
    openings: Option<Openings>,
    /// The HTTP layer's flag: a record was written for this request.
    recorded: Option<crate::ids::Recorded>,
    /// Where the layers below leave the decision (also in the request's context).
    notes: Notes,
}

/// What a session's handles share.
pub struct Shared {
    inner: ProxySession,
    hub: Arc<Hub>,
    /// Where the session registers once initialized (HTTP sessions only).
    live: Option<Arc<LiveSessions>>,
    /// The transport's session id, once registered.
    live_id: OnceLock<String>,
}

impl std::ops::Deref for Audited {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let (Some(live), Some(id)) = (&self.live, self.live_id.get()) {
            live.remove(id);
        }
    }
}

impl Audited {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self::with_live(hub, None)
    }

    /// A session of the HTTP endpoint, which registers in `live` once initialized.
    pub fn with_live(hub: Arc<Hub>, live: Option<Arc<LiveSessions>>) -> Self {
        Audited {
            shared: Arc::new(Shared {
                inner: ProxySession::new(hub.clone()),
                hub,
                live,
                live_id: OnceLock::new(),
            }),
        }
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Audited { shared }
    }

    /// What the record of a request needs from it before it runs (nothing without a log):
    /// taken from the request's context before the context moves into the handler.
    fn before(
        &self,
        ctx: &mut RequestContext<RoleServer>,
        action: &str,
        resource: Option<String>,
        arguments: Option<(&str, &JsonObject)>,
    ) -> Option<Before> {
        self.hub.audit.as_ref()?;
        let (entry, openings) = self.entry(ctx, action, resource, arguments);
        let recorded = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<crate::ids::Recorded>())
            .cloned();
        let notes = Notes::recorded();
        ctx.extensions.insert(notes.clone());
        Some(Before {
            entry,
            openings,
            recorded,
            notes,
        })
    }

    /// Runs one request: refuse when the log cannot take records, handle, record, answer.
    async fn run<T: Recorded>(
        &self,
        before: Option<Before>,
        handle: impl Future<Output = Result<T, McpError>>,
    ) -> Result<T, McpError> {
        let (Some(audit), Some(before)) = (self.hub.audit.clone(), before) else {
            return handle.await;
        };
        if let Err(e) = audit.ready() {
            self.hub.metrics.audit_refusals.inc();
            return Err(CallError::Audit(e.to_string()).to_mcp());
        }
        let started = Instant::now();
        let Before {
            mut entry,
            openings,
            recorded,
            notes,
        } = before;
        let result = handle.await;
        let mut noted = notes.take();
        let (decision, guard, redactions) = (
            noted.decision.take(),
            noted.guard.take(),
            std::mem::take(&mut noted.redactions),
        );
        if let Some((rule, path)) = guard {
            entry.detail.insert("guard".to_owned(), rule);
            entry.detail.insert("guard_path".to_owned(), path);
        }
        if let Some(grant) = noted.approval.take() {
            entry.detail.insert("approval".to_owned(), grant.id);
            let by = Principal {
                id: grant.by,
                ..Principal::local()
            };
            entry
                .detail
                .insert("approved_by".to_owned(), audit.entries().principal(&by).id);
            entry.detail.insert(
                "approved_at".to_owned(),
                crate::audit::show::rfc3339(grant.at_us),
            );
        }
        for (rule, n) in redactions {
            entry
                .detail
                .insert(format!("redacted.{rule}"), n.to_string());
        }
        let denied = decision.as_ref().is_some_and(|d| !d.allowed);
        if let Some(d) = &decision {
            entry.decision = Some(audit.entries().decision(d));
        }
        // The policies the request was decided on (a reload may have come since).
        if let Some(engine) = noted.engine.or_else(|| self.hub.authz()) {
            entry.policy_hash = Some(format!("sha256:{}", engine.policy_set_hash()));
            entry.schema_hash = Some(format!("sha256:{}", engine.schema_hash()));
        }
        entry.outcome = Some(outcome(&result, denied, started));
        let appended = audit.append(entry, openings).await;
        if let Some(recorded) = recorded {
            recorded.set();
        }
        match appended {
            Ok(_) => result,
            Err(e) => {
                self.hub.metrics.audit_refusals.inc();
                tracing::error!(error = %e, "a request's audit record could not be written; refusing its response");
                Err(CallError::Audit(e.to_string()).to_mcp())
            }
        }
    }

    /// What is known before the request runs: who, what, on which resource, and the
    /// arguments as commitments.
    fn entry(
        &self,
        ctx: &RequestContext<RoleServer>,
        action: &str,
        resource: Option<String>,
        arguments: Option<(&str, &JsonObject)>,
    ) -> (Entry, Option<Openings>) {
        let Some(audit) = &self.hub.audit else {
            return (Entry::new(Kind::Request), None);
        };
        let mut entry = Entry::new(Kind::Request);
        let parts = ctx.extensions.get::<http::request::Parts>();
        // The proxy names each request itself; what the client chose is kept beside it.
        entry.request_id = Some(
            parts
                .and_then(|p| p.extensions.get::<crate::ids::RequestId>())
                .map_or_else(crate::ids::request_id, |id| id.0.clone()),
        );
        if let Some(client) = parts
            .and_then(|p| p.headers.get("x-request-id"))
            .and_then(|v| v.to_str().ok())
        {
            entry.detail.insert(
                "client_request_id".to_owned(),
                crate::hub::audit::bounded(client),
            );
        }
        entry.detail.insert(
            "jsonrpc_id".to_owned(),
            crate::hub::audit::bounded(&ctx.id.to_string()),
        );
        if let Some(client) =
            parts.and_then(|p| p.extensions.get::<crate::http::client::ClientAddr>())
            && client.0.is_some()
        {
            entry.detail.insert("client".to_owned(), client.text());
        }
        // Through a parent gateway: which, its record's request id, its decision.
        if let Some(via) = parts.and_then(|p| p.extensions.get::<crate::federation::Via>()) {
            let bounded = crate::hub::audit::bounded;
            entry.detail.insert("via".to_owned(), bounded(&via.parent));
            entry
                .detail
                .insert("parent_request_id".to_owned(), bounded(&via.request_id));
            if let Some(receipt) = &via.receipt {
                entry
                    .detail
                    .insert("parent_receipt".to_owned(), bounded(receipt));
            }
        }
        entry.session = self.inner.recorded_session(ctx);
        let principal = parts
            .and_then(|p| p.extensions.get::<Arc<Principal>>().cloned())
            .unwrap_or_else(|| Arc::new(Principal::local()));
        entry.principal = Some(audit.entries().principal(&principal));
        entry.action = Some(action.to_owned());
        entry.resource = resource;
        let mut openings = None;
        if let Some((tool, args)) = arguments {
            let (mut field, opened) = audit.entries().arguments(tool, args);
            // Guard verdicts and redactions apply before anything is recorded in clear.
            let (withheld, redactions) = self
                .hub
                .governance
                .guards
                .screen_disclosed(tool, &mut field.disclosed);
            if !withheld.is_empty() {
                let list: Vec<String> = withheld
                    .iter()
                    .map(|(path, rule)| format!("{path} ({rule})"))
                    .collect();
                entry
                    .detail
                    .insert("disclosure_withheld".to_owned(), list.join(", "));
            }
            for (rule, n) in redactions.by_rule {
                entry
                    .detail
                    .insert(format!("disclosure_redacted.{rule}"), n.to_string());
            }
            entry.arguments = Some(field);
            openings = Some(opened);
        }
        (entry, openings)
    }
}

/// How the request ended, with a hash of the result exactly as returned.
fn outcome<T: Recorded>(
    result: &Result<T, McpError>,
    denied: bool,
    started: Instant,
) -> OutcomeField {
    let latency_us = started.elapsed().as_micros() as u64;
    match result {
        Ok(value) => {
            let value = value.json();
            let tool_error = value
                .as_ref()
                .and_then(|v| v.get("isError"))
                .and_then(serde_json::Value::as_bool)
                == Some(true);
            let hash = value.map(|v| {
                let digest: [u8; 32] = Sha256::digest(jcs::to_vec(&v)).into();
                hex(&digest)
            });
            OutcomeField {
                status: if tool_error { "error" } else { "ok" }.to_owned(),
                code: None,
                latency_us,
                result_hash: hash,
            }
        }
        Err(e) => OutcomeField {
            status: if denied || e.code == FORBIDDEN {
                "denied"
            } else if e.code == RATE_LIMITED {
                "rate_limited"
            } else if e.code == BLOCKED {
                "blocked"
            } else {
                "error"
            }
            .to_owned(),
            code: Some(i64::from(e.code.0)),
            latency_us,
            result_hash: None,
        },
    }
}

/// A result as JSON, for its hash in the record.
trait Recorded {
    fn json(&self) -> Option<serde_json::Value>;
}

macro_rules! recorded_as_serialized {
    ($($t:ty),*) => {$(
        impl Recorded for $t {
            fn json(&self) -> Option<serde_json::Value> {
                serde_json::to_value(self).ok()
            }
        }
    )*};
}

recorded_as_serialized!(
    (),
    InitializeResult,
    DiscoverResult,
    CompleteResult,
    ListPromptsResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    CustomResult,
    GetTaskResult,
    ListSkillsResult,
    GetSkillResult,
    ReadResourceDirectoryResult
);

/// Multi-round-trip responses: the variant's own result.
macro_rules! recorded_by_variant {
    ($t:ident { $($variant:ident),* }) => {
        impl Recorded for $t {
            fn json(&self) -> Option<serde_json::Value> {
                match self {
                    $($t::$variant(r) => serde_json::to_value(r).ok(),)*
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }
    };
}

recorded_by_variant!(CallToolResponse {
    Complete,
    InputRequired,
    Task
});
recorded_by_variant!(GetPromptResponse {
    Complete,
    InputRequired
});
recorded_by_variant!(ReadResourceResponse {
    Complete,
    InputRequired
});

/// A request method that takes params: audited, then delegated to the session.
macro_rules! delegate {
    ($name:ident, $params:ty, $out:ty, $method:literal, |$r:ident| $resource:expr) => {
        async fn $name(
            &self,
            request: $params,
            mut ctx: RequestContext<RoleServer>,
        ) -> Result<$out, McpError> {
            let resource = {
                let $r = &request;
                $resource
            };
            let before = self.before(&mut ctx, $method, resource, None);
            self.run(before, self.inner.$name(request, ctx)).await
        }
    };
}

#[allow(deprecated)] // subscribe/unsubscribe: still served to clients before 2026-07-28
impl ServerHandler for Audited {
    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }

    async fn ping(&self, mut ctx: RequestContext<RoleServer>) -> Result<(), McpError> {
        let before = self.before(&mut ctx, "ping", None, None);
        self.run(before, self.inner.ping(ctx)).await
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        mut ctx: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        let client = Some(request.client_info.name.clone());
        let restored = ctx
            .extensions
            .get::<rmcp::transport::streamable_http_server::session::SessionRestoreMarker>()
            .is_some();
        let mut before = self.before(&mut ctx, "initialize", client, None);
        if restored && let Some(before) = before.as_mut() {
            // Not the client's own `initialize`: its parameters replayed by a replica that
            // serves a session another one opened.
            before
                .entry
                .detail
                .insert("restored".to_owned(), "true".to_owned());
        }
        self.run(before, self.inner.initialize(request, ctx)).await
    }

    async fn discover(
        &self,
        mut ctx: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, McpError> {
        let before = self.before(&mut ctx, "server/discover", None, None);
        self.run(before, self.inner.discover(ctx)).await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // The arguments are committed to in the record before the request moves on.
        let before = self.before(
            &mut ctx,
            "tools/call",
            Some(request.name.to_string()),
            request.arguments.as_ref().map(|a| (&*request.name, a)),
        );
        self.run(before, self.inner.call_tool(request, ctx)).await
    }

    delegate!(
        complete,
        CompleteRequestParams,
        CompleteResult,
        "completion/complete",
        |r| Some(format!("{:?}", r.r#ref))
    );
    delegate!(
        set_level,
        SetLevelRequestParams,
        (),
        "logging/setLevel",
        |_r| None
    );
    delegate!(
        get_prompt,
        GetPromptRequestParams,
        GetPromptResponse,
        "prompts/get",
        |r| Some(r.name.clone())
    );
    delegate!(
        list_prompts,
        Option<PaginatedRequestParams>,
        ListPromptsResult,
        "prompts/list",
        |_r| None
    );
    delegate!(
        list_resources,
        Option<PaginatedRequestParams>,
        ListResourcesResult,
        "resources/list",
        |_r| None
    );
    delegate!(
        list_resource_templates,
        Option<PaginatedRequestParams>,
        ListResourceTemplatesResult,
        "resources/templates/list",
        |_r| None
    );
    delegate!(
        read_resource,
        ReadResourceRequestParams,
        ReadResourceResponse,
        "resources/read",
        |r| Some(r.uri.clone())
    );
    delegate!(
        subscribe,
        SubscribeRequestParams,
        (),
        "resources/subscribe",
        |r| Some(r.uri.clone())
    );
    delegate!(
        unsubscribe,
        UnsubscribeRequestParams,
        (),
        "resources/unsubscribe",
        |r| Some(r.uri.clone())
    );
    delegate!(
        list_tools,
        Option<PaginatedRequestParams>,
        ListToolsResult,
        "tools/list",
        |_r| None
    );
    delegate!(
        on_custom_request,
        CustomRequest,
        CustomResult,
        "custom",
        |r| Some(r.method.clone())
    );
    delegate!(get_task, GetTaskParams, GetTaskResult, "tasks/get", |_r| {
        None
    });
    delegate!(update_task, UpdateTaskParams, (), "tasks/update", |_r| None);
    delegate!(cancel_task, CancelTaskParams, (), "tasks/cancel", |_r| None);
    delegate!(
        list_skills,
        Option<PaginatedRequestParams>,
        ListSkillsResult,
        "skills/list",
        |_r| None
    );
    delegate!(
        get_skill,
        GetSkillRequestParams,
        GetSkillResult,
        "skills/get",
        |_r| None
    );
    delegate!(
        read_resource_directory,
        ReadResourceDirectoryRequestParams,
        ReadResourceDirectoryResult,
        "resources/directory/read",
        |_r| None
    );

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.inner.accepted_subscription_filter(requested)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        // The stream's subscriptions are decided on a context of its own (rmcp hands out
        // no mutable one): its record has no decision, each subscription is refused or
        // made as it would be for a `resources/subscribe`.
        let before = self.before(
            &mut context.request_context().clone(),
            "subscriptions/listen",
            None,
            None,
        );
        self.run(before, self.inner.listen(context)).await
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        let id = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok());
        let principal = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<Arc<Principal>>().cloned())
            .unwrap_or_else(|| Arc::new(Principal::local()));
        if let (Some(live), Some(id)) = (&self.live, id)
            && self.live_id.set(id.to_owned()).is_ok()
        {
            live.insert(
                id,
                Arc::downgrade(&self.shared),
                ctx.peer.clone(),
                principal,
            );
        }
        self.inner.on_initialized(ctx).await
    }

    async fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        ctx: NotificationContext<RoleServer>,
    ) {
        self.inner.on_cancelled(notification, ctx).await
    }

    async fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        ctx: NotificationContext<RoleServer>,
    ) {
        self.inner.on_progress(notification, ctx).await
    }

    async fn on_roots_list_changed(&self, ctx: NotificationContext<RoleServer>) {
        self.inner.on_roots_list_changed(ctx).await
    }

    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        ctx: NotificationContext<RoleServer>,
    ) {
        self.inner.on_custom_notification(notification, ctx).await
    }
}
