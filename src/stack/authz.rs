//! The authorization layer: every call is a Cedar question, decided before anything below
//! runs; nothing reaches a backend without an Allow. Deny by default, and an engine that is
//! not built (yet) denies everything.
//!
//! Why it sits right after drain accounting and before governance: a denied call must cost
//! nothing downstream (no rate-limit token, no cache lookup, no backend connection), and an
//! audit record (above it) must see its decision.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rmcp::model::JsonObject;

use super::Call;
use super::audit::Notes;
use super::layer::{CallFuture, Next, Step, forward, step_layer};
use crate::{
    authn::Principal,
    authz::{Decision, Engine, Operation, RequestFacts, facts_at},
    error::CallError,
    stack::Generation,
};

/// What a call does, in the exposed names policies are written against.
#[derive(Debug, Clone)]
pub enum Op {
    CallTool {
        tool: String,
        /// Shared: the call is cloned for each input round and each retry.
        arguments: std::sync::Arc<JsonObject>,
    },
    ReadResource {
        backend: String,
        uri: String,
    },
    Subscribe {
        backend: String,
        uri: String,
    },
    GetPrompt {
        backend: String,
        prompt: String,
        /// The prompt's arguments, for the guards (empty for a completion's reference).
        arguments: JsonObject,
    },
    /// A completion for an argument of a prompt or resource template: decided as
    /// `complete` AND as the operation it completes for (`reference`: get that prompt, read
    /// that template), so it answers nothing about what the principal may not use.
    /// `argument` holds the argument being completed and the context's resolved ones, for
    /// the guards.
    Complete {
        backend: String,
        reference: Box<Op>,
        argument: JsonObject,
    },
}

impl Op {
    /// The exposed tool of a `tools/call`.
    pub fn tool(&self) -> Option<&str> {
        match self {
            Op::CallTool { tool, .. } => Some(tool),
            _ => None,
        }
    }

    /// The MCP method and the exposed tool (`""` for other operations), for the metrics.
    pub fn metric_labels(&self) -> (&'static str, String) {
        match self {
            Op::CallTool { tool, .. } => ("tools/call", tool.clone()),
            Op::ReadResource { .. } => ("resources/read", String::new()),
            Op::Subscribe { .. } => ("resources/subscribe", String::new()),
            Op::GetPrompt { .. } => ("prompts/get", String::new()),
            Op::Complete { .. } => ("completion/complete", String::new()),
        }
    }

    pub fn as_operation(&self) -> Operation<'_> {
        match self {
            Op::CallTool { tool, arguments } => Operation::CallTool { tool, arguments },
            Op::ReadResource { backend, uri } => Operation::ReadResource { backend, uri },
            Op::Subscribe { backend, uri } => Operation::Subscribe { backend, uri },
            Op::GetPrompt {
                backend, prompt, ..
            } => Operation::GetPrompt { backend, prompt },
            Op::Complete { backend, .. } => Operation::Complete { backend },
        }
    }
}

/// Request facts for policies: the time now (UTC) and where the request came from
/// (`client`: the client address, `""` when unknown, as over stdio).
pub fn facts(client: &str, transport: &str, session: &str) -> RequestFacts {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    facts_at(now, client, transport, session)
}

/// Why the kill switch refuses `op` for `principal` now, if it does: the principal, the
/// backend that would serve it, or the tool is switched off.
fn switched_off(
    authority: &Authority,
    generation: &Generation,
    principal: &Principal,
    op: &Operation<'_>,
) -> Option<String> {
    if authority.switches.is_empty() {
        return None;
    }
    let catalog = &generation.catalog;
    let (backend, tool) = match *op {
        Operation::CallTool { tool, .. } => {
            let backend = catalog.tool(tool).map(|e| catalog.backend_name(e.backend));
            (backend, Some(tool))
        }
        Operation::ReadResource { backend, .. }
        | Operation::Subscribe { backend, .. }
        | Operation::GetPrompt { backend, .. }
        | Operation::Complete { backend }
        | Operation::CreateMessage { backend }
        | Operation::Elicit { backend }
        | Operation::ListRoots { backend } => (Some(backend), None),
        Operation::ListTools
        | Operation::ListPrompts
        | Operation::ListResources
        | Operation::SetLogLevel
        | Operation::Admin(_) => (None, None),
    };
    authority.switches.blocks(&principal.id, backend, tool)
}

/// The decision of the kill switch, recorded and counted like a policy's.
fn refused_by_switch(
    authority: &Authority,
    op: &Operation<'_>,
    why: String,
    notes: &Notes,
) -> Decision {
    let decision = Decision::deny(why);
    count(authority, op, &decision);
    notes.decision(&decision, None);
    decision
}

/// Whether `principal` sees tool `tool` in its list: the kill switch lets it through and
/// some arguments could make its call allowed.
pub fn tool_visible(
    authority: &Authority,
    generation: &Generation,
    principal: &Principal,
    tool: &str,
    facts: &RequestFacts,
) -> bool {
    let op = Operation::CallTool {
        tool,
        arguments: &JsonObject::new(),
    };
    let Some(engine) = &generation.engine else {
        return false;
    };
    switched_off(authority, generation, principal, &op).is_none()
        && engine.tool_visible(principal, tool, facts)
}

/// What the kill switch, then the policies, say of one operation: the one judgement every
/// function of this module starts from (counted, and noted for the request's record).
enum Verdict<'g> {
    /// The kill switch refused it; no policy was asked.
    Switched(Decision),
    Decided(Decision, &'g Arc<Engine>),
    /// No engine yet: everything is denied.
    NotReady,
}

fn judge<'g>(
    authority: &Authority,
    generation: &'g Generation,
    principal: &Principal,
    op: &Operation<'_>,
    facts: &RequestFacts,
    notes: &Notes,
) -> Verdict<'g> {
    if let Some(why) = switched_off(authority, generation, principal, op) {
        return Verdict::Switched(refused_by_switch(authority, op, why, notes));
    }
    let Some(engine) = &generation.engine else {
        return Verdict::NotReady;
    };
    let decision = engine.decide(principal, op, facts);
    count(authority, op, &decision);
    notes.decision(&decision, Some(engine));
    Verdict::Decided(decision, engine)
}

/// Decides `op` for `principal`; a denial becomes the error the client sees. A tool the
/// principal cannot see at all is reported exactly like an unknown tool.
pub fn authorize(
    authority: &Authority,
    generation: &Generation,
    principal: &Principal,
    op: &Op,
    facts: &RequestFacts,
    notes: &Notes,
) -> Result<Decision, CallError> {
    if let Op::Complete { reference, .. } = op {
        authorize(authority, generation, principal, reference, facts, notes)?;
    }
    let (decision, engine) = match judge(
        authority,
        generation,
        principal,
        &op.as_operation(),
        facts,
        notes,
    ) {
        Verdict::Decided(decision, engine) => (decision, engine),
        Verdict::Switched(decision) => {
            tracing::info!(principal = %authority.shown.id(&principal.id), operation = op.metric_labels().0, tool = op.tool(), reason = %decision.reason, "denied by the kill switch");
            return Err(CallError::Forbidden(decision.reason));
        }
        Verdict::NotReady => {
            return Err(CallError::Forbidden(
                "authorization is not ready".to_owned(),
            ));
        }
    };
    for shadow in &decision.shadow {
        // What a shadow policy would have done: how a compliance team tries a rule first.
        tracing::info!(principal = %authority.shown.id(&principal.id), policy = %shadow.policy, effect = %shadow.effect, would_change = shadow.would_change, allowed = decision.allowed, "shadow policy");
    }
    if decision.allowed {
        return Ok(decision);
    }
    // Never the arguments: the audit log holds them as commitments, and the log must not
    // say more.
    tracing::info!(principal = %authority.shown.id(&principal.id), operation = op.metric_labels().0, tool = op.tool(), reason = %decision.reason, policies = ?decision.determining, errors = ?decision.errors, "denied");
    if let Op::CallTool { tool, .. } = op
        && !engine.tool_visible(principal, tool, facts)
    {
        return Err(CallError::UnknownTool(tool.clone()));
    }
    if decision.invalid_arguments {
        return Err(CallError::InvalidArguments(decision.reason));
    }
    Err(CallError::Forbidden(decision.reason))
}

/// Decides an operation that has no call of its own (lists, server-initiated requests,
/// logging level): true when allowed.
pub fn allowed(
    authority: &Authority,
    generation: &Generation,
    principal: &Principal,
    op: Operation<'_>,
    facts: &RequestFacts,
    notes: &Notes,
) -> bool {
    decide(authority, generation, principal, op, facts, notes).is_some_and(|d| d.allowed)
}

/// [`allowed`], with the decision itself (none while authorization is not ready: a deny).
pub fn decide(
    authority: &Authority,
    generation: &Generation,
    principal: &Principal,
    op: Operation<'_>,
    facts: &RequestFacts,
    notes: &Notes,
) -> Option<Decision> {
    match judge(authority, generation, principal, &op, facts, notes) {
        Verdict::Switched(decision) => Some(decision),
        Verdict::Decided(decision, _) => {
            if !decision.allowed {
                tracing::debug!(principal = %authority.shown.id(&principal.id), reason = %decision.reason, "denied");
            }
            Some(decision)
        }
        Verdict::NotReady => None,
    }
}

/// Decisions and shadow outcomes, for the metrics.
fn count(authority: &Authority, op: &Operation<'_>, decision: &Decision) {
    use crate::telemetry::{DecisionLabels, ShadowLabels};
    let operation = match op {
        Operation::CallTool { .. } => "call_tool",
        Operation::ListTools => "list_tools",
        Operation::ListPrompts => "list_prompts",
        Operation::ListResources => "list_resources",
        Operation::ReadResource { .. } => "read_resource",
        Operation::Subscribe { .. } => "subscribe",
        Operation::GetPrompt { .. } => "get_prompt",
        Operation::Complete { .. } => "complete",
        Operation::CreateMessage { .. } => "create_message",
        Operation::Elicit { .. } => "elicit",
        Operation::ListRoots { .. } => "list_roots",
        Operation::SetLogLevel => "set_log_level",
        Operation::Admin(action) => action.action(),
    };
    let verdict = if decision.allowed { "allow" } else { "deny" };
    for policy in &decision.determining {
        authority
            .metrics
            .policy_decisions
            .get_or_create(&crate::telemetry::PolicyLabels {
                policy: policy.clone(),
                decision: verdict,
            })
            .inc();
    }
    authority
        .metrics
        .decisions
        .get_or_create(&DecisionLabels {
            operation: operation.to_owned(),
            decision: verdict.to_owned(),
        })
        .inc();
    for shadow in &decision.shadow {
        let labels = ShadowLabels {
            policy: shadow.policy.clone(),
            effect: shadow.effect.to_string(),
            would_change: shadow.would_change.to_string(),
        };
        authority.metrics.shadow.get_or_create(&labels).inc();
    }
}

/// What decides besides the policies, and where decisions are counted: the kill switch
/// and the metrics. Each decision function takes it with the generation it decides on.
#[derive(Clone)]
pub struct Authority {
    pub switches: std::sync::Arc<crate::switches::Switches>,
    pub metrics: std::sync::Arc<crate::telemetry::Metrics>,
    /// Principal ids as the logs may print them (as the audit log records them).
    pub shown: crate::audit::Pseudonyms,
    /// What each session did, for policies that read `context.history`.
    pub history: std::sync::Arc<super::history::History>,
    /// Calls waiting for a person's approval (`@approval`).
    pub approvals: std::sync::Arc<crate::approvals::Approvals>,
}

/// Holds a call whose permit asks for a person's approval until it is approved (noted for
/// the call's record), refused, or the hold ends.
async fn approved(
    approvals: &crate::approvals::Approvals,
    request: crate::approvals::Request,
    call: &Call,
) -> Result<(), CallError> {
    match approvals.obtain(request, &call.cancel).await {
        Ok(grant) => {
            call.origin.notes.approval(&grant);
            Ok(())
        }
        Err(denied) => {
            tracing::info!(tool = call.op.tool(), reason = %denied, "held for approval");
            Err(CallError::Forbidden(denied.to_string()))
        }
    }
}

step_layer!(
    /// The authorization layer of the call stack.
    AuthzLayer { authority: Authority }
);

/// What a tool call's decision needs from the session's history and writes back to it.
struct Remembered {
    engine: Arc<Engine>,
    tool: String,
    /// The tool's policies read `context.history`.
    reads: bool,
}

/// Decides the call on `facts` (the history in them already looked up) and notes it in
/// the history; returns the approval the call must wait for, if its permit asks for one.
fn admit(
    authority: &Authority,
    call: &Call,
    facts: &RequestFacts,
    remembered: Option<&Remembered>,
    shared: bool,
) -> Result<Option<crate::approvals::Request>, CallError> {
    let decision = authorize(
        authority,
        &call.generation,
        &call.origin.principal,
        &call.op,
        facts,
        &call.origin.notes,
    )?;
    if let Some(r) = remembered
        && !shared
    {
        authority
            .history
            .record(&facts.session, &r.tool, r.engine.tool_groups(&r.tool));
    }
    Ok(match &call.op {
        Op::CallTool { tool, arguments } if !decision.approval.is_empty() => {
            Some(crate::approvals::Request {
                caller: call.origin.principal.clone(),
                tool: tool.clone(),
                arguments: arguments.clone(),
                roles: decision.approval.clone(),
                session: facts.session.clone(),
            })
        }
        _ => None,
    })
}

impl Step for AuthzLayer {
    fn run(&self, call: Call, next: Next) -> CallFuture {
        let mut facts = facts(
            &call.origin.client,
            call.origin.transport(),
            &call.origin.session.to_string(),
        );
        let remembered = match (&call.op, &call.generation.engine) {
            (Op::CallTool { tool, .. }, Some(engine)) if engine.keeps_history() => {
                Some(Remembered {
                    reads: engine.reads_history(tool),
                    engine: engine.clone(),
                    tool: tool.clone(),
                })
            }
            _ => None,
        };
        // Running from before its decision until it ends, so switching its tool, backend
        // or principal off with `cancel` reaches it however the two interleave.
        let tool = match &call.op {
            Op::CallTool { tool, .. } => Some(tool.as_str()),
            _ => None,
        };
        let running = self.authority.switches.run(
            &call.origin.principal.id,
            call.backend.name(),
            tool,
            call.cancel.clone(),
        );
        let history = &self.authority.history;
        if remembered.is_some() && history.is_shared() {
            // The history lives in Redis: read before the decision, written before the
            // call goes on, so the session's next call on any replica sees it.
            let authority = self.authority.clone();
            return Box::pin(async move {
                let _running = running;
                let r = remembered.expect("checked above");
                if r.reads {
                    facts.history = authority.history.facts_everywhere(&facts.session).await;
                }
                let approval = admit(&authority, &call, &facts, Some(&r), true)?;
                let groups = r.engine.tool_groups(&r.tool);
                authority
                    .history
                    .record_everywhere(&facts.session, &r.tool, groups)
                    .await;
                if let Some(request) = approval {
                    approved(&authority.approvals, request, &call).await?;
                }
                forward(next, call).await
            });
        }
        if remembered.as_ref().is_some_and(|r| r.reads) {
            facts.history = history.facts(&facts.session);
        }
        let approval = match admit(&self.authority, &call, &facts, remembered.as_ref(), false) {
            Ok(approval) => approval,
            Err(denied) => return Box::pin(std::future::ready(Err(denied))),
        };
        let approvals = self.authority.approvals.clone();
        Box::pin(async move {
            let _running = running;
            if let Some(request) = approval {
                approved(&approvals, request, &call).await?;
            }
            forward(next, call).await
        })
    }
}
