//! Everything MCP carries, relayed through the proxy to real rmcp backends over stdio and
//! streamable HTTP, checked from a real rmcp client.
#![allow(deprecated)] // logging, sampling, roots and subscribe (SEP-2577) are relayed

use std::time::Duration;

use rmcp::model::*;
use serde_json::json;

use crate::common::*;

/// Backend `s` over stdio and `h` over HTTP, both the conformance target.
#[tokio::test]
async fn lists_are_namespaced_across_stdio_and_http_backends() {
    let (proxy, _target) = two_backends().await;
    let (client, _) = connect(&proxy.url).await;
    let tools = client.peer().list_all_tools().await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    for expected in [
        "s__test_simple_text",
        "h__test_simple_text",
        "s__test_sampling",
        "h__echo",
    ] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} missing from {names:?}"
        );
    }
    let prompts = client.peer().list_all_prompts().await.unwrap();
    assert!(
        prompts
            .iter()
            .any(|p| p.name == "h__test_prompt_with_arguments")
    );
    let resources = client.peer().list_all_resources().await.unwrap();
    assert!(
        resources.iter().any(|r| r.uri == "s+test://static-text"),
        "{resources:?}"
    );
    let templates = client.peer().list_all_resource_templates().await.unwrap();
    assert!(
        templates
            .iter()
            .any(|t| t.uri_template == "h+test://template/{id}/data")
    );
}

#[tokio::test]
async fn tool_calls_carry_content_structured_content_and_errors() {
    let (proxy, _target) = two_backends().await;
    let (client, _) = connect(&proxy.url).await;
    for backend in ["s", "h"] {
        let simple = client
            .peer()
            .call_tool(call(&format!("{backend}__test_simple_text"), json!({})))
            .await
            .unwrap();
        assert_eq!(
            first_text(&simple),
            "This is a simple text response for testing."
        );
        let image = client
            .peer()
            .call_tool(call(&format!("{backend}__test_image_content"), json!({})))
            .await
            .unwrap();
        assert!(
            image
                .content
                .iter()
                .any(|c| c.as_image().is_some_and(|i| i.mime_type == "image/png"))
        );
        let structured = client
            .peer()
            .call_tool(call(&format!("{backend}__structured"), json!({})))
            .await
            .unwrap();
        assert_eq!(structured.structured_content, Some(json!({"answer": 42})));
        let error = client
            .peer()
            .call_tool(call(&format!("{backend}__test_error_handling"), json!({})))
            .await
            .unwrap();
        assert_eq!(error.is_error, Some(true));
        let echo = client
            .peer()
            .call_tool(call(&format!("{backend}__echo"), json!({"text": "héllo"})))
            .await
            .unwrap();
        assert_eq!(first_text(&echo), "héllo");
    }
}

#[tokio::test]
async fn resources_prompts_and_completion_route_by_namespace() {
    let (proxy, _target) = two_backends().await;
    let (client, _) = connect(&proxy.url).await;
    let peer = client.peer();
    // The backend's own URI, unprefixed: the error says how resources are named here.
    let raw = client
        .peer()
        .read_resource(ReadResourceRequestParams::new("test://static-text"))
        .await
        .unwrap_err()
        .to_string();
    assert!(raw.contains("<namespace>+<uri>"), "{raw}");
    let read = peer
        .read_resource(ReadResourceRequestParams::new("h+test://static-text"))
        .await
        .unwrap();
    match &read.contents[0] {
        ResourceContents::TextResourceContents { uri, text, .. } => {
            assert_eq!(
                uri, "h+test://static-text",
                "contents carry the exposed URI"
            );
            assert_eq!(text, "This is the content of the static text resource.");
        }
        other => panic!("unexpected {other:?}"),
    }
    let templated = peer
        .read_resource(ReadResourceRequestParams::new("s+test://template/123/data"))
        .await
        .unwrap();
    assert!(format!("{:?}", templated.contents[0]).contains("Data for ID: 123"));
    let prompt = peer
        .get_prompt(
            GetPromptRequestParams::new("s__test_prompt_with_arguments").with_arguments(
                json!({"arg1": "one", "arg2": "two"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert!(format!("{:?}", prompt.messages).contains("one"));
    let completion = peer
        .complete(CompleteRequestParams::new(
            Reference::for_prompt("h__test_prompt_with_arguments"),
            ArgumentInfo::new("arg1", "te"),
        ))
        .await
        .unwrap();
    let _ = completion.completion.values;
    let unknown = peer
        .read_resource(ReadResourceRequestParams::new("nope+test://static-text"))
        .await;
    assert!(unknown.is_err());
}

#[tokio::test]
async fn progress_and_logging_reach_the_calling_client() {
    let (proxy, _target) = two_backends().await;
    let (client, seen) = connect(&proxy.url).await;
    client
        .peer()
        .set_level(SetLevelRequestParams::new(LoggingLevel::Debug))
        .await
        .unwrap();
    for backend in ["s", "h"] {
        let before = seen.seen.lock().unwrap().progress.len();
        client
            .peer()
            .call_tool(call(
                &format!("{backend}__test_tool_with_progress"),
                json!({}),
            ))
            .await
            .unwrap();
        eventually("3 progress notifications", || {
            seen.seen.lock().unwrap().progress.len() >= before + 3
        })
        .await;
        let progress: Vec<f64> = seen.seen.lock().unwrap().progress[before..]
            .iter()
            .map(|p| p.progress)
            .collect();
        assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
        let logs_before = seen.seen.lock().unwrap().logs.len();
        client
            .peer()
            .call_tool(call(
                &format!("{backend}__test_tool_with_logging"),
                json!({}),
            ))
            .await
            .unwrap();
        eventually("3 log messages", || {
            seen.seen.lock().unwrap().logs.len() >= logs_before + 3
        })
        .await;
    }
}

#[tokio::test]
async fn sampling_elicitation_and_roots_go_back_to_the_calling_session() {
    let (proxy, _target) = two_backends().await;
    let (client, seen) = connect(&proxy.url).await;
    for backend in ["s", "h"] {
        let sampled = client
            .peer()
            .call_tool(call(
                &format!("{backend}__test_sampling"),
                json!({"prompt": "hi"}),
            ))
            .await
            .unwrap();
        assert!(first_text(&sampled).contains(SAMPLED_TEXT), "{sampled:?}");
        let elicited = client
            .peer()
            .call_tool(call(
                &format!("{backend}__test_elicitation"),
                json!({"message": "who?"}),
            ))
            .await
            .unwrap();
        assert!(first_text(&elicited).contains("ada"), "{elicited:?}");
        let roots = client
            .peer()
            .call_tool(call(&format!("{backend}__get_roots"), json!({})))
            .await
            .unwrap();
        assert!(
            first_text(&roots).contains("file:///workspace/project"),
            "{roots:?}"
        );
    }
    let seen = seen.seen.lock().unwrap();
    assert_eq!((seen.sampling_requests, seen.elicitation_requests), (2, 2));
}

#[tokio::test]
async fn a_client_cancel_reaches_the_backend() {
    let (proxy, _target) = two_backends().await;
    let (client, _) = connect(&proxy.url).await;
    for backend in ["s", "h"] {
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(call(
            &format!("{backend}__slow"),
            json!({"ms": 20000}),
        )));
        let handle = client
            .peer()
            .send_cancellable_request(request, Default::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        handle.cancel(Some("test".into())).await.unwrap();
        let mut count = String::new();
        for _ in 0..100 {
            let result = client
                .peer()
                .call_tool(call(&format!("{backend}__cancelled_count"), json!({})))
                .await
                .unwrap();
            count = first_text(&result);
            if count == "1" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(count, "1", "backend `{backend}` saw the cancellation");
    }
}

#[tokio::test]
async fn list_changed_and_resource_updates_are_relayed() {
    let (proxy, _target) = two_backends().await;
    let (client, seen) = connect(&proxy.url).await;
    subscribe_touch_and_see_the_update(&client, &seen, "h").await;
    add_dynamic_tool(&client, &seen).await;
    assert!(
        eventually_listed(&client, "s__dynamic_tool").await,
        "the new tool is listed"
    );
    let dynamic = client
        .peer()
        .call_tool(call("s__dynamic_tool", json!({})))
        .await
        .unwrap();
    assert_eq!(first_text(&dynamic), "dynamic");
}

#[tokio::test]
async fn aliases_and_filters_apply_to_list_and_call_alike() {
    let toml = stdio_backend(
        "s",
        "hide = [\"crash\", \"test_*\"]\nexpose = [\"*\"]\naliases = { echo = \"say\" }",
    );
    let proxy = TestProxy::start(&toml).await;
    let (client, _) = connect(&proxy.url).await;
    let names: Vec<_> = listed_tool_names(&client).await;
    assert!(
        names.contains(&"say".to_owned()) && !names.iter().any(|n| n.contains("echo")),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.contains("crash") || n.contains("test_")),
        "{names:?}"
    );
    let said = client
        .peer()
        .call_tool(call("say", json!({"text": "x"})))
        .await
        .unwrap();
    assert_eq!(first_text(&said), "x");
    let hidden = client
        .peer()
        .call_tool(call("s__crash", json!({})))
        .await
        .unwrap_err()
        .to_string();
    let unknown = client
        .peer()
        .call_tool(call("s__no_such_tool", json!({})))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        hidden.replace("s__crash", "X"),
        unknown.replace("s__no_such_tool", "X"),
        "a hidden tool reads like an unknown one"
    );
    assert!(
        client
            .peer()
            .call_tool(call("s__echo", json!({"text": "x"})))
            .await
            .is_err(),
        "only the alias routes"
    );
}
