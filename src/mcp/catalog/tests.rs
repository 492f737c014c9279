use std::{collections::BTreeMap, sync::Arc};

use rmcp::model::{Prompt, Resource, ResourceTemplate, Tool};

use super::*;
use crate::config::Config;

fn tool(name: &str) -> Tool {
    Tool::new(name.to_owned(), "d", Arc::new(serde_json::Map::new()))
}

fn backends(toml: &str) -> Vec<BackendSettings> {
    let auth =
        "[auth]\nanonymous = true\n[authz]\npolicy = \"permit(principal, action, resource);\"\n";
    Config::from_toml_str(&format!("{auth}{toml}"))
        .unwrap()
        .backends
}

const TWO: &str = r#"
[[backends]]
name = "gh"
command = "x"
hide = ["delete_*"]
aliases = { search = "find_code" }
[[backends]]
name = "local"
namespace = ""
command = "y"
"#;

fn lists(tools: &[&str]) -> Option<BackendLists> {
    Some(BackendLists {
        tools: tools.iter().map(|t| tool(t)).collect(),
        ..Default::default()
    })
}

#[test]
fn namespaces_aliases_and_filters_in_one_place() {
    let b = backends(TWO);
    let c = Catalog::build(
        &b,
        &[lists(&["search", "issue", "delete_repo"]), lists(&["echo"])],
        "__",
    );
    let names: Vec<_> = c.tools().map(|e| e.item.name.to_string()).collect();
    assert_eq!(names, ["echo", "find_code", "gh__issue"]);
    let e = c.tool("find_code").unwrap();
    assert_eq!((e.backend, e.original.as_str()), (0, "search"));
    assert!(
        c.tool("gh__search").is_none(),
        "an aliased tool is reachable only by its alias"
    );
    assert!(
        c.tool("gh__delete_repo").is_none(),
        "a hidden tool reads like an unknown one"
    );
    assert_eq!(c.tool("echo").unwrap().backend, 1);
}

#[test]
fn a_down_backend_drops_out_of_the_lists() {
    let b = backends(TWO);
    let c = Catalog::build(&b, &[None, lists(&["echo"])], "__");
    assert_eq!(c.tools().count(), 1);
    assert!(c.tool("gh__issue").is_none());
}

#[test]
fn an_alias_is_reserved_whether_or_not_its_backend_is_up() {
    let b = backends(TWO);
    for gh in [lists(&["search"]), lists(&["x"]), None] {
        let c = Catalog::build(&b, &[gh.clone(), lists(&["find_code", "echo"])], "__");
        assert_ne!(
            c.tool("find_code").map(|e| e.backend),
            Some(1),
            "`find_code` is gh's alias, never the unprefixed backend's tool"
        );
        assert_eq!(c.tool("echo").map(|e| e.backend), Some(1));
        let refused: Vec<_> = c
            .collisions
            .iter()
            .map(|c| (c.exposed.as_str(), c.backend.as_str()))
            .collect();
        assert_eq!(refused, [("find_code", "local")]);
    }
}

/// With `pay` down, an unprefixed backend's tool literally named `pay__transfer` served a
/// call meant for `pay`.
#[test]
fn an_unprefixed_backend_never_exposes_a_name_in_a_namespace() {
    let b = backends(
        r#"
[[backends]]
name = "pay"
command = "x"
[[backends]]
name = "local"
namespace = ""
command = "y"
"#,
    );
    let local = || {
        Some(BackendLists {
            tools: vec![tool("pay__transfer"), tool("echo")],
            prompts: vec![Prompt::new("pay__greet", None::<String>, None)],
            resources: vec![
                Resource::new("pay+file:///x", "x"),
                Resource::new("file:///y", "y"),
            ],
            templates: vec![ResourceTemplate::new("pay+git://{id}", "t")],
        })
    };
    for pay in [lists(&["transfer"]), None] {
        let up = pay.is_some();
        let c = Catalog::build(&b, &[pay, local()], "__");
        assert_eq!(c.tool("pay__transfer").map(|e| e.backend), up.then_some(0));
        assert!(c.prompt("pay__greet").is_none());
        assert_eq!(c.tool("echo").map(|e| e.backend), Some(1));
        let uris: Vec<_> = c
            .resources_page(None, 10, |_| true)
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.uri)
            .collect();
        assert_eq!(uris, ["file:///y"]);
        assert_eq!(c.templates_page(None, 10, |_| true).unwrap().items.len(), 0);
        assert_eq!(c.resolve_uri("pay+file:///x").map(|t| t.backend), Some(0));
        assert_eq!(
            c.resolve_uri("pay+"),
            None,
            "never the unprefixed backend's"
        );
        assert_eq!(c.resolve_uri("other+x").map(|t| t.backend), Some(1));
        let refused: Vec<_> = c.collisions.iter().map(|c| c.exposed.as_str()).collect();
        assert_eq!(
            refused,
            [
                "pay__transfer",
                "pay__greet",
                "pay+file:///x",
                "pay+git://{id}"
            ]
        );
    }
}

#[test]
fn pagination_walks_every_item_once() {
    let b = backends(TWO);
    let names: Vec<String> = (0..25).map(|i| format!("t{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let c = Catalog::build(&b, &[lists(&refs), lists(&["echo"])], "__");
    let mut cursor = None;
    let mut seen = Vec::new();
    loop {
        let page = c.tools_page(cursor.as_deref(), 10, |_| true).unwrap();
        seen.extend(page.items.into_iter().map(|t| t.name.to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 26);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 26);
}

#[test]
fn a_cursor_survives_a_backend_leaving_mid_walk() {
    let b = backends(TWO);
    let c1 = Catalog::build(&b, &[lists(&["a", "b", "c"]), lists(&["echo", "zz"])], "__");
    let first = c1.tools_page(None, 2, |_| true).unwrap();
    assert_eq!(first.items.len(), 2);
    let c2 = Catalog::build(&b, &[None, lists(&["echo", "zz"])], "__");
    let rest = c2
        .tools_page(first.next_cursor.as_deref(), 10, |_| true)
        .unwrap();
    let names: Vec<_> = rest.items.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["zz"]);
}

#[test]
fn forged_cursors_are_refused() {
    let c = Catalog::build(&backends(TWO), &[None, None], "__");
    assert_eq!(
        c.tools_page(Some("!!"), 10, |_| true).err(),
        Some(BadCursor)
    );
    assert_eq!(
        c.tools_page(Some("bm9wZQ"), 10, |_| true).err(),
        Some(BadCursor)
    );
}

#[test]
fn resource_uris_are_rewritten_reversibly() {
    let b = backends(TWO);
    let lists = BackendLists {
        resources: vec![Resource::new("file:///etc/motd", "motd")],
        templates: vec![ResourceTemplate::new("git+https://x/{id}", "repo")],
        prompts: vec![Prompt::new("greet", None::<String>, None)],
        ..Default::default()
    };
    let c = Catalog::build(&b, &[Some(lists), None], "__");
    let page = c.resources_page(None, 10, |_| true).unwrap();
    assert_eq!(page.items[0].uri, "gh+file:///etc/motd");
    assert_eq!(
        c.resolve_uri("gh+file:///etc/motd"),
        Some(Target {
            backend: 0,
            name: "file:///etc/motd".into()
        })
    );
    assert_eq!(
        c.resolve_uri("gh+git+https://x/7"),
        Some(Target {
            backend: 0,
            name: "git+https://x/7".into()
        })
    );
    assert_eq!(
        c.resolve_uri("test://plain"),
        Some(Target {
            backend: 1,
            name: "test://plain".into()
        })
    );
    assert_eq!(c.expose_uri(0, "file:///a"), "gh+file:///a");
    assert_eq!(c.expose_uri(1, "test://a"), "test://a");
    assert_eq!(
        c.resolve_prompt("gh__greet"),
        Some(Target {
            backend: 0,
            name: "greet".into()
        })
    );
    let _ = BTreeMap::<String, String>::new();
}

#[test]
fn clients_see_only_the_hints_the_operator_trusts() {
    let b = backends(
        r#"
[[backends]]
name = "db"
command = "x"
hints = { search = { read_only = true } }
[[backends]]
name = "ok"
command = "y"
trust_hints = true
"#,
    );
    let annotated = |name: &str| {
        let mut t = tool(name);
        t.annotations = Some(
            rmcp::model::ToolAnnotations::new()
                .read_only(true)
                .destructive(false),
        );
        t
    };
    let lists = |names: &[&str]| {
        Some(BackendLists {
            tools: names.iter().map(|n| annotated(n)).collect(),
            ..Default::default()
        })
    };
    let c = Catalog::build(
        &b,
        &[lists(&["delete_all_records", "search"]), lists(&["get"])],
        "__",
    );
    let hints = |name: &str| {
        c.tool(name)
            .unwrap()
            .item
            .annotations
            .as_ref()
            .map(|a| (a.read_only_hint, a.destructive_hint))
    };
    assert_eq!(
        hints("db__delete_all_records"),
        None,
        "an untrusted claim is not passed on"
    );
    assert_eq!(
        hints("db__search"),
        Some((Some(true), None)),
        "the operator's word"
    );
    assert_eq!(
        hints("ok__get"),
        Some((Some(true), Some(false))),
        "a trusted backend's"
    );
}
