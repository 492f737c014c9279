//! Asking approvers through MCP: a call waiting for approval (`crate::approvals`) is put,
//! as an elicitation, to every open session whose principal may approve it — it holds one
//! of the roles the permits name, the policies allow it `admin_approve`, it is not the
//! caller — and whose client answers elicitations. The first answer decides; the others
//! find the request gone.

use std::sync::{Arc, Weak};

use rmcp::model::{ElicitRequestParams, ElicitationAction, ElicitationSchema};
use serde_json::{Value, json};

use super::live::{LiveSession, LiveSessions};
use crate::approvals::{Asker, View};
use crate::authz::{AdminAction, Operation};
use crate::hub::Hub;

/// The most bytes of arguments an approver is shown in the question (the admin API shows
/// them whole).
const SHOWN_BYTES: usize = 4096;

pub struct Approvers {
    live: Arc<LiveSessions>,
    hub: Weak<Hub>,
}

impl Approvers {
    pub fn new(live: Arc<LiveSessions>, hub: Weak<Hub>) -> Approvers {
        Approvers { live, hub }
    }
}

impl Asker for Approvers {
    fn ask(&self, view: View) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        for session in self.live.approvers(&view.roles, &view.caller) {
            if !may_approve(&hub, &session) {
                continue;
            }
            tokio::spawn(ask_one(hub.clone(), session, view.clone()));
        }
    }
}

/// Whether the policies let the session's principal approve (the admin API asks the same).
fn may_approve(hub: &Hub, session: &LiveSession) -> bool {
    let facts = crate::stack::authz::facts("", "http", "");
    crate::stack::authz::allowed(
        &hub.authority,
        &hub.snapshot(),
        &session.principal,
        Operation::Admin(AdminAction::Approve),
        &facts,
        &crate::stack::audit::Notes::default(),
    )
}

fn question(view: &View) -> String {
    let mut arguments =
        serde_json::to_string_pretty(&view.arguments).unwrap_or_else(|_| "{}".to_owned());
    if arguments.len() > SHOWN_BYTES {
        let mut end = SHOWN_BYTES;
        while !arguments.is_char_boundary(end) {
            end -= 1;
        }
        arguments.truncate(end);
        arguments.push_str("\n… (shortened; `mcp-warden admin approvals` shows it whole)");
    }
    format!(
        "mcp-warden: `{}` wants to call `{}` with these arguments:\n{arguments}\n\nApprove this call? (request {}, expires {})",
        view.caller,
        view.tool,
        view.id,
        crate::audit::show::rfc3339(view.expires_us)
    )
}

fn schema() -> ElicitationSchema {
    serde_json::from_value(json!({
        "type": "object",
        "properties": {
            "decision": {
                "type": "string",
                "enum": ["approve", "deny"],
                "description": "approve lets this one call go on; deny refuses it"
            },
            "reason": {"type": "string", "description": "why (kept in the audit log)"}
        },
        "required": ["decision"]
    }))
    .expect("a valid elicitation schema")
}

async fn ask_one(hub: Arc<Hub>, session: Arc<LiveSession>, view: View) {
    let params = ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: question(&view),
        requested_schema: schema(),
    };
    let open_for = std::time::Duration::from_micros(
        view.expires_us.saturating_sub(crate::approvals::now_us()),
    );
    let answer = match tokio::time::timeout(open_for, session.peer.create_elicitation(params)).await
    {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            tracing::debug!(approval = %view.id, error = %e, "an approver's client did not answer");
            return;
        }
        Err(_) => return,
    };
    if answer.action != ElicitationAction::Accept {
        // Declined or cancelled: this approver does not answer; others may.
        return;
    }
    let content = answer.content.unwrap_or(Value::Null);
    let approve = match content["decision"].as_str() {
        Some("approve") => true,
        Some("deny") => false,
        _ => return,
    };
    let reason = content["reason"].as_str().map(str::to_owned);
    // The policies may have changed while the question was open.
    if !may_approve(&hub, &session) {
        return;
    }
    let approvals = &hub.authority.approvals;
    match approvals
        .answer(&view.id, &session.principal, approve, reason)
        .await
    {
        Ok(_) => {
            tracing::info!(approval = %view.id, by = %hub.authority.shown.id(&session.principal.id), approve, "answered through an elicitation")
        }
        Err(e) => {
            tracing::debug!(approval = %view.id, error = %e, "an approver's answer was not taken")
        }
    }
}
