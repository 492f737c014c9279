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
