//! A gateway behind a gateway: an HTTP backend that is another mcp-warden. The parent
//! exposes the child's tools under its own namespace (`engineering__github__echo`), lists
//! them page by page on both sides, and calls through; the child decides on its own.

use rmcp::model::PaginatedRequestParams;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_child_gateways_tools_list_page_by_page_and_call_under_nested_namespaces() {
    let token = |secret: &str, id: &str| {
        format!(
            "[[auth.tokens]]\nsha256 = \"{}\"\nid = \"{id}\"\nkind = \"service\"\n",
            mcp_warden::authn::token_hash_hex(secret)
        )
    };
    // The child serves `github` (the conformance target) to the parent, whose token it
    // knows; two tools a page.
    let child = TestProxy::start(&format!(
        "[server]\npage_size = 2\n[auth]\n{}[authz]\npolicy = {}\n{}",
        token("parent-secret", "hq"),
        lit(r#"permit(principal == Mcp::Service::"hq", action, resource) unless { resource is Mcp::Tool && resource.name == "github__crash" };"#),
        stdio_backend("github", "")
    ))
    .await;
    let parent = TestProxy::start(&format!(
        "[server]\npage_size = 3\n[auth]\n{}[authz]\npolicy = {}\n{}",
        token("ann-secret", "ann"),
        lit(mcp_warden::config::ALLOW_ALL),
        http_backend(
            "engineering",
            &child.url,
            "headers = { Authorization = \"Bearer parent-secret\" }\n"
        )
    ))
    .await;
    let (client, _) = connect_as(&parent.url, "ann-secret").await;

    // Every page of the parent, and so every page of the child, without a duplicate.
    let mut names = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = client
            .peer()
            .list_tools(Some(PaginatedRequestParams::default().with_cursor(cursor)))
            .await
            .unwrap();
        pages += 1;
        assert!(page.tools.len() <= 3);
        names.extend(page.tools.iter().map(|t| t.name.to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    assert!(pages > 2, "{pages} pages: {names:?}");
    assert!(
        names.iter().all(|n| n.starts_with("engineering__github__")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "engineering__github__echo"));
    // The child's own policy holds: what it refuses the parent does not list (the child
    // does not list it) nor call.
    assert!(
        !names.iter().any(|n| n == "engineering__github__crash"),
        "{names:?}"
    );

    let result = client
        .peer()
        .call_tool(call(
            "engineering__github__echo",
            json!({"text": "through two gateways"}),
        ))
        .await
        .unwrap();
    assert_eq!(first_text(&result), "through two gateways");
    let refused = client
        .peer()
        .call_tool(call("engineering__github__crash", json!({})))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("unknown tool"), "{refused}");
}

/// The caller's identity reaches the child: the parent signs who each call is for, the
/// child decides on that principal (named within the parent) with its own policies and
/// records the parent, its request id and its decision, so the two logs join.
#[tokio::test]
async fn the_child_decides_on_the_callers_identity_and_both_logs_join() {
    use crate::audit::{audit_section, records, scratch};
    let dir = scratch("federation");
    // The parent's key, made as operators make it.
    let keygen = std::process::Command::new(warden_exe())
        .args(["audit", "keygen", "--name", "hq", "--out"])
        .arg(dir.join("hq"))
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    let token = |secret: &str, id: &str, kind: &str, roles: &str| {
        format!(
            "[[auth.tokens]]\nsha256 = \"{}\"\nid = \"{id}\"\nkind = \"{kind}\"\nroles = [{roles}]\n",
            mcp_warden::authn::token_hash_hex(secret)
        )
    };
    let (child_store, child_state) = (scratch("child-store"), scratch("child-state"));
    // The child: the parent may list and call as itself; through it, its developers may
    // call everything but `hq/bob`, whom the child does not want.
    let child_policies = r#"
@id("parent-itself") permit(principal == Mcp::Service::"hq", action, resource);
@id("parent-developers") permit(principal in Mcp::Role::"hq/dev", action in Mcp::Action::"call_tool", resource);
@id("not-bob") forbid(principal == Mcp::User::"hq/bob", action, resource);
"#;
    let child = dir.join("child.toml");
    std::fs::write(
        &child,
        format!(
            "[auth]\n{}[[auth.parents]]\nprincipal = \"hq\"\npublic_key = \"hq.pub\"\n[authz]\npolicy = {}\n{}{}",
            token("parent-secret", "hq", "service", ""),
            lit(child_policies),
            audit_section(&format!("file://{}", child_store.display()), &child_state, ""),
            stdio_backend("github", "")
        ),
    )
    .unwrap();
    let (_child, child_url) = spawn_warden(&child).await;
    let (parent_store, parent_state) = (scratch("parent-store"), scratch("parent-state"));
    let parent = dir.join("parent.toml");
    std::fs::write(
        &parent,
        format!(
            "[federation]\nsigning_key = \"hq.key\"\n[auth]\n{}{}{}[authz]\npolicy = {}\n{}{}",
            token("ann-secret", "ann", "user", "\"dev\""),
            token("bob-secret", "bob", "user", "\"dev\""),
            token("eve-secret", "eve", "user", "\"ops\""),
            lit(mcp_warden::config::ALLOW_ALL),
            audit_section(
                &format!("file://{}", parent_store.display()),
                &parent_state,
                ""
            ),
            http_backend(
                "engineering",
                &child_url,
                "headers = { Authorization = \"Bearer parent-secret\" }\nactor = true\n"
            )
        ),
    )
    .unwrap();
    let (_parent, parent_url) = spawn_warden(&parent).await;
    let echo = |secret: &'static str, text: &'static str| {
        let url = parent_url.clone();
        async move {
            let (client, _) = connect_as(&url, secret).await;
            let r = client
                .peer()
                .call_tool(call("engineering__github__echo", json!({ "text": text })))
                .await
                .map(|r| first_text(&r))
                .map_err(|e| e.to_string());
            client.cancel().await.unwrap();
            r
        }
    };
    // Allowed by both.
    assert_eq!(echo("ann-secret", "from ann").await.unwrap(), "from ann");
    // Allowed by the parent, denied by the child (for whom the tool does not exist: the
    // child's record says which policy kept it out).
    let bob = echo("bob-secret", "from bob").await.unwrap_err();
    assert!(bob.contains("unknown tool"), "{bob}");
    // Not a developer: the child permits only `hq/dev` through the parent.
    let eve = echo("eve-secret", "from eve").await.unwrap_err();
    assert!(eve.contains("unknown tool"), "{eve}");

    // A caller cannot pose as the parent's users: an assertion from anyone but the
    // parent, or one not signed by its key, is refused.
    let forged = raw_post(
        &child_url,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    )
    .bearer_auth("parent-secret")
    .header("warden-actor", "bm90IGEgbm90ZQ")
    .send()
    .await
    .unwrap();
    assert_eq!(forged.status(), 401);

    // Both logs: the child's record of each call names the parent's request id, and the
    // parent's record has it.
    let mut joined = 0;
    until("both logs hold the calls", 10, async || {
        let parents = records(&parent_store, &parent_state);
        let children = records(&child_store, &child_state);
        joined = 0;
        for (who, effect, policies) in [
            ("ann", "allow", json!(["parent-developers"])),
            ("bob", "deny", json!(["not-bob"])),
            ("eve", "deny", json!([])),
        ] {
            let Some(up) = parents
                .iter()
                .find(|r| r["action"] == "tools/call" && r["principal"]["id"] == who)
            else {
                continue;
            };
            let down = children.iter().find(|r| {
                r["action"] == "tools/call" && r["detail"]["parent_request_id"] == up["request_id"]
            });
            if let Some(down) = down {
                assert_eq!(down["principal"]["id"], format!("hq/{who}"));
                assert_eq!(down["detail"]["via"], "hq");
                assert_eq!(down["decision"]["effect"], effect, "{down}");
                assert_eq!(down["decision"]["policies"], policies, "{down}");
                let receipt = down["detail"]["parent_receipt"].as_str().unwrap();
                assert!(
                    receipt.starts_with(up["policy_hash"].as_str().unwrap()),
                    "{receipt} vs {up}"
                );
                joined += 1;
            }
        }
        joined == 3
    })
    .await;
    // And both verify.
    for (store, state) in [(&parent_store, &parent_state), (&child_store, &child_state)] {
        until("a checkpoint covers the records", 10, async || {
            let out = std::process::Command::new(warden_exe())
                .args(["audit", "verify", "--store"])
                .arg(store)
                .arg("--public-key")
                .arg(state.join("signing.pub"))
                .output()
                .unwrap();
            out.status.success()
        })
        .await;
    }
}
