//! How a session's request goes down the call stack: the policies asked on the request's
//! generation ([`Asking`]), the call forwarded to its backend (admitted, timed, counted),
//! input rounds answered for clients that cannot, and subscriptions shared at the backend.

use std::sync::Arc;

use rmcp::{ErrorData as McpError, RoleServer, model::*, service::RequestContext};

use super::{ProxySession, principal, resolve_uri};
use crate::{
    authn::Principal,
    authz::{Operation, RequestFacts},
    backend::Backend,
    error::CallError,
    hub::Hub,
    mcp::{
        catalog::Catalog,
        inputs::{self, InputRound},
    },
    stack::{self, Call, CallData, Generation, Op},
};

impl ProxySession {
    /// How this request asks the policies, on `generation`.
    pub(super) fn asking<'a>(
        &'a self,
        ctx: &RequestContext<RoleServer>,
        generation: &'a Generation,
    ) -> Asking<'a> {
        Asking {
            hub: &self.hub,
            generation,
            principal: principal(ctx),
            facts: self.facts(ctx),
            notes: notes(ctx),
        }
    }

    pub(super) async fn forward(
        &self,
        generation: &Arc<Generation>,
        backend: &Arc<Backend>,
        request: ClientRequest,
        op: Op,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, CallError> {
        // Counted until the call ends: a backend a reload removed stops only after it.
        let Some(_admitted) = backend.calls.enter() else {
            return Err(CallError::Unavailable(backend.name().to_owned()));
        };
        let started = std::time::Instant::now();
        let (operation, tool) = op.metric_labels();
        let origin = self.origin(ctx);
        let tenant = self
            .hub
            .metrics
            .tenant_requests
            .is_some()
            .then(|| origin.principal.tenant.clone().unwrap_or_default());
        let call = Call::new(CallData {
            backend: backend.clone(),
            generation: generation.clone(),
            request,
            op,
            origin,
            cancel: ctx.ct.clone(),
            share_key: Default::default(),
        });
        let result = self.stack.call(call).await;
        let outcome = match &result {
            Ok(ServerResult::CallToolResult(r)) if r.is_error == Some(true) => "tool_error",
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.hub
            .metrics
            .request(operation, backend.name(), tool, outcome, started.elapsed());
        if let (Some(family), Some(tenant)) = (&self.hub.metrics.tenant_requests, tenant) {
            family
                .get_or_create(&crate::telemetry::TenantLabels { tenant, outcome })
                .inc();
        }
        result
    }

    /// Forwards a request that may come back input-required, answering the input rounds
    /// for clients that cannot (see [`inputs`]).
    pub(super) async fn forward_with_inputs<P: InputRound>(
        &self,
        generation: &Arc<Generation>,
        backend: &Arc<Backend>,
        mut params: P,
        make: fn(P) -> ClientRequest,
        op: Op,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, McpError> {
        let bridge = !inputs::client_handles_inputs(ctx);
        for _ in 0..inputs::MAX_INPUT_ROUNDS {
            let result = self
                .forward(generation, backend, make(params.clone()), op.clone(), ctx)
                .await?;
            let ServerResult::InputRequiredResult(required) = result else {
                return Ok(result);
            };
            // What a backend asks of the client is decided like its own server requests,
            // whether the proxy asks the client or the client answers the result itself.
            if !self.inputs_permitted(generation, backend, &required, ctx) {
                return Err(CallError::Forbidden(
                    "the backend asked for input the gateway's policy does not permit".to_owned(),
                )
                .to_mcp());
            }
            if !bridge {
                return Ok(ServerResult::InputRequiredResult(required));
            }
            let (responses, state) = inputs::ask_client(ctx, required).await?;
            params.set_inputs(responses, state);
        }
        Err(CallError::Internal("the backend asked for input too many times".to_owned()).to_mcp())
    }

    /// Whether every input a backend requested (sampling, elicitation, roots) is permitted
    /// for this caller.
    fn inputs_permitted(
        &self,
        generation: &Generation,
        backend: &Backend,
        required: &InputRequiredResult,
        ctx: &RequestContext<RoleServer>,
    ) -> bool {
        let ask = self.asking(ctx, generation);
        let name = backend.name();
        required
            .input_requests
            .iter()
            .flatten()
            .all(|(_, request)| {
                let op = match request {
                    InputRequest::CreateMessage(_) => Operation::CreateMessage { backend: name },
                    InputRequest::Elicitation(_) => Operation::Elicit { backend: name },
                    InputRequest::ListRoots(_) => Operation::ListRoots { backend: name },
                    // An input kind with no Cedar action cannot be allowed.
                    #[allow(unreachable_patterns)]
                    _ => return false,
                };
                ask.allowed(op)
            })
    }

    /// Subscribes this session to an exposed resource URI; the backend is asked only for
    /// the first subscriber, since its connection is shared.
    pub(super) async fn subscribe_uri(
        &self,
        exposed: &str,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let generation = self.hub.snapshot();
        let catalog = &generation.catalog;
        let target = resolve_uri(catalog, exposed)?;
        let backend = backend_of(catalog, target.backend)?;
        let op = Op::Subscribe {
            backend: backend.name().to_owned(),
            uri: exposed.to_owned(),
        };
        // Decided for every subscriber, not only the first one the backend hears of.
        self.asking(ctx, &generation).authorize(&op)?;
        if self
            .hub
            .sessions
            .subscribe(self.id, exposed, principal(ctx))
        {
            let request = ClientRequest::SubscribeRequest(SubscribeRequest::new(
                SubscribeRequestParams::new(target.name),
            ));
            if let Err(e) = self.forward(&generation, backend, request, op, ctx).await {
                self.hub.sessions.unsubscribe(self.id, exposed);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Drops this session's subscription; the backend is told when no subscriber is left.
    pub(super) async fn unsubscribe_uri(
        &self,
        exposed: &str,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let generation = self.hub.snapshot();
        let catalog = &generation.catalog;
        let target = resolve_uri(catalog, exposed)?;
        if self.hub.sessions.unsubscribe(self.id, exposed) {
            let request = ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(
                UnsubscribeRequestParams::new(target.name),
            ));
            let backend = backend_of(catalog, target.backend)?;
            let op = Op::Subscribe {
                backend: backend.name().to_owned(),
                uri: exposed.to_owned(),
            };
            self.forward(&generation, backend, request, op, ctx).await?;
        }
        Ok(())
    }

    /// Whether a resource update is one the kill switch keeps from this caller (its
    /// principal, or the backend serving the resource, switched off).
    pub(super) fn switched_off_for(
        &self,
        ctx: &RequestContext<RoleServer>,
        notification: &ServerNotification,
    ) -> bool {
        let ServerNotification::ResourceUpdatedNotification(update) = notification else {
            return false;
        };
        let catalog = self.hub.catalog();
        let backend = catalog
            .resolve_uri(&update.params.uri)
            .map(|t| catalog.backend_name(t.backend).to_owned());
        self.hub
            .switches
            .blocks(&principal(ctx).id, backend.as_deref(), None)
            .is_some()
    }
}

/// One request's authorization questions: who asks, when and from where, decided on the
/// generation the request took, its decisions noted for its record.
pub(super) struct Asking<'a> {
    hub: &'a Hub,
    generation: &'a Generation,
    principal: Arc<Principal>,
    facts: RequestFacts,
    notes: stack::audit::Notes,
}

impl Asking<'_> {
    pub(super) fn allowed(&self, op: Operation<'_>) -> bool {
        stack::authz::allowed(
            &self.hub.authority,
            self.generation,
            &self.principal,
            op,
            &self.facts,
            &self.notes,
        )
    }

    pub(super) fn tool_visible(&self, tool: &str) -> bool {
        stack::authz::tool_visible(
            &self.hub.authority,
            self.generation,
            &self.principal,
            tool,
            &self.facts,
        )
    }

    pub(super) fn authorize(&self, op: &Op) -> Result<crate::authz::Decision, CallError> {
        stack::authz::authorize(
            &self.hub.authority,
            self.generation,
            &self.principal,
            op,
            &self.facts,
            &self.notes,
        )
    }
}

/// The request's audit notes, where its record collects the decision (none when the
/// request is not recorded).
pub(super) fn notes(ctx: &RequestContext<RoleServer>) -> stack::audit::Notes {
    ctx.extensions
        .get::<stack::audit::Notes>()
        .cloned()
        .unwrap_or_default()
}

/// Backend `id` of the call's catalog snapshot (always there: the snapshot was built
/// from the table it resolves in).
pub(super) fn backend_of(catalog: &Catalog, id: usize) -> Result<&Arc<Backend>, CallError> {
    catalog
        .backend(id)
        .ok_or_else(|| CallError::Internal("a catalog entry names no backend".to_owned()))
}
