//! Records as a SIEM's events: OCSF API Activity (class 6003), one JSON object per record,
//! for `audit follow --format ocsf`. What OCSF has no place for (the decision, the policy
//! hash, argument commitments, details) goes to `unmapped`, so nothing of the record is lost;
//! `metadata.uid` (`<origin>/<index>`) lets a consumer drop the duplicates an at-least-once
//! stream may repeat after a restart.

use serde_json::{Map, Value, json};

/// The OCSF schema version the events follow.
pub const OCSF_VERSION: &str = "1.3.0";

/// One record as an OCSF API Activity event.
pub fn ocsf(record: &Value) -> Value {
    let text = |p: &str| record.pointer(p).and_then(Value::as_str);
    let allowed = text("/decision/effect").map(|e| e == "allow");
    let status = text("/outcome/status");
    let failed = status.is_some_and(|s| s != "ok") || allowed == Some(false);
    let kind = text("/kind").unwrap_or("request");
    let severity = match (kind, failed) {
        ("auth_failure", _) => 3,
        (_, true) => 2,
        _ => 1,
    };
    let time_ms = record.get("time_us").and_then(Value::as_u64).unwrap_or(0) / 1000;
    let origin = text("/origin").unwrap_or_default();
    let index = record.get("index").and_then(Value::as_u64).unwrap_or(0);
    let mut event = json!({
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": 99,
        "activity_name": text("/action").unwrap_or(kind),
        "type_uid": 600399,
        "time": time_ms,
        "severity_id": severity,
        "status_id": if failed { 2 } else { 1 },
        "status": status.unwrap_or(if failed { "failure" } else { "success" }),
        "api": {
            "operation": text("/action").unwrap_or(kind),
            "service": {"name": "mcp-warden"},
        },
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "mcp-warden", "vendor_name": "mcp-warden"},
            "log_name": origin,
            "sequence": index,
            "uid": format!("{origin}/{index}"),
        },
    });
    if let Some(id) = text("/request_id") {
        event["api"]["request"] = json!({ "uid": id });
    }
    if let Some(session) = text("/session") {
        event["metadata"]["correlation_uid"] = json!(session);
    }
    if let Some(p) = record.get("principal") {
        let groups: Vec<Value> = p
            .get("roles")
            .and_then(Value::as_array)
            .map(|r| r.iter().map(|name| json!({ "name": name })).collect())
            .unwrap_or_default();
        event["actor"] = json!({ "user": {
            "uid": p.get("id"),
            "type": p.get("kind"),
            "groups": groups,
        }});
        if let Some(tenant) = p.get("tenant") {
            event["actor"]["user"]["org"] = json!({ "uid": tenant });
        }
    }
    if let Some(resource) = text("/resource") {
        event["resources"] = json!([{ "name": resource }]);
    }
    if let Some(client) = text("/detail/client") {
        event["src_endpoint"] = json!({ "ip": client });
    }
    let mut unmapped = Map::new();
    for key in [
        "kind",
        "decision",
        "policy_hash",
        "schema_hash",
        "arguments",
        "outcome",
        "detail",
        "replica",
        "prev",
    ] {
        if let Some(v) = record.get(key) {
            unmapped.insert(key.to_owned(), v.clone());
        }
    }
    event["unmapped"] = Value::Object(unmapped);
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denied_call_is_a_failed_api_activity_with_nothing_lost() {
        let record = json!({
            "v": 1, "origin": "o", "index": 7, "time_us": 1_700_000_000_123_456u64,
            "replica": "r", "prev": "00", "kind": "request", "request_id": "b-7", "session": "s",
            "principal": {"id": "ann", "kind": "User", "roles": ["teller"], "tenant": "acme"},
            "action": "tools/call", "resource": "bank__transfer",
            "decision": {"effect": "deny", "policies": ["cap"], "reason": "denied by policy `cap`"},
            "outcome": {"status": "denied", "latency_us": 5},
            "detail": {"client": "10.0.0.7"},
        });
        let e = ocsf(&record);
        assert_eq!(
            (e["class_uid"].as_u64(), e["status_id"].as_u64()),
            (Some(6003), Some(2))
        );
        assert_eq!(e["time"], 1_700_000_000_123u64);
        assert_eq!(e["actor"]["user"]["uid"], "ann");
        assert_eq!(e["actor"]["user"]["groups"][0]["name"], "teller");
        assert_eq!(e["actor"]["user"]["org"]["uid"], "acme");
        assert_eq!(e["api"]["operation"], "tools/call");
        assert_eq!(e["resources"][0]["name"], "bank__transfer");
        assert_eq!(e["src_endpoint"]["ip"], "10.0.0.7");
        assert_eq!(e["metadata"]["uid"], "o/7");
        assert_eq!(e["unmapped"]["decision"]["policies"][0], "cap");
    }
}
