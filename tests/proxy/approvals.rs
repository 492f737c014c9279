//! A person in the loop: a permit marked `@approval("compliance")` holds the call until a
//! compliance officer approves that exact call — through an elicitation on the officer's
//! own open session, or through the admin API — never the caller itself; a refusal or the
//! end of the hold reaches the caller; an approval is used once; and the request, the
//! approval and the call are chained, in that order, in the audit log.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::{ClientHandler, ErrorData as McpError, RoleClient};
use serde_json::{Value, json};

use crate::audit::{audit_section, records, scratch};
use crate::common::*;

const POLICIES: &str = r#"
@id("tellers-echo")
permit(principal in Mcp::Role::"teller", action == Mcp::Action::"s__echo", resource)
when { !(context.arguments.text like "*transfer*") };
@id("transfers-approved")
@approval("compliance")
permit(principal in Mcp::Role::"teller", action == Mcp::Action::"s__echo", resource)
when { context.arguments.text like "*transfer*" };
@id("compliance-approves")
permit(principal in Mcp::Role::"compliance", action == Mcp::Action::"admin_approve", resource);
"#;

fn token(secret: &str, id: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
    format!(
        "[[auth.tokens]]\nsha256 = \"{}\"\nid = \"{id}\"\nroles = [{}]\n",
        mcp_warden::authn::token_hash_hex(secret),
        roles.join(", ")
    )
}

fn config(store: &Path, state: &Path, wait_s: u64) -> String {
    format!(
        "[auth]\n{}{}{}{}[authz]\npolicy = {}\napproval_wait_s = {wait_s}\n{}{}",
        token("tess-token", "tess", &["teller"]),
        token("cora-token", "cora", &["compliance"]),
        token("carl-token", "carl", &["compliance"]),
        // Both roles: may ask, may approve others, never its own.
        token("sam-token", "sam", &["teller", "compliance"]),
        lit(POLICIES),
        audit_section(&format!("file://{}", store.display()), state, ""),
        stdio_backend("s", "")
    )
}

/// An approver's client: answers each approval question with `decision` for texts
/// containing `approve_text`, declines the others, and keeps the questions.
#[derive(Clone, Default)]
struct Officer {
    approve_text: &'static str,
    questions: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Officer {
    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        let ElicitRequestParams::FormElicitationParams { message, .. } = request else {
            return Ok(ElicitResult::new(ElicitationAction::Decline));
        };
        self.questions.lock().unwrap().push(message.clone());
        if !message.contains(self.approve_text) {
            return Ok(ElicitResult::new(ElicitationAction::Decline));
        }
        Ok(ElicitResult::new(ElicitationAction::Accept)
            .with_content(json!({"decision": "approve", "reason": "checked the payee"})))
    }

    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.capabilities = ClientCapabilities::builder().enable_elicitation().build();
        info
    }
}

async fn officer(
    url: &str,
    secret: &str,
    approve_text: &'static str,
) -> (rmcp::service::RunningService<RoleClient, Officer>, Officer) {
    let handler = Officer {
        approve_text,
        ..Officer::default()
    };
    let client = connect_with(url, secret, handler.clone()).await;
    (client, handler)
}

async fn echo(client: &Client, text: &str) -> Result<String, String> {
    client
        .call_tool(call("s__echo", json!({ "text": text })))
        .await
        .map(|r| first_text(&r))
        .map_err(|e| e.to_string())
}

/// `POST|GET /admin/approvals...` as `secret`: (status, body).
async fn admin(base: &str, secret: &str, method: &str, path: &str) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{base}/admin/approvals{path}");
    let request = if method == "POST" {
        client.post(url).json(&json!({"reason": "looked at it"}))
    } else {
        client.get(url)
    };
    let response = request.bearer_auth(secret).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn an_officer_approves_through_an_elicitation_on_their_own_session() {
    let (store, state) = (scratch("store"), scratch("state"));
    let proxy = TestProxy::start(&config(&store, &state, 20)).await;
    let (cora, cora_seen) = officer(&proxy.url, "cora-token", "transfer 5000").await;
    let (tess, _) = connect_as(&proxy.url, "tess-token").await;

    // No approval needed below the rule; the transfer waits for cora, who approves it.
    assert!(echo(&tess, "hello").await.unwrap().contains("hello"));
    let done = echo(&tess, "transfer 5000 to acme").await.unwrap();
    assert!(done.contains("transfer 5000 to acme"), "{done}");
    let questions = cora_seen.questions.lock().unwrap().clone();
    assert_eq!(questions.len(), 1, "{questions:?}");
    assert!(
        questions[0].contains("`tess` wants to call `s__echo`")
            && questions[0].contains("transfer 5000 to acme"),
        "the approver sees who, what and the arguments: {}",
        questions[0]
    );

    cora.cancel().await.unwrap();
    tess.cancel().await.unwrap();
    proxy.handle.shutdown().await;

    // The request, the approval and the call, chained in this order; the log holds the
    // arguments' hash, never the arguments.
    let log = records(&store, &state);
    let find = |action: &str| {
        log.iter()
            .position(|r| r["action"] == action)
            .unwrap_or_else(|| panic!("no `{action}` record"))
    };
    let (requested, approved) = (find("approval requested"), find("approval approved"));
    let call = log
        .iter()
        .rposition(|r| r["action"] == "tools/call" && r["detail"]["approval"].is_string())
        .expect("the call's record names its approval");
    assert!(
        requested < approved && approved < call,
        "{requested} {approved} {call}"
    );
    let id = &log[requested]["detail"]["approval"];
    assert_eq!(&log[approved]["detail"]["approval"], id);
    assert_eq!(&log[call]["detail"]["approval"], id);
    assert_eq!(log[requested]["principal"]["id"], "tess");
    assert_eq!(log[approved]["principal"]["id"], "cora");
    assert_eq!(log[approved]["detail"]["reason"], "checked the payee");
    assert_eq!(log[call]["detail"]["approved_by"], "cora");
    assert_eq!(
        log[call]["decision"]["policies"],
        json!(["transfers-approved"])
    );
    let hash = log[requested]["detail"]["arguments_sha256"]
        .as_str()
        .unwrap();
    assert_eq!(hash.len(), 64);
    let text = serde_json::to_string(&log[requested]).unwrap();
    assert!(
        !text.contains("transfer 5000"),
        "no argument in clear: {text}"
    );
}

#[tokio::test]
async fn the_admin_api_approves_once_never_the_callers_own_and_the_hold_is_time_boxed() {
    let (store, state) = (scratch("store"), scratch("state"));
    let proxy = TestProxy::start(&config(&store, &state, 1)).await;
    let (tess, _) = connect_as(&proxy.url, "tess-token").await;
    let (sam, _) = connect_as(&proxy.url, "sam-token").await;

    // Nobody answers within the hold: the caller is told to call again.
    let waiting = echo(&tess, "transfer 7").await.unwrap_err();
    assert!(
        waiting.contains("needs the approval of a person with the role compliance")
            && waiting.contains("call again with the same arguments"),
        "{waiting}"
    );
    let (status, listed) = admin(&proxy.admin, "carl-token", "GET", "").await;
    assert_eq!(status, 200, "{listed}");
    let open = listed["approvals"].as_array().unwrap().clone();
    assert_eq!(open.len(), 1, "{listed}");
    assert_eq!(open[0]["arguments"], json!({"text": "transfer 7"}));
    let id = open[0]["id"].as_str().unwrap().to_owned();
    // Only approvers read the waiting calls, or answer them.
    let (status, _) = admin(&proxy.admin, "tess-token", "GET", "").await;
    assert_eq!(status, 403);
    let (status, _) = admin(
        &proxy.admin,
        "tess-token",
        "POST",
        &format!("/{id}/approve"),
    )
    .await;
    assert_eq!(status, 403);

    // Two calls at once: sam's own transfer waits while tess's is approved by carl.
    let (sams, approved) = tokio::join!(echo(&sam, "transfer 9"), async {
        let (status, body) = admin(
            &proxy.admin,
            "carl-token",
            "POST",
            &format!("/{id}/approve"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body
    });
    assert_eq!(approved["approval"]["status"]["by"], "carl");
    assert!(sams.is_err(), "nobody approved sam's");
    let (_, listed) = admin(&proxy.admin, "carl-token", "GET", "").await;
    let sams_id = listed["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["caller"] == "sam")
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .expect("sam's request is open");
    let (status, body) = admin(
        &proxy.admin,
        "sam-token",
        "POST",
        &format!("/{sams_id}/approve"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("its own call"),
        "{body}"
    );

    // The approved call goes through when called again with the same arguments — once.
    assert!(
        echo(&tess, "transfer 8").await.is_err(),
        "other arguments, other call"
    );
    assert!(
        echo(&tess, "transfer 7")
            .await
            .unwrap()
            .contains("transfer 7")
    );
    assert!(echo(&tess, "transfer 7").await.is_err(), "used once");

    // A refusal reaches the caller with its reason.
    let (_, listed) = admin(&proxy.admin, "carl-token", "GET", "").await;
    let again = listed["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["arguments"]["text"] == "transfer 7")
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .unwrap();
    let (status, _) = admin(
        &proxy.admin,
        "cora-token",
        "POST",
        &format!("/{again}/deny"),
    )
    .await;
    assert_eq!(status, 200);
    let refused = echo(&tess, "transfer 7").await.unwrap_err();
    assert!(
        refused.contains("was refused by `cora`: looked at it"),
        "{refused}"
    );
    tess.cancel().await.unwrap();
    sam.cancel().await.unwrap();
    proxy.handle.shutdown().await;
    let log = records(&store, &state);
    let steps: Vec<&str> = log
        .iter()
        .filter_map(|r| r["action"].as_str())
        .filter(|a| a.starts_with("approval "))
        .collect();
    assert!(steps.contains(&"approval refused"), "{steps:?}");
    assert_eq!(
        steps.iter().filter(|s| **s == "approval approved").count(),
        1
    );
}

/// With `[limits] redis`, requests for approval belong to every replica: an approver
/// answers on one, the call held on another learns it, a call again on a third uses it —
/// once — and a refusal travels the same way.
#[tokio::test]
async fn replicas_share_requests_for_approval_through_redis() {
    let Some(redis) = crate::governance::Redis::start().await else {
        return;
    };
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let (store, state) = (scratch("store"), scratch("state"));
        let toml = format!(
            "{}\n[limits]\nredis = {}\n",
            config(&store, &state, 3),
            lit(&redis.url)
        );
        let path = state.join("config.toml");
        std::fs::write(&path, toml).unwrap();
        replicas.push(spawn_warden_with(&path, &[]).await);
    }
    let (a, b) = (&replicas[0], &replicas[1]);
    let (teller_a, _) = connect_as(&a.1, "tess-token").await;
    let (teller_b, _) = connect_as(&b.1, "tess-token").await;

    // Held on A, approved on B within the hold: the held call goes on.
    let held = {
        let peer = teller_a.peer().clone();
        tokio::spawn(async move {
            peer.call_tool(call("s__echo", json!({"text": "transfer 10 to ann"})))
                .await
                .map(|r| first_text(&r))
                .map_err(|e| e.to_string())
        })
    };
    let mut id = String::new();
    until("the request listed on the other replica", 5, async || {
        let (status, body) = admin(&b.2, "cora-token", "GET", "").await;
        assert_eq!(status, 200, "{body}");
        if let Some(open) = body["approvals"].as_array().and_then(|l| l.first()) {
            id = open["id"].as_str().unwrap().to_owned();
            assert_eq!(open["arguments"]["text"], "transfer 10 to ann");
            assert_eq!(open["status"]["state"], "open");
        }
        !id.is_empty()
    })
    .await;
    // The caller cannot approve its own call on any replica.
    let (status, _) = admin(&b.2, "tess-token", "POST", &format!("/{id}/approve")).await;
    assert_eq!(status, 403);
    let (status, body) = admin(&b.2, "cora-token", "POST", &format!("/{id}/approve")).await;
    assert_eq!(status, 200, "{body}");
    // A second answer, on the other replica, finds nothing to answer.
    let (status, _) = admin(&a.2, "carl-token", "POST", &format!("/{id}/deny")).await;
    assert_eq!(status, 404);
    assert_eq!(held.await.unwrap().unwrap(), "transfer 10 to ann");
    // Used once: the same call again waits for a new approval.
    let again = echo(&teller_b, "transfer 10 to ann").await.unwrap_err();
    assert!(again.contains("waiting"), "{again}");

    // Not answered within the hold on B; approved on A; the call again on A uses it, and
    // a third identical call (on B) does not.
    let mut second = String::new();
    until("the new request", 5, async || {
        let (_, body) = admin(&a.2, "cora-token", "GET", "").await;
        if let Some(open) = body["approvals"]
            .as_array()
            .and_then(|l| l.iter().find(|v| v["status"]["state"] == "open"))
        {
            second = open["id"].as_str().unwrap().to_owned();
        }
        !second.is_empty()
    })
    .await;
    let (status, _) = admin(&a.2, "carl-token", "POST", &format!("/{second}/approve")).await;
    assert_eq!(status, 200);
    assert_eq!(
        echo(&teller_a, "transfer 10 to ann").await.unwrap(),
        "transfer 10 to ann"
    );
    let third = echo(&teller_b, "transfer 10 to ann").await.unwrap_err();
    assert!(third.contains("waiting"), "{third}");

    // A refusal on one replica reaches the caller on the other.
    let mut refused = String::new();
    until("the third request", 5, async || {
        let (_, body) = admin(&b.2, "cora-token", "GET", "").await;
        if let Some(open) = body["approvals"]
            .as_array()
            .and_then(|l| l.iter().find(|v| v["status"]["state"] == "open"))
        {
            refused = open["id"].as_str().unwrap().to_owned();
        }
        !refused.is_empty()
    })
    .await;
    let (status, _) = admin(&a.2, "cora-token", "POST", &format!("/{refused}/deny")).await;
    assert_eq!(status, 200);
    let denied = echo(&teller_a, "transfer 10 to ann").await.unwrap_err();
    assert!(denied.contains("refused by `cora`"), "{denied}");
}
