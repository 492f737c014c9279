//! Records as a SIEM's events, for `audit follow`: OCSF API Activity (class 6003), one JSON
//! object per record (`--format ocsf`), or ArcSight Common Event Format lines (`--format
//! cef`) for the SIEMs that take CEF over syslog or files. Nothing of the record is lost:
//! what OCSF has no place for (the decision, the policy hash, argument commitments,
//! details) goes to `unmapped`; a CEF event carries the whole record, as stored, in `cs6`.
//! `metadata.uid` / `externalId` (`<origin>/<index>`) lets a consumer drop the duplicates an
//! at-least-once stream may repeat after a restart.

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

/// One record as a CEF:0 line (no line feed): `CEF:0|mcp-warden|mcp-warden|<version>|
/// <kind>:<action>|<action> <resource> <effect or status>|<severity>|<extension>`.
///
/// Severity: 7 for an authentication failure, 5 for a denied or failed request, 3
/// otherwise. The extension maps what CEF has names for (`rt` the record's time in epoch
/// milliseconds, `externalId`, `suser`, `src` when the client is an IP address, `act` the
/// decision, `outcome`, `msg` the decision's reason, `cat` the kind, `deviceExternalId` the
/// replica, `cn1` the latency in µs) and labelled custom strings for the rest: `cs1` tool or
/// resource, `cs2` the deciding policies, `cs3` the session, `cs4` the tenant, `cs5` the
/// request id, and `cs6` the record itself (its canonical JSON: what an auditor verifies).
/// Header fields escape `\` and `|`; extension values escape `\`, `=` and line breaks,
/// as the CEF specification says; any other control character becomes a space (the
/// record in `cs6` keeps it, JSON-escaped).
pub fn cef(record: &Value, line: &str) -> String {
    let text = |p: &str| record.pointer(p).and_then(Value::as_str);
    let kind = text("/kind").unwrap_or("request");
    let action = text("/action");
    let effect = text("/decision/effect");
    let status = text("/outcome/status");
    let failed = status.is_some_and(|s| s != "ok") || effect == Some("deny");
    let severity = match (kind, failed) {
        ("auth_failure", _) => 7,
        (_, true) => 5,
        _ => 3,
    };
    let class = match action {
        Some(action) => format!("{kind}:{action}"),
        None => kind.to_owned(),
    };
    let name = [action, text("/resource"), effect.or(status)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = String::with_capacity(line.len() * 2 + 256);
    out.push_str("CEF:0|mcp-warden|mcp-warden|");
    for field in [
        env!("CARGO_PKG_VERSION"),
        &class,
        if name.is_empty() { kind } else { &name },
    ] {
        header(&mut out, field);
        out.push('|');
    }
    out.push_str(&severity.to_string());
    out.push('|');
    let origin = text("/origin").unwrap_or_default();
    let index = record.get("index").and_then(Value::as_u64).unwrap_or(0);
    let time_ms = record.get("time_us").and_then(Value::as_u64).unwrap_or(0) / 1000;
    let policies = record
        .pointer("/decision/policies")
        .and_then(Value::as_array)
        .map(|p| {
            p.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        });
    let client = text("/detail/client").filter(|c| c.parse::<std::net::IpAddr>().is_ok());
    let latency = record
        .pointer("/outcome/latency_us")
        .and_then(Value::as_u64);
    let text = |p: &str| text(p).map(str::to_owned);
    let mut fields = vec![
        ("rt", Some(time_ms.to_string())),
        ("externalId", Some(format!("{origin}/{index}"))),
        ("cat", Some(kind.to_owned())),
        ("deviceExternalId", text("/replica")),
        ("suser", text("/principal/id")),
        ("src", client.map(str::to_owned)),
        ("act", effect.map(str::to_owned)),
        ("outcome", status.map(str::to_owned)),
        ("msg", text("/decision/reason")),
    ];
    // Custom fields, each with its label, only when it has a value.
    let custom = [
        (
            "cn1",
            "cn1Label",
            "latencyUs",
            latency.map(|l| l.to_string()),
        ),
        ("cs1", "cs1Label", "resource", text("/resource")),
        ("cs2", "cs2Label", "policies", policies),
        ("cs3", "cs3Label", "session", text("/session")),
        ("cs4", "cs4Label", "tenant", text("/principal/tenant")),
        ("cs5", "cs5Label", "requestId", text("/request_id")),
        ("cs6", "cs6Label", "record", Some(line.to_owned())),
    ];
    for (key, label_key, label, value) in custom {
        if value.is_some() {
            fields.push((label_key, Some(label.to_owned())));
            fields.push((key, value));
        }
    }
    let mut first = true;
    for (key, value) in fields {
        if let Some(value) = value {
            extension(&mut out, &mut first, key, &value);
        }
    }
    out
}

/// A header field: `\` and `|` escaped; a line break or other control character, which a
/// header cannot hold, becomes a space.
fn header(out: &mut String, field: &str) {
    for c in field.chars() {
        match c {
            '\\' | '|' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

/// ` key=value` (no space before the first): `\`, `=` and line breaks escaped.
fn extension(out: &mut String, first: &mut bool, key: &str, value: &str) {
    if !std::mem::take(first) {
        out.push(' ');
    }
    out.push_str(key);
    out.push('=');
    for c in value.chars() {
        match c {
            '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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

    /// The extension as a SIEM's CEF parser reads it: keys before an unescaped `=`, values
    /// running to the space before the next key, escapes undone.
    fn parse_extension(ext: &str) -> BTreeMap<String, String> {
        let mut fields = BTreeMap::new();
        let (mut key, mut value, mut escaped) = (String::new(), String::new(), false);
        let mut in_key = true;
        let chars: Vec<char> = ext.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if in_key {
                if c == '=' {
                    in_key = false;
                } else {
                    key.push(c);
                }
            } else if escaped {
                value.push(match c {
                    'n' => '\n',
                    'r' => '\r',
                    c => c,
                });
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == ' ' && next_is_key(&chars[i + 1..]) {
                fields.insert(std::mem::take(&mut key), std::mem::take(&mut value));
                in_key = true;
            } else {
                value.push(c);
            }
            i += 1;
        }
        fields.insert(key, value);
        fields
    }

    fn next_is_key(rest: &[char]) -> bool {
        let key: String = rest
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        !key.is_empty() && rest.get(key.len()) == Some(&'=')
    }

    /// The header's seven fields, `\|` and `\\` undone, and the extension.
    fn split(line: &str) -> (Vec<String>, String) {
        let (mut fields, mut field, mut chars) = (Vec::new(), String::new(), line.chars());
        while fields.len() < 7 {
            match chars.next() {
                Some('\\') => field.extend(chars.next()),
                Some('|') => fields.push(std::mem::take(&mut field)),
                Some(c) => field.push(c),
                None => panic!("a header of fewer than 8 fields: {line}"),
            }
        }
        (fields, chars.collect())
    }

    #[test]
    fn a_denied_call_as_cef_with_the_record_in_full() {
        let record = json!({
            "v": 1, "origin": "o", "index": 7, "time_us": 1_700_000_000_123_456u64,
            "replica": "r", "prev": "00", "kind": "request", "request_id": "b-7", "session": "s",
            "principal": {"id": "ann", "kind": "User", "tenant": "acme"},
            "action": "tools/call", "resource": "bank__transfer",
            "decision": {"effect": "deny", "policies": ["cap", "hours"], "reason": "denied by policies `cap`, `hours`"},
            "outcome": {"status": "denied", "latency_us": 5},
            "detail": {"client": "10.0.0.7"},
        });
        let line = crate::jcs::to_vec(&record);
        let line = String::from_utf8(line).unwrap();
        let event = cef(&record, &line);
        assert!(!event.contains('\n'));
        let (header, ext) = split(&event);
        assert_eq!(header[0], "CEF:0");
        assert_eq!(header[4], "request:tools/call");
        assert_eq!(header[5], "tools/call bank__transfer deny");
        assert_eq!(header[6], "5");
        let f = parse_extension(&ext);
        assert_eq!(f["rt"], "1700000000123");
        assert_eq!(f["externalId"], "o/7");
        assert_eq!(f["suser"], "ann");
        assert_eq!(f["src"], "10.0.0.7");
        assert_eq!(
            (f["act"].as_str(), f["outcome"].as_str()),
            ("deny", "denied")
        );
        assert_eq!(f["cs2"], "cap,hours");
        assert_eq!(
            (f["cs4Label"].as_str(), f["cs4"].as_str()),
            ("tenant", "acme")
        );
        assert_eq!(f["cs6"], line, "the record, byte for byte");
        assert_eq!(serde_json::from_str::<Value>(&f["cs6"]).unwrap(), record);
    }

    /// Names and values an attacker controls (a principal id, a tool name, a reason) cannot
    /// forge a header field or an extension key, and come back as they were.
    #[test]
    fn hostile_text_cannot_forge_fields() {
        let evil = "x|y\\z=1 act=allow\nCEF:0|forged|\r\u{1}é🦀";
        let record = json!({
            "v": 1, "origin": "o", "index": 1, "time_us": 5_000, "replica": "r", "prev": "00",
            "kind": "auth_failure", "action": evil, "resource": evil,
            "principal": {"id": evil, "kind": "User"},
            "decision": {"effect": "deny", "policies": [], "reason": evil},
            "detail": {"client": "not an address"},
        });
        let line = String::from_utf8(crate::jcs::to_vec(&record)).unwrap();
        let event = cef(&record, &line);
        assert!(!event.contains('\n') && !event.contains('\r') && !event.contains('\u{1}'));
        let (header, ext) = split(&event);
        assert_eq!(header[6], "7", "an authentication failure");
        assert!(header[4].starts_with("auth_failure:x|y\\z=1"));
        let f = parse_extension(&ext);
        assert_eq!(
            f["act"], "deny",
            "the forged act=allow stays inside the value"
        );
        assert_eq!(f["suser"], evil.replace('\u{1}', " "));
        assert_eq!(f["msg"], evil.replace('\u{1}', " "));
        assert!(
            !f.contains_key("src"),
            "a client that is not an IP address is not `src`"
        );
        assert_eq!(f["cs6"], line);
    }
}
