//! Liveness and readiness for orchestrators, on the admin listener. `/healthz`: the
//! process answers. `/readyz`: every check below passes, each listed in the JSON body —
//! not shutting down, a configuration and policies in force, the audit log writable, and
//! the backends: those `[admin] required_backends` names each connected and answering a
//! ping within its deadline, or (when none are named) at least one connected.

use std::time::{Duration, Instant};

use axum::{Json, http::StatusCode};
use rmcp::model::{ClientRequest, PingRequest};
use serde_json::{Value, json};

use crate::hub::Hub;

/// The longest a required backend's ping may take before it counts as not answering.
const PING_DEADLINE: Duration = Duration::from_secs(2);

struct Check {
    name: String,
    ok: bool,
    detail: String,
}

fn check(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

/// `/readyz`: 200 when ready, 503 otherwise, with every check.
pub async fn readiness(hub: &Hub) -> (StatusCode, Json<Value>) {
    let mut checks = vec![check(
        "shutdown",
        !hub.stopping.is_cancelled(),
        if hub.stopping.is_cancelled() {
            "shutting down: draining calls"
        } else {
            "serving"
        },
    )];
    let generation = hub.generation();
    checks.push(check(
        "config",
        true,
        format!(
            "generation {} loaded at {}",
            generation.number, generation.loaded_at
        ),
    ));
    checks.push(match &generation.policy_hash {
        Some(hash) => check("policies", true, hash.clone()),
        None => check("policies", false, "authorization is not ready"),
    });
    if let Some(audit) = &hub.audit {
        checks.push(match audit.ready() {
            Ok(()) => check("audit", true, "writable"),
            Err(e) => check("audit", false, e.to_string()),
        });
    }
    let table = hub.backends();
    let required = hub.admin.required_backends.as_deref();
    let mut states = serde_json::Map::new();
    let mut any_up = false;
    for backend in table.iter() {
        let up = backend.is_up();
        any_up |= up;
        states.insert(
            backend.name().to_owned(),
            json!(if up { "up" } else { "down" }),
        );
        if !required.is_some_and(|names| names.iter().any(|n| n == backend.name())) {
            continue;
        }
        let deadline = backend.settings.connect_timeout.min(PING_DEADLINE);
        checks.push(match (backend.peer(), up) {
            (Some(peer), true) => {
                let started = Instant::now();
                let ping = ClientRequest::PingRequest(PingRequest::default());
                match tokio::time::timeout(deadline, peer.send_request(ping)).await {
                    Ok(Ok(_)) => check(
                        format!("backend:{}", backend.name()),
                        true,
                        format!("answered a ping in {} ms", started.elapsed().as_millis()),
                    ),
                    Ok(Err(e)) => check(
                        format!("backend:{}", backend.name()),
                        false,
                        format!("ping failed: {e}"),
                    ),
                    Err(_) => check(
                        format!("backend:{}", backend.name()),
                        false,
                        format!("no answer to a ping within {} ms", deadline.as_millis()),
                    ),
                }
            }
            _ => check(
                format!("backend:{}", backend.name()),
                false,
                "not connected",
            ),
        });
    }
    if let Some(names) = required {
        for name in names {
            if table.by_name(name).is_none() {
                checks.push(check(
                    format!("backend:{name}"),
                    false,
                    "required, and no longer configured",
                ));
            }
        }
    } else {
        checks.push(check(
            "backends",
            any_up,
            if any_up {
                "at least one connected"
            } else {
                "none connected"
            },
        ));
    }
    let ready = checks.iter().all(|c| c.ok);
    let listed: Vec<Value> = checks
        .iter()
        .map(|c| json!({ "name": c.name, "ok": c.ok, "detail": c.detail }))
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ready": ready, "checks": listed, "backends": states })),
    )
}
